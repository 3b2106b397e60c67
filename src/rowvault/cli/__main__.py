"""`python -m rowvault.cli`: the same command as `rowvault`."""

from . import main

main()
