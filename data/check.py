"""Command entry point: ``python -m data.check`` runs :func:`data.prep.check.main` (see that module)."""
import sys

from data.prep.check import main

if __name__ == "__main__":
    sys.exit(main())
