"""The status page at ``/``: plain HTML checked over HTTP and in headless Chromium."""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from html.parser import HTMLParser
from typing import Dict, List, Optional
from urllib.parse import quote

import requests

from tests.host.support import PASSWORD, HostTestCase, replica_available


def chromium() -> Optional[str]:
    """Return the Chromium executable, or None when it is not installed."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class PageElements(HTMLParser):
    """Collect the attributes of elements carrying ``data-*`` markers, and all text."""

    def __init__(self):
        super().__init__()
        self.modules: Dict[str, Dict[str, str]] = {}
        self.locations: List[Dict[str, str]] = []
        self.bars: List[Dict[str, str]] = []
        self.text: List[str] = []

    def handle_starttag(self, tag, attrs):
        attributes = {name: value or "" for name, value in attrs}
        if "data-module" in attributes:
            self.modules[attributes["data-module"]] = attributes
        if "data-location" in attributes:
            self.locations.append(attributes)
        if "bar" in attributes.get("class", "").split():
            self.bars.append(attributes)

    def handle_data(self, data):
        self.text.append(data)

    @classmethod
    def parse(cls, html: str) -> "PageElements":
        parser = cls()
        parser.feed(html)
        return parser


class TestStatusPageHtml(HostTestCase):
    """What the page says, read over plain HTTP."""

    def test_page_lists_modules_with_state_and_escapes_everything(self):
        self.host.simple("plain")
        directory = os.path.join(self.host.data_dir, "buggy")
        os.mkdir(directory)
        self.host.configure("buggy", "tests.host.fixture_modules.BuggyStorage", [directory],
                            description="<script>alert(1)</script>")
        response = self.host.request("GET", "/")
        self.assertEqual(response.status_code, 200)
        self.assertTrue(response.headers["Content-Type"].startswith("text/html"))
        self.assertEqual(response.headers["X-Frame-Options"], "DENY")  # review finding
        self.assertIn("default-src 'none'", response.headers["Content-Security-Policy"])
        self.assertNotIn("<script>", response.text)
        self.assertIn("&lt;script&gt;", response.text)
        page = PageElements.parse(response.text)
        self.assertEqual(page.modules["plain"]["data-state"], "ok")
        self.assertEqual(page.modules["buggy"]["data-state"], "error")
        self.assertIn("a bug in BuggyStorage.statistics", "".join(page.text))
        self.assertGreaterEqual(len(page.bars), 2)

    def test_page_with_no_modules(self):
        response = self.host.request("GET", "/")
        self.assertEqual(response.status_code, 200)
        self.assertIn("No module is configured", response.text)

    def test_broken_location_shows_unavailable(self):
        directory = self.host.simple("plain")
        os.rename(directory, directory + ".away")
        page = PageElements.parse(self.host.request("GET", "/").text)
        self.assertEqual(page.modules["plain"]["data-state"], "unavailable")
        self.assertIn("does not exist", "".join(page.text))


@unittest.skipUnless(replica_available(), "the replica module is not importable")
class TestStatusPageInChromium(HostTestCase):
    """The default configuration seen in a real browser, healthy and then degraded."""

    create_defaults = True

    def setUp(self):
        super().setUp()
        self.browser = chromium()
        if self.browser is None:
            reason = "chromium is not installed (Debian: apt-get install chromium)"
            print("SKIP status page in Chromium: " + reason, file=sys.stderr)
            self.skipTest(reason)
        self.profile = tempfile.mkdtemp(prefix="vsm-chromium-")
        self.addCleanup(shutil.rmtree, self.profile, True)

    def browse(self, *mode: str) -> str:
        credentials = "administrator:%s@" % quote(PASSWORD, safe="")
        url = self.host.url.replace("http://", "http://" + credentials)
        command = [self.browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                   "--no-first-run", "--disable-background-networking",
                   "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                   "--user-data-dir=" + self.profile] + list(mode) + [url + "/"]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=90)
        except subprocess.TimeoutExpired:
            self.fail("chromium did not finish in 90 s")
        if result.returncode != 0:
            self.fail("chromium failed (%d): %s" % (result.returncode, result.stderr[-2000:]))
        return result.stdout

    def test_healthy_then_degraded(self):
        data = os.urandom(300000)
        self.assertEqual(self.host.request("PUT", "/objects/mirror/photo.jpg", data=data)
                         .status_code, 201)
        page = PageElements.parse(self.browse("--dump-dom"))
        self.assertEqual(page.modules["mirror"]["data-state"], "ok")
        self.assertEqual({row["data-location"]: row["class"] for row in page.locations},
                         {"loc-a": "location ok", "loc-b": "location ok", "loc-c": "location ok"})
        labels = [bar.get("aria-label", "") for bar in page.bars]
        for name in ("mirror", "loc-a", "loc-b", "loc-c"):
            self.assertTrue(any(("capacity of " + name) in label and "used" in label
                                for label in labels), (name, labels))

        # A new user renames one location's directory: reads go on, the page says degraded.
        location = os.path.join(self.host.data_dir, "locations", "loc-a")
        os.rename(location, location + ".renamed")
        self.assertEqual(self.host.request("GET", "/objects/mirror/photo.jpg").content, data)
        page = PageElements.parse(self.browse("--dump-dom"))
        self.assertEqual(page.modules["mirror"]["data-state"], "degraded")
        self.assertEqual(page.modules["loc-a"]["data-state"], "unavailable")
        rows = {row["data-location"]: row["class"] for row in page.locations}
        self.assertEqual(rows["loc-a"], "location down")
        self.assertEqual(rows["loc-b"], "location ok")
        text = " ".join(page.text)
        self.assertIn("DEGRADED", text)
        self.assertIn("loc-a", text)
        shot = os.path.join(self.profile, "status.png")
        self.browse("--window-size=1200,1600", "--screenshot=" + shot)
        self.assertGreater(os.path.getsize(shot), 10000)
        keep = os.environ.get("VSM_KEEP_SCREENSHOT")
        if keep:
            shutil.copy(shot, keep)

    def test_page_refuses_anonymous_browsers(self):
        response = requests.get(self.host.url + "/", timeout=10)
        self.assertEqual(response.status_code, 401)
