"""The commands in README.md and docs/module-authors.md work as pasted (issue 15, point 8).

Fenced blocks preceded by ``<!-- doc-test -->`` run, in order, as one bash
script per document, in a fresh directory. ``<!-- doc-test: fill PATH -->``
first copies the small working module of ``tests/modules/filled_newstore.py``
to PATH: it stands for "fill in the methods", the one step a reader does by
hand. Every other ``vsm`` command shown in these documents is parsed by the
real ``vsm`` argument parser, so a renamed option or subcommand fails here.
"""
import contextlib
import io
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import unittest
from typing import List, Tuple

from modules.cli import build_parser

from tests.modules.support import FILLED_NEWSTORE, environment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCUMENTS = ["README.md", os.path.join("docs", "module-authors.md")]

_MARKER = re.compile(r"^<!-- doc-test(?::\s*(?P<directive>.*?))?\s*-->\s*$")


def marked_blocks(path: str) -> List[Tuple[str, str]]:
    """Return ``[(directive, code)]`` of the fenced blocks marked for testing in ``path``."""
    with open(path, encoding="utf-8") as file:
        lines = file.read().splitlines()
    blocks = []
    index = 0
    while index < len(lines):
        match = _MARKER.match(lines[index])
        index += 1
        if not match:
            continue
        while index < len(lines) and not lines[index].startswith("```"):
            index += 1
        end = index + 1
        while end < len(lines) and not lines[end].startswith("```"):
            end += 1
        blocks.append((match.group("directive") or "", "\n".join(lines[index + 1:end])))
        index = end + 1
    return blocks


def shown_vsm_commands(path: str) -> List[str]:
    """Every ``vsm ...`` command in a code block (fenced or indented) of ``path``."""
    with open(path, encoding="utf-8") as file:
        text = file.read()
    commands = []
    fenced = False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
            continue
        if not (fenced or line.startswith("    ")):
            continue
        for part in re.split(r"&&|;", line.split(" #", 1)[0]):
            part = part.strip()
            if part.startswith("vsm "):
                commands.append(part)
    return commands


class TestDocumentedCommands(unittest.TestCase):
    def test_marked_blocks_run_as_pasted(self):
        for document in DOCUMENTS:
            with self.subTest(document=document):
                blocks = marked_blocks(os.path.join(ROOT, document))
                self.assertTrue(blocks, "no block of %s is marked for testing" % document)
                script = ["set -euo pipefail"]
                for directive, code in blocks:
                    if directive.startswith("fill "):
                        target = directive.split(None, 1)[1]
                        script.append("cp %s %s" % (shlex.quote(FILLED_NEWSTORE),
                                                    shlex.quote(target)))
                    elif directive:
                        self.fail("unknown doc-test directive %r in %s" % (directive, document))
                    script.append(code)
                work = tempfile.mkdtemp(prefix="vsm-doc-")
                self.addCleanup(shutil.rmtree, work, True)
                result = subprocess.run(["bash", "-c", "\n".join(script)], cwd=work,
                                        env=environment(), capture_output=True, text=True,
                                        timeout=600)
                self.assertEqual(result.returncode, 0, "%s:\n%s\n%s" % (
                    "\n".join(script), result.stdout[-4000:], result.stderr[-4000:]))

    def test_readme_checks_simple_as_documented(self):
        """Issue 15 point 8: README's own vsm check line is among the commands that run."""
        blocks = marked_blocks(os.path.join(ROOT, "README.md"))
        self.assertIn("vsm check simple.simple.SimpleStorage /tmp/vsm-simple",
                      [line for _, code in blocks for line in code.splitlines()])

    def test_every_shown_vsm_command_parses(self):
        parser = build_parser()
        for document in DOCUMENTS:
            commands = shown_vsm_commands(os.path.join(ROOT, document))
            self.assertTrue(commands, document)
            for command in commands:
                with self.subTest(document=document, command=command):
                    argv = shlex.split(command)[1:]
                    errors = io.StringIO()
                    try:
                        with contextlib.redirect_stderr(errors):
                            parser.parse_args(argv)
                    except SystemExit:
                        self.fail("%s: %r does not parse: %s" % (document, command,
                                                                 errors.getvalue()[-500:]))
