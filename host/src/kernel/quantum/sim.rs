//! State-vector simulator behind `llmos:kernel/quantum`.
//!
//! # Conventions (from the WIT contract)
//!
//! * Basis-state indices are little-endian: qubit 0 is the least-significant
//!   bit of the index, so `X` on qubit 0 of a 2-qubit register gives index 1.
//! * Bitstrings (the keys of shot counts) are written highest qubit first,
//!   like Qiskit: for 2 qubits, `"01"` means qubit 0 is 1.
//! * Gates: `S = diag(1, i)`, `T = diag(1, e^{iπ/4})`, `RX(θ) = exp(-iθX/2)`,
//!   `RY(θ) = exp(-iθY/2)`, `RZ(θ) = diag(e^{-iθ/2}, e^{iθ/2})`; CNOT and CZ
//!   take `[control, target]`, SWAP takes the pair to exchange.
//!
//! # Validation
//!
//! [`validate`] checks everything that comes from the guest before any work
//! is done: the qubit count (`1..=max_qubits`), the gate count, each gate's
//! qubit count (1, or 2 for `cnot`/`cz`/`swap`), distinct and in-range qubits,
//! and angles. Rotations (`rx`, `ry`, `rz`) need a finite `theta`; every other
//! gate must have **no** `theta`: a stray angle is almost always a mistake
//! (say, `h` written where `rx` was meant), so it is rejected rather than
//! silently ignored. Messages name the gate by index and kind.
//!
//! # Simulation
//!
//! The state is a vector of `2^qubits` amplitudes updated in place: a
//! single-qubit gate touches each pair of amplitudes that differ only in its
//! qubit's bit (walked as `chunks_exact_mut(2·mask)` split in halves), CNOT and
//! SWAP exchange amplitudes, CZ and the phase gates multiply them. No
//! `2^n × 2^n` matrix is ever built. Vectors sized by `2^qubits` are allocated
//! with `try_reserve_exact`, so an over-generous limit fails with an error
//! instead of aborting.
//!
//! Measurements come in two flavours:
//!
//! * **Terminal** (no gate other than another `measure` acts on a qubit after
//!   it was measured — the common case): measuring commutes with everything
//!   that follows, so the result's amplitudes and probabilities are the final
//!   state *before* measurement, and the shots are sampled from it.
//! * **Mid-circuit** (some gate acts on a qubit after it was measured): each
//!   shot runs as a trajectory. The gates before the first `measure` are
//!   simulated once; then, per shot, a copy of that state runs the rest of the
//!   circuit and every `measure` collapses it (choosing the outcome with its
//!   Born probability and renormalizing). The reported amplitudes are the
//!   first shot's final state; with 0 shots one trajectory still runs to
//!   produce it. If a qubit is measured several times its last outcome is the
//!   one counted. The work, `max(shots, 1) × (gates from the first measure on)
//!   × 2^qubits` amplitude updates, must not exceed the cost of the largest
//!   circuit the limits allow, `max_gates × 2^max_qubits`.
//!
//! Counts are taken over the measured qubits (all qubits if the circuit has
//! no `measure`), keyed by bitstring, sorted, without zero entries.
//!
//! # Randomness
//!
//! Sampling uses a small PRNG defined here, so that a seed gives the same
//! counts across dependency upgrades: xoshiro256** (Blackman & Vigna) with its
//! 256-bit state filled by four outputs of splitmix64 started at the seed. A
//! uniform in `[0, 1)` is the top 53 bits of an output times `2^-53`. Terminal
//! shots draw one uniform each and binary-search it in the prefix sums of the
//! probabilities; trajectories draw one uniform per `measure` executed.

use std::collections::BTreeMap;

use crate::meter::{HostLimit, HostMemoryExceeded, Meter, cost};
use std::f64::consts::{FRAC_1_SQRT_2, FRAC_PI_4};
use std::ops::{Add, Mul, Neg, Sub};

/// Bounds on what a guest may ask of the simulator (values live in the
/// host's `limits.rs`).
///
/// Memory peaks at about `32 × 2^max_qubits` bytes for terminal measurement
/// (state, probabilities, prefix sums) and `56 × 2^max_qubits` with
/// mid-circuit measurement (three state vectors); time at about
/// `max_gates × 2^max_qubits` amplitude updates plus `max_shots` binary
/// searches. 16 qubits and 10,000 gates take well under a second.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuantumLimits {
    /// Most qubits in a circuit; the state vector has `2^qubits` amplitudes.
    pub max_qubits: u32,
    /// Most gates (including `measure`) in a circuit.
    pub max_gates: usize,
    /// Most shots in one `simulate` call.
    pub max_shots: u32,
}

/// The gates of a circuit, as in the WIT `gate-kind` enum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GateKind {
    /// Hadamard.
    H,
    /// Pauli X (NOT).
    X,
    /// Pauli Y.
    Y,
    /// Pauli Z.
    Z,
    /// Phase gate `diag(1, i)`.
    S,
    /// π/8 gate `diag(1, e^{iπ/4})`.
    T,
    /// Rotation `exp(-iθX/2)`; needs `theta`.
    Rx,
    /// Rotation `exp(-iθY/2)`; needs `theta`.
    Ry,
    /// Rotation `diag(e^{-iθ/2}, e^{iθ/2})`; needs `theta`.
    Rz,
    /// Controlled NOT, qubits `[control, target]`.
    Cnot,
    /// Controlled Z, qubits `[control, target]` (symmetric).
    Cz,
    /// Exchange of two qubits.
    Swap,
    /// Measurement of one qubit in the computational basis.
    Measure,
}

impl GateKind {
    /// The gate's name as spelled in the WIT (`"cnot"`, `"rx"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            GateKind::H => "h",
            GateKind::X => "x",
            GateKind::Y => "y",
            GateKind::Z => "z",
            GateKind::S => "s",
            GateKind::T => "t",
            GateKind::Rx => "rx",
            GateKind::Ry => "ry",
            GateKind::Rz => "rz",
            GateKind::Cnot => "cnot",
            GateKind::Cz => "cz",
            GateKind::Swap => "swap",
            GateKind::Measure => "measure",
        }
    }

    /// How many qubits the gate acts on (1 or 2).
    pub fn arity(self) -> usize {
        match self {
            GateKind::Cnot | GateKind::Cz | GateKind::Swap => 2,
            _ => 1,
        }
    }

    /// Whether the gate is a rotation and so needs `theta`.
    pub fn is_rotation(self) -> bool {
        matches!(self, GateKind::Rx | GateKind::Ry | GateKind::Rz)
    }
}

/// One gate application.
#[derive(Clone, Debug, PartialEq)]
pub struct Gate {
    /// Which gate.
    pub kind: GateKind,
    /// The qubits it acts on: one, or `[control, target]` / the swapped pair.
    pub qubits: Vec<u32>,
    /// Rotation angle in radians; only for `rx`, `ry`, `rz`.
    pub theta: Option<f64>,
}

/// A circuit: its width and its gates in order.
#[derive(Clone, Debug, PartialEq)]
pub struct Circuit {
    /// Number of qubits, all starting in `|0⟩`.
    pub qubits: u32,
    /// Gates applied in order.
    pub gates: Vec<Gate>,
}

/// A complex number (amplitude).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Complex {
    /// Real part.
    pub re: f64,
    /// Imaginary part.
    pub im: f64,
}

impl Complex {
    /// `0`.
    pub const ZERO: Complex = Complex::new(0.0, 0.0);
    /// `1`.
    pub const ONE: Complex = Complex::new(1.0, 0.0);
    /// `i`.
    pub const I: Complex = Complex::new(0.0, 1.0);

    /// `re + i·im`.
    pub const fn new(re: f64, im: f64) -> Complex {
        Complex { re, im }
    }

    /// `e^{iφ}`.
    pub fn from_phase(phi: f64) -> Complex {
        Complex::new(phi.cos(), phi.sin())
    }

    /// `|z|²`.
    pub fn norm_sqr(self) -> f64 {
        self.re * self.re + self.im * self.im
    }

    /// The complex conjugate.
    pub fn conj(self) -> Complex {
        Complex::new(self.re, -self.im)
    }
}

impl Add for Complex {
    type Output = Complex;
    fn add(self, o: Complex) -> Complex {
        Complex::new(self.re + o.re, self.im + o.im)
    }
}

impl Sub for Complex {
    type Output = Complex;
    fn sub(self, o: Complex) -> Complex {
        Complex::new(self.re - o.re, self.im - o.im)
    }
}

impl Mul for Complex {
    type Output = Complex;
    fn mul(self, o: Complex) -> Complex {
        Complex::new(
            self.re * o.re - self.im * o.im,
            self.re * o.im + self.im * o.re,
        )
    }
}

impl Mul<f64> for Complex {
    type Output = Complex;
    fn mul(self, k: f64) -> Complex {
        Complex::new(self.re * k, self.im * k)
    }
}

impl Neg for Complex {
    type Output = Complex;
    fn neg(self) -> Complex {
        Complex::new(-self.re, -self.im)
    }
}

/// The result of [`simulate`].
#[derive(Clone, Debug, PartialEq)]
pub struct Simulation {
    /// Final state vector, `2^qubits` amplitudes, little-endian indices
    /// (with mid-circuit measurements: the first shot's final state).
    pub amplitudes: Vec<Complex>,
    /// `|amplitude|²` for every basis state.
    pub probabilities: Vec<f64>,
    /// Shot counts by bitstring of the measured qubits (highest qubit first),
    /// sorted by bitstring, only non-zero counts.
    pub counts: Vec<(String, u32)>,
}

/// The WIT `error-code` of a [`QuantumError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// More qubits than the simulator allows, or zero.
    TooManyQubits,
    /// Wrong number of qubits, a repeated qubit, or a bad/missing angle.
    InvalidGate,
    /// A qubit index outside the circuit.
    InvalidQubit,
    /// Too many gates or shots, or too much work.
    TooLarge,
}

/// Why a quantum call failed; the message is written for the artifact's
/// author. Variants map 1:1 onto the WIT `error-code`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuantumError {
    /// `too-many-qubits`.
    #[error("{0}")]
    TooManyQubits(String),
    /// `invalid-gate`.
    #[error("{0}")]
    InvalidGate(String),
    /// `invalid-qubit`.
    #[error("{0}")]
    InvalidQubit(String),
    /// `too-large`.
    #[error("{0}")]
    TooLarge(String),
    /// The run's fuel or deadline ran out: a trap, never a guest error.
    #[error("the run's {0:?} budget ran out during host work")]
    Limit(HostLimit),
}

impl From<HostLimit> for QuantumError {
    fn from(l: HostLimit) -> Self {
        QuantumError::Limit(l)
    }
}

impl From<HostMemoryExceeded> for QuantumError {
    /// Past the run's host-memory budget: `too-large`, catchable.
    fn from(e: HostMemoryExceeded) -> Self {
        QuantumError::TooLarge(e.to_string())
    }
}

impl QuantumError {
    /// The WIT error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            QuantumError::TooManyQubits(_) => ErrorCode::TooManyQubits,
            QuantumError::InvalidGate(_) => ErrorCode::InvalidGate,
            QuantumError::InvalidQubit(_) => ErrorCode::InvalidQubit,
            QuantumError::TooLarge(_) | QuantumError::Limit(_) => ErrorCode::TooLarge,
        }
    }

    /// The message for the artifact's author.
    pub fn message(&self) -> &str {
        match self {
            QuantumError::TooManyQubits(m)
            | QuantumError::InvalidGate(m)
            | QuantumError::InvalidQubit(m)
            | QuantumError::TooLarge(m) => m,
            QuantumError::Limit(_) => "the run's budget ran out during host work",
        }
    }
}

/// A gate that passed validation: its qubits (`b == a` for one-qubit gates)
/// and its angle (0 for non-rotations).
#[derive(Clone, Copy, Debug)]
struct Checked {
    kind: GateKind,
    a: u32,
    b: u32,
    theta: f64,
}

/// Checks one gate of a circuit with `n` qubits.
fn check_gate(index: usize, gate: &Gate, n: u32) -> Result<Checked, QuantumError> {
    let kind = gate.kind;
    let name = kind.name();
    let what = match kind {
        GateKind::Cnot | GateKind::Cz => "exactly 2 qubits ([control, target])",
        GateKind::Swap => "exactly 2 qubits (the pair to exchange)",
        _ => "exactly 1 qubit",
    };
    let (a, b) = match (kind.arity(), gate.qubits.as_slice()) {
        (1, &[a]) => (a, a),
        (2, &[a, b]) => (a, b),
        (_, qs) => {
            return Err(QuantumError::InvalidGate(format!(
                "gate {index} ({name}) has {} qubits: {name} takes {what}",
                qs.len()
            )));
        }
    };
    for q in [a, b] {
        if q >= n {
            return Err(QuantumError::InvalidQubit(format!(
                "gate {index} ({name}) uses qubit {q} but the circuit has {n} qubit{} (0..={})",
                if n == 1 { "" } else { "s" },
                n - 1
            )));
        }
    }
    if kind.arity() == 2 && a == b {
        return Err(QuantumError::InvalidGate(format!(
            "gate {index} ({name}) uses qubit {a} twice: its 2 qubits must be different"
        )));
    }
    let theta = match (kind.is_rotation(), gate.theta) {
        (true, Some(t)) if t.is_finite() => t,
        (true, Some(t)) => {
            return Err(QuantumError::InvalidGate(format!(
                "gate {index} ({name}) has theta = {t}: the angle must be a finite number of radians"
            )));
        }
        (true, None) => {
            return Err(QuantumError::InvalidGate(format!(
                "gate {index} ({name}) needs theta, the rotation angle in radians"
            )));
        }
        (false, Some(_)) => {
            return Err(QuantumError::InvalidGate(format!(
                "gate {index} ({name}) takes no theta (only rx, ry and rz do): remove it, \
                 or use a rotation gate"
            )));
        }
        (false, None) => 0.0,
    };
    Ok(Checked { kind, a, b, theta })
}

/// Checks a circuit against the limits: `1..=max_qubits` qubits, at most
/// `max_gates` gates, and every gate well formed (see the module docs).
pub fn validate(circuit: &Circuit, limits: &QuantumLimits) -> Result<(), QuantumError> {
    checked_gates(circuit, limits).map(|_| ())
}

fn checked_gates(circuit: &Circuit, limits: &QuantumLimits) -> Result<Vec<Checked>, QuantumError> {
    let n = circuit.qubits;
    let max = limits.max_qubits;
    if n == 0 {
        return Err(QuantumError::TooManyQubits(format!(
            "the circuit has 0 qubits: it needs at least 1 (at most {max} are allowed)"
        )));
    }
    if n > max {
        return Err(QuantumError::TooManyQubits(format!(
            "the circuit has {n} qubits: at most {max} are allowed \
             (the simulator stores all 2^qubits amplitudes)"
        )));
    }
    if circuit.gates.len() > limits.max_gates {
        return Err(QuantumError::TooLarge(format!(
            "the circuit has {} gates: at most {} are allowed",
            circuit.gates.len(),
            limits.max_gates
        )));
    }
    circuit
        .gates
        .iter()
        .enumerate()
        .map(|(i, g)| check_gate(i, g, n))
        .collect()
}

/// A gate compiled for the state vector: qubits as bit masks.
#[derive(Clone, Copy, Debug)]
enum Op {
    /// General 2×2 unitary `[[m00, m01], [m10, m11]]` on one qubit.
    Single {
        mask: usize,
        m: [Complex; 4],
    },
    /// `diag(d0, d1)` on one qubit.
    Diag {
        mask: usize,
        d0: Complex,
        d1: Complex,
    },
    /// Pauli X.
    Flip {
        mask: usize,
    },
    Cnot {
        control: usize,
        target: usize,
    },
    Cz {
        both: usize,
    },
    Swap {
        low: usize,
        high: usize,
    },
    Measure {
        mask: usize,
    },
}

impl Op {
    /// Compiles a checked gate; `c.a`, `c.b` are below the qubit count, which
    /// is below `usize::BITS`.
    fn new(c: Checked) -> Op {
        let (ma, mb) = (1usize << c.a, 1usize << c.b);
        let (half_c, half_s) = ((c.theta / 2.0).cos(), (c.theta / 2.0).sin());
        let r = Complex::new;
        match c.kind {
            GateKind::H => {
                let s = r(FRAC_1_SQRT_2, 0.0);
                Op::Single {
                    mask: ma,
                    m: [s, s, s, -s],
                }
            }
            GateKind::X => Op::Flip { mask: ma },
            GateKind::Y => Op::Single {
                mask: ma,
                m: [Complex::ZERO, -Complex::I, Complex::I, Complex::ZERO],
            },
            GateKind::Z => Op::Diag {
                mask: ma,
                d0: Complex::ONE,
                d1: -Complex::ONE,
            },
            GateKind::S => Op::Diag {
                mask: ma,
                d0: Complex::ONE,
                d1: Complex::I,
            },
            GateKind::T => Op::Diag {
                mask: ma,
                d0: Complex::ONE,
                d1: Complex::from_phase(FRAC_PI_4),
            },
            GateKind::Rx => Op::Single {
                mask: ma,
                m: [
                    r(half_c, 0.0),
                    r(0.0, -half_s),
                    r(0.0, -half_s),
                    r(half_c, 0.0),
                ],
            },
            GateKind::Ry => Op::Single {
                mask: ma,
                m: [
                    r(half_c, 0.0),
                    r(-half_s, 0.0),
                    r(half_s, 0.0),
                    r(half_c, 0.0),
                ],
            },
            GateKind::Rz => Op::Diag {
                mask: ma,
                d0: r(half_c, -half_s),
                d1: r(half_c, half_s),
            },
            GateKind::Cnot => Op::Cnot {
                control: ma,
                target: mb,
            },
            GateKind::Cz => Op::Cz { both: ma | mb },
            GateKind::Swap => Op::Swap {
                low: ma.min(mb),
                high: ma.max(mb),
            },
            GateKind::Measure => Op::Measure { mask: ma },
        }
    }

    /// The qubits the op acts on, as a mask.
    fn touched(self) -> usize {
        match self {
            Op::Single { mask, .. } | Op::Diag { mask, .. } | Op::Flip { mask } => mask,
            Op::Measure { mask } => mask,
            Op::Cnot { control, target } => control | target,
            Op::Cz { both } => both,
            Op::Swap { low, high } => low | high,
        }
    }

    /// Applies a unitary op to `state` (whose length is `2^n`, with every
    /// mask below it); `Measure` is left to the caller.
    fn apply(self, state: &mut [Complex]) {
        match self {
            Op::Single {
                mask,
                m: [m00, m01, m10, m11],
            } => {
                for chunk in state.chunks_exact_mut(mask << 1) {
                    let (lo, hi) = chunk.split_at_mut(mask);
                    for (a, b) in lo.iter_mut().zip(hi.iter_mut()) {
                        let (x, y) = (*a, *b);
                        *a = m00 * x + m01 * y;
                        *b = m10 * x + m11 * y;
                    }
                }
            }
            Op::Diag { mask, d0, d1 } => {
                for chunk in state.chunks_exact_mut(mask << 1) {
                    let (lo, hi) = chunk.split_at_mut(mask);
                    if d0 != Complex::ONE {
                        lo.iter_mut().for_each(|a| *a = *a * d0);
                    }
                    hi.iter_mut().for_each(|a| *a = *a * d1);
                }
            }
            Op::Flip { mask } => {
                for chunk in state.chunks_exact_mut(mask << 1) {
                    let (lo, hi) = chunk.split_at_mut(mask);
                    lo.swap_with_slice(hi);
                }
            }
            Op::Cnot { control, target } => {
                let size = target << 1;
                for (c, chunk) in state.chunks_exact_mut(size).enumerate() {
                    let base = c * size;
                    let (lo, hi) = chunk.split_at_mut(target);
                    for (k, (a, b)) in lo.iter_mut().zip(hi.iter_mut()).enumerate() {
                        if (base + k) & control != 0 {
                            std::mem::swap(a, b);
                        }
                    }
                }
            }
            Op::Cz { both } => {
                for (i, a) in state.iter_mut().enumerate() {
                    if i & both == both {
                        *a = -*a;
                    }
                }
            }
            Op::Swap { low, high } => {
                // Exchange |..1..0..⟩ (high set, low clear) with |..0..1..⟩.
                for i in 0..state.len() {
                    if i & high != 0 && i & low == 0 {
                        state.swap(i, i ^ high ^ low);
                    }
                }
            }
            Op::Measure { .. } => {}
        }
    }
}

/// xoshiro256** seeded by splitmix64 (see the module docs). Fixed here so
/// that seeded results never change with a dependency upgrade.
#[derive(Clone, Debug)]
struct Rng {
    s: [u64; 4],
}

/// One step of splitmix64 (Steele, Lea & Flood): advances `state`, returns
/// the mixed output.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    fn new(seed: u64) -> Rng {
        let mut sm = seed;
        Rng {
            s: [
                splitmix64(&mut sm),
                splitmix64(&mut sm),
                splitmix64(&mut sm),
                splitmix64(&mut sm),
            ],
        }
    }

    fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// An empty vector with room for `len` entries, or `TooLarge` if memory is
/// short (`what` names the vector in the message).
fn try_with_capacity<T>(len: usize, what: &str) -> Result<Vec<T>, QuantumError> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| {
        QuantumError::TooLarge(format!(
            "not enough memory for the {what} ({len} entries): use fewer qubits"
        ))
    })?;
    Ok(v)
}

/// A copy of `state`, or `TooLarge` if memory is short.
fn try_copy(state: &[Complex]) -> Result<Vec<Complex>, QuantumError> {
    let mut v = try_with_capacity(state.len(), "copy of the state vector")?;
    v.extend_from_slice(state);
    Ok(v)
}

/// `|0…0⟩` on `dim` amplitudes.
fn ground_state(dim: usize) -> Result<Vec<Complex>, QuantumError> {
    let mut state = try_with_capacity(dim, "state vector")?;
    state.resize(dim, Complex::ZERO);
    if let Some(first) = state.first_mut() {
        *first = Complex::ONE;
    }
    Ok(state)
}

/// Measures the qubit `mask` of `state`: picks the outcome with its Born
/// probability using one uniform from `rng`, zeroes the other branch and
/// renormalizes. Returns whether the outcome is 1.
fn collapse(state: &mut [Complex], mask: usize, rng: &mut Rng) -> bool {
    let (mut p0, mut p1) = (0.0, 0.0);
    for (i, a) in state.iter().enumerate() {
        if i & mask != 0 {
            p1 += a.norm_sqr();
        } else {
            p0 += a.norm_sqr();
        }
    }
    let u = rng.next_f64();
    let one = if p1 <= 0.0 {
        false
    } else if p0 <= 0.0 {
        true
    } else {
        u * (p0 + p1) < p1
    };
    let p = if one { p1 } else { p0 };
    let scale = 1.0 / p.sqrt();
    for (i, a) in state.iter_mut().enumerate() {
        *a = if (i & mask != 0) == one {
            *a * scale
        } else {
            Complex::ZERO
        };
    }
    one
}

/// The bitstring of the qubits in `mask` (highest first) for basis index `key`.
fn bitstring(key: usize, mask: usize, n: u32) -> String {
    (0..n)
        .rev()
        .filter(|q| mask & (1usize << q) != 0)
        .map(|q| if key & (1usize << q) != 0 { '1' } else { '0' })
        .collect()
}

/// `2^exp` as u128, saturating.
fn pow2(exp: u32) -> u128 {
    1u128.checked_shl(exp).unwrap_or(u128::MAX)
}

/// Simulates `circuit` and samples `shots` measurement outcomes with the PRNG
/// seeded by `seed` (see the module docs for measurement semantics).
///
/// Host budgets (`meter`): the whole simulation is paid for *before* it
/// starts, [`cost::PER_AMPLITUDE`] per amplitude updated (every gate and
/// measurement updates all 2^n; trajectories pay per shot) and per
/// amplitude read by sampling (about n + 4 per shot); the state vectors are
/// reserved in the run's host memory while they live; the deadline is
/// checked between gates and shots.
pub fn simulate(
    circuit: &Circuit,
    shots: u32,
    seed: u64,
    limits: &QuantumLimits,
    meter: &mut Meter,
) -> Result<Simulation, QuantumError> {
    meter.check_time()?;
    // Past the qubit bound the simulation is refused with its own error.
    let transient = if circuit.qubits <= limits.max_qubits {
        sim_bytes(circuit.qubits, shots)
    } else {
        0
    };
    meter.reserve(transient)?;
    let r = simulate_inner(circuit, shots, seed, limits, meter);
    meter.release(transient);
    r
}

/// Host bytes a simulation holds at most: the state, a copy of it for
/// trajectories, a scratch state, the probabilities, their prefix sums and
/// the counts (one entry per distinct outcome).
fn sim_bytes(qubits: u32, shots: u32) -> u64 {
    let dim = 1u64.checked_shl(qubits.min(40)).unwrap_or(u64::MAX);
    let amp = std::mem::size_of::<Complex>() as u64;
    let outcomes = dim.min(u64::from(shots));
    dim.saturating_mul(3 * amp + 16)
        .saturating_add(outcomes.saturating_mul(64 + u64::from(qubits)))
}

/// Amplitude units of sampling one terminal shot among `dim` amplitudes:
/// a binary search (log2 dim reads, cache misses on large states) plus
/// drawing a uniform and counting the outcome in an ordered map; measured
/// at about 340 ns per shot on 16 qubits, i.e. ~16 amplitude updates per
/// step of the search.
fn shot_units(dim: usize) -> u64 {
    16 * (u64::from(dim.max(1).ilog2()) + 4)
}

fn simulate_inner(
    circuit: &Circuit,
    shots: u32,
    seed: u64,
    limits: &QuantumLimits,
    meter: &mut Meter,
) -> Result<Simulation, QuantumError> {
    let checked = checked_gates(circuit, limits)?;
    if shots > limits.max_shots {
        return Err(QuantumError::TooLarge(format!(
            "{shots} shots requested: at most {} are allowed",
            limits.max_shots
        )));
    }
    let n = circuit.qubits;
    // Keep 2^n · 16 bytes representable; real memory is checked on allocation.
    let dim = match 1usize.checked_shl(n) {
        Some(d) if n + 5 < usize::BITS => d,
        _ => {
            return Err(QuantumError::TooLarge(format!(
                "{n} qubits need 2^{n} amplitudes, more than this machine can address: \
                 use fewer qubits"
            )));
        }
    };
    let ops: Vec<Op> = checked.into_iter().map(Op::new).collect();

    // Which qubits are measured, and whether a gate follows a measurement.
    let mut measured = 0usize;
    let mut first_measure = None;
    let mut mid_circuit = None;
    for (i, op) in ops.iter().enumerate() {
        match *op {
            Op::Measure { mask } => {
                measured |= mask;
                first_measure.get_or_insert(i);
            }
            other => {
                if mid_circuit.is_none() && other.touched() & measured != 0 {
                    mid_circuit = Some((i, other.touched() & measured));
                }
            }
        }
    }
    // Pay for the whole simulation before any of it is done.
    let d = dim as u128;
    let updates: u128 = match (mid_circuit, first_measure) {
        (Some(_), Some(start)) => {
            let runs = u128::from(shots.max(1));
            start as u128 * d + runs * (ops.len() - start) as u128 * d
        }
        _ => ops.len() as u128 * d,
    };
    let reads = 2 * d + u128::from(shots) * u128::from(shot_units(dim));
    let units = (updates + reads).saturating_mul(u128::from(cost::PER_AMPLITUDE));
    meter
        .charge(u64::try_from(units.saturating_add(u128::from(cost::CALL))).unwrap_or(u64::MAX))?;
    let count_mask = if measured == 0 { dim - 1 } else { measured };
    let mut rng = Rng::new(seed);
    let mut counts: BTreeMap<usize, u32> = BTreeMap::new();

    let amplitudes = match (mid_circuit, first_measure) {
        (Some((gate, qubits)), Some(start)) => {
            let runs = shots.max(1);
            let tail = &ops[start..];
            let work = u128::from(runs) * tail.len() as u128 * dim as u128;
            let budget = (limits.max_gates as u128).saturating_mul(pow2(limits.max_qubits));
            if work > budget {
                let qubit = qubits.trailing_zeros();
                let kind = circuit.gates.get(gate).map_or("?", |g| g.kind.name());
                return Err(QuantumError::TooLarge(format!(
                    "gate {gate} ({kind}) acts on qubit {qubit} after it was measured, so each \
                     shot is simulated separately: {runs} shot{} × {} gates from the first \
                     measure × 2^{n} amplitudes = {work} amplitude updates, over the budget of \
                     {budget} (max gates {} × 2^{} for the largest allowed circuit). Use fewer \
                     shots, fewer qubits or gates, or measure only at the end",
                    if runs == 1 { "" } else { "s" },
                    tail.len(),
                    limits.max_gates,
                    limits.max_qubits
                )));
            }
            let mut prefix = ground_state(dim)?;
            for (i, op) in ops[..start].iter().enumerate() {
                if i % 16 == 0 {
                    meter.check_time()?;
                }
                op.apply(&mut prefix);
            }
            let run = |state: &mut Vec<Complex>, rng: &mut Rng| -> usize {
                let mut outcome = 0usize;
                for op in tail {
                    match *op {
                        Op::Measure { mask } => {
                            if collapse(state, mask, rng) {
                                outcome |= mask;
                            } else {
                                outcome &= !mask;
                            }
                        }
                        other => other.apply(state),
                    }
                }
                outcome
            };
            if runs == 1 {
                let outcome = run(&mut prefix, &mut rng);
                if shots > 0 {
                    counts.insert(outcome, 1);
                }
                prefix
            } else {
                let mut first = try_copy(&prefix)?;
                counts.insert(run(&mut first, &mut rng), 1);
                let mut scratch = try_copy(&prefix)?;
                for r in 1..runs {
                    if r % 16 == 0 {
                        meter.check_time()?;
                    }
                    scratch.clear();
                    scratch.extend_from_slice(&prefix);
                    *counts.entry(run(&mut scratch, &mut rng)).or_insert(0) += 1;
                }
                first
            }
        }
        _ => {
            let mut state = ground_state(dim)?;
            for (i, op) in ops.iter().enumerate() {
                if i % 16 == 0 {
                    meter.check_time()?;
                }
                op.apply(&mut state);
            }
            state
        }
    };

    let mut probabilities = try_with_capacity(dim, "probabilities")?;
    probabilities.extend(amplitudes.iter().map(|a| a.norm_sqr()));

    if mid_circuit.is_none() && shots > 0 {
        let mut cumulative = try_with_capacity(dim, "cumulative distribution")?;
        let mut total = 0.0;
        cumulative.extend(probabilities.iter().map(|p| {
            total += p;
            total
        }));
        let last_nonzero = probabilities.iter().rposition(|&p| p > 0.0).unwrap_or(0);
        for shot in 0..shots {
            if shot % 65_536 == 0 {
                meter.check_time()?;
            }
            let x = rng.next_f64() * total;
            let index = cumulative.partition_point(|&c| c <= x).min(last_nonzero);
            *counts.entry(index & count_mask).or_insert(0) += 1;
        }
    }

    let counts = counts
        .into_iter()
        .map(|(key, c)| (bitstring(key, count_mask, n), c))
        .collect();
    Ok(Simulation {
        amplitudes,
        probabilities,
        counts,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::f64::consts::PI;

    const EPS: f64 = 1e-9;

    fn limits() -> QuantumLimits {
        QuantumLimits {
            max_qubits: 10,
            max_gates: 200,
            max_shots: 100_000,
        }
    }

    fn g(kind: GateKind, qubits: &[u32]) -> Gate {
        Gate {
            kind,
            qubits: qubits.to_vec(),
            theta: None,
        }
    }

    fn rot(kind: GateKind, q: u32, theta: f64) -> Gate {
        Gate {
            kind,
            qubits: vec![q],
            theta: Some(theta),
        }
    }

    fn circ(qubits: u32, gates: Vec<Gate>) -> Circuit {
        Circuit { qubits, gates }
    }

    fn state(c: &Circuit) -> Vec<Complex> {
        simulate(c, 0, 0, &limits(), &mut Meter::unlimited())
            .unwrap()
            .amplitudes
    }

    fn cn(re: f64, im: f64) -> Complex {
        Complex::new(re, im)
    }

    fn assert_state(actual: &[Complex], expected: &[Complex]) {
        assert_eq!(actual.len(), expected.len());
        for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
            assert!(
                (a.re - e.re).abs() < EPS && (a.im - e.im).abs() < EPS,
                "amplitude {i}: got {a:?}, expected {e:?}\nfull state {actual:?}"
            );
        }
    }

    /// |⟨expected|actual⟩|, 1 when equal up to a global phase.
    fn overlap(actual: &[Complex], expected: &[Complex]) -> f64 {
        let mut acc = Complex::ZERO;
        for (a, e) in actual.iter().zip(expected) {
            acc = acc + e.conj() * *a;
        }
        acc.norm_sqr().sqrt()
    }

    fn basis(dim: usize, index: usize) -> Vec<Complex> {
        (0..dim)
            .map(|i| {
                if i == index {
                    Complex::ONE
                } else {
                    Complex::ZERO
                }
            })
            .collect()
    }

    fn count(sim: &Simulation, key: &str) -> u32 {
        sim.counts
            .iter()
            .find(|(k, _)| k == key)
            .map_or(0, |(_, n)| *n)
    }

    fn assert_normalized(sim: &Simulation) {
        let total: f64 = sim.probabilities.iter().sum();
        assert!((total - 1.0).abs() < 1e-12, "probabilities sum to {total}");
        for (p, a) in sim.probabilities.iter().zip(&sim.amplitudes) {
            assert!((p - a.norm_sqr()).abs() < 1e-15);
        }
    }

    #[test]
    fn bell_pair() {
        let c = circ(2, vec![g(GateKind::H, &[0]), g(GateKind::Cnot, &[0, 1])]);
        let sim = simulate(&c, 4000, 7, &limits(), &mut Meter::unlimited()).unwrap();
        let s = FRAC_1_SQRT_2;
        assert_state(
            &sim.amplitudes,
            &[cn(s, 0.0), Complex::ZERO, Complex::ZERO, cn(s, 0.0)],
        );
        for (p, e) in sim.probabilities.iter().zip([0.5, 0.0, 0.0, 0.5]) {
            assert!((p - e).abs() < EPS);
        }
        assert_normalized(&sim);
        let keys: Vec<&str> = sim.counts.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["00", "11"]);
        let (zeros, ones) = (count(&sim, "00"), count(&sim, "11"));
        assert_eq!(zeros + ones, 4000);
        // Binomial(4000, 1/2) has σ ≈ 32: ±200 is over 6σ.
        assert!((1800..=2200).contains(&zeros), "00 counted {zeros} times");
    }

    #[test]
    fn ghz_three_and_five() {
        for n in [3u32, 5] {
            let mut gates = vec![g(GateKind::H, &[0])];
            gates.extend((1..n).map(|q| g(GateKind::Cnot, &[q - 1, q])));
            let sim = simulate(
                &circ(n, gates),
                2000,
                11,
                &limits(),
                &mut Meter::unlimited(),
            )
            .unwrap();
            let dim = 1usize << n;
            let mut expected = vec![Complex::ZERO; dim];
            expected[0] = cn(FRAC_1_SQRT_2, 0.0);
            expected[dim - 1] = cn(FRAC_1_SQRT_2, 0.0);
            assert_state(&sim.amplitudes, &expected);
            assert_normalized(&sim);
            let zeros = "0".repeat(n as usize);
            let ones = "1".repeat(n as usize);
            assert_eq!(sim.counts.len(), 2);
            assert_eq!(sim.counts[0].0, zeros);
            assert_eq!(sim.counts[1].0, ones);
            assert_eq!(sim.counts[0].1 + sim.counts[1].1, 2000);
            assert!((800..=1200).contains(&sim.counts[0].1));
        }
    }

    /// Controlled phase diag(1, 1, 1, e^{iφ}) up to a global phase:
    /// RZ(φ/2)_a · CNOT · RZ(-φ/2)_b · CNOT · RZ(φ/2)_b.
    fn cphase(a: u32, b: u32, phi: f64) -> Vec<Gate> {
        vec![
            rot(GateKind::Rz, a, phi / 2.0),
            g(GateKind::Cnot, &[a, b]),
            rot(GateKind::Rz, b, -phi / 2.0),
            g(GateKind::Cnot, &[a, b]),
            rot(GateKind::Rz, b, phi / 2.0),
        ]
    }

    #[test]
    fn qft_three_qubits_matches_analytic() {
        let n = 3u32;
        let dim = 8usize;
        for x in [0usize, 1, 2, 3, 5, 6, 7] {
            let mut gates: Vec<Gate> = (0..n)
                .filter(|q| x & (1 << q) != 0)
                .map(|q| g(GateKind::X, &[q]))
                .collect();
            for j in (0..n).rev() {
                gates.push(g(GateKind::H, &[j]));
                for k in (0..j).rev() {
                    gates.extend(cphase(k, j, PI / f64::from(1u32 << (j - k))));
                }
            }
            gates.push(g(GateKind::Swap, &[0, n - 1]));
            let amps = state(&circ(n, gates));
            let norm = 1.0 / (dim as f64).sqrt();
            let expected: Vec<Complex> = (0..dim)
                .map(|k| Complex::from_phase(2.0 * PI * (x * k) as f64 / dim as f64) * norm)
                .collect();
            let o = overlap(&amps, &expected);
            assert!((o - 1.0).abs() < EPS, "QFT|{x}⟩: overlap {o}");
            // The phase decomposition is exact up to a global phase only.
            let mut aligned = amps.clone();
            let phase = amps[0] * (1.0 / amps[0].norm_sqr().sqrt());
            for a in &mut aligned {
                *a = *a * phase.conj();
            }
            assert_state(&aligned, &expected);
        }
    }

    #[test]
    fn cphase_decomposition_is_controlled_phase() {
        let phi = 0.9;
        for input in 0..4usize {
            let mut gates: Vec<Gate> = (0..2u32)
                .filter(|q| input & (1 << q) != 0)
                .map(|q| g(GateKind::X, &[q]))
                .collect();
            gates.extend(cphase(0, 1, phi));
            let amps = state(&circ(2, gates));
            // Global phase of the decomposition: e^{-iφ/4}.
            let global = Complex::from_phase(-phi / 4.0);
            let mut expected = basis(4, input);
            if input == 3 {
                expected[3] = Complex::from_phase(phi);
            }
            let expected: Vec<Complex> = expected.iter().map(|e| *e * global).collect();
            assert_state(&amps, &expected);
        }
    }

    #[test]
    fn single_qubit_gates() {
        let s = FRAC_1_SQRT_2;
        let th: f64 = 0.7;
        let (hc, hs) = ((th / 2.0).cos(), (th / 2.0).sin());
        let cases: Vec<(Vec<Gate>, [Complex; 2])> = vec![
            (vec![g(GateKind::H, &[0])], [cn(s, 0.0), cn(s, 0.0)]),
            (
                vec![g(GateKind::X, &[0]), g(GateKind::H, &[0])],
                [cn(s, 0.0), cn(-s, 0.0)],
            ),
            (vec![g(GateKind::X, &[0])], [Complex::ZERO, Complex::ONE]),
            (vec![g(GateKind::Y, &[0])], [Complex::ZERO, cn(0.0, 1.0)]),
            (
                vec![g(GateKind::X, &[0]), g(GateKind::Y, &[0])],
                [cn(0.0, -1.0), Complex::ZERO],
            ),
            (vec![g(GateKind::Z, &[0])], [Complex::ONE, Complex::ZERO]),
            (
                vec![g(GateKind::H, &[0]), g(GateKind::Z, &[0])],
                [cn(s, 0.0), cn(-s, 0.0)],
            ),
            (
                vec![g(GateKind::H, &[0]), g(GateKind::S, &[0])],
                [cn(s, 0.0), cn(0.0, s)],
            ),
            (
                vec![g(GateKind::H, &[0]), g(GateKind::T, &[0])],
                [cn(s, 0.0), cn(0.5, 0.5)],
            ),
            (vec![rot(GateKind::Rx, 0, th)], [cn(hc, 0.0), cn(0.0, -hs)]),
            (
                vec![g(GateKind::X, &[0]), rot(GateKind::Rx, 0, th)],
                [cn(0.0, -hs), cn(hc, 0.0)],
            ),
            (vec![rot(GateKind::Ry, 0, th)], [cn(hc, 0.0), cn(hs, 0.0)]),
            (
                vec![g(GateKind::X, &[0]), rot(GateKind::Ry, 0, th)],
                [cn(-hs, 0.0), cn(hc, 0.0)],
            ),
            (
                vec![g(GateKind::H, &[0]), rot(GateKind::Rz, 0, th)],
                [cn(s * hc, -s * hs), cn(s * hc, s * hs)],
            ),
            (
                vec![rot(GateKind::Rx, 0, PI)],
                [Complex::ZERO, cn(0.0, -1.0)],
            ),
        ];
        for (i, (gates, expected)) in cases.into_iter().enumerate() {
            let amps = state(&circ(1, gates));
            assert!(
                (amps[0] - expected[0]).norm_sqr() < EPS * EPS
                    && (amps[1] - expected[1]).norm_sqr() < EPS * EPS,
                "case {i}: got {amps:?}, expected {expected:?}"
            );
        }
    }

    #[test]
    fn gates_on_higher_qubits_use_the_right_bit() {
        let th = 1.1;
        let amps = state(&circ(
            3,
            vec![g(GateKind::X, &[0]), rot(GateKind::Ry, 2, th)],
        ));
        let mut expected = vec![Complex::ZERO; 8];
        expected[1] = cn((th / 2.0).cos(), 0.0);
        expected[5] = cn((th / 2.0).sin(), 0.0);
        assert_state(&amps, &expected);
    }

    #[test]
    fn swap_cnot_and_cz() {
        // SWAP moves |001⟩ to |100⟩.
        let amps = state(&circ(
            3,
            vec![g(GateKind::X, &[0]), g(GateKind::Swap, &[0, 2])],
        ));
        assert_state(&amps, &basis(8, 4));
        // SWAP of a superposition, in either argument order.
        for pair in [[0, 1], [1, 0]] {
            let amps = state(&circ(
                2,
                vec![rot(GateKind::Ry, 0, 0.3), g(GateKind::Swap, &pair)],
            ));
            let expected = [
                cn(0.15f64.cos(), 0.0),
                Complex::ZERO,
                cn(0.15f64.sin(), 0.0),
                Complex::ZERO,
            ];
            assert_state(&amps, &expected);
        }
        // CNOT [control, target]: control 1 flips qubit 0.
        let amps = state(&circ(
            2,
            vec![g(GateKind::X, &[1]), g(GateKind::Cnot, &[1, 0])],
        ));
        assert_state(&amps, &basis(4, 3));
        // Control 0 does nothing.
        let amps = state(&circ(
            2,
            vec![g(GateKind::X, &[1]), g(GateKind::Cnot, &[0, 1])],
        ));
        assert_state(&amps, &basis(4, 2));
        // CNOT with a far control and a low target on 3 qubits.
        let amps = state(&circ(
            3,
            vec![g(GateKind::X, &[2]), g(GateKind::Cnot, &[2, 0])],
        ));
        assert_state(&amps, &basis(8, 5));
        // CZ negates |11⟩ only.
        let amps = state(&circ(
            2,
            vec![
                g(GateKind::H, &[0]),
                g(GateKind::H, &[1]),
                g(GateKind::Cz, &[1, 0]),
            ],
        ));
        assert_state(
            &amps,
            &[cn(0.5, 0.0), cn(0.5, 0.0), cn(0.5, 0.0), cn(-0.5, 0.0)],
        );
    }

    #[test]
    fn little_endian_and_bitstrings() {
        let sim = simulate(
            &circ(2, vec![g(GateKind::X, &[0])]),
            10,
            1,
            &limits(),
            &mut Meter::unlimited(),
        )
        .unwrap();
        assert_state(&sim.amplitudes, &basis(4, 1));
        assert_eq!(sim.counts, vec![("01".to_string(), 10)]);

        // Only measured qubits appear, highest first.
        let c3 = circ(
            3,
            vec![
                g(GateKind::X, &[2]),
                g(GateKind::Measure, &[0]),
                g(GateKind::Measure, &[2]),
            ],
        );
        let sim = simulate(&c3, 5, 1, &limits(), &mut Meter::unlimited()).unwrap();
        assert_eq!(sim.counts, vec![("10".to_string(), 5)]);
        let c3 = circ(3, vec![g(GateKind::X, &[1]), g(GateKind::Measure, &[1])]);
        let sim = simulate(&c3, 5, 1, &limits(), &mut Meter::unlimited()).unwrap();
        assert_eq!(sim.counts, vec![("1".to_string(), 5)]);
    }

    #[test]
    fn counts_are_sorted_and_marginal() {
        // Uniform over 3 qubits; measure qubits 0 and 2 only.
        let gates = vec![
            g(GateKind::H, &[0]),
            g(GateKind::H, &[1]),
            g(GateKind::H, &[2]),
            g(GateKind::Measure, &[2]),
            g(GateKind::Measure, &[0]),
        ];
        let sim = simulate(&circ(3, gates), 4000, 3, &limits(), &mut Meter::unlimited()).unwrap();
        let keys: Vec<&str> = sim.counts.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["00", "01", "10", "11"]);
        assert_eq!(sim.counts.iter().map(|(_, n)| n).sum::<u32>(), 4000);
        assert!(sim.counts.iter().all(|(_, n)| (800..=1200).contains(n)));
        // No shots, no counts.
        let sim = simulate(
            &circ(1, vec![g(GateKind::H, &[0])]),
            0,
            3,
            &limits(),
            &mut Meter::unlimited(),
        )
        .unwrap();
        assert!(sim.counts.is_empty());
    }

    /// Asserts `observed` is within 5σ (+1) of a Binomial(`shots`, `p`) mean.
    fn assert_binomial(observed: u32, shots: u32, p: f64, what: &str) {
        let mean = f64::from(shots) * p;
        let sigma = (mean * (1.0 - p)).sqrt();
        assert!(
            (f64::from(observed) - mean).abs() <= 5.0 * sigma + 1.0,
            "{what}: counted {observed}, expected about {mean:.1} (σ {sigma:.1})"
        );
    }

    #[test]
    fn sampling_follows_the_probabilities() {
        // Distinct, uneven probabilities over 3 qubits.
        let gates = vec![
            rot(GateKind::Ry, 0, 0.4),
            rot(GateKind::Ry, 1, 1.9),
            rot(GateKind::Ry, 2, 2.6),
            g(GateKind::Cnot, &[2, 0]),
        ];
        let shots = 20_000;
        let sim = simulate(
            &circ(3, gates),
            shots,
            17,
            &limits(),
            &mut Meter::unlimited(),
        )
        .unwrap();
        assert_eq!(sim.counts.len(), 8);
        for (key, n) in &sim.counts {
            let index = usize::from_str_radix(key, 2).unwrap();
            assert_binomial(*n, shots, sim.probabilities[index], key);
        }

        // A 90/10 measurement, terminal and mid-circuit.
        let theta = 2.0 * 0.9f64.sqrt().asin();
        let terminal = circ(
            1,
            vec![rot(GateKind::Ry, 0, theta), g(GateKind::Measure, &[0])],
        );
        let sim = simulate(&terminal, 2000, 3, &limits(), &mut Meter::unlimited()).unwrap();
        assert_binomial(count(&sim, "1"), 2000, 0.9, "terminal");
        let mid = circ(
            1,
            vec![
                rot(GateKind::Ry, 0, theta),
                g(GateKind::Measure, &[0]),
                g(GateKind::H, &[0]),
            ],
        );
        let sim = simulate(&mid, 2000, 3, &limits(), &mut Meter::unlimited()).unwrap();
        assert_binomial(count(&sim, "1"), 2000, 0.9, "mid-circuit");
    }

    #[test]
    fn seeds_are_reproducible() {
        let gates = (0..4).map(|q| g(GateKind::H, &[q])).collect();
        let c = circ(4, gates);
        let a = simulate(&c, 1000, 42, &limits(), &mut Meter::unlimited()).unwrap();
        let b = simulate(&c, 1000, 42, &limits(), &mut Meter::unlimited()).unwrap();
        let d = simulate(&c, 1000, 43, &limits(), &mut Meter::unlimited()).unwrap();
        assert_eq!(a.counts, b.counts);
        assert_ne!(a.counts, d.counts);
        assert_eq!(a.counts.iter().map(|(_, n)| n).sum::<u32>(), 1000);
    }

    #[test]
    fn prng_is_splitmix_seeded_xoshiro256starstar() {
        // splitmix64 reference output for seed 0.
        let mut sm = 0u64;
        assert_eq!(splitmix64(&mut sm), 0xE220_A839_7B1D_CDAF);
        assert_eq!(splitmix64(&mut sm), 0x6E78_9E6A_A1B9_65F4);
        // xoshiro256** from that state; pinned so seeded results never drift.
        let mut rng = Rng::new(0);
        let first: Vec<u64> = (0..3).map(|_| rng.next_u64()).collect();
        assert_eq!(first, GOLDEN_XOSHIRO_SEED0);
        // Reference splitmix64 outputs (from splitmix64.c).
        let mut sm = 1_477_776_061_723_855_037u64;
        assert_eq!(splitmix64(&mut sm), 1_985_237_415_132_408_290);
        assert_eq!(splitmix64(&mut sm), 2_979_275_885_539_914_483);
        // Uniforms are the top 53 bits scaled to [0, 1).
        let mut rng = Rng::new(42);
        let u: Vec<f64> = (0..4).map(|_| rng.next_f64()).collect();
        assert_eq!(
            u,
            [
                0.08386297105988216,
                0.3789802506626686,
                0.6800434110281394,
                0.9246929453253876
            ]
        );
    }

    /// First outputs of xoshiro256** seeded through splitmix64 with 0
    /// (checked against the `rand_xoshiro` crate's `seed_from_u64`).
    const GOLDEN_XOSHIRO_SEED0: [u64; 3] = [
        0x99EC_5F36_CB75_F2B4,
        0xBF6E_1F78_4956_452A,
        0x1A5F_849D_4933_E6E0,
    ];

    #[test]
    fn mid_circuit_measurement_runs_trajectories() {
        // H, measure, then X on the measured qubit: the final state is the
        // flipped outcome.
        let c1 = circ(
            1,
            vec![
                g(GateKind::H, &[0]),
                g(GateKind::Measure, &[0]),
                g(GateKind::X, &[0]),
            ],
        );
        let many = simulate(&c1, 2000, 9, &limits(), &mut Meter::unlimited()).unwrap();
        assert_normalized(&many);
        assert_eq!(many.counts.iter().map(|(_, n)| n).sum::<u32>(), 2000);
        assert!((800..=1200).contains(&count(&many, "0")));
        // The first shot is the same as a lone shot with the same seed, and
        // its final state is the flipped outcome.
        let one = simulate(&c1, 1, 9, &limits(), &mut Meter::unlimited()).unwrap();
        assert_eq!(one.amplitudes, many.amplitudes);
        let outcome = usize::from(one.counts[0].0 == "1");
        assert_state(&one.amplitudes, &basis(2, 1 - outcome));

        // Entangled: q1 follows q0's outcome; the later X only flips q0.
        let c2 = circ(
            2,
            vec![
                g(GateKind::H, &[0]),
                g(GateKind::Cnot, &[0, 1]),
                g(GateKind::Measure, &[0]),
                g(GateKind::X, &[0]),
                g(GateKind::Measure, &[1]),
            ],
        );
        let sim = simulate(&c2, 1000, 5, &limits(), &mut Meter::unlimited()).unwrap();
        let keys: Vec<&str> = sim.counts.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["00", "11"]);
        let first = simulate(&c2, 1, 5, &limits(), &mut Meter::unlimited()).unwrap();
        let expected = if first.counts[0].0 == "00" { 1 } else { 2 };
        assert_state(&first.amplitudes, &basis(4, expected));
        assert_eq!(first.amplitudes, sim.amplitudes);

        // A certain outcome, then more gates: deterministic.
        let c3 = circ(
            1,
            vec![
                g(GateKind::X, &[0]),
                g(GateKind::Measure, &[0]),
                g(GateKind::H, &[0]),
            ],
        );
        let sim = simulate(&c3, 50, 1, &limits(), &mut Meter::unlimited()).unwrap();
        assert_eq!(sim.counts, vec![("1".to_string(), 50)]);
        assert_state(
            &sim.amplitudes,
            &[cn(FRAC_1_SQRT_2, 0.0), cn(-FRAC_1_SQRT_2, 0.0)],
        );

        // Zero shots still produce a collapsed state, and no counts.
        let sim = simulate(&c1, 0, 4, &limits(), &mut Meter::unlimited()).unwrap();
        assert!(sim.counts.is_empty());
        assert_normalized(&sim);
        assert!(sim.probabilities.iter().any(|p| (p - 1.0).abs() < EPS));

        // A measured qubit measured again later counts its last outcome:
        // measure 0 (random), X, measure again gives the flipped bit.
        let c4 = circ(
            2,
            vec![
                g(GateKind::H, &[0]),
                g(GateKind::Measure, &[0]),
                g(GateKind::Cnot, &[0, 1]),
                g(GateKind::X, &[0]),
                g(GateKind::Measure, &[0]),
                g(GateKind::Measure, &[1]),
            ],
        );
        let sim = simulate(&c4, 500, 8, &limits(), &mut Meter::unlimited()).unwrap();
        let keys: Vec<&str> = sim.counts.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["01", "10"]);
    }

    #[test]
    fn terminal_measurements_keep_the_pre_measurement_state() {
        // A gate on another qubit after a measure is still terminal.
        let c = circ(
            2,
            vec![
                g(GateKind::H, &[0]),
                g(GateKind::Measure, &[0]),
                g(GateKind::H, &[1]),
            ],
        );
        let sim = simulate(&c, 1000, 2, &limits(), &mut Meter::unlimited()).unwrap();
        assert_state(&sim.amplitudes, &[cn(0.5, 0.0); 4]);
        let keys: Vec<&str> = sim.counts.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["0", "1"]);
        // Measuring the same qubit twice is terminal too.
        let c = circ(
            1,
            vec![
                g(GateKind::H, &[0]),
                g(GateKind::Measure, &[0]),
                g(GateKind::Measure, &[0]),
            ],
        );
        let sim = simulate(&c, 10, 2, &limits(), &mut Meter::unlimited()).unwrap();
        assert_state(&sim.amplitudes, &[cn(FRAC_1_SQRT_2, 0.0); 2]);
    }

    #[test]
    fn deep_circuit_stays_normalized() {
        let n = 6u32;
        let mut gates = Vec::new();
        for i in 0..190u32 {
            let q = (i * 7 + 3) % n;
            let p = (q + 1 + i % (n - 1)) % n;
            let theta = f64::from(i) * 0.37 - 5.0;
            gates.push(match i % 9 {
                0 => g(GateKind::H, &[q]),
                1 => rot(GateKind::Rx, q, theta),
                2 => rot(GateKind::Ry, q, theta),
                3 => rot(GateKind::Rz, q, theta),
                4 => g(GateKind::Cnot, &[q, p]),
                5 => g(GateKind::Cz, &[p, q]),
                6 => g(GateKind::Swap, &[q, p]),
                7 => g(GateKind::T, &[q]),
                _ => g(GateKind::Y, &[q]),
            });
        }
        let sim = simulate(&circ(n, gates), 100, 1, &limits(), &mut Meter::unlimited()).unwrap();
        assert_normalized(&sim);
        assert_eq!(sim.counts.iter().map(|(_, n)| n).sum::<u32>(), 100);
    }

    fn err(c: &Circuit, shots: u32, l: &QuantumLimits) -> QuantumError {
        simulate(c, shots, 0, l, &mut Meter::unlimited()).unwrap_err()
    }

    #[test]
    fn validation_errors() {
        let l = limits();
        let e = err(&circ(0, vec![]), 0, &l);
        assert_eq!(e.code(), ErrorCode::TooManyQubits);
        assert!(
            e.message().contains("at least 1") && e.message().contains("10"),
            "{e}"
        );

        let e = err(&circ(11, vec![]), 0, &l);
        assert_eq!(e.code(), ErrorCode::TooManyQubits);
        assert!(e.to_string().contains("11 qubits: at most 10"), "{e}");

        let e = err(&circ(1, vec![g(GateKind::X, &[0]); 201]), 0, &l);
        assert_eq!(e.code(), ErrorCode::TooLarge);
        assert!(e.message().contains("201 gates: at most 200"), "{e}");
        assert!(
            simulate(
                &circ(1, vec![g(GateKind::X, &[0]); 200]),
                0,
                0,
                &l,
                &mut Meter::unlimited()
            )
            .is_ok()
        );

        let e = err(&circ(1, vec![]), 100_001, &l);
        assert_eq!(e.code(), ErrorCode::TooLarge);
        assert!(
            e.message().contains("100001 shots") && e.message().contains("100000"),
            "{e}"
        );

        let e = err(&circ(2, vec![g(GateKind::Cnot, &[0])]), 0, &l);
        assert_eq!(e.code(), ErrorCode::InvalidGate);
        assert_eq!(
            e.message(),
            "gate 0 (cnot) has 1 qubits: cnot takes exactly 2 qubits ([control, target])"
        );
        let e = err(&circ(2, vec![g(GateKind::H, &[0, 1])]), 0, &l);
        assert_eq!(e.code(), ErrorCode::InvalidGate);
        assert!(e.message().contains("exactly 1 qubit"), "{e}");
        let e = err(&circ(2, vec![g(GateKind::Measure, &[])]), 0, &l);
        assert_eq!(e.code(), ErrorCode::InvalidGate);
        let e = err(&circ(3, vec![g(GateKind::Swap, &[0, 1, 2])]), 0, &l);
        assert_eq!(e.code(), ErrorCode::InvalidGate);

        let gates = vec![
            g(GateKind::H, &[0]),
            g(GateKind::H, &[1]),
            g(GateKind::H, &[2]),
            g(GateKind::Cnot, &[0, 5]),
        ];
        let e = err(&circ(3, gates), 0, &l);
        assert_eq!(e.code(), ErrorCode::InvalidQubit);
        assert_eq!(
            e.message(),
            "gate 3 (cnot) uses qubit 5 but the circuit has 3 qubits (0..=2)"
        );
        let e = err(&circ(1, vec![g(GateKind::X, &[u32::MAX])]), 0, &l);
        assert_eq!(e.code(), ErrorCode::InvalidQubit);
        assert!(e.message().contains("1 qubit (0..=0)"), "{e}");

        let e = err(&circ(2, vec![g(GateKind::Cz, &[1, 1])]), 0, &l);
        assert_eq!(e.code(), ErrorCode::InvalidGate);
        assert!(
            e.message().contains("gate 0 (cz) uses qubit 1 twice"),
            "{e}"
        );

        let e = err(&circ(1, vec![g(GateKind::Rx, &[0])]), 0, &l);
        assert_eq!(e.code(), ErrorCode::InvalidGate);
        assert!(e.message().contains("gate 0 (rx) needs theta"), "{e}");
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let e = err(&circ(1, vec![rot(GateKind::Rz, 0, bad)]), 0, &l);
            assert_eq!(e.code(), ErrorCode::InvalidGate);
            assert!(e.message().contains("finite"), "{e}");
        }
        let e = err(&circ(1, vec![rot(GateKind::H, 0, 1.0)]), 0, &l);
        assert_eq!(e.code(), ErrorCode::InvalidGate);
        assert!(e.message().contains("gate 0 (h) takes no theta"), "{e}");

        // `validate` reports the same things without simulating.
        assert_eq!(
            validate(&circ(0, vec![]), &l).unwrap_err().code(),
            ErrorCode::TooManyQubits
        );
        assert!(validate(&circ(10, vec![g(GateKind::Swap, &[0, 9])]), &l).is_ok());
    }

    #[test]
    fn trajectory_work_is_bounded() {
        // Budget: max_gates 10 × 2^4 = 160 amplitude updates.
        let l = QuantumLimits {
            max_qubits: 4,
            max_gates: 10,
            max_shots: 1000,
        };
        let c = circ(
            4,
            vec![
                g(GateKind::H, &[0]),
                g(GateKind::Measure, &[0]),
                g(GateKind::X, &[0]),
            ],
        );
        // 5 shots × 2 gates × 16 = 160: fits.
        assert!(simulate(&c, 5, 0, &l, &mut Meter::unlimited()).is_ok());
        let e = err(&c, 6, &l);
        assert_eq!(e.code(), ErrorCode::TooLarge);
        assert!(
            e.message()
                .contains("gate 2 (x) acts on qubit 0 after it was measured")
                && e.message().contains("192")
                && e.message().contains("160"),
            "{e}"
        );
        // The same shots with terminal measurement are cheap and allowed.
        let c = circ(4, vec![g(GateKind::H, &[0]), g(GateKind::Measure, &[0])]);
        assert!(simulate(&c, 1000, 0, &l, &mut Meter::unlimited()).is_ok());
    }

    #[test]
    fn absurd_limits_fail_cleanly() {
        let l = QuantumLimits {
            max_qubits: 200,
            max_gates: 10,
            max_shots: 10,
        };
        let c = circ(100, vec![g(GateKind::H, &[99])]);
        assert!(validate(&c, &l).is_ok());
        assert_eq!(err(&c, 0, &l).code(), ErrorCode::TooLarge);
    }

    #[test]
    fn error_codes_map_one_to_one() {
        let cases = [
            (
                QuantumError::TooManyQubits("a".into()),
                ErrorCode::TooManyQubits,
            ),
            (
                QuantumError::InvalidGate("b".into()),
                ErrorCode::InvalidGate,
            ),
            (
                QuantumError::InvalidQubit("c".into()),
                ErrorCode::InvalidQubit,
            ),
            (QuantumError::TooLarge("d".into()), ErrorCode::TooLarge),
        ];
        for (e, code) in cases {
            assert_eq!(e.code(), code);
            assert_eq!(e.to_string(), e.message());
        }
    }

    #[test]
    fn gate_kind_metadata() {
        assert_eq!(GateKind::Cnot.name(), "cnot");
        assert_eq!(GateKind::Swap.arity(), 2);
        assert_eq!(GateKind::Measure.arity(), 1);
        assert!(GateKind::Ry.is_rotation() && !GateKind::T.is_rotation());
    }
}
