"""Command entry point: ``python -m data.prepare`` runs :func:`data.prep.prepare.main` (see that module)."""
import sys

from data.prep.prepare import main

if __name__ == "__main__":
    sys.exit(main())
