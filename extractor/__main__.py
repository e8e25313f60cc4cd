"""``python -m extractor``: the same as the ``extractor`` command."""
import sys

from extractor.cli import main

if __name__ == "__main__":
    sys.exit(main())
