"""Compiled inner loops (numba) and their plain-numpy reference twins.

Every kernel takes contiguous arrays and scalars only, updates the parameters in place, owns no
randomness (shuffle orders come from the caller) and has a twin ``<name>_reference`` with the
same signature that the tests compare it with.
"""

#: numba fast-math flags. Reassociation and contraction let LLVM vectorise the dot products;
#: "nnan"/"ninf" are left out so that a diverging run still produces NaN/inf for the trainer's
#: divergence check. The compiled code is deterministic, so a seed still gives bit-identical
#: factors from run to run.
FASTMATH = {"nsz", "arcp", "contract", "reassoc"}
