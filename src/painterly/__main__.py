"""`python -m painterly ARGS`: the `painterly` command."""

import sys

from painterly.cli.main import main

sys.exit(main())
