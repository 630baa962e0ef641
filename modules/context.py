"""Build the ``context`` dict that hosts and tests pass to module methods."""
from typing import Callable, Mapping, Union

from modules import StorageModule
from modules.errors import ConfigurationError

__all__ = ["make_context", "get_module"]

Resolver = Callable[[str], StorageModule]


def make_context(modules: Union[Mapping[str, StorageModule], Resolver, None] = None) -> dict:
    """Return a context whose ``func.getModule(name)`` finds configured modules.

    ``modules`` is a mapping of name to module instance, or a resolver
    function ``name -> module`` (which should itself raise
    ConfigurationError for unknown names), or None for no modules.

    Returns:
        dict: ``{'func': {'getModule': callable}}``.
    """
    if modules is None:
        modules = {}
    if callable(modules) and not isinstance(modules, Mapping):
        resolver = modules
    else:
        table = modules

        def resolver(name: str) -> StorageModule:
            try:
                return table[name]
            except KeyError:
                known = ", ".join(sorted(table)) or "none"
                raise ConfigurationError(
                    "no module is configured under the name %r (configured: %s)" % (name, known)
                ) from None
    return {"func": {"getModule": resolver}}


def get_module(context, name: str) -> StorageModule:
    """Resolve ``name`` through ``context['func']['getModule']``.

    Returns:
        StorageModule: the configured module.

    Raises:
        ConfigurationError: the context offers no ``getModule`` or it does
            not know ``name``.
    """
    try:
        resolver = context["func"]["getModule"]
    except (TypeError, KeyError):
        raise ConfigurationError(
            "module %r must be resolved by name, but the context has no "
            "func.getModule" % name) from None
    module = resolver(name)
    if module is None:
        raise ConfigurationError("no module is configured under the name %r" % name)
    if not isinstance(module, StorageModule):
        raise ConfigurationError("getModule(%r) returned %s, not a StorageModule" % (
            name, type(module).__name__))
    return module
