"""``python -m modules``: the same as the ``vsm`` command."""
import sys

from modules.cli import main

sys.exit(main())
