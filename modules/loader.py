"""Load a configured module by dotted path, the way the platform does."""
import importlib
from typing import Any, Mapping, Sequence, Union

from modules import StorageModule
from modules.errors import ConfigurationError

__all__ = ["load_module_class", "load_module"]

Args = Union[None, Sequence[Any], Mapping[str, Any]]


def load_module_class(dotted_path: str) -> type:
    """Import ``package.module.Class`` and return the class.

    Returns:
        type: a subclass of :class:`~modules.StorageModule`.

    Raises:
        ConfigurationError: the path is malformed, the module cannot be
            imported (the import error is in the message), it has no such
            attribute, or the attribute is not a StorageModule subclass.
    """
    if not isinstance(dotted_path, str) or "." not in dotted_path.strip("."):
        raise ConfigurationError(
            "module must be a dotted path like 'package.module.Class', got %r" % (dotted_path,))
    module_name, _, class_name = dotted_path.rpartition(".")
    try:
        python_module = importlib.import_module(module_name)
    except Exception as error:  # any import-time failure is a configuration problem
        raise ConfigurationError("cannot import %r for %r: %s: %s" % (
            module_name, dotted_path, type(error).__name__, error)) from error
    try:
        cls = getattr(python_module, class_name)
    except AttributeError:
        raise ConfigurationError("module %r has no attribute %r (from %r)" % (
            module_name, class_name, dotted_path)) from None
    if not (isinstance(cls, type) and issubclass(cls, StorageModule)):
        raise ConfigurationError(
            "%r is not a StorageModule subclass; vendor modules must extend "
            "modules.StorageModule" % dotted_path)
    return cls


def load_module(dotted_path: str, args: Args = None) -> StorageModule:
    """Import ``dotted_path`` and instantiate it with ``args``.

    ``args`` is a list (passed positionally, as the platform's
    ``vendor_modules`` configuration sends it), a dict (passed as keywords)
    or None (no arguments).

    Returns:
        StorageModule: the configured instance.

    Raises:
        ConfigurationError: the class cannot be loaded (see
            :func:`load_module_class`), ``args`` is neither list nor dict, or
            the constructor rejected the arguments (its message is included).
    """
    cls = load_module_class(dotted_path)
    if args is None:
        positional, keywords = (), {}
    elif isinstance(args, Mapping):
        positional, keywords = (), dict(args)
    elif isinstance(args, (list, tuple)):
        positional, keywords = tuple(args), {}
    else:
        raise ConfigurationError(
            "args for %r must be a list or an object, got %s" % (dotted_path, type(args).__name__))
    try:
        return cls(*positional, **keywords)
    except ConfigurationError:
        raise
    except TypeError as error:
        raise ConfigurationError("%s rejected its arguments: %s" % (dotted_path, error)) from error
    except Exception as error:
        raise ConfigurationError("%s could not be created: %s: %s" % (
            dotted_path, type(error).__name__, error)) from error
