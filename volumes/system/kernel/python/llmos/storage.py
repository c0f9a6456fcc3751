"""Persistent key-value storage private to this artifact.

    from llmos import storage
    storage.set("visits", storage.get("visits", 0) + 1)

Values are anything json.dumps accepts; they persist across runs. Each
artifact has its own namespace with quotas (key length, value size, total
bytes, key count); crossing one raises StorageError("quota-exceeded").
"""

import builtins as _builtins
import json as _json

from wit_world.imports import storage as _wit

from .errors import StorageError, _call

__all__ = ["get", "set", "has", "delete", "list", "clear", "StorageError"]


def _key(key, fn):
    if not isinstance(key, str):
        raise TypeError("storage.%s: key must be a str, not %s" % (fn, type(key).__name__))
    return key


def get(key, default=None):
    """llmos.storage.get(key, default=None) -> object

    The value stored under `key` (decoded from JSON), or `default` when the
    key does not exist.
    """
    text = _call(StorageError, _wit.get, _key(key, "get"))
    return default if text is None else _json.loads(text)


def set(key, value):
    """llmos.storage.set(key, value) -> None

    Store `value` (anything json.dumps accepts: dict, list, str, int, float,
    bool, None) under `key`, replacing any earlier value. Durable when it
    returns.
    """
    try:
        text = _json.dumps(value, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as e:
        raise TypeError("storage.set: value must be JSON-serializable: %s" % e) from None
    _call(StorageError, _wit.set, _key(key, "set"), text)


def has(key):
    """llmos.storage.has(key) -> bool

    Whether `key` exists.
    """
    return _call(StorageError, _wit.get, _key(key, "has")) is not None


def delete(key):
    """llmos.storage.delete(key) -> bool

    Remove `key`; True if it existed.
    """
    return _call(StorageError, _wit.delete, _key(key, "delete"))


def list(prefix=""):
    """llmos.storage.list(prefix="") -> list[str]

    The keys starting with `prefix` (all keys by default), sorted.
    """
    if not isinstance(prefix, str):
        raise TypeError("storage.list: prefix must be a str, not %s" % type(prefix).__name__)
    return _builtins.list(_call(StorageError, _wit.keys, prefix))


def clear():
    """llmos.storage.clear() -> int

    Remove every key of this artifact; returns how many were removed.
    """
    return _call(StorageError, _wit.clear)
