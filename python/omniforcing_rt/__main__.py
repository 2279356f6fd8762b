"""``python -m omniforcing_rt`` runs the command line."""

import sys

from omniforcing_rt.cli import main

sys.exit(main())
