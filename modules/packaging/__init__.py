"""Packaging for module authors: ``vsm new`` and ``vsm egg check``.

* :mod:`modules.packaging.scaffold` — writes a new module's source directory.
* :mod:`modules.packaging.egg` — reads an egg and lists what is wrong with it.
* :mod:`modules.packaging.new_command`, :mod:`modules.packaging.egg_command`
  — the ``vsm`` subcommands.
"""
