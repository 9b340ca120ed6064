"""``python -m coffea_wq.worker HOST PORT``: the same as ``coffea-wq worker HOST PORT``."""

import sys

from coffea_wq.worker.main import main

sys.exit(main())
