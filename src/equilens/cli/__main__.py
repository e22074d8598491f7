"""``python -m equilens.cli``: the ``equilens`` command."""

import sys

from . import main

sys.exit(main())
