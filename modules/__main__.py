"""``python -m modules``: the same as the ``vsm`` command."""
from modules.cli import console_main

console_main()
