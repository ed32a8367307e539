"""``python -m tunekit``: the ``tunekit`` command (see :mod:`tunekit.cli`)."""

import sys

from tunekit.cli import main

if __name__ == "__main__":
    sys.exit(main())
