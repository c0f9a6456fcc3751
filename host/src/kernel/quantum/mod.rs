//! `llmos:kernel/quantum`: circuits simulated on the host.
//!
//! The simulator ([`sim`]) and the diagram renderer ([`draw`]) are pure
//! functions of the circuit; this module binds them to the WIT interface,
//! turns diagrams into run outputs, and supplies the sampling seed when the
//! guest gives none: drawn from the run's random source, which is itself
//! seeded when the run is (`llmos run --seed`), so seeded runs replay.

pub mod draw;
pub mod sim;

use rand::{Rng, SeedableRng};
use wasmtime::component::{HasData, Linker};

use crate::bindings::quantum::{self as wit, ErrorCode, QuantumError};
use crate::meter::Meter;
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
    pub ctx: &'a mut QuantumCtx,
    pub outputs: &'a mut Outputs,
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
        let r = sim::simulate(&circuit(c), shots, seed, &self.ctx.limits)
            .map(|s| wit::Simulation {
                amplitudes: s
                    .amplitudes
                    .into_iter()
                    .map(|a| wit::Complex { re: a.re, im: a.im })
                    .collect(),
                probabilities: s.probabilities,
                counts: s.counts,
            })
            .map_err(guest_error);
        Ok(r)
    }

    fn draw(&mut self, c: wit::Circuit) -> wasmtime::Result<Result<u32, QuantumError>> {
        let c = circuit(c);
        let svg = match draw::draw_svg(&c, &self.ctx.limits) {
            Ok(s) => s,
            Err(e) => return Ok(Err(guest_error(e))),
        };
        let summary = format!(
            "quantum circuit: {} qubit{}, {} gate{}",
            c.qubits,
            if c.qubits == 1 { "" } else { "s" },
            c.gates.len(),
            if c.gates.len() == 1 { "" } else { "s" }
        );
        Ok(self
            .outputs
            .push(
                OutputKind::Circuit,
                summary,
                vec![(MIME_SVG, svg.into_bytes())],
            )
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
