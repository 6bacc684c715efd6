"""``python -m pushwire`` is the ``pushwire`` command."""

import sys

from pushwire.server.cli import main

sys.exit(main())
