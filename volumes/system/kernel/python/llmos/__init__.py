"""llmos: the kernel API for Python artifacts.

    import llmos
    llmos.log.info("fetched rows", count=12, source="cache")

    from llmos import log          # or: import llmos.log
    log.warn("slow", ms=830)

Each call becomes one structured log record in the run's outcome. Field values
are stringified with str().
"""

import sys as _sys
import types as _types

from wit_world.imports import log as _wit_log

__all__ = ["log"]


def _text(value):
    if isinstance(value, str):
        return value
    try:
        return str(value)
    except Exception:
        try:
            return repr(value)
        except Exception:
            return "<unprintable %s object>" % type(value).__name__


def _write(level, message, fields):
    _wit_log.write(
        level,
        _text(message),
        [_wit_log.Field(key=str(key), value=_text(value)) for key, value in fields.items()],
    )


def _debug(message, **fields):
    """Log a debug record: llmos.log.debug("message", key=value, ...)."""
    _write(_wit_log.Level.DEBUG, message, fields)


def _info(message, **fields):
    """Log an info record: llmos.log.info("message", key=value, ...)."""
    _write(_wit_log.Level.INFO, message, fields)


def _warn(message, **fields):
    """Log a warning record: llmos.log.warn("message", key=value, ...)."""
    _write(_wit_log.Level.WARN, message, fields)


def _error(message, **fields):
    """Log an error record: llmos.log.error("message", key=value, ...)."""
    _write(_wit_log.Level.ERROR, message, fields)


# `llmos.log` is a real submodule object so that `import llmos.log` and
# `from llmos.log import info` work as well as `llmos.log.info(...)`.
log = _types.ModuleType("llmos.log", "Structured logging to the kernel.")
log.__package__ = __name__
for _name, _fn in (("debug", _debug), ("info", _info), ("warn", _warn), ("error", _error)):
    _fn.__name__ = _fn.__qualname__ = _name
    _fn.__module__ = "llmos.log"
    setattr(log, _name, _fn)
log.warning = log.warn
log.__all__ = ["debug", "info", "warn", "warning", "error"]
_sys.modules["llmos.log"] = log
del _name, _fn
