"""Command entry point: ``python -m data.index_db`` runs :func:`data.prep.index_db.main` (see that module)."""
import sys

from data.prep.index_db import main

if __name__ == "__main__":
    sys.exit(main())
