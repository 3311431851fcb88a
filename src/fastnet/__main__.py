"""``python -m fastnet ...`` runs the command line (see :mod:`fastnet.cli`)."""

import sys

from .cli import main

sys.exit(main())
