"""The provisioning API: ``/cdmi/system_configuration/vendor_modules/<name>``.

``PUT`` with ``{"module": "pkg.mod.Class", "description": "...", "args": [...]}``
configures a module (204), ``GET`` returns it with its statistics, ``GET``
on the collection lists them, ``DELETE`` removes one (409 while objects or
other modules use it), ``POST .../<name>/repair`` repairs its data.
"""
import logging
import re
from typing import Any, Dict, List, Optional, Tuple

from modules.errors import ConfigurationError, StorageError
from modules.loader import load_module

from modules.host.http import HttpError, Request, Response, empty_response, json_response
from modules.redaction import redact
from modules.host.registry import Lease, ModuleRegistry, UnknownModule
from modules.host.repair import RepairService
from modules.host.statistics import StatisticsGatherer
from modules.host.store import ModuleConfig, ModuleInUse, Store, string_arguments

__all__ = ["ConfigService", "CONFIG_PREFIX", "NAME_PATTERN"]

log = logging.getLogger(__name__)

#: Where the provisioning API lives.
CONFIG_PREFIX = "/cdmi/system_configuration/vendor_modules/"

#: What a module name may look like.
NAME_PATTERN = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._~-]{0,127}\Z")

_FIELDS = {"module", "description", "args"}


class ConfigService:
    """Handlers for the provisioning API."""

    def __init__(self, store: Store, registry: ModuleRegistry, repair: RepairService,
                 statistics: StatisticsGatherer):
        self._store = store
        self._registry = registry
        self._statistics = statistics
        self._repair = repair

    def handle(self, request: Request, lease: Lease) -> Response:
        """Dispatch on method and path.

        Returns:
            Response: the answer.

        Raises:
            HttpError: 400, 404, 405, 409.
        """
        rest = request.path[len(CONFIG_PREFIX):]
        name, _, action = rest.partition("/")
        if name == "":
            if request.method in ("GET", "HEAD"):
                return self.list(request)
            raise HttpError(405, "the collection supports GET", headers=[("Allow", "GET, HEAD")])
        if not NAME_PATTERN.match(name):
            raise HttpError(400, "module names are 1-128 letters, digits, '.', '_', '~' or '-', "
                                 "starting with a letter or digit; got %r" % name[:200])
        if action == "repair":
            if request.method != "POST":
                raise HttpError(405, "repair is a POST", headers=[("Allow", "POST")])
            return self.repair(request, lease, name)
        if action:
            raise HttpError(404, "no such resource: %s" % request.path[:200])
        if request.method in ("GET", "HEAD"):
            return self.get(request, lease, name)
        if request.method == "PUT":
            return self.put(request, name)
        if request.method == "DELETE":
            return self.delete(name)
        raise HttpError(405, "vendor modules support GET, PUT and DELETE",
                        headers=[("Allow", "GET, HEAD, PUT, DELETE")])

    def list(self, request: Request) -> Response:
        """Return every configured module (arguments that look secret are masked).

        Returns:
            Response: 200 ``{"vendor_modules": [...]}``.
        """
        configs = [self._describe(config) for config in self._store.list_modules()]
        return json_response(200, {"vendor_modules": configs}, head=request.method == "HEAD")

    def get(self, request: Request, lease: Lease, name: str) -> Response:
        """Return one module's configuration, capabilities, object count and statistics.

        Returns:
            Response: 200; ``statistics`` is null and ``error`` says why when
            the module cannot be created or fails to report.

        Raises:
            HttpError: 404 for an unknown name.
        """
        config = self._store.get_module(name)
        if config is None:
            raise HttpError(404, "no module is configured under the name %r" % name)
        body = self._describe(config)
        statistics, error = self._statistics.one(name)
        body["statistics"] = statistics
        if error is not None:
            body["error"] = error
        else:
            body["capabilities"] = dict(lease.module(name).capabilities)
        body["objects"] = self._store.count_objects(name)
        # The number DELETE checks: data waiting to be destroyed and writes in progress.
        body["pending_deletions"] = self._store.count_garbage(name)
        body["pending_by_kind"] = self._store.garbage_counts(name)
        background = self._store.get_repair_pass(name)
        if background is not None:
            body["background_repair"] = {
                "revision": background.revision, "visited": background.done,
                "failed": background.failed, "after": background.after,
                "started": background.started, "finished": background.finished,
                "last_error": background.last_error}
        return json_response(200, body, head=request.method == "HEAD")

    def put(self, request: Request, name: str) -> Response:
        """Create or replace module ``name``; the new instance serves from now on.

        Returns:
            Response: 204.

        Raises:
            HttpError: 400 when the body is malformed or the module cannot be
                created with these arguments (the message says why).
        """
        config = _parse_config(name, request.read_json())
        cycle = _cycle(config, self._store.list_modules())
        if cycle:
            raise HttpError(400, "module %r would use itself: %s; a module cannot be its own "
                                 "location, directly or through others"
                            % (name, " -> ".join(cycle)), error="InvalidConfiguration")
        current = self._store.get_module(name)
        if current is not None and current.same_settings(config):
            return empty_response(204)
        try:
            instance = load_module(config.module, config.args)
        except ConfigurationError as error:
            raise HttpError(400, str(error), error="InvalidConfiguration") from None
        try:
            stored = self._store.put_module(config)
        except BaseException:
            instance.close()
            raise
        if stored is None:
            instance.close()
        else:
            self._registry.install(stored, instance)
            log.info("module %r configured: %s (revision %d)", name, stored.module, stored.revision)
        return empty_response(204)

    def delete(self, name: str) -> Response:
        """Remove module ``name``.

        Returns:
            Response: 204.

        Raises:
            HttpError: 404 (unknown), 409 (objects or other modules use it).
        """
        try:
            removed = self._store.delete_module(name)
        except ModuleInUse as error:
            raise HttpError(409, str(error), error="ModuleInUse") from None
        if not removed:
            raise HttpError(404, "no module is configured under the name %r" % name)
        self._registry.forget(name)
        log.info("module %r removed", name)
        return empty_response(204)

    def repair(self, request: Request, lease: Lease, name: str) -> Response:
        """Run a repair step for module ``name`` (see :class:`RepairService`).

        Returns:
            Response: 200 with the step's summary.

        Raises:
            HttpError: 400 (bad body), 404 (unknown module).
            Unsupported: the module cannot repair (answered 501).
        """
        if self._store.get_module(name) is None:
            raise HttpError(404, "no module is configured under the name %r" % name)
        body = request.read_json() if request.has_body() else {}
        if not isinstance(body, dict):
            raise HttpError(400, "the repair body must be a JSON object")
        try:
            return json_response(200, self._repair.run(lease, name, body))
        except UnknownModule:
            raise HttpError(404, "no module is configured under the name %r" % name) from None

    @staticmethod
    def _describe(config: ModuleConfig) -> Dict[str, Any]:
        return {
            "name": config.name,
            "module": config.module,
            "description": config.description,
            "args": redact(config.args),
            "revision": config.revision,
            "updated": config.updated,
        }


def _cycle(config: ModuleConfig, configured: List[ModuleConfig]) -> Optional[List[str]]:
    """Return the names leading from ``config`` back to itself through arguments, or None.

    A module uses another when one of its string arguments is that module's
    name (as :meth:`Store.delete_module` counts users). A cycle (replica
    ``a`` over ``b``, ``b`` over ``a``) made every write recurse until
    ``RecursionError``, in an exponential number of calls that went on long
    after the request timed out.
    """
    uses = {other.name: string_arguments(other.args) for other in configured}
    uses[config.name] = string_arguments(config.args)
    path: List[str] = [config.name]
    pending = [iter(uses[config.name])]
    seen = set()
    while pending:  # depth-first; each module is entered at most once
        following = next(pending[-1], None)
        if following is None:
            pending.pop()
            path.pop()
        elif following == config.name:
            return path + [following]
        elif following in uses and following not in seen:
            seen.add(following)
            path.append(following)
            pending.append(iter(uses[following]))
    return None


def _parse_config(name: str, body: Any) -> ModuleConfig:
    if not isinstance(body, dict):
        raise HttpError(400, 'the body must be a JSON object like {"module": "pkg.mod.Class", '
                             '"description": "...", "args": [...]}')
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise HttpError(400, "unknown field(s) %s; a configuration has module, description and "
                             "args" % ", ".join(map(repr, unknown)))
    module = body.get("module")
    if not isinstance(module, str) or not module.strip():
        raise HttpError(400, '"module" is required: the dotted path of a StorageModule class, '
                             'e.g. "simple.simple.SimpleStorage"')
    description = body.get("description", "")
    if not isinstance(description, str):
        raise HttpError(400, '"description" must be a string')
    args = body.get("args", [])
    if not isinstance(args, (list, dict)):
        raise HttpError(400, '"args" must be a list (positional) or an object (keywords)')
    return ModuleConfig(name=name, module=module.strip(), description=description, args=args)
