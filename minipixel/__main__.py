"""python -m minipixel: the command line (see minipixel.cli)."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
