"""Structured logging to the kernel.

    from llmos import log
    log.info("fetched rows", count=12, source="cache")

Each call becomes one structured log record in the run's outcome. Field
values are displayed with str().
"""

from wit_world.imports import log as _wit

__all__ = ["debug", "info", "warn", "warning", "error"]


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
    _wit.write(
        level,
        _text(message),
        [_wit.Field(key=str(key), value=_text(value)) for key, value in fields.items()],
    )


def debug(message, **fields):
    """llmos.log.debug(message, **fields)

    Record a debug log line with structured fields.
    """
    _write(_wit.Level.DEBUG, message, fields)


def info(message, **fields):
    """llmos.log.info(message, **fields)

    Record an info log line: log.info("loaded", rows=12).
    """
    _write(_wit.Level.INFO, message, fields)


def warn(message, **fields):
    """llmos.log.warn(message, **fields)

    Record a warning (also available as log.warning).
    """
    _write(_wit.Level.WARN, message, fields)


def error(message, **fields):
    """llmos.log.error(message, **fields)

    Record an error line (it does not stop the artifact; raise for that).
    """
    _write(_wit.Level.ERROR, message, fields)


warning = warn
