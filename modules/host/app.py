"""The host's WSGI application: routing, authentication and error answers."""
import logging
import os
import uuid
from typing import Any, Dict, Iterable, List, Optional, Tuple

from modules.errors import LocationUnavailable, StorageError

from modules.host.auth import AdminPassword, Authenticator, load_admin_password
from modules.host.background_repair import DEFAULT_RATE, BackgroundRepair
from modules.host.config_api import CONFIG_PREFIX, ConfigService
from modules.host.defaults import ensure_default_configuration
from modules.host.garbage import GarbageCollector
from modules.host.http import (
    HttpError,
    Request,
    Response,
    error_status,
    json_response,
)
from modules.host.objects import ObjectService
from modules.host.pins import ReadPins
from modules.host.registry import ModuleRegistry
from modules.host.repair import RepairService
from modules.host.statistics import DEFAULT_DEADLINE, StatisticsGatherer
from modules.host.status_page import ModuleView, render_status_page
from modules.host.store import DB_FILENAME, DEFAULT_POOL_SIZE, Store, string_arguments

__all__ = ["HostApp", "make_app"]

log = logging.getLogger(__name__)


class HostApp:
    """The WSGI application serving one data directory.

    Args:
        data_dir: where the database, the password file and the default
            locations live (created when missing).
        admin_password: use this password instead of the environment or the
            password file.
        create_defaults: on the first start, configure the default locations
            and the ``mirror`` policy (see :mod:`modules.host.defaults`).
        pool_size: SQLite connections kept open at most.
        statistics_deadline: seconds the status page, ``/metrics`` and a
            module's ``GET`` wait for modules' statistics before saying a
            module gave no answer (a hung location must not hang the views).
        background_repair: run the background repair pass in this process
            (:mod:`modules.host.background_repair`; ``vsm serve`` turns it on).
        repair_rate: bytes per second that pass reads at most (None: no limit).

    Each process serving the data directory runs one background thread
    (:class:`~modules.host.pins.ReadPins`): it publishes the process's
    in-flight reads, collects the write intents of processes that are gone
    and destroys data nothing uses any more. The application may be built
    before ``fork()`` (pre-forking servers): each child gets its own
    database connections, module instances and thread
    (:mod:`modules.host.forking`). :meth:`close` stops the thread.

    Raises:
        ConfigurationError: the password cannot be set up.
        LocationUnavailable: the database cannot be opened.
        OSError: the data directory cannot be created.
    """

    def __init__(self, data_dir: str, admin_password: Optional[str] = None,
                 create_defaults: bool = True, pool_size: int = DEFAULT_POOL_SIZE,
                 statistics_deadline: float = DEFAULT_DEADLINE,
                 background_repair: bool = False, repair_rate: Optional[float] = DEFAULT_RATE):
        self.data_dir = os.path.abspath(data_dir)
        os.makedirs(self.data_dir, mode=0o700, exist_ok=True)
        if admin_password:
            self.password = AdminPassword(admin_password, "argument", "")
        else:
            self.password = load_admin_password(self.data_dir)
        self.authenticator = Authenticator(self.password.secret)
        self.store = Store(os.path.join(self.data_dir, DB_FILENAME), pool_size=pool_size)
        try:
            self.created_defaults = (ensure_default_configuration(self.store, self.data_dir)
                                     if create_defaults else [])
        except BaseException:
            self.store.close()
            raise
        self.registry = ModuleRegistry(self.store)
        self.pins = ReadPins(self.store)
        self.collector = GarbageCollector(self.store, self.pins)
        self.pins.set_sweep(self.collector.background(self.registry.lease))
        self._objects = ObjectService(self.store, self.pins, self.collector)
        self.statistics = StatisticsGatherer(self.registry.lease, deadline=statistics_deadline)
        repair = RepairService(self.store, self.collector)
        self._config = ConfigService(self.store, self.registry, repair, self.statistics)
        self.background_repair = (BackgroundRepair(self.store, self.registry.lease, repair,
                                                   rate=repair_rate)
                                  if background_repair else None)
        try:
            # Registers this process and starts the thread that publishes its reads, collects
            # the intents of processes that are gone and destroys due garbage (at once, then
            # in the background).
            self.pins.start()
            if self.background_repair is not None:
                self.background_repair.start()
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return "HostApp(%r)" % self.data_dir

    def __call__(self, environ: Dict[str, Any], start_response) -> Iterable[bytes]:
        """Answer one WSGI request."""
        lease = None
        try:
            request = Request(environ)
            if request.path == "/health":
                response = self._health(request)
            else:
                self._authenticate(environ)
                lease = self.registry.lease()
                response = self._route(request, lease)
        except HttpError as error:
            response = json_response(error.status, error.body(), error.headers)
        except StorageError as error:
            response = self._storage_error(environ, error)
        except Exception as error:
            reference = uuid.uuid4().hex[:12]
            log.exception("%s %s failed (reference %s)", environ.get("REQUEST_METHOD"),
                          environ.get("PATH_INFO"), reference)
            response = json_response(500, {
                "error": "InternalError",
                "message": "internal error (%s); the server log has the cause under reference %s"
                           % (type(error).__name__, reference)})
        if lease is not None:
            response.call_on_close(lease.release)
        return response(environ, start_response)

    def close(self) -> None:
        """Close every module instance and the database."""
        if self.background_repair is not None:
            self.background_repair.close()
        self.pins.close()
        self.statistics.close()
        self.registry.close()
        self.store.close()

    # -- routing ------------------------------------------------------------

    def _route(self, request: Request, lease) -> Response:
        path = request.path
        if path.startswith("/objects/"):
            return self._objects.handle(request, lease)
        if path.startswith(CONFIG_PREFIX) or path == CONFIG_PREFIX.rstrip("/"):
            if path == CONFIG_PREFIX.rstrip("/"):
                request.path = CONFIG_PREFIX
            return self._config.handle(request, lease)
        if path in ("/", "/index.html"):
            if request.method not in ("GET", "HEAD"):
                raise HttpError(405, "the status page supports GET", headers=[("Allow", "GET")])
            return self._status_page(request)
        raise HttpError(404, "no such resource %r; the host serves /, /objects/<policy>/<key> "
                             "and %s<name>" % (path[:200], CONFIG_PREFIX))

    def _authenticate(self, environ: Dict[str, Any]) -> None:
        refusal = self.authenticator.refusal(environ)
        if refusal is not None:
            raise HttpError(refusal.status, refusal.message, headers=refusal.headers,
                            error="TooManyRequests" if refusal.status == 429 else None)

    def _health(self, request: Request) -> Response:
        """Unauthenticated liveness check for load balancers: the database answers."""
        self.store.generation()
        return json_response(200, {"status": "ok"}, head=request.method == "HEAD")

    def _status_page(self, request: Request) -> Response:
        views = []
        configs = self.store.list_modules()
        reports = self.statistics.gather(config.name for config in configs)
        for config in configs:
            statistics, error = reports[config.name]
            used_by = [other.name for other in configs
                       if other.name != config.name and config.name in string_arguments(other.args)]
            views.append(ModuleView(config, statistics, error,
                                    self.store.count_objects(config.name),
                                    self.store.count_garbage(config.name), used_by))
        page = render_status_page(views, self.data_dir)
        headers = [("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-store"),
                   # Nothing but its own inline style; never framed (clickjacking), no sniffing.
                   ("Content-Security-Policy",
                    "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"),
                   ("X-Frame-Options", "DENY"), ("X-Content-Type-Options", "nosniff"),
                   ("Referrer-Policy", "no-referrer")]
        return Response(page, status=200, headers=headers)

    @staticmethod
    def _storage_error(environ: Dict[str, Any], error: StorageError) -> Response:
        status = error_status(error)
        where = "%s %s" % (environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"))
        if status >= 500 and status not in (503, 507):
            log.error("%s failed: %s: %s", where, type(error).__name__, error,
                      exc_info=(type(error), error, error.__traceback__))
        else:
            log.info("%s: %s: %s", where, type(error).__name__, error)
        headers: List[Tuple[str, str]] = []
        if isinstance(error, LocationUnavailable):
            headers.append(("Retry-After", "30"))
        body = {"error": type(error).__name__, "message": str(error)}
        location = getattr(error, "location", None)
        if location:
            body["location"] = str(location)
        return json_response(status, body, headers)


def make_app(data_dir: str, admin_password: Optional[str] = None, create_defaults: bool = True,
             pool_size: int = DEFAULT_POOL_SIZE,
             statistics_deadline: float = DEFAULT_DEADLINE, background_repair: bool = False,
             repair_rate: Optional[float] = DEFAULT_RATE) -> HostApp:
    """Return the WSGI application serving ``data_dir`` (see :class:`HostApp`).

    Returns:
        HostApp: a WSGI callable with ``close()``.

    Raises:
        ConfigurationError: the administrator password cannot be set up.
        LocationUnavailable: the database cannot be opened.
        OSError: the data directory cannot be created.
    """
    return HostApp(data_dir, admin_password=admin_password, create_defaults=create_defaults,
                   pool_size=pool_size, statistics_deadline=statistics_deadline,
                   background_repair=background_repair, repair_rate=repair_rate)
