//! `llmos:kernel/quantum`: circuits simulated on the host.
//!
//! The simulator ([`sim`]) and the diagram renderer ([`draw`]) are pure
//! functions of the circuit; this module binds them to the WIT interface,
//! turns diagrams into run outputs, and supplies the sampling seed when the
//! guest gives none: drawn from the run's random source, which is itself
//! seeded when the run is (`llmos run --seed`), so seeded runs replay.
//!
//! Host budgets: a simulation is paid for out of the run's fuel before it
//! starts and its state vectors are reserved in the run's host memory (see
//! [`sim::simulate`]); a diagram pays per gate and its SVG is reserved as an
//! output. Past the host-memory budget: `too-large`; past the fuel or the
//! deadline the run ends.

pub mod draw;
pub mod sim;

use rand::{Rng, SeedableRng};
use wasmtime::component::{HasData, Linker};

use crate::bindings::quantum::{self as wit, ErrorCode, QuantumError};
use crate::meter::{Meter, cost};
use crate::outputs::{MIME_SVG, OutputKind, Outputs};

/// Per-run state of the quantum API.
#[derive(Debug)]
pub struct QuantumCtx {
    rng: rand::rngs::StdRng,
    limits: sim::QuantumLimits,
}

impl QuantumCtx {
    /// `seed`: the run's seed, if any.
    pub fn new(seed: Option<u64>, limits: sim::QuantumLimits) -> Self {
        let rng = match seed {
            Some(s) => rand::rngs::StdRng::seed_from_u64(s ^ 0x71_75_61_6e_74_75_6d),
            None => rand::rngs::StdRng::seed_from_u64(rand::random()),
        };
        QuantumCtx { rng, limits }
    }
}

/// What the quantum API touches: its context and the run's outputs.
pub struct QuantumView<'a> {
    /// The run's sampling source and quotas.
    pub ctx: &'a mut QuantumCtx,
    /// The run's outputs (diagrams).
    pub outputs: &'a mut Outputs,
    /// The run's accounting of host work.
    pub meter: &'a mut Meter,
}

fn circuit(c: wit::Circuit) -> sim::Circuit {
    sim::Circuit {
        qubits: c.qubits,
        gates: c
            .gates
            .into_iter()
            .map(|g| sim::Gate {
                kind: match g.kind {
                    wit::GateKind::H => sim::GateKind::H,
                    wit::GateKind::X => sim::GateKind::X,
                    wit::GateKind::Y => sim::GateKind::Y,
                    wit::GateKind::Z => sim::GateKind::Z,
                    wit::GateKind::S => sim::GateKind::S,
                    wit::GateKind::T => sim::GateKind::T,
                    wit::GateKind::Rx => sim::GateKind::Rx,
                    wit::GateKind::Ry => sim::GateKind::Ry,
                    wit::GateKind::Rz => sim::GateKind::Rz,
                    wit::GateKind::Cnot => sim::GateKind::Cnot,
                    wit::GateKind::Cz => sim::GateKind::Cz,
                    wit::GateKind::Swap => sim::GateKind::Swap,
                    wit::GateKind::Measure => sim::GateKind::Measure,
                },
                qubits: g.qubits,
                theta: g.theta,
            })
            .collect(),
    }
}

/// An engine result as a binding result: running out of the run's fuel or
/// time is a trap, every other error is the guest's `quantum-error`.
fn split<T>(r: Result<T, sim::QuantumError>) -> wasmtime::Result<Result<T, QuantumError>> {
    match r {
        Ok(v) => Ok(Ok(v)),
        Err(sim::QuantumError::Limit(l)) => Err(l.into()),
        Err(e) => Ok(Err(guest_error(e))),
    }
}

/// Bytes of SVG a diagram writes per gate, at most (for pricing before drawing).
const SVG_BYTES_PER_GATE: u64 = 400;

fn guest_error(e: sim::QuantumError) -> QuantumError {
    let code = match e.code() {
        sim::ErrorCode::TooManyQubits => ErrorCode::TooManyQubits,
        sim::ErrorCode::InvalidGate => ErrorCode::InvalidGate,
        sim::ErrorCode::InvalidQubit => ErrorCode::InvalidQubit,
        sim::ErrorCode::TooLarge => ErrorCode::TooLarge,
    };
    QuantumError {
        code,
        message: e.message().to_string(),
    }
}

impl wit::Host for QuantumView<'_> {
    fn simulate(
        &mut self,
        c: wit::Circuit,
        shots: u32,
        seed: Option<u64>,
    ) -> wasmtime::Result<Result<wit::Simulation, QuantumError>> {
        let seed = seed.unwrap_or_else(|| self.ctx.rng.next_u64());
        self.meter.charge(cost::CALL)?;
        let r = sim::simulate(&circuit(c), shots, seed, &self.ctx.limits, self.meter).map(|s| {
            wit::Simulation {
                amplitudes: s
                    .amplitudes
                    .into_iter()
                    .map(|a| wit::Complex { re: a.re, im: a.im })
                    .collect(),
                probabilities: s.probabilities,
                counts: s.counts,
            }
        });
        split(r)
    }

    fn draw(&mut self, c: wit::Circuit) -> wasmtime::Result<Result<u32, QuantumError>> {
        let c = circuit(c);
        let gates = c.gates.len() as u64;
        self.meter.charge(
            cost::CALL.saturating_add(
                gates
                    .saturating_add(u64::from(c.qubits))
                    .saturating_mul(SVG_BYTES_PER_GATE * cost::PER_BYTE),
            ),
        )?;
        let svg = match split(draw::draw_svg(&c, &self.ctx.limits))? {
            Ok(s) => s,
            Err(e) => return Ok(Err(e)),
        };
        self.meter.check_time()?;
        let summary = format!(
            "quantum circuit: {} qubit{}, {} gate{}",
            c.qubits,
            if c.qubits == 1 { "" } else { "s" },
            c.gates.len(),
            if c.gates.len() == 1 { "" } else { "s" }
        );
        Ok(self
            .outputs
            .push_metered(
                self.meter,
                OutputKind::Circuit,
                summary,
                vec![(MIME_SVG, svg.into_bytes())],
            )?
            .map_err(|e| QuantumError {
                code: ErrorCode::TooLarge,
                message: e.0,
            }))
    }
}

struct HasQuantum;

impl HasData for HasQuantum {
    type Data<'a> = QuantumView<'a>;
}

/// Add `llmos:kernel/quantum` to `linker`, reaching its view through `get`.
pub fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> QuantumView<'_>,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasQuantum>(linker, get)
}
