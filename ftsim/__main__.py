"""python -m ftsim: the command line (ftsim.cli)."""
import sys

from .cli import main

sys.exit(main())
