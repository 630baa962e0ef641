"""Build and install the Vendor Storage Module SDK.

``pip install -e '.[test]'`` installs the whole SDK (``modules``, ``simple``,
``replica``) and the ``vsm`` command.  ``python setup.py bdist_egg`` builds
the deployment egg: only the vendor module we ship (``replica``), as
compiled code, as the platform expects.
"""
import sys

from setuptools import Command, find_packages, setup
from setuptools.command.bdist_egg import bdist_egg

#: What the deployment egg holds: the shipped vendor module and nothing else.
EGG_PACKAGES = find_packages(include=["replica", "replica.*"])


class VendorEgg(bdist_egg):
    """bdist_egg restricted to the shipped module, always byte-compiled.

    The platform provides ``modules`` itself, so the egg must not carry it,
    nor the sample ``simple`` module, nor the tests. With
    ``PYTHONDONTWRITEBYTECODE=1`` setuptools silently skips compiling and,
    with ``exclude_source_files``, writes an egg with no code; compiling is
    therefore switched back on for the build.
    """

    def finalize_options(self):
        self.distribution.packages = EGG_PACKAGES
        self.distribution.py_modules = []
        self.distribution.entry_points = {}
        super().finalize_options()

    def run(self):
        previous, sys.dont_write_bytecode = sys.dont_write_bytecode, False
        try:
            super().run()
        finally:
            sys.dont_write_bytecode = previous


class NoseTests(Command):
    """``python setup.py nosetests``: the seeds' way to run the suite (same as ``nosetests``)."""

    description = "run the test suite with nose (options from setup.cfg [nosetests])"
    user_options = [("where=", "w", "directory to look for tests in"),
                    ("verbosity=", None, "nose's verbosity")]

    def initialize_options(self):
        self.where = None
        self.verbosity = None

    def finalize_options(self):
        pass

    def run(self):
        import nose

        argv = ["nosetests"]
        if self.where:
            argv += ["--where", self.where]
        if self.verbosity:
            argv += ["--verbosity", str(self.verbosity)]
        if not nose.run(argv=argv):
            raise SystemExit(1)


setup(
    packages=find_packages(include=["modules", "modules.*", "simple", "simple.*",
                                    "replica", "replica.*"]),
    cmdclass={"bdist_egg": VendorEgg, "nosetests": NoseTests},
)
