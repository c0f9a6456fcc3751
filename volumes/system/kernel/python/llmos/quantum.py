"""Quantum circuits, simulated on the host.

    from llmos import quantum
    bell = quantum.Circuit(2).h(0).cnot(0, 1).measure_all()
    result = bell.simulate(shots=1000, seed=7)
    result.counts          # {"00": 503, "11": 497}
    bell.draw()            # the circuit diagram as an SVG output

Qubit 0 is the least-significant bit of a basis-state index; bitstrings in
counts are written highest qubit first (like Qiskit).
"""

from wit_world.imports import quantum as _wit

from .errors import QuantumError, _call

__all__ = ["Circuit", "circuit", "Result", "QuantumError"]

_K = _wit.GateKind


class Result:
    """llmos.quantum.Result

    What Circuit.simulate returns: `amplitudes` (list of complex, 2^n
    entries), `probabilities` (list of float), `counts` (dict bitstring ->
    shots).
    """

    __slots__ = ("amplitudes", "probabilities", "counts")

    def __init__(self, amplitudes, probabilities, counts):
        self.amplitudes = amplitudes
        self.probabilities = probabilities
        self.counts = counts

    def __repr__(self):
        return "Result(counts=%r, probabilities=%r)" % (self.counts, self.probabilities)


class Circuit:
    """llmos.quantum.Circuit(qubits)

    A circuit on `qubits` qubits (at most 16). Gate methods return the
    circuit, so they chain: Circuit(2).h(0).cnot(0, 1).measure_all().
    """

    def __init__(self, qubits):
        if isinstance(qubits, bool) or not isinstance(qubits, int):
            raise TypeError("Circuit: qubits must be an int, not %s" % type(qubits).__name__)
        self.qubits = qubits
        self.gates = []

    def _add(self, kind, qubits, theta=None):
        qs = []
        for q in qubits:
            if isinstance(q, bool) or not isinstance(q, int):
                raise TypeError("%s: qubit must be an int, not %s" % (kind.name.lower(), type(q).__name__))
            qs.append(q if 0 <= q <= 0xFFFFFFFF else 0xFFFFFFFF)
        if theta is not None:
            if isinstance(theta, bool) or not isinstance(theta, (int, float)):
                raise TypeError("%s: theta must be a number, not %s" % (kind.name.lower(), type(theta).__name__))
            theta = float(theta)
        self.gates.append(_wit.Gate(kind=kind, qubits=qs, theta=theta))
        return self

    def h(self, q):
        """llmos.quantum.Circuit.h(q) -> Circuit  (Hadamard)"""
        return self._add(_K.H, [q])

    def x(self, q):
        """llmos.quantum.Circuit.x(q) -> Circuit  (Pauli-X, NOT)"""
        return self._add(_K.X, [q])

    def y(self, q):
        """llmos.quantum.Circuit.y(q) -> Circuit  (Pauli-Y)"""
        return self._add(_K.Y, [q])

    def z(self, q):
        """llmos.quantum.Circuit.z(q) -> Circuit  (Pauli-Z)"""
        return self._add(_K.Z, [q])

    def s(self, q):
        """llmos.quantum.Circuit.s(q) -> Circuit  (phase gate, sqrt(Z))"""
        return self._add(_K.S, [q])

    def t(self, q):
        """llmos.quantum.Circuit.t(q) -> Circuit  (pi/8 gate, sqrt(S))"""
        return self._add(_K.T, [q])

    def rx(self, theta, q):
        """llmos.quantum.Circuit.rx(theta, q) -> Circuit  (rotation about X, radians)"""
        return self._add(_K.RX, [q], theta)

    def ry(self, theta, q):
        """llmos.quantum.Circuit.ry(theta, q) -> Circuit  (rotation about Y)"""
        return self._add(_K.RY, [q], theta)

    def rz(self, theta, q):
        """llmos.quantum.Circuit.rz(theta, q) -> Circuit  (rotation about Z)"""
        return self._add(_K.RZ, [q], theta)

    def cnot(self, control, target):
        """llmos.quantum.Circuit.cnot(control, target) -> Circuit  (also cx)"""
        return self._add(_K.CNOT, [control, target])

    cx = cnot

    def cz(self, control, target):
        """llmos.quantum.Circuit.cz(control, target) -> Circuit"""
        return self._add(_K.CZ, [control, target])

    def swap(self, a, b):
        """llmos.quantum.Circuit.swap(a, b) -> Circuit"""
        return self._add(_K.SWAP, [a, b])

    def measure(self, q):
        """llmos.quantum.Circuit.measure(q) -> Circuit  (computational basis)"""
        return self._add(_K.MEASURE, [q])

    def measure_all(self):
        """llmos.quantum.Circuit.measure_all() -> Circuit"""
        for q in range(self.qubits):
            self.measure(q)
        return self

    def _wit(self):
        n = self.qubits if 0 <= self.qubits <= 0xFFFFFFFF else 0xFFFFFFFF
        return _wit.Circuit(qubits=n, gates=self.gates)

    def simulate(self, shots=0, seed=None):
        """llmos.quantum.Circuit.simulate(shots=0, seed=None) -> Result

        Simulate on the host's state-vector simulator and take `shots`
        samples (reproducible with `seed`).
        """
        if isinstance(shots, bool) or not isinstance(shots, int) or shots < 0:
            raise TypeError("simulate: shots must be a non-negative int, not %r" % (shots,))
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError("simulate: seed must be an int or None, not %s" % type(seed).__name__)
        sim = _call(
            QuantumError,
            _wit.simulate,
            self._wit(),
            min(shots, 0xFFFFFFFF),
            None if seed is None else seed & 0xFFFFFFFFFFFFFFFF,
        )
        return Result(
            [complex(a.re, a.im) for a in sim.amplitudes],
            list(sim.probabilities),
            dict(sim.counts),
        )

    def draw(self):
        """llmos.quantum.Circuit.draw() -> int

        Draw the circuit diagram as an SVG output; returns the output index.
        """
        return _call(QuantumError, _wit.draw, self._wit())

    def __repr__(self):
        return "Circuit(%d qubits, %d gates)" % (self.qubits, len(self.gates))


def circuit(qubits):
    """llmos.quantum.circuit(qubits) -> Circuit

    Same as Circuit(qubits).
    """
    return Circuit(qubits)
