"""The host application behind its middleware: what ``vsm serve`` and other servers run.

:func:`build_application` wraps the host application (:mod:`modules.host.app`)
in the access log (:mod:`modules.host.access_log`) and the ``/metrics``
endpoint (:mod:`modules.host.metrics`), outermost first::

    AccessLog(Metrics(HostApp))

so the access log also records ``/metrics`` requests and the time spent
counting. ``modules.host.wsgi:application`` is the same stack built from
environment variables.
"""
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, List

from modules.host.access_log import AccessLog

if TYPE_CHECKING:  # the client commands import this module's constants, not the host
    from modules.host.app import HostApp

__all__ = ["Application", "build_application", "module_figures", "METRICS_AUTH",
           "METRICS_PUBLIC", "METRICS_OFF"]

#: ``/metrics`` behind the administrator's login, open to anyone, or not served.
METRICS_AUTH = "auth"
METRICS_PUBLIC = "public"
METRICS_OFF = "off"


class Application:
    """The host application behind its middleware: a WSGI callable with ``close()``.

    Attributes:
        host_app: the :class:`~modules.host.app.HostApp` inside.
        data_dir: its data directory.
    """

    def __init__(self, host_app: "HostApp", wsgi: Callable):
        self.host_app = host_app
        self.data_dir = host_app.data_dir
        self._wsgi = wsgi

    def __repr__(self) -> str:
        return "Application(%r)" % self.data_dir

    def __call__(self, environ: Dict[str, Any], start_response) -> Iterable[bytes]:
        """Answer one WSGI request."""
        return self._wsgi(environ, start_response)

    def close(self) -> None:
        """Close the host application (its modules and database)."""
        self.host_app.close()


def module_figures(host_app: "HostApp") -> List[Any]:
    """Return each configured module's statistics and object count (for ``/metrics``).

    Returns:
        list: :class:`~modules.host.metrics.ModuleFigures`, one per module.
    """
    from modules.host.metrics import ModuleFigures

    configs = host_app.store.list_modules()
    reports = host_app.statistics.gather(config.name for config in configs)
    return [ModuleFigures(config.name, reports[config.name][0],
                          host_app.store.count_objects(config.name)) for config in configs]


def build_application(host_app: "HostApp", access_log: bool = True,
                      metrics: str = METRICS_AUTH) -> Application:
    """Wrap ``host_app`` in the access log and the ``/metrics`` endpoint.

    Args:
        host_app: the host application.
        access_log: write one line per request to the access logger
            (configure where with :func:`~modules.host.access_log.configure_access_log`).
        metrics: :data:`METRICS_AUTH`, :data:`METRICS_PUBLIC` or :data:`METRICS_OFF`.

    Returns:
        Application: the WSGI callable.

    Raises:
        ValueError: an unknown ``metrics`` value.
    """
    if metrics not in (METRICS_AUTH, METRICS_PUBLIC, METRICS_OFF):
        raise ValueError("metrics must be %r, %r or %r, got %r"
                         % (METRICS_AUTH, METRICS_PUBLIC, METRICS_OFF, metrics))
    wsgi: Callable = host_app
    if metrics != METRICS_OFF:
        from modules.host.metrics import Metrics  # prometheus_client only when wanted

        authenticate = host_app.authenticator.refusal if metrics == METRICS_AUTH else None
        wsgi = Metrics(wsgi, lambda: module_figures(host_app), authenticate=authenticate)
    if access_log:
        wsgi = AccessLog(wsgi)
    return Application(host_app, wsgi)
