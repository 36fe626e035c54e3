"""``python -m fastsac``: the same as the ``fastsac`` command."""

import sys

from fastsac.cli import main

if __name__ == "__main__":
    sys.exit(main())
