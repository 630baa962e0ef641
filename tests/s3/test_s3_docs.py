"""docs/s3.md's SeaweedFS example runs as pasted (only its ports and directory are changed).

The standards ask every command in the docs to work on a fresh machine; the
example uses fixed ports, which the test swaps for free ones (each with its
gRPC port, +10000, free too) so that it never collides with other servers.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import unittest

from tests.s3.seaweedfs import weed_path

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOC_PORTS = (19333, 18080, 18888, 18333)


def _port_pair_free(port: int) -> bool:
    sockets = []
    try:
        for number in (port, port + 10000):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind(("127.0.0.1", number))
        return True
    except OSError:
        return False
    finally:
        for sock in sockets:
            sock.close()


def _free_port_pairs(count: int):
    found = []
    for _ in range(200):  # bounded: the OS picks, we keep those whose +10000 is free too
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        if port + 10000 < 65536 and port not in found and _port_pair_free(port):
            found.append(port)
            if len(found) == count:
                return found
    raise unittest.SkipTest("no free pairs of ports (port, port + 10000) found")


def _bash_block(path: str) -> str:
    with open(path, encoding="utf-8") as file:
        match = re.search(r"^```bash\n(.*?)^```$", file.read(), re.S | re.M)
    if match is None:
        raise AssertionError("%s has no ```bash block" % path)
    return match.group(1)


class TestSeaweedFSExample(unittest.TestCase):
    def test_the_example_stores_and_reads_an_object(self):
        if weed_path() is None:
            self.skipTest("weed is not installed (pip install -e '.[test]')")
        work = tempfile.mkdtemp(prefix="vsm-s3-doc-")
        self.addCleanup(shutil.rmtree, work, True)
        script = _bash_block(os.path.join(ROOT, "docs", "s3.md"))
        for old, new in zip(DOC_PORTS, _free_port_pairs(len(DOC_PORTS))):
            script = script.replace(str(old + 10000), str(new + 10000))
            script = script.replace(str(old), str(new))
        demo = os.path.join(work, "weed-demo")
        script = script.replace("/tmp/weed-demo", demo)
        self.addCleanup(self._kill_leftover, os.path.join(demo, "weed.pid"))
        env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep
                   + os.environ.get("PATH", ""))
        result = subprocess.run(["bash", "-c", script], cwd=work, env=env,
                                capture_output=True, text=True, timeout=180)
        self.assertEqual(result.returncode, 0, result.stdout[-2000:] + result.stderr[-2000:])
        self.assertIn("b'hello, S3'", result.stdout)
        self.assertEqual(result.stdout.strip().splitlines()[-1], "ok")
        self.assertFalse(os.path.exists(demo), "the example did not clean up after itself")

    @staticmethod
    def _kill_leftover(pid_file: str) -> None:
        """If the script failed half-way, stop the server it started (by PID)."""
        try:
            with open(pid_file) as file:
                os.kill(int(file.read().strip()), signal.SIGKILL)
        except (OSError, ValueError):
            pass


if __name__ == "__main__":
    unittest.main()
