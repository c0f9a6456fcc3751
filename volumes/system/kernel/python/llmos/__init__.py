"""llmos: the kernel API for Python artifacts.

    from llmos import log, storage, viz, dom, quantum

    log.info("starting", rows=12)
    storage.set("visits", storage.get("visits", 0) + 1)
    viz.plot({"a": [1, 2, 3], "b": [3, 1, 2]}, title="Two series")
    dom.root().append_child(dom.create_element("p", text="hello"))
    quantum.Circuit(2).h(0).cnot(0, 1).simulate(shots=100)

These modules are the only way out of the sandbox. Each failing call raises
a subclass of llmos.KernelError with a `code` and a precise message.
"""

from . import dom, log, quantum, storage, viz
from .errors import DomError, KernelError, QuantumError, StorageError, VizError

__all__ = [
    "log",
    "storage",
    "viz",
    "dom",
    "quantum",
    "KernelError",
    "StorageError",
    "VizError",
    "DomError",
    "QuantumError",
]
