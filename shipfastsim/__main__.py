"""``python -m shipfastsim``: the same as the ``shipfastsim`` command."""

import sys

from shipfastsim.cli import main

sys.exit(main())
