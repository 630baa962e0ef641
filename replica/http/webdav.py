"""The WebDAV verbs HTTPStorage uses, over :class:`replica.http.transport.Transport`.

* ``MKCOL`` the shard collections (RFC 4918 section 9.3; 405 = it exists).
* ``MOVE`` with ``Overwrite: T`` (section 9.9), sending the ``Destination``
  header in the form the server accepts (see :class:`WebDAV`).
* ``PROPFIND`` (section 9.1): ``Depth: 0`` for the RFC 4331 quota
  properties, ``Depth: 1`` to list a collection. Answers are parsed with
  ``defusedxml`` (no DTDs, no entities, no external references), a listing
  incrementally, so its memory stays bounded whatever its length.
* ``HEAD`` (and a one-byte ranged ``GET``) for an object's size.
"""
import email.utils
import logging
import threading
import xml.etree.ElementTree
from typing import Callable, Iterable, List, NamedTuple, Optional, Tuple
from urllib.parse import unquote, urlsplit

import defusedxml
import defusedxml.ElementTree

from modules.errors import LocationUnavailable, StorageError
from replica.http.errors import (destination_refused, forced_destination_refused,
                                 transport_error)
from replica.http.headers import content_length, content_range
from replica.http.options import DESTINATION_STYLES
from replica.http.transport import Transport, close_quietly, read_small

__all__ = ["WebDAV", "Entry"]

log = logging.getLogger(__name__)

#: Statuses with which servers refuse a Destination (nginx 400; Apache, wsgidav 502).
_DESTINATION_REFUSED = (400, 502)
_DAV = "{DAV:}"
_PROPFIND_QUOTA = (b'<?xml version="1.0" encoding="utf-8"?>\n'
                   b'<D:propfind xmlns:D="DAV:"><D:prop>'
                   b'<D:quota-available-bytes/><D:quota-used-bytes/>'
                   b'</D:prop></D:propfind>')
_PROPFIND_LISTING = (b'<?xml version="1.0" encoding="utf-8"?>\n'
                     b'<D:propfind xmlns:D="DAV:"><D:prop>'
                     b'<D:resourcetype/><D:getcontentlength/><D:getlastmodified/>'
                     b'</D:prop></D:propfind>')
_XML_HEADERS = {"Content-Type": "application/xml; charset=utf-8"}


class Entry(NamedTuple):
    """One member of a collection listing.

    ``name`` is the last path segment (percent-decoded, without a trailing
    slash), ``length`` in bytes and ``modified`` in seconds since the epoch
    (None when the server did not say).
    """

    name: str
    collection: bool
    length: Optional[int]
    modified: Optional[float]


class WebDAV:
    """The WebDAV requests of one HTTPStorage (thread-safe).

    The ``Destination`` of ``MOVE`` is an absolute URL unless the server
    refuses it: behind a proxy that terminates TLS, the server sees plain
    http and refuses an ``https://`` Destination (nginx 400, Apache and
    wsgidav 502). With ``destination="auto"`` a refused absolute form is
    followed at once by the path-absolute form, which RFC 4918 section 10.3
    allows and nginx, lighttpd and wsgidav accept (Apache does not); the
    form that worked first is used from then on. ``"absolute"`` or
    ``"path"`` force one form.

    Args:
        transport: sends the requests and maps their failures.
        destination: one of :data:`DESTINATION_STYLES`.
    """

    def __init__(self, transport: Transport, destination: str = "auto"):
        if destination not in DESTINATION_STYLES:
            raise ValueError("destination must be one of %s" % ", ".join(DESTINATION_STYLES))
        self._transport = transport
        self._lock = threading.Lock()
        self._destination = None if destination == "auto" else destination
        self._forced = destination != "auto"

    @property
    def destination_style(self) -> str:
        """``'absolute'`` or ``'path'`` once known, ``'unknown'`` before the first MOVE."""
        return self._destination or "unknown"

    # -- collections ------------------------------------------------------

    def make_collection(self, url: str) -> bool:
        """``MKCOL url``; return True when created, False when it existed (405).

        Raises:
            StorageError: as mapped by the transport (409: a parent is missing).
        """
        response = self._transport.request("MKCOL", url, ok=(200, 201, 204, 405))
        response.close()
        return response.status_code != 405

    def list_collection(self, url: str, keep: Callable[[Entry], bool]
                        ) -> Tuple[Optional[float], List[Entry]]:
        """List the members of the collection ``url`` (``PROPFIND``, ``Depth: 1``, one attempt).

        The answer is parsed as it arrives; only the members for which
        ``keep(entry)`` is true are kept, so memory is bounded by what the
        caller keeps. The collection itself is not listed.

        Returns:
            (float or None, list of Entry): the server's clock (its ``Date``
            header, seconds since the epoch) and the kept members.

        Raises:
            LocationUnavailable: the server cannot list (``status`` 405
                or 501: no PROPFIND, e.g. nginx without dav-ext), the
                collection is missing (404), or the answer is not a
                multistatus.
            StorageError: otherwise, as mapped by the transport.
        """
        response = self._transport.request(
            "PROPFIND", url, ok=(207,), retry=False, stream=True, data=_PROPFIND_LISTING,
            headers=dict(_XML_HEADERS, Depth="1"))
        own_path = _path_of(url)
        kept: List[Entry] = []
        try:
            server_time = _http_date(response.headers.get("Date"))
            for entry_path, entry in _parse_listing(response.raw):
                if entry_path.rstrip("/") == own_path.rstrip("/"):
                    continue
                if keep(entry):
                    kept.append(entry)
        except xml.etree.ElementTree.ParseError as error:
            raise LocationUnavailable("PROPFIND %s: the answer is not a WebDAV multistatus (%s)"
                                      % (url, error), location=self._transport.location) from None
        except defusedxml.DefusedXmlException as error:
            raise LocationUnavailable("PROPFIND %s: the answer was refused (%s)" % (url, error),
                                      location=self._transport.location) from None
        except StorageError:
            raise
        except Exception as error:
            raise transport_error("PROPFIND", url, error, location=self._transport.location,
                                  timeout=self._transport.timeout) from error
        finally:
            close_quietly(response)
        return server_time, kept

    def quota(self, url: str) -> Tuple[Optional[int], Optional[int], Optional[int]]:
        """Ask for the RFC 4331 quota of ``url`` (``PROPFIND``, ``Depth: 0``, one attempt).

        Returns:
            (available, used, status): bytes or None when the server did not
            give the property; ``status`` is 405 or 501 when the server does
            not answer PROPFIND (then both values are None), else None.

        Raises:
            StorageError: the server could not be asked.
        """
        response = self._transport.request(
            "PROPFIND", url, ok=(207, 200, 405, 501), retry=False, data=_PROPFIND_QUOTA,
            headers=dict(_XML_HEADERS, Depth="0"), stream=True)
        try:
            body = read_small(response)
        except Exception as error:
            raise transport_error("PROPFIND", url, error, location=self._transport.location,
                                  timeout=self._transport.timeout) from error
        finally:
            response.close()
        if response.status_code in (405, 501):
            return None, None, response.status_code
        available, used = _parse_quota(body)
        return available, used, None

    # -- objects ----------------------------------------------------------

    def size(self, url: str, module_data: Optional[str]) -> int:
        """Return the size of the resource at ``url`` from ``HEAD`` (retried).

        A server that sends no ``Content-Length`` to ``HEAD`` is asked a
        one-byte ranged ``GET`` and the total taken from ``Content-Range``.

        Returns:
            int: bytes.

        Raises:
            ObjectNotFound: nothing there (when ``module_data`` is given).
            LocationUnavailable: the server sent no size, or failed.
        """
        response = self._transport.request("HEAD", url, module_data=module_data, ok=(200,))
        response.close()
        length = content_length(response.headers)
        if length is not None:
            return length
        response = self._transport.request("GET", url, module_data=module_data,
                                           ok=(206, 416, 200), headers={"Range": "bytes=0-0"},
                                           stream=True)
        close_quietly(response, read=response.status_code != 200)
        parsed = content_range(response.headers)
        if parsed is not None and parsed.total is not None:
            return parsed.total
        if response.status_code == 200:
            length = content_length(response.headers)
            if length is not None:
                return length
        raise LocationUnavailable("%s: the server reports no size for the object (no "
                                  "Content-Length, no Content-Range)" % url,
                                  location=self._transport.location)

    def move(self, source_url: str, destination_url: str) -> None:
        """``MOVE`` with ``Overwrite: T`` (retried), the Destination in the accepted form.

        Raises:
            ObjectNotFound: the source is not there (``module_data`` is not set,
                so it is the source the server did not find).
            LocationUnavailable: refused or failed; a Destination refused in
                both forms names the TLS-proxy cause.
        """
        self._transport.call(self._move_once, source_url, destination_url)

    def delete(self, url: str, *, module_data: Optional[str] = None, retry: bool = True) -> int:
        """``DELETE url``; return its status (404 counts as done and is returned).

        Raises:
            StorageError: as mapped by the transport.
        """
        response = self._transport.request("DELETE", url, ok=(200, 202, 204, 404),
                                           module_data=module_data, retry=retry)
        response.close()
        return response.status_code

    # -- helpers ----------------------------------------------------------

    def _move_once(self, source_url: str, destination_url: str) -> None:
        style = self._destination
        path = urlsplit(destination_url).path
        if style == "path":
            self._send_move_in(style, source_url, path)
            return
        try:
            self._send_move_in("absolute", source_url, destination_url)
        except LocationUnavailable as error:
            if style == "absolute" or error.status not in _DESTINATION_REFUSED:
                raise
            refused = error
        else:
            self._learn("absolute")
            return
        try:
            self._send_move(source_url, path)
        except LocationUnavailable as error:
            if error.status in _DESTINATION_REFUSED:
                raise destination_refused(source_url, refused, error,
                                          location=self._transport.location) from None
            raise
        self._learn("path")

    def _send_move_in(self, form: str, source_url: str, destination: str) -> None:
        """Send the MOVE; a forced ``form`` that the server refuses gets an error saying so."""
        try:
            self._send_move(source_url, destination)
        except LocationUnavailable as error:
            if self._forced and error.status in _DESTINATION_REFUSED:
                raise forced_destination_refused(source_url, form, error,
                                                 location=self._transport.location) from None
            raise

    def _send_move(self, source_url: str, destination: str) -> None:
        # module_data=source_url: a 404 means the source is gone (ObjectNotFound), which
        # the caller checks against the destination (a retried MOVE that had succeeded).
        self._transport.send("MOVE", source_url, ok=(200, 201, 204), module_data=source_url,
                             headers={"Destination": destination, "Overwrite": "T"}).close()

    def _learn(self, style: str) -> None:
        with self._lock:
            if self._destination is None:
                self._destination = style
                if style == "path":
                    log.warning("%s refuses an absolute MOVE Destination (a TLS-terminating "
                                "proxy in front of it?); sending path-absolute Destinations "
                                "(RFC 4918 section 10.3)", self._transport.location)


def _path_of(url: str) -> str:
    return unquote(urlsplit(url).path)


def _http_date(value: Optional[str]) -> Optional[float]:
    """An HTTP date (RFC 9110 section 5.6.7) as seconds since the epoch, or None."""
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed is None or parsed.tzinfo is None:
        return None
    return parsed.timestamp()


def _parse_listing(source) -> Iterable[Tuple[str, Entry]]:
    """Yield ``(path, Entry)`` for each ``D:response`` of a multistatus read from ``source``."""
    root = None
    events = defusedxml.ElementTree.iterparse(source, events=("start", "end"), forbid_dtd=True)
    for event, element in events:
        if root is None:
            root = element
        if event != "end" or element.tag != _DAV + "response":
            continue
        href = (element.findtext(_DAV + "href") or "").strip()
        path = _path_of(href)
        name = path.rstrip("/").rsplit("/", 1)[-1]
        collection, length, modified = False, None, None
        for propstat in element.iter(_DAV + "propstat"):
            if " 200 " not in (propstat.findtext(_DAV + "status") or "") + " ":
                continue
            for prop in propstat.iter(_DAV + "prop"):
                kind = prop.find(_DAV + "resourcetype")
                if kind is not None and kind.find(_DAV + "collection") is not None:
                    collection = True
                text = (prop.findtext(_DAV + "getcontentlength") or "").strip()
                if text.isdigit():
                    length = int(text)
                modified = _http_date(prop.findtext(_DAV + "getlastmodified")) or modified
        if href.endswith("/"):
            collection = True
        root.clear()  # keep memory bounded: the listing may be long
        yield path, Entry(name, collection, length, modified)


def _parse_quota(body: bytes) -> Tuple[Optional[int], Optional[int]]:
    """Return (available, used) from a PROPFIND multistatus; None for missing or bad values."""
    if not body:
        return None, None
    try:
        root = defusedxml.ElementTree.fromstring(body, forbid_dtd=True)
    except (xml.etree.ElementTree.ParseError, defusedxml.DefusedXmlException) as error:
        log.warning("PROPFIND answer is not acceptable XML (%s); quota unknown", error)
        return None, None
    values = {}
    for propstat in root.iter(_DAV + "propstat"):
        status = propstat.findtext(_DAV + "status") or ""
        if " 200 " not in status + " ":
            continue
        for prop in propstat.iter(_DAV + "prop"):
            for name in ("quota-available-bytes", "quota-used-bytes"):
                text = (prop.findtext(_DAV + name) or "").strip()
                if text.isdigit():
                    values[name] = int(text)
    return values.get("quota-available-bytes"), values.get("quota-used-bytes")
