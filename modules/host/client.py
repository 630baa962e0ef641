"""A small HTTP client for a running host, used by ``vsm put/get/rm/stat/repair``.

:func:`_raise_for_status` is the one place where HTTP answers become
:class:`HostError`.
"""
import hashlib
import json
import os
import unicodedata
from typing import Any, BinaryIO, Dict, Iterator, Optional, Tuple, Union
from urllib.parse import quote

import requests
import requests.auth
import urllib3

__all__ = ["HostClient", "HostError", "object_path", "split_target", "read_password",
           "DEFAULT_URL", "URL_ENV"]

#: Where the CLI looks for the host by default.
DEFAULT_URL = "http://127.0.0.1:8080"

#: Environment variable overriding :data:`DEFAULT_URL`.
URL_ENV = "VSM_URL"

#: Seconds to wait for a connection / for each read from the host.
DEFAULT_TIMEOUT = (10.0, 600.0)

#: Connections kept to the host.
DEFAULT_POOL_SIZE = 4

#: Bytes per chunk when downloading.
CHUNK_SIZE = 1024 * 1024


class HostError(Exception):
    """The host refused or failed a request, or could not be reached.

    ``status`` is the HTTP status (None without an answer); ``error`` the
    host's error name; ``unreachable`` is True when no connection could be
    made; the message is the host's explanation.
    """

    def __init__(self, message: str, status: Optional[int] = None, error: Optional[str] = None,
                 unreachable: bool = False):
        super().__init__(message)
        self.status = status
        self.error = error
        self.unreachable = unreachable


def split_target(target: str) -> Tuple[str, str]:
    """Split ``POLICY/KEY`` into ``(policy, key)``.

    Raises:
        ValueError: there is no ``/`` or one side is empty.
    """
    policy, separator, key = target.partition("/")
    if not policy or not separator or not key:
        raise ValueError("name objects as POLICY/KEY, e.g. mirror/photos/cat.jpg; got %r" % target)
    return policy, key


def object_path(policy: str, key: str) -> str:
    """Return the percent-encoded ``/objects/<policy>/<key>`` (dot segments kept as keys)."""
    segments = []
    for segment in key.split("/"):
        encoded = quote(segment, safe="")
        if segment and set(segment) == {"."}:
            encoded = "%2E" * len(segment)  # keep clients from collapsing . and ..
        segments.append(encoded)
    return "/objects/%s/%s" % (quote(policy, safe=""), "/".join(segments))


class HostClient:
    """Talk to the host at ``url`` as the administrator.

    The credentials are sent as UTF-8 (RFC 7617), so any password works.

    Args:
        url: the host's base URL.
        password: the administrator's password.
        timeout: ``(connect, read)`` seconds.
        pool_size: connections kept open.
    """

    def __init__(self, url: str, password: str, timeout: Tuple[float, float] = DEFAULT_TIMEOUT,
                 pool_size: int = DEFAULT_POOL_SIZE):
        self.url = url.rstrip("/")
        self._timeout = timeout
        self._session = requests.Session()
        # requests encodes str credentials as Latin-1; the host expects UTF-8 (RFC 7617
        # charset="UTF-8", NFC-normalised), so hand it the bytes.
        self._session.auth = requests.auth.HTTPBasicAuth(
            b"administrator", unicodedata.normalize("NFC", password).encode("utf-8"))
        adapter = requests.adapters.HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)

    def __repr__(self) -> str:
        return "HostClient(%r)" % self.url

    def close(self) -> None:
        """Close the connections."""
        self._session.close()

    def __enter__(self) -> "HostClient":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- objects ------------------------------------------------------------

    def put(self, policy: str, key: str, data: Union[BinaryIO, Iterator[bytes], bytes],
            content_type: Optional[str] = None) -> Dict[str, Any]:
        """Store ``data`` (a binary file, an iterator of bytes or bytes) as ``policy/key``.

        Files with a size are sent with Content-Length, anything else chunked.

        Returns:
            dict: the host's description of the stored object.

        Raises:
            HostError: the host refused or failed, or is unreachable.
        """
        headers = {"Content-Type": content_type} if content_type else {}
        return self._request("PUT", object_path(policy, key), data=data, headers=headers).json()

    def copy(self, policy: str, key: str, source_policy: str, source_key: str) -> Dict[str, Any]:
        """Copy ``source_policy/source_key`` to ``policy/key`` on the host.

        Returns:
            dict: the host's description of the new object.

        Raises:
            HostError: as :meth:`put`.
        """
        headers = {"X-Copy-From": object_path(source_policy, source_key)}
        return self._request("PUT", object_path(policy, key), headers=headers).json()

    def get(self, policy: str, key: str, out: BinaryIO,
            byte_range: Optional[str] = None) -> Dict[str, Any]:
        """Write the object (or ``byte_range``, e.g. ``'0-99'``, ``'-100'``) to ``out``.

        A whole object is checked against its ETag (SHA-256) as it arrives.

        Returns:
            dict: ``{"status", "size" (bytes written), "headers"}``.

        Raises:
            HostError: the host refused or failed, the transfer was cut short,
                or the bytes do not match the ETag.
        """
        headers = {"Range": "bytes=" + byte_range} if byte_range else {}
        response = self._request("GET", object_path(policy, key), headers=headers, stream=True)
        digest = hashlib.sha256()
        written = 0
        try:
            # The stored bytes as they are: an object uploaded with Content-Encoding: gzip
            # must not be decompressed on the way (its ETag is the SHA-256 of what was stored).
            for chunk in response.raw.stream(CHUNK_SIZE, decode_content=False):
                out.write(chunk)
                digest.update(chunk)
                written += len(chunk)
        except (requests.RequestException, urllib3.exceptions.HTTPError) as error:
            raise HostError("the download of %s/%s broke off after %d bytes: %s"
                            % (policy, key, written, error)) from None
        finally:
            response.close()
        expected = response.headers.get("Content-Length")
        if expected is not None and int(expected) != written:
            raise HostError("the download of %s/%s stopped after %d of %s bytes"
                            % (policy, key, written, expected))
        etag = response.headers.get("ETag", "").strip('"')
        if response.status_code == 200 and etag and etag != digest.hexdigest():
            raise HostError("%s/%s arrived damaged: its SHA-256 does not match the ETag"
                            % (policy, key))
        return {"status": response.status_code, "size": written, "headers": dict(response.headers)}

    def stat(self, policy: str, key: str) -> Dict[str, Any]:
        """Describe an object from a HEAD request.

        Returns:
            dict: ``policy``, ``key``, ``size``, ``sha256``, ``content_type``,
            ``last_modified``.

        Raises:
            HostError: 404 when there is no such object, and as :meth:`put`.
        """
        response = self._request("HEAD", object_path(policy, key))
        return {
            "policy": policy,
            "key": key,
            "size": int(response.headers.get("Content-Length", -1)),
            "sha256": response.headers.get("ETag", "").strip('"') or None,
            "content_type": response.headers.get("Content-Type"),
            "last_modified": response.headers.get("Last-Modified"),
        }

    def delete(self, policy: str, key: str) -> None:
        """Delete an object.

        Raises:
            HostError: 404 when there is no such object, and as :meth:`put`.
        """
        self._request("DELETE", object_path(policy, key))

    # -- modules ------------------------------------------------------------

    def modules(self) -> Any:
        """Return the configured modules (the provisioning API's list).

        Raises:
            HostError: as :meth:`put`.
        """
        return self._request("GET", "/cdmi/system_configuration/vendor_modules/").json()[
            "vendor_modules"]

    def module(self, name: str) -> Dict[str, Any]:
        """Return one module's configuration and statistics.

        Raises:
            HostError: 404 for an unknown module, and as :meth:`put`.
        """
        return self._request("GET", "/cdmi/system_configuration/vendor_modules/"
                             + quote(name, safe="")).json()

    def repair_step(self, name: str, body: Dict[str, Any]) -> Dict[str, Any]:
        """Run one repair step (see :mod:`modules.host.repair`).

        Raises:
            HostError: 501 when the module cannot repair, and as :meth:`put`.
        """
        return self._request("POST", "/cdmi/system_configuration/vendor_modules/%s/repair"
                             % quote(name, safe=""), data=json.dumps(body).encode(),
                             headers={"Content-Type": "application/json"}).json()

    # -- plumbing -----------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs) -> requests.Response:
        try:
            response = self._session.request(method, self.url + path, timeout=self._timeout,
                                             **kwargs)
        except requests.ConnectionError as error:
            raise HostError("cannot reach the host at %s (is 'vsm serve' running?): %s"
                            % (self.url, _short(error)), unreachable=True) from None
        except requests.Timeout as error:
            raise HostError("the host at %s did not answer in time: %s"
                            % (self.url, _short(error))) from None
        except requests.RequestException as error:
            raise HostError("request to %s failed: %s" % (self.url, _short(error))) from None
        _raise_for_status(response)
        return response


def _raise_for_status(response: requests.Response) -> None:
    if response.status_code < 400:
        return
    error, message = None, None
    try:
        body = response.json()
        error, message = body.get("error"), body.get("message")
    except ValueError:
        pass
    finally:
        response.close()
    if response.status_code == 401:
        message = ("the host refused the administrator password; set VSM_ADMIN_PASSWORD or "
                   "--password-file")
    raise HostError(message or "the host answered %d %s" % (response.status_code, response.reason),
                    status=response.status_code, error=error)


def _short(error: Exception) -> str:
    text = str(error)
    return text if len(text) < 300 else text[:300] + "..."


def read_password(password_file: Optional[str], environ=None) -> Optional[str]:
    """Return the password from ``VSM_ADMIN_PASSWORD`` or ``password_file`` (None if neither)."""
    environ = os.environ if environ is None else environ
    if environ.get("VSM_ADMIN_PASSWORD"):
        return environ["VSM_ADMIN_PASSWORD"]
    if password_file and os.path.exists(password_file):
        with open(password_file, encoding="utf-8") as file:
            return file.read().strip() or None
    return None
