"""Command entry point: ``python -m data.convert`` runs :func:`data.prep.convert.main` (see that module)."""
import sys

from data.prep.convert import main

if __name__ == "__main__":
    sys.exit(main())
