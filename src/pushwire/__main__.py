"""``python -m pushwire`` is the ``pushwire`` command."""

import sys

from pushwire.cli import main

sys.exit(main())
