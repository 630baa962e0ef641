"""Authentication for HTTPStorage: one precomputed header that never prints itself."""
import base64
from typing import Optional

import requests

__all__ = ["HeaderAuth", "make_auth"]


class HeaderAuth(requests.auth.AuthBase):
    """Set ``Authorization`` on every request; ``repr`` shows the scheme only.

    Unlike ``requests.auth.HTTPBasicAuth`` the secret is not kept as an
    attribute named ``password`` and never appears in ``repr`` or ``str``.
    """

    def __init__(self, scheme: str, header_value: str):
        self.scheme = scheme
        self._header_value = header_value

    def __call__(self, request):
        request.headers["Authorization"] = self._header_value
        return request

    def __repr__(self) -> str:
        return "<HeaderAuth %s ***>" % self.scheme

    __str__ = __repr__

    def __eq__(self, other) -> bool:
        return isinstance(other, HeaderAuth) and other._header_value == self._header_value

    def __hash__(self) -> int:
        return hash(self.scheme)


def make_auth(username: Optional[str], password: Optional[str],
              token: Optional[str]) -> Optional[HeaderAuth]:
    """Return the auth handler for basic (username + password) or bearer (token), or None.

    Returns:
        HeaderAuth or None: None when no credentials are configured.
    """
    if token is not None:
        return HeaderAuth("bearer", "Bearer " + token)
    if username is not None and password is not None:
        pair = ("%s:%s" % (username, password)).encode("utf-8")
        return HeaderAuth("basic", "Basic " + base64.b64encode(pair).decode("ascii"))
    return None
