"""Errors raised by the llmos kernel API.

Every kernel call that can fail raises a subclass of KernelError whose
`code` is the interface's error code (e.g. "quota-exceeded") and whose
message says what was wrong and what is allowed.
"""

from componentize_py_types import Err as _Err

__all__ = ["KernelError", "StorageError", "VizError", "DomError", "QuantumError"]


class KernelError(Exception):
    """llmos.KernelError(code, message)

    Base class of every error a kernel API raises. `err.code` is the error
    code (a string such as "quota-exceeded"), `str(err)` the message.
    """

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


class StorageError(KernelError):
    """llmos.StorageError

    Raised by llmos.storage. Codes: "invalid-key", "invalid-value",
    "quota-exceeded", "unavailable".
    """


class VizError(KernelError):
    """llmos.VizError

    Raised by llmos.viz. Codes: "invalid-data", "invalid-options",
    "invalid-argument", "too-large".
    """


class DomError(KernelError):
    """llmos.DomError

    Raised by llmos.dom. Codes: "forbidden-tag", "forbidden-attribute",
    "forbidden-url", "invalid-selector", "invalid-operation", "too-large".
    """


class QuantumError(KernelError):
    """llmos.QuantumError

    Raised by llmos.quantum. Codes: "too-many-qubits", "invalid-gate",
    "invalid-qubit", "too-large".
    """


def _code(value):
    code = getattr(value, "code", None)
    name = getattr(code, "name", None)
    return name.lower().replace("_", "-") if name else "unknown"


def _call(cls, fn, *args):
    """Call a WIT import; turn its `Err` into `cls` raised from the caller."""
    try:
        return fn(*args)
    except _Err as e:
        value = e.value
        raise cls(_code(value), getattr(value, "message", str(value))) from None
