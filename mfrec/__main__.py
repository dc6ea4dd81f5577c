"""`python -m mfrec` runs the command line."""

from mfrec.cli import main

main()
