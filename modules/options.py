"""One declarative parser for a module's ``name=value`` arguments and keywords.

The platform configures a module with a list of strings (``"timeout=5"``,
``"part_size=8MiB"``), and Python callers pass keywords; both arrive at the
module's ``__init__``. Instead of each module parsing differently, a module
declares its options once and lets :class:`OptionParser` parse, convert,
range-check and explain::

    from modules.options import Option, OptionParser

    _OPTIONS = OptionParser("MyStorage", [
        Option("url", "str", required=True, positional=True, help="where the store is"),
        Option("timeout", "duration", default=30.0, minimum=0.1, maximum=3600),
        Option("part_size", "size", default="8MiB", minimum="5MiB"),
        Option("verify_tls", "bool", default=True),
        Option("addressing", "choice", default="path", choices=("path", "virtual")),
        Option("password", "str", secret=True, env_option=True),
    ])

    class MyStorage(StorageModule):
        def __init__(self, *args, **kwargs):
            self.settings = _OPTIONS.parse(args, kwargs)   # raises ConfigurationError
            self.settings.timeout                         # 30.0

Rules, the same for every module that uses this parser:

* A positional argument of the form ``name=value`` whose ``name`` looks like
  an identifier is an option; any other positional argument fills the next
  option declared ``positional=True`` (a path or URL), in declaration order.
* Every option may be given once, positionally or as a keyword. Unknown
  names are refused with the list of known ones.
* Types (string values are converted; keywords may also pass the native
  Python type):

  ``int``, ``float``
      decimal numbers.
  ``bool``
      one set of words for everyone: ``true/false``, ``yes/no``,
      ``on/off``, ``1/0`` (any case).
  ``str``
      a non-empty one-line string without NUL.
  ``size``
      bytes, as an integer or with a unit: ``B``, ``kB``/``KB``, ``MB``,
      ``GB``, ``TB`` (powers of 1000) or ``KiB``, ``MiB``, ``GiB``, ``TiB``
      (powers of 1024): ``8MiB``, ``1.5GB``. Gives an ``int``.
  ``duration``
      seconds, as a number or with a unit ``ms``, ``s``, ``min`` (or ``m``),
      ``h``, ``d``: ``250ms``, ``5``, ``2min``. Gives a ``float``.
  ``choice``
      one of ``choices`` (compared without case). Gives the declared spelling.
  ``object``
      any Python value, keyword only (a callable such as an injected
      ``sleep`` for tests); never accepted from a string.

* ``minimum``/``maximum`` bound numbers, sizes and durations (sizes and
  durations may be bounded with unit strings too).
* ``secret=True`` values are never shown: not in error messages, not in
  ``repr``, not in :meth:`Settings.redacted` (which uses
  :mod:`modules.redaction`, the SDK's one redaction helper).
* ``env="VARIABLE"`` reads the value from that environment variable when
  the option is not given (the standard ``AWS_ACCESS_KEY_ID`` and the like).
* ``env_option=True`` also accepts ``<name>_env=VARIABLE``: the value is read
  from the environment variable it names, which must be set. With
  ``inline=False`` only that form is accepted, so a secret never sits in a
  configuration file.

Every problem raises :class:`modules.errors.ConfigurationError` whose
message names the module, the option and what is expected.
"""
import decimal
import math
import os
import re
from dataclasses import dataclass
from typing import Any, Callable, Dict, FrozenSet, Iterator, Mapping, Optional, Sequence, Tuple

from modules.errors import ConfigurationError
from modules.redaction import MASK, redact

__all__ = [
    "Option",
    "OptionParser",
    "Settings",
    "TYPES",
    "TRUE_WORDS",
    "FALSE_WORDS",
    "parse_bool",
    "parse_size",
    "parse_duration",
    "redact_settings",
]

#: The option types :class:`Option` accepts.
TYPES = ("int", "float", "bool", "str", "size", "duration", "choice", "object")

#: The one set of words every module accepts for a true boolean (compared without case).
TRUE_WORDS = frozenset({"true", "yes", "on", "1"})
#: ... and for a false one.
FALSE_WORDS = frozenset({"false", "no", "off", "0"})

# Units are spelled out by hand rather than through a library: the set is
# small, and the decimal/binary distinction must be exact (kB = 1000, KiB = 1024).
_SIZE_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "kib": 1024,
    "m": 1000 ** 2, "mb": 1000 ** 2, "mib": 1024 ** 2,
    "g": 1000 ** 3, "gb": 1000 ** 3, "gib": 1024 ** 3,
    "t": 1000 ** 4, "tb": 1000 ** 4, "tib": 1024 ** 4,
    "p": 1000 ** 5, "pb": 1000 ** 5, "pib": 1024 ** 5,
}
_DURATION_UNITS = {"": 1.0, "ms": 0.001, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0,
                   "h": 3600.0, "d": 86400.0}
_NUMBER_WITH_UNIT = re.compile(r"\A\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([A-Za-z]*)\s*\Z")
_OPTION_ARG = re.compile(r"\A([A-Za-z_][A-Za-z0-9_]*)=(.*)\Z", re.DOTALL)
_NO_DEFAULT = object()


# -- value converters (public: modules may use them for their own checks) ------

def parse_bool(value: Any) -> bool:
    """Return ``value`` as a bool: a bool, or one of :data:`TRUE_WORDS`/:data:`FALSE_WORDS`.

    Raises:
        ValueError: anything else.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    raise ValueError("expected one of %s or %s" % (
        "/".join(sorted(TRUE_WORDS)), "/".join(sorted(FALSE_WORDS))))


def parse_size(value: Any) -> int:
    """Return a size in bytes from an int or a string such as ``'8MiB'``, ``'1.5GB'``, ``'512'``.

    Raises:
        ValueError: not a non-negative number with a known unit.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return value
    if isinstance(value, str):
        match = _NUMBER_WITH_UNIT.match(value)
        if match and match.group(2).lower() in _SIZE_UNITS:
            # Decimal, not float: 4611686019GB must give exactly 4611686019 * 10**9 bytes.
            number = decimal.Decimal(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]
            if number == number.to_integral_value():
                return int(number)
            raise ValueError("a size must come to a whole number of bytes")
    raise ValueError("expected a number of bytes, optionally with a unit "
                     "(B, kB, MB, GB, TB, KiB, MiB, GiB, TiB), e.g. 8MiB")


def parse_duration(value: Any) -> float:
    """Return seconds from a number or a string such as ``'250ms'``, ``'5'``, ``'2min'``, ``'1h'``.

    Raises:
        ValueError: not a finite non-negative number with a known unit.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        match = _NUMBER_WITH_UNIT.match(value)
        if not match or match.group(2).lower() not in _DURATION_UNITS:
            raise ValueError("expected a number of seconds, optionally with a unit "
                             "(ms, s, min, h, d), e.g. 30 or 250ms")
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2).lower()]
    else:
        raise ValueError("expected a number of seconds")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError("a duration must be a finite number of seconds >= 0")
    return seconds


def _parse_int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip(), 10)
        except ValueError:
            pass
    raise ValueError("expected a whole number")


def _parse_float(value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise ValueError("expected a number") from None
    else:
        raise ValueError("expected a number")
    if not math.isfinite(number):
        raise ValueError("expected a finite number")
    return number


def _parse_str(value: Any) -> str:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value.strip():
        raise ValueError("expected a non-empty string")
    if "\0" in value or "\n" in value or "\r" in value:
        raise ValueError("expected one line without NUL characters")
    return value


_CONVERTERS: Dict[str, Callable[[Any], Any]] = {
    "int": _parse_int,
    "float": _parse_float,
    "bool": parse_bool,
    "str": _parse_str,
    "size": parse_size,
    "duration": parse_duration,
}


# -- declarations ------------------------------------------------------------

@dataclass(frozen=True)
class Option:
    """The declaration of one option.

    Args:
        name: the option's name (``[a-z_][a-z0-9_]*``), as written in ``name=value``.
        type: one of :data:`TYPES`.
        default: the value when the option is not given (converted like a
            given value; ``None`` means "not set"). Ignored when ``required``.
        required: the option must be given (or found through ``env``).
        minimum, maximum: inclusive bounds for int, float, size (bytes or a
            unit string) and duration (seconds or a unit string).
        choices: the allowed values of a ``choice`` option.
        secret: never show the value (errors, ``repr``, :meth:`Settings.redacted`).
        env: an environment variable read when the option is not given.
        env_option: also accept ``<name>_env=VARIABLE`` (the value is read
            from that variable, which must then be set).
        inline: whether ``name=value`` itself is accepted; ``False`` with
            ``env_option`` forces secrets into the environment.
        positional: a bare positional argument (not ``name=value``) may
            fill this option (paths, URLs), in declaration order.
        validate: called with the converted value; returns the final value
            or raises ``ValueError`` whose message says what is expected.
        help: one line for documentation and error messages.
        aliases: other names accepted for the option (``user`` for
            ``username``); giving two spellings is refused as giving it twice.
    """

    name: str
    type: str = "str"
    default: Any = None
    required: bool = False
    minimum: Any = None
    maximum: Any = None
    choices: Tuple[str, ...] = ()
    secret: bool = False
    env: Optional[str] = None
    env_option: bool = False
    inline: bool = True
    positional: bool = False
    validate: Optional[Callable[[Any], Any]] = None
    help: str = ""
    aliases: Tuple[str, ...] = ()

    def __post_init__(self):
        if not re.match(r"\A[a-z_][a-z0-9_]*\Z", self.name or ""):
            raise ValueError("option name %r must match [a-z_][a-z0-9_]*" % (self.name,))
        if self.type not in TYPES:
            raise ValueError("option %s: type must be one of %s" % (self.name, ", ".join(TYPES)))
        if self.type == "choice" and not self.choices:
            raise ValueError("option %s: a choice option needs choices" % self.name)
        if not self.inline and not (self.env_option or self.env):
            raise ValueError("option %s: inline=False needs env_option or env" % self.name)
        object.__setattr__(self, "choices", tuple(self.choices))
        object.__setattr__(self, "aliases", tuple(self.aliases))
        for alias in self.aliases:
            if not re.match(r"\A[a-z_][a-z0-9_]*\Z", alias or ""):
                raise ValueError("option %s: alias %r must match [a-z_][a-z0-9_]*"
                                 % (self.name, alias))

    @property
    def env_option_name(self) -> Optional[str]:
        """``<name>_env`` when :attr:`env_option` is set, else None."""
        return self.name + "_env" if self.env_option else None

    def expected(self) -> str:
        """Describe the accepted values, for error messages and docs."""
        if self.type == "choice":
            text = "one of %s" % ", ".join(self.choices)
        elif self.type == "bool":
            text = "true or false (also yes/no, on/off, 1/0)"
        elif self.type == "size":
            text = "a size in bytes (e.g. 8MiB)"
        elif self.type == "duration":
            text = "a duration in seconds (e.g. 30 or 250ms)"
        elif self.type == "int":
            text = "a whole number"
        elif self.type == "float":
            text = "a number"
        elif self.type == "object":
            text = "a Python value passed as a keyword"
        else:
            text = "a non-empty one-line string"
        if self.minimum is not None and self.maximum is not None:
            text += " from %s to %s" % (self.minimum, self.maximum)
        elif self.minimum is not None:
            text += ", at least %s" % (self.minimum,)
        elif self.maximum is not None:
            text += ", at most %s" % (self.maximum,)
        return text


class Settings(Mapping[str, Any]):
    """The parsed options of one module instance: read-only, by attribute or key.

    ``settings.timeout`` and ``settings["timeout"]`` give the converted value
    (``None`` for an option neither given nor defaulted). :attr:`given` holds
    the names given explicitly (by argument, keyword or environment).
    ``repr`` and :meth:`redacted` never show a secret.
    """

    __slots__ = ("_owner", "_values", "_secrets", "_given", "_sources")

    def __init__(self, owner: str, values: Dict[str, Any], secrets: FrozenSet[str],
                 given: FrozenSet[str], sources: Optional[Mapping[str, str]] = None):
        object.__setattr__(self, "_owner", owner)
        object.__setattr__(self, "_values", dict(values))
        object.__setattr__(self, "_secrets", frozenset(secrets))
        object.__setattr__(self, "_given", frozenset(given))
        object.__setattr__(self, "_sources", dict(sources or {}))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # never look private names up in the values (copy, pickle)
            raise AttributeError(name)
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError("%s has no option %r" % (self._owner, name)) from None

    def __setattr__(self, name, value):
        raise AttributeError("Settings are read-only")

    def __reduce__(self):
        return (Settings, (self._owner, self._values, self._secrets, self._given, self._sources))

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    @property
    def given(self) -> FrozenSet[str]:
        """The names of the options that were given rather than defaulted."""
        return self._given

    def source(self, name: str) -> Optional[str]:
        """Say where an option's value came from, for messages (never the value itself).

        Returns:
            ``"argument"``, ``"environment variable NAME"`` (through ``env``
            or ``<name>_env``), ``"default"``, or None when the option is unset.
        """
        return self._sources.get(name)

    @property
    def secret_names(self) -> FrozenSet[str]:
        """The names of the options declared ``secret``."""
        return self._secrets

    def redacted(self) -> Dict[str, Any]:
        """Return a plain dict for ``repr``, statistics and logs: secrets shown as ``***``.

        Declared secrets that are set become :data:`modules.redaction.MASK`;
        everything else goes through :func:`modules.redaction.redact` (which
        also hides credentials inside URLs). Callables are shown by name.
        """
        shown: Dict[str, Any] = {}
        for name, value in self._values.items():
            if name in self._secrets:
                shown[name] = MASK if value is not None else None
            elif callable(value):
                shown[name] = getattr(value, "__name__", type(value).__name__)
            else:
                shown[name] = redact(value)
        return shown

    def __repr__(self) -> str:
        return "%s(%s)" % (self._owner + "Settings", ", ".join(
            "%s=%r" % item for item in self.redacted().items()))


#: Public attributes of Settings that an option name must not hide.
_SETTINGS_ATTRIBUTES = frozenset(name for name in dir(Settings) if not name.startswith("_"))


def redact_settings(settings: Settings) -> Dict[str, Any]:
    """Return ``settings.redacted()``: a dict safe for ``repr``, statistics and logs."""
    return settings.redacted()


class OptionParser:
    """Parse a module's arguments against its declared :class:`Option` s.

    Args:
        owner: the module's name, used in every error message (``"S3Storage"``).
        options: the declarations, in the order bare positional arguments fill
            the ``positional`` ones.

    Raises:
        ValueError: two declarations share a name (a programming error).
    """

    def __init__(self, owner: str, options: Sequence[Option]):
        self.owner = owner
        self.options: Tuple[Option, ...] = tuple(options)
        self._by_name: Dict[str, Option] = {}
        self._env_names: Dict[str, Option] = {}
        self._aliases: Dict[str, Option] = {}
        for option in self.options:
            for name in (option.name, option.env_option_name) + option.aliases:
                if name is None:
                    continue
                if name in self._by_name or name in self._env_names or name in self._aliases:
                    raise ValueError("%s declares option %r twice" % (owner, name))
            self._by_name[option.name] = option
            if option.env_option_name:
                self._env_names[option.env_option_name] = option
            for alias in option.aliases:
                self._aliases[alias] = option
        self._positional = [option for option in self.options if option.positional]
        shadowed = sorted(set(self._by_name) & _SETTINGS_ATTRIBUTES)
        if shadowed:
            raise ValueError("%s: option name(s) %s would hide Settings attributes; rename them"
                             % (owner, ", ".join(shadowed)))

    @property
    def names(self) -> Tuple[str, ...]:
        """Every name accepted, ``<name>_env`` forms included, in declaration order."""
        names = []
        for option in self.options:
            if option.inline:
                names.append(option.name)
                names.extend(option.aliases)
            if option.env_option_name:
                names.append(option.env_option_name)
        return tuple(names)

    def parse(self, args: Sequence[Any] = (), kwargs: Optional[Mapping[str, Any]] = None,
              environ: Optional[Mapping[str, str]] = None) -> Settings:
        """Merge positional arguments and keywords into validated :class:`Settings`.

        Args:
            args: the positional arguments (``"name=value"`` strings and bare
                values for ``positional`` options).
            kwargs: the keyword arguments.
            environ: the environment for ``env`` and ``<name>_env`` (default
                ``os.environ``).

        Returns:
            Settings: every declared option, converted (``None`` when unset).

        Raises:
            ConfigurationError: an option is unknown, given twice, missing,
                malformed or out of range; the message names the module and
                the option and says what is expected (never a secret value).
        """
        environ = os.environ if environ is None else environ
        raw: Dict[str, Tuple[Any, bool]] = {}   # name -> (value, from a string argument)
        free_positional = list(self._positional)
        for index, arg in enumerate(args):
            match = _OPTION_ARG.match(arg) if isinstance(arg, str) else None
            if match:
                self._put(raw, match.group(1), match.group(2), from_string=True)
                continue
            if not free_positional:
                raise ConfigurationError(
                    "%s argument %d is %s; every argument%s must be 'name=value' with a name "
                    "from: %s" % (self.owner, index + 1, self._describe_arg(arg),
                                  " after %s" % " and ".join(o.name for o in self._positional)
                                  if self._positional else "", ", ".join(self.names)))
            option = free_positional.pop(0)
            self._put(raw, option.name, arg, from_string=isinstance(arg, str))
        for name, value in (kwargs or {}).items():
            self._put(raw, name, value, from_string=False)

        values: Dict[str, Any] = {}
        given = set()
        sources: Dict[str, str] = {}
        for option in self.options:
            value, origin = self._raw_value(option, raw, environ)
            if origin is None:
                if option.required:
                    raise ConfigurationError("%s needs the option %s: %s%s" % (
                        self.owner, self._how_to_give(option), option.expected(),
                        " (%s)" % option.help if option.help else ""))
                if option.default is None:
                    values[option.name] = None
                    continue
                value, origin = option.default, "default"
            else:
                given.add(option.name)
            values[option.name] = self._convert(option, value, origin)
            sources[option.name] = origin
        return Settings(self.owner, values,
                        frozenset(option.name for option in self.options if option.secret),
                        frozenset(given), sources)

    # -- helpers ---------------------------------------------------------------

    def _put(self, raw, name: str, value: Any, from_string: bool) -> None:
        spelled = name
        alias_of = self._aliases.get(name)
        if alias_of is not None:
            name = alias_of.name
        option = self._by_name.get(name) or self._env_names.get(name)
        if option is None or (name == option.name and not option.inline):
            if option is not None:
                raise ConfigurationError(
                    "%s does not take %s= directly, so the secret stays out of configuration "
                    "files: put it in an environment variable and give %s=VARIABLE%s" % (
                        self.owner, name, option.env_option_name or "",
                        " (or set %s)" % option.env if option.env else ""))
            raise ConfigurationError("%s does not know the option %r; known: %s" % (
                self.owner, name, ", ".join(self.names)))
        if name in raw:
            earlier = raw[name][2]
            raise ConfigurationError("%s option %s is given twice%s" % (
                self.owner, name, " (as %s and %s)" % (earlier, spelled)
                if earlier != spelled else ""))
        other = option.env_option_name if name == option.name else option.name
        if other and other in raw:
            raise ConfigurationError("%s: give either %s= or %s=, not both" % (
                self.owner, option.name, option.env_option_name))
        if option.type == "object" and from_string:
            raise ConfigurationError("%s option %s can only be passed as a Python keyword, "
                                     "not as a string" % (self.owner, name))
        raw[name] = (value, from_string, spelled)

    def _raw_value(self, option: Option, raw, environ) -> Tuple[Any, Optional[str]]:
        if option.name in raw:
            return raw[option.name][0], "argument"
        if option.env_option_name and option.env_option_name in raw:
            variable = raw[option.env_option_name][0]
            if not isinstance(variable, str) or not re.match(r"\A[A-Za-z_][A-Za-z0-9_]*\Z",
                                                             variable):
                raise ConfigurationError(
                    "%s option %s must name an environment variable (letters, digits, _), "
                    "got %s" % (self.owner, option.env_option_name, repr(variable)[:60]))
            value = environ.get(variable)
            if not value:
                raise ConfigurationError(
                    "%s option %s=%s names an environment variable that is not set (or is "
                    "empty) in this process; export it before starting the server"
                    % (self.owner, option.env_option_name, variable))
            return value, "environment variable %s" % variable
        if option.env and environ.get(option.env):
            return environ[option.env], "environment variable %s" % option.env
        return None, None

    def _convert(self, option: Option, value: Any, origin: str) -> Any:
        try:
            converted = self._typed(option, value)
            if option.type in ("int", "float", "size", "duration"):
                self._check_range(option, converted)
            if option.validate is not None:
                converted = option.validate(converted)
        except ValueError as error:
            shown = "a secret value" if option.secret else repr(value)[:80]
            source = "" if origin == "argument" else " (from %s)" % origin
            raise ConfigurationError("%s option %s must be %s; got %s%s: %s" % (
                self.owner, option.name, option.expected(), shown, source, error)) from None
        return converted

    @staticmethod
    def _typed(option: Option, value: Any) -> Any:
        if option.type == "object":
            return value
        if option.type == "choice":
            if isinstance(value, str):
                for choice in option.choices:
                    if value.strip().lower() == choice.lower():
                        return choice
            raise ValueError("not one of the choices")
        return _CONVERTERS[option.type](value)

    @staticmethod
    def _check_range(option: Option, value: Any) -> None:
        bound = {"size": parse_size, "duration": parse_duration}.get(option.type, lambda b: b)
        if option.minimum is not None and value < bound(option.minimum):
            raise ValueError("below the minimum %s" % (option.minimum,))
        if option.maximum is not None and value > bound(option.maximum):
            raise ValueError("above the maximum %s" % (option.maximum,))

    @staticmethod
    def _how_to_give(option: Option) -> str:
        ways = []
        if option.inline:
            ways.append("%s=" % option.name)
        if option.env_option_name:
            ways.append("%s=VARIABLE" % option.env_option_name)
        if option.env:
            ways.append("the environment variable %s" % option.env)
        return " or ".join(ways)

    @staticmethod
    def _describe_arg(arg: Any) -> str:
        if not isinstance(arg, str):
            return "a %s" % type(arg).__name__
        if "=" in arg:
            return "an argument whose name is not a valid option name"
        return "a bare value"
