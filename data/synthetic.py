"""Command entry point: ``python -m data.synthetic`` runs :func:`data.prep.synthetic.main` (see that module)."""
import sys

from data.prep.synthetic import main

if __name__ == "__main__":
    sys.exit(main())
