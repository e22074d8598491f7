"""``python -m equilens`` (and ``torchrun ... -m equilens``): the ``equilens`` command."""

import sys

from .cli import main

sys.exit(main())
