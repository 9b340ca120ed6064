"""``python -m envtools build|list|clean``."""

import sys

from envtools.cli import main

sys.exit(main())
