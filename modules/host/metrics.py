"""WSGI middleware serving Prometheus metrics at ``/metrics`` (prometheus_client).

Per request, labelled by ``policy`` (the module named in ``/objects/<policy>/``,
empty for other endpoints) and ``operation`` (``get``, ``head``, ``put``,
``copy``, ``delete``, ``list`` for objects; ``config``, ``repair``,
``status_page``, ``health``, ``metrics``, ``other``):

* ``vsm_http_requests_total`` (counter, also by ``status``),
* ``vsm_http_request_duration_seconds`` (histogram, until the answer's last byte),
* ``vsm_http_received_bytes_total`` and ``vsm_http_sent_bytes_total`` (body bytes).

Per configured module, read from its ``statistics()`` at each scrape
(``module`` label): ``vsm_module_up`` (1 when statistics answered),
``vsm_module_available`` (0 when they answered with ``status``
``unavailable``: the storage is down; 1 otherwise), ``vsm_module_objects``, ``vsm_module_capacity_bytes`` (``kind`` total, free,
used; unknown values are left out), and for a replica ``vsm_module_degraded``,
``vsm_module_replicas``, ``vsm_module_healthy_locations``,
``vsm_module_missing_copies`` (journal entries waiting for a copy),
``vsm_module_pending_deletes``, ``vsm_module_journal_dropped`` and
``vsm_module_location_up`` (``location`` label).

A policy label is only kept for a name that answered a request with a
status below 400 (at most :data:`MAX_POLICIES` of them; others count as
``other``), so that requests for made-up names cannot grow the label set.

Several processes (``vsm serve --workers N``): when the environment
variable ``PROMETHEUS_MULTIPROC_DIR`` is set before ``prometheus_client`` is
imported, request figures are written there by every process and each
scrape adds them up (prometheus_client's multiprocess mode); module figures
come from the process that answers the scrape.
"""
import json
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple
from urllib.parse import unquote

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, \
    generate_latest
from prometheus_client.core import GaugeMetricFamily

from modules.host.counting import CountingInput, observe

__all__ = ["Metrics", "ModuleFigures", "METRICS_PATH", "MAX_POLICIES", "MULTIPROC_ENV",
           "request_labels"]

#: Where the metrics are served.
METRICS_PATH = "/metrics"

#: Distinct policy labels kept at most (per process).
MAX_POLICIES = 1000

#: The environment variable switching prometheus_client to multiprocess mode.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

#: Latency buckets, in seconds (a 4 KiB PUT takes milliseconds, a 1 GiB one many seconds).
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            60.0, 300.0, float("inf"))

_OBJECTS = "/objects/"
_CONFIG = "/cdmi/system_configuration/vendor_modules"


@dataclass
class ModuleFigures:
    """One module as a scrape sees it: ``statistics()`` (None when it failed) and its objects."""

    name: str
    statistics: Optional[Dict[str, Any]]
    objects: int


def request_labels(environ: Dict[str, Any]) -> Tuple[str, str]:
    """Return ``(policy, operation)`` for a WSGI request (see the module docstring)."""
    path = environ.get("PATH_INFO") or "/"
    method = (environ.get("REQUEST_METHOD") or "GET").lower()
    if path.startswith(_OBJECTS):
        policy, _, key = path[len(_OBJECTS):].partition("/")
        policy = unquote(policy)
        if not key:
            return policy, "list"
        if method == "put" and environ.get("HTTP_X_COPY_FROM"):
            return policy, "copy"
        return policy, method if method in ("get", "head", "put", "delete") else "other"
    if path.startswith(_CONFIG):
        return "", "repair" if path.endswith("/repair") else "config"
    if path in ("/", "/index.html"):
        return "", "status_page"
    if path == "/health":
        return "", "health"
    if path == METRICS_PATH:
        return "", "metrics"
    return "", "other"


class Metrics:
    """Count requests and serve ``/metrics`` in front of ``app``.

    Args:
        app: the WSGI application.
        figures: returns the modules' figures at each scrape.
        authenticate: called with the environ of a ``/metrics`` request;
            returns None to let it in, or an object with ``status``,
            ``message`` and ``headers`` to refuse it (the host's
            :meth:`~modules.host.auth.Authenticator.refusal`). None serves
            the metrics to anyone.
        clock: monotonic seconds (injected by tests).
    """

    def __init__(self, app: Callable, figures: Callable[[], List[ModuleFigures]],
                 authenticate: Optional[Callable[[Dict[str, Any]], Any]] = None,
                 clock: Callable[[], float] = time.monotonic):
        self._app = app
        self._figures = figures
        self._authenticate = authenticate
        self._clock = clock
        self._multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        self._registry = CollectorRegistry(auto_describe=True)
        registry = None if self._multiprocess else self._registry
        self._requests = Counter("vsm_http_requests", "HTTP requests answered",
                                 ("policy", "operation", "status"), registry=registry)
        self._latency = Histogram("vsm_http_request_duration_seconds",
                                  "Time from the request to the answer's last byte",
                                  ("policy", "operation"), buckets=_BUCKETS, registry=registry)
        self._received = Counter("vsm_http_received_bytes", "Request body bytes read",
                                 ("policy", "operation"), registry=registry)
        self._sent = Counter("vsm_http_sent_bytes", "Response body bytes sent",
                             ("policy", "operation"), registry=registry)
        self._modules = _ModuleCollector(figures)
        self._registry.register(self._modules)
        if self._multiprocess:
            from prometheus_client import multiprocess

            multiprocess.MultiProcessCollector(self._registry)
        self._policies: set = set()
        self._policies_lock = threading.Lock()

    def __call__(self, environ: Dict[str, Any], start_response) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == METRICS_PATH:
            return self._serve(environ, start_response)
        policy, operation = request_labels(environ)
        request = _Request(self._clock())
        if "wsgi.input" in environ:
            environ["wsgi.input"] = CountingInput(environ["wsgi.input"], request.add_received)

        def start(status: str, headers, exc_info=None):
            request.status = status.split(" ", 1)[0]
            return start_response(status, headers, exc_info)

        try:
            body = self._app(environ, start)
        except BaseException:
            request.status = request.status or "500"
            self._observe(policy, operation, request)
            raise
        return observe(body, request.add_sent,
                       lambda: self._observe(policy, operation, request), request.failed)

    def _observe(self, policy: str, operation: str, request: "_Request") -> None:
        status = request.status or "500"
        policy = self._policy_label(policy, status)
        self._requests.labels(policy, operation, status).inc()
        self._latency.labels(policy, operation).observe(self._clock() - request.started)
        if request.received:
            self._received.labels(policy, operation).inc(request.received)
        if request.sent:
            self._sent.labels(policy, operation).inc(request.sent)

    def _policy_label(self, policy: str, status: str) -> str:
        if not policy:
            return ""
        with self._policies_lock:
            if policy in self._policies:
                return policy
            if status.isdigit() and int(status) < 400 and len(self._policies) < MAX_POLICIES:
                self._policies.add(policy)
                return policy
        return "other"

    def _serve(self, environ: Dict[str, Any], start_response) -> Iterable[bytes]:
        started = self._clock()
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            status, headers, body = _json(405, "MethodNotAllowed", "the metrics support GET",
                                          [("Allow", "GET, HEAD")])
        else:
            refusal = self._authenticate(environ) if self._authenticate else None
            if refusal is not None:
                error = "TooManyRequests" if refusal.status == 429 else "Unauthorized"
                status, headers, body = _json(refusal.status, error, refusal.message,
                                              list(refusal.headers))
            else:
                body = generate_latest(self._registry)
                status = 200
                headers = [("Content-Type", CONTENT_TYPE_LATEST),
                           ("Content-Length", str(len(body))), ("Cache-Control", "no-store")]
        start_response(_STATUS_LINES[status], headers)
        self._requests.labels("", "metrics", str(status)).inc()
        self._latency.labels("", "metrics").observe(self._clock() - started)
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [body]


_STATUS_LINES = {200: "200 OK", 401: "401 Unauthorized", 405: "405 Method Not Allowed",
                 429: "429 Too Many Requests"}


def _json(status: int, error: str, message: str,
          headers: List[Tuple[str, str]]) -> Tuple[int, List[Tuple[str, str]], bytes]:
    body = json.dumps({"error": error, "message": message}).encode()
    return status, headers + [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))], body


class _ModuleCollector:
    """A custom collector reading every module's statistics at scrape time."""

    def __init__(self, figures: Callable[[], List[ModuleFigures]]):
        self._figures = figures

    def describe(self):
        return []  # the families depend on the modules configured at scrape time

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("vsm_module_up", "1 when the module's statistics answered",
                               labels=["module"])
        available = GaugeMetricFamily("vsm_module_available", "0 when the module's statistics "
                                      "say its storage is unavailable", labels=["module"])
        objects = GaugeMetricFamily("vsm_module_objects", "Objects the host stores with the "
                                    "module", labels=["module"])
        capacity = GaugeMetricFamily("vsm_module_capacity_bytes", "The module's capacity",
                                     labels=["module", "kind"])
        replica = {
            "degraded": GaugeMetricFamily("vsm_module_degraded", "1 when a replica lacks a "
                                          "location or copies", labels=["module"]),
            "replicas": GaugeMetricFamily("vsm_module_replicas", "Locations configured",
                                          labels=["module"]),
            "healthy": GaugeMetricFamily("vsm_module_healthy_locations", "Locations answering",
                                         labels=["module"]),
            "under_replicated": GaugeMetricFamily("vsm_module_missing_copies", "Journal entries "
                                                  "waiting for a copy", labels=["module"]),
            "pending_deletes": GaugeMetricFamily("vsm_module_pending_deletes", "Journal entries "
                                                 "waiting for a deletion", labels=["module"]),
        }
        dropped = GaugeMetricFamily("vsm_module_journal_dropped", "Journal entries dropped "
                                    "because the journal was full", labels=["module"])
        location_up = GaugeMetricFamily("vsm_module_location_up", "1 when the location is "
                                        "healthy", labels=["module", "location"])
        for figure in self._figures():
            statistics = figure.statistics
            up.add_metric([figure.name], 0 if statistics is None else 1)
            if figure.objects >= 0:
                objects.add_metric([figure.name], figure.objects)
            if not isinstance(statistics, dict):
                continue
            available.add_metric([figure.name],
                                 0 if statistics.get("status") == "unavailable" else 1)
            for kind, value in (statistics.get("capacity") or {}).items():
                if isinstance(value, (int, float)) and value >= 0:
                    capacity.add_metric([figure.name, str(kind)], value)
            for key, family in replica.items():
                value = statistics.get(key)
                if isinstance(value, (bool, int, float)) and value >= 0:
                    family.add_metric([figure.name], float(value))
            journal = statistics.get("journal")
            if isinstance(journal, dict) and isinstance(journal.get("dropped"), int):
                dropped.add_metric([figure.name], journal["dropped"])
            for location in statistics.get("locations") or []:
                if isinstance(location, dict) and location.get("name"):
                    location_up.add_metric([figure.name, str(location["name"])],
                                           1 if location.get("health") == "ok" else 0)
        yield from (up, available, objects, capacity, *replica.values(), dropped, location_up)


class _Request:
    __slots__ = ("started", "status", "sent", "received")

    def __init__(self, started: float):
        self.started = started
        self.status: Optional[str] = None
        self.sent = 0
        self.received = 0

    def add_sent(self, count: int) -> None:
        self.sent += count

    def add_received(self, count: int) -> None:
        self.received += count

    def failed(self) -> None:
        self.status = self.status or "500"
