"""`python -m xner_core.cli`: the `xner` command line."""

import sys

from xner_core.cli.main import main

sys.exit(main())
