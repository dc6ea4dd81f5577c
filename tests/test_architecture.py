"""The layout docs/architecture.md describes, checked on the source with `ast`.

Stages import downward only: cli → experiments / distributed → model → training → ratings →
kernels and the shared helpers. Imports inside functions count; ``if TYPE_CHECKING:`` imports
do not (they never run). No module uses another module's underscore name, no import cycle, no
file over 600 lines and no function over 120.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mfrec"

#: Rank of each stage: a module may import its own stage and lower ranks, nothing above and
#: no other stage of the same rank.
STAGES = {
    "errors": 0,
    "progress": 0,
    "utils": 1,
    "kernels": 1,
    "ratings": 2,
    "training": 3,
    "model": 4,
    "distributed": 5,
    "experiments": 5,
    "cli": 6,
    "__main__": 7,
}

MAX_FILE_LINES = 600
MAX_FUNCTION_LINES = 120


@dataclass
class Module:
    name: str
    path: Path
    tree: ast.Module
    imports: dict[str, int] = field(default_factory=dict)  # imported module -> line
    private_uses: list[str] = field(default_factory=list)


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def stage(name: str) -> str | None:
    """The stage a module belongs to (None for the package's own ``__init__``)."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else None


def type_checking_nodes(tree: ast.Module) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return skipped


def scan(root: Path = PACKAGE) -> dict[str, Module]:
    """Every module of the package with the mfrec modules it imports and the private names
    of other modules it uses."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        name = module_name(path, root)
        modules[name] = Module(name, path, ast.parse(path.read_text(encoding="utf-8")))
    for mod in modules.values():
        skipped = type_checking_nodes(mod.tree)
        bound: dict[str, str] = {}  # local name -> what it was imported from
        for node in ast.walk(mod.tree):
            if id(node) in skipped:
                continue
            if isinstance(node, ast.ImportFrom):
                source = resolve(mod, node)
                if not source or not source.split(".")[0] == "mfrec":
                    continue
                for alias in node.names:
                    full = f"{source}.{alias.name}"
                    target = full if full in modules else source
                    mod.imports.setdefault(target, node.lineno)
                    bound[alias.asname or alias.name] = full
                    if is_private(alias.name):
                        mod.private_uses.append(f"line {node.lineno}: {full}")
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == "mfrec":
                        mod.imports.setdefault(alias.name, node.lineno)
                        if alias.asname:
                            bound[alias.asname] = alias.name
        for node in ast.walk(mod.tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in bound
                and is_private(node.attr)
            ):
                mod.private_uses.append(f"line {node.lineno}: {bound[node.value.id]}.{node.attr}")
    return modules


def resolve(mod: Module, node: ast.ImportFrom) -> str | None:
    if not node.level:
        return node.module
    base = mod.name.split(".")
    if mod.path.name != "__init__.py":
        base = base[:-1]
    base = base[: len(base) - node.level + 1]
    return ".".join([*base, node.module] if node.module else base)


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def cycles(modules: dict[str, Module]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in modules[v].imports:
            if w not in modules:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in modules:
        if v not in index:
            visit(v)
    return found


def upward_imports(modules: dict[str, Module]) -> list[str]:
    bad = []
    for mod in modules.values():
        here = stage(mod.name)
        if here is None:
            continue
        for target, line in mod.imports.items():
            there = stage(target)
            if there is None or there == here:
                continue
            if STAGES[there] >= STAGES[here]:
                bad.append(f"{mod.name} (line {line}) imports {target}")
    return bad


@pytest.fixture(scope="module")
def modules() -> dict[str, Module]:
    return scan()


def test_every_module_belongs_to_a_known_stage(modules):
    unknown = {stage(name) for name in modules} - set(STAGES) - {None}
    assert not unknown, f"add these to STAGES and docs/architecture.md: {sorted(unknown)}"


def test_no_import_cycles(modules):
    assert cycles(modules) == []


def test_imports_run_one_way(modules):
    assert upward_imports(modules) == []


def test_no_module_uses_another_modules_private_names(modules):
    uses = {name: m.private_uses for name, m in modules.items() if m.private_uses}
    assert uses == {}


def test_no_file_is_too_long(modules):
    long = {
        name: n
        for name, m in modules.items()
        if (n := len(m.path.read_text(encoding="utf-8").splitlines())) > MAX_FILE_LINES
    }
    assert long == {}


def test_no_function_is_too_long(modules):
    long = {
        f"{name}.{node.name}": node.end_lineno - node.lineno + 1
        for name, m in modules.items()
        for node in ast.walk(m.tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    }
    assert long == {}


def test_only_a_handful_of_modules_sit_at_the_top():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert top == ["__init__.py", "__main__.py", "errors.py", "progress.py"]


# -- the checker itself ------------------------------------------------------------------------


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / "mfrec" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "mfrec"


def test_checker_finds_a_cycle_through_an_import_inside_a_function(tmp_path):
    root = write(
        tmp_path,
        {
            "__init__.py": "",
            "model/__init__.py": "",
            "model/a.py": "from mfrec.model import b\n",
            "model/b.py": "def f():\n    from mfrec.model.a import x\n",
        },
    )
    assert cycles(scan(root)) == [["mfrec.model.a", "mfrec.model.b"]]


def test_checker_finds_an_upward_import_and_ignores_type_checking(tmp_path):
    root = write(
        tmp_path,
        {
            "__init__.py": "",
            "ratings/__init__.py": "",
            "model/__init__.py": "",
            "ratings/load.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    from mfrec.model.est import Model\n"
                "def f():\n    from mfrec.model import est\n"
            ),
            "model/est.py": "from mfrec.ratings import load\n",
        },
    )
    assert upward_imports(scan(root)) == ["mfrec.ratings.load (line 5) imports mfrec.model.est"]


def test_checker_finds_private_names_imported_or_reached_through_a_module(tmp_path):
    root = write(
        tmp_path,
        {
            "__init__.py": "",
            "ratings/__init__.py": "",
            "ratings/load.py": "def _sniff(): pass\nclass IdMap:\n    def _new(self): pass\n",
            "ratings/pairs.py": (
                "from mfrec.ratings import load\nfrom mfrec.ratings.load import _sniff, IdMap\n"
                "load._sniff()\nIdMap._new(None)\n"
            ),
        },
    )
    assert scan(root)["mfrec.ratings.pairs"].private_uses == [
        "line 2: mfrec.ratings.load._sniff",
        "line 3: mfrec.ratings.load._sniff",
        "line 4: mfrec.ratings.load.IdMap._new",
    ]
