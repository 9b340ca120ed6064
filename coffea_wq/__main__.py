import sys

from coffea_wq.cli.main import main

sys.exit(main())
