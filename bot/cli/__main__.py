"""``python -m bot.cli``: the same as the ``hokusai`` command."""

import sys

from bot.cli import main

sys.exit(main())
