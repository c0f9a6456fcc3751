//! The nondeterministic inputs of a run: what the host fed the guest that
//! the guest's code alone does not decide.
//!
//! A wasm guest is deterministic except for what it asks the host: the
//! random seed, the wall and monotonic clocks, and kernel calls whose result
//! depends on the world (storage). Every run goes through one [`Tape`] that
//! supplies those inputs in one of three ways and writes down what it
//! supplied ([`RunInputs`], kept in the run's [`Outcome`](crate::outcome::Outcome)):
//!
//! - [`Source::Host`]: real clocks, real sleeps, live storage; the seed is
//!   drawn from the OS unless the caller gave one.
//! - [`Source::Virtual`] (a run with `--seed`): clocks that start at a fixed
//!   date and advance by [`VIRTUAL_STEP_NS`] per reading and by the full
//!   duration of every sleep, which returns at once. Two runs of the same
//!   artifact with the same seed see the same inputs, so they end with the
//!   same outcome at the same fuel count.
//! - [`Source::Replay`]: the inputs of an earlier run served back in order
//!   (clock readings, storage replies; sleeps return at once), with no side
//!   effect repeated: a storage write is answered from the record, never
//!   applied again. What the guest asks beyond the record, or in another
//!   order, marks the replay [diverged](Tape::diverged).
//! - [`Source::Verify`]: how the supervisor runs a candidate fix: the
//!   failing run's seed and clock readings, and its storage reads answered
//!   as they were (a `get` of a key the failing run read returns what it
//!   returned then); what the record does not hold is live (writes always).
//!   So a fix is checked on the inputs that broke the original.
//!
//! Sessions use the same tape: a cell's inputs are journaled with the cell,
//! and restoring a session replays each cell on its own inputs.
//!
//! The record is bounded ([`MAX_READINGS`] per clock, [`MAX_STORAGE_BYTES`]
//! of storage replies); a run that reads more is still run and reported, but
//! its record is marked incomplete and cannot be replayed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use rand::{SeedableRng, TryRng};
use serde::{Deserialize, Serialize};
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::p2::bindings::clocks::monotonic_clock;
use wasmtime_wasi_io::poll::{DynPollable, Pollable, subscribe};

/// Clock readings recorded per clock, at most.
pub const MAX_READINGS: usize = 16_384;
/// Bytes of storage replies recorded, at most.
pub const MAX_STORAGE_BYTES: usize = 1 << 20;
/// How far the virtual clocks advance at each reading.
pub const VIRTUAL_STEP_NS: u64 = 1_000;
/// The virtual wall clock's start: 2025-01-01T00:00:00Z.
pub const VIRTUAL_EPOCH_SECS: u64 = 1_735_689_600;

/// How the clocks of a run behave.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClockKind {
    /// The host's clocks.
    #[default]
    Host,
    /// Deterministic clocks (see [`Source::Virtual`]).
    Virtual,
}

/// One storage call: its key (or prefix; empty for `clear`) and the reply
/// the guest received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageCall {
    /// The key, or the prefix of `keys`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key: String,
    /// The reply.
    #[serde(flatten)]
    pub reply: StorageReply,
}

/// A storage call's reply, as the guest received it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)] // one variant per storage function
pub enum StorageReply {
    Get(Result<Option<String>, StorageFailure>),
    Set(Result<(), StorageFailure>),
    Delete(Result<bool, StorageFailure>),
    Keys(Result<Vec<String>, StorageFailure>),
    Clear(Result<u32, StorageFailure>),
}

impl StorageReply {
    fn size(&self) -> usize {
        let err = |e: &StorageFailure| e.message.len() + 16;
        16 + match self {
            StorageReply::Get(r) => r
                .as_ref()
                .map_or_else(err, |v| v.as_ref().map_or(0, String::len)),
            StorageReply::Keys(r) => r
                .as_ref()
                .map_or_else(err, |v| v.iter().map(|k| k.len() + 8).sum()),
            StorageReply::Set(r) => r.as_ref().map_or_else(err, |_| 0),
            StorageReply::Delete(r) => r.as_ref().map_or_else(err, |_| 0),
            StorageReply::Clear(r) => r.as_ref().map_or_else(err, |_| 0),
        }
    }
}

/// A storage error as recorded: its WIT error code and message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageFailure {
    /// `invalid-key`, `invalid-value`, `quota-exceeded` or `unavailable`.
    pub code: String,
    /// The message the guest saw.
    pub message: String,
}

/// Everything nondeterministic a run was given, in the order it asked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInputs {
    /// The seed of the guest's randomness (WASI random, `Math.random`,
    /// Python's `random`, quantum measurements).
    pub seed: u64,
    /// How the clocks behaved.
    #[serde(default)]
    pub clock: ClockKind,
    /// Wall-clock readings, nanoseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wall_ns: Vec<u64>,
    /// Monotonic-clock readings, nanoseconds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub monotonic_ns: Vec<u64>,
    /// Storage calls and their replies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub storage: Vec<StorageCall>,
    /// Some inputs were not recorded (the record's bounds): this run cannot
    /// be replayed exactly.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub incomplete: bool,
}

impl RunInputs {
    /// Whether a replay of these inputs can be exact.
    pub fn replayable(&self) -> bool {
        !self.incomplete
    }
}

/// Where a run's inputs come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// The host's clocks and storage; `seed` or one drawn from the OS.
    Host {
        /// The seed asked for, if any.
        seed: Option<u64>,
    },
    /// Deterministic clocks and this seed.
    Virtual {
        /// The seed.
        seed: u64,
    },
    /// The recorded inputs of an earlier run.
    Replay(RunInputs),
    /// An earlier run's seed, clocks and storage reads, the rest live.
    Verify(RunInputs),
}

impl Source {
    /// The source a run with `seed` uses: virtual clocks when seeded.
    pub fn for_seed(seed: Option<u64>) -> Source {
        match seed {
            Some(seed) => Source::Virtual { seed },
            None => Source::Host { seed: None },
        }
    }
}

/// The tape every input of one run goes through; cheap to clone (clones
/// share it), so the clocks WASI holds and the kernel contexts see one tape.
#[derive(Clone)]
pub struct Tape {
    inner: Arc<Mutex<TapeState>>,
    /// Counts [`Tape::restart`]s, so a [`TapeRng`] drops the bytes it drew
    /// ahead from the previous seed's stream without taking the lock.
    generation: Arc<AtomicU64>,
}

struct TapeState {
    mode: Mode,
    record: RunInputs,
    storage_bytes: usize,
    /// The inputs served back, when replaying or verifying.
    replay: Option<RunInputs>,
    /// Recorded storage calls already served (verify mode).
    used: Vec<bool>,
    /// Replay cursors.
    wall_i: usize,
    mono_i: usize,
    storage_i: usize,
    /// Virtual monotonic time, ns.
    virtual_ns: u64,
    /// Host monotonic origin.
    origin: Instant,
    secure: rand::rngs::StdRng,
    insecure: rand::rngs::StdRng,
    diverged: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Host,
    Virtual,
    Replay,
    Verify,
}

impl std::fmt::Debug for Tape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tape")
    }
}

impl Tape {
    /// A tape supplying inputs from `source`.
    pub fn new(source: Source) -> Tape {
        let tape = Tape {
            inner: Arc::new(Mutex::new(TapeState {
                mode: Mode::Host,
                record: RunInputs::default(),
                storage_bytes: 0,
                replay: None,
                used: Vec::new(),
                wall_i: 0,
                mono_i: 0,
                storage_i: 0,
                virtual_ns: 0,
                origin: Instant::now(),
                secure: rand::rngs::StdRng::seed_from_u64(0),
                insecure: rand::rngs::StdRng::seed_from_u64(0),
                diverged: None,
            })),
            generation: Arc::new(AtomicU64::new(0)),
        };
        tape.restart(source);
        tape
    }

    /// Start the next run (or session cell) on this tape from `source`: a
    /// new seed and an empty record. Virtual clocks keep advancing.
    pub fn restart(&self, source: Source) {
        let mut s = self.lock();
        let (mode, seed, replay) = match source {
            Source::Host { seed } => (Mode::Host, seed_or_random(seed), None),
            Source::Virtual { seed } => (Mode::Virtual, seed, None),
            Source::Replay(inputs) => (Mode::Replay, inputs.seed, Some(inputs)),
            Source::Verify(inputs) => (Mode::Verify, inputs.seed, Some(inputs)),
        };
        s.mode = mode;
        s.record = RunInputs {
            seed,
            clock: if mode == Mode::Host {
                ClockKind::Host
            } else {
                ClockKind::Virtual
            },
            ..RunInputs::default()
        };
        if let Some(inputs) = replay {
            s.record.clock = inputs.clock;
            s.replay = Some(inputs);
        } else {
            s.replay = None;
        }
        s.storage_bytes = 0;
        s.used = Vec::new();
        s.wall_i = 0;
        s.mono_i = 0;
        s.storage_i = 0;
        s.diverged = None;
        s.secure = rand::rngs::StdRng::seed_from_u64(seed);
        s.insecure = rand::rngs::StdRng::seed_from_u64(seed ^ 0x5eed);
        self.generation.fetch_add(1, Ordering::Release);
    }

    fn lock(&self) -> MutexGuard<'_, TapeState> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The seed of the current run.
    pub fn seed(&self) -> u64 {
        self.lock().record.seed
    }

    /// What the current run was given so far.
    pub fn inputs(&self) -> RunInputs {
        self.lock().record.clone()
    }

    /// Why a replay went off its record, if it did.
    pub fn diverged(&self) -> Option<String> {
        self.lock().diverged.clone()
    }

    /// A wall-clock reading for the guest.
    pub fn wall_now(&self) -> Duration {
        let mut s = self.lock();
        let ns = match s.mode {
            Mode::Host => SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
            Mode::Virtual => s.virtual_tick(),
            Mode::Replay | Mode::Verify => {
                let i = s.wall_i;
                s.wall_i += 1;
                match s.replay_reading(|r| &r.wall_ns, i) {
                    Some(ns) => ns,
                    None => {
                        let last = s.record.wall_ns.last().copied().unwrap_or(0);
                        if s.mode == Mode::Replay {
                            s.diverge("the run read the wall clock more often than recorded");
                        }
                        last.saturating_add(VIRTUAL_STEP_NS)
                    }
                }
            }
        };
        s.push_reading(Clock::Wall, ns);
        Duration::from_nanos(ns)
    }

    /// A monotonic-clock reading for the guest, ns.
    pub fn monotonic_now(&self) -> u64 {
        let mut s = self.lock();
        let ns = match s.mode {
            Mode::Host => u64::try_from(s.origin.elapsed().as_nanos()).unwrap_or(u64::MAX),
            Mode::Virtual => s.virtual_tick() - VIRTUAL_EPOCH_SECS * 1_000_000_000,
            Mode::Replay | Mode::Verify => {
                let i = s.mono_i;
                s.mono_i += 1;
                match s.replay_reading(|r| &r.monotonic_ns, i) {
                    Some(ns) => ns,
                    None => {
                        let last = s.record.monotonic_ns.last().copied().unwrap_or(0);
                        if s.mode == Mode::Replay {
                            s.diverge("the run read the monotonic clock more often than recorded");
                        }
                        last.saturating_add(VIRTUAL_STEP_NS)
                    }
                }
            }
        };
        s.push_reading(Clock::Monotonic, ns);
        ns
    }

    /// The guest sleeps for `ns`: with virtual clocks the clocks advance by
    /// it at once; `None` means sleep for real.
    fn sleep(&self, ns: u64) -> Option<()> {
        let mut s = self.lock();
        match s.mode {
            Mode::Host => None,
            Mode::Virtual => {
                s.virtual_ns = s.virtual_ns.saturating_add(ns);
                Some(())
            }
            Mode::Replay | Mode::Verify => Some(()),
        }
    }

    /// The sleep until monotonic `when` (ns), like [`Tape::sleep`].
    fn sleep_until(&self, when: u64) -> Option<Duration> {
        let mut s = self.lock();
        match s.mode {
            Mode::Host => {
                let now = u64::try_from(s.origin.elapsed().as_nanos()).unwrap_or(u64::MAX);
                Some(Duration::from_nanos(when.saturating_sub(now)))
            }
            Mode::Virtual => {
                let now = s.virtual_ns;
                s.virtual_ns = now.max(when);
                None
            }
            Mode::Replay | Mode::Verify => None,
        }
    }

    /// Answer the storage call on `key`: from the record when replaying
    /// (and, when verifying, a read the record holds), else by running
    /// `live`; the reply is recorded either way.
    pub fn storage<T: Recordable>(&self, key: &str, live: impl FnOnce() -> T) -> T {
        let mut s = self.lock();
        let served = match s.mode {
            Mode::Replay => {
                let i = s.storage_i;
                s.storage_i += 1;
                let recorded = s
                    .replay
                    .as_ref()
                    .and_then(|r| r.storage.get(i))
                    .filter(|c| c.key == key)
                    .and_then(|c| T::from_reply(&c.reply));
                Some(recorded.unwrap_or_else(|| {
                    s.diverge("the run made a storage call that is not the next one recorded");
                    T::unavailable("replay: this storage call is not in the record")
                }))
            }
            Mode::Verify if T::IS_READ => {
                let found = s.replay.as_ref().and_then(|r| {
                    r.storage.iter().enumerate().find_map(|(i, c)| {
                        let fresh = !s.used.get(i).copied().unwrap_or(false);
                        (fresh && c.key == key)
                            .then(|| T::from_reply(&c.reply).map(|t| (i, t)))
                            .flatten()
                    })
                });
                found.map(|(i, t)| {
                    if s.used.len() <= i {
                        s.used.resize(i + 1, false);
                    }
                    s.used[i] = true;
                    t
                })
            }
            _ => None,
        };
        let reply = match served {
            Some(r) => r,
            None => {
                // The store may take a while: never hold the tape meanwhile.
                drop(s);
                let r = live();
                s = self.lock();
                r
            }
        };
        s.push_storage(StorageCall {
            key: key.to_string(),
            reply: reply.to_reply(),
        });
        reply
    }

    /// The secure and insecure random generators WASI draws from.
    pub fn rngs(&self) -> (TapeRng, TapeRng) {
        (TapeRng::new(self, true), TapeRng::new(self, false))
    }
}

#[derive(Clone, Copy)]
enum Clock {
    Wall,
    Monotonic,
}

impl TapeState {
    fn virtual_tick(&mut self) -> u64 {
        let ns = self.virtual_ns;
        self.virtual_ns = ns.saturating_add(VIRTUAL_STEP_NS);
        (VIRTUAL_EPOCH_SECS * 1_000_000_000).saturating_add(ns)
    }

    fn replay_reading(&self, which: impl Fn(&RunInputs) -> &Vec<u64>, i: usize) -> Option<u64> {
        self.replay.as_ref().and_then(|r| which(r).get(i).copied())
    }

    fn diverge(&mut self, why: &str) {
        self.diverged.get_or_insert_with(|| why.to_string());
    }

    fn push_reading(&mut self, clock: Clock, ns: u64) {
        let v = match clock {
            Clock::Wall => &mut self.record.wall_ns,
            Clock::Monotonic => &mut self.record.monotonic_ns,
        };
        if v.len() < MAX_READINGS {
            v.push(ns);
        } else {
            self.record.incomplete = true;
        }
    }

    fn push_storage(&mut self, call: StorageCall) {
        let size = call.reply.size() + call.key.len();
        if self.storage_bytes.saturating_add(size) <= MAX_STORAGE_BYTES {
            self.storage_bytes += size;
            self.record.storage.push(call);
        } else {
            self.record.incomplete = true;
        }
    }
}

/// A storage call's result that can be recorded and served back.
pub trait Recordable: Sized {
    /// Whether the call only reads (verify mode answers reads from the record).
    const IS_READ: bool;
    /// The record of this reply.
    fn to_reply(&self) -> StorageReply;
    /// This reply, if `r` is one of its kind.
    fn from_reply(r: &StorageReply) -> Option<Self>;
    /// An `unavailable` error reply.
    fn unavailable(message: &str) -> Self;
}

fn seed_or_random(seed: Option<u64>) -> u64 {
    seed.unwrap_or_else(rand::random)
}

/// A WASI random generator drawing from the tape's seeded streams.
///
/// WASI asks for random bytes one at a time (`get-random-bytes` draws each
/// byte as a `u32`; CPython's `random.seed()` asks for 2 496 bytes at every
/// run), so the generator draws [`AHEAD`] bytes of its stream per lock and
/// hands them out from there. What the guest receives is exactly what drawing
/// each time would give: the stream is whole 32-bit words (as `StdRng` hands
/// it out), so a draw ending inside a word discards the rest of that word,
/// and a [`Tape::restart`] discards what was drawn ahead from the old seed.
pub struct TapeRng {
    tape: Tape,
    secure: bool,
    ahead: [u8; AHEAD],
    /// `ahead[used..]` comes next; always a whole number of words.
    used: usize,
    generation: u64,
}

/// Stream bytes a [`TapeRng`] draws per lock: a whole number of words.
const AHEAD: usize = 256;
const WORD: usize = 4;

impl TapeRng {
    fn new(tape: &Tape, secure: bool) -> TapeRng {
        TapeRng {
            tape: tape.clone(),
            secure,
            ahead: [0; AHEAD],
            used: AHEAD,
            generation: tape.generation.load(Ordering::Acquire),
        }
    }

    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.take(&mut b);
        u64::from_le_bytes(b)
    }

    fn take(&mut self, dst: &mut [u8]) {
        let generation = self.tape.generation.load(Ordering::Acquire);
        if generation != self.generation {
            self.generation = generation;
            self.used = AHEAD;
        }
        let mut filled = 0;
        while filled < dst.len() {
            if self.used == AHEAD {
                self.refill();
            }
            let n = (dst.len() - filled).min(AHEAD - self.used);
            dst[filled..filled + n].copy_from_slice(&self.ahead[self.used..self.used + n]);
            filled += n;
            self.used += n;
        }
        // The rest of a word a draw ended inside is never handed out.
        self.used = self.used.next_multiple_of(WORD);
    }

    fn refill(&mut self) {
        use rand::Rng;
        let mut s = self.tape.lock();
        if self.secure {
            s.secure.fill_bytes(&mut self.ahead);
        } else {
            s.insecure.fill_bytes(&mut self.ahead);
        }
        self.generation = self.tape.generation.load(Ordering::Acquire);
        self.used = 0;
    }
}

impl TryRng for TapeRng {
    type Error = std::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok(self.next_u64() as u32)
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Ok(self.next_u64())
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        self.take(dst);
        Ok(())
    }
}

/// The WASI wall clock, read through the tape.
pub struct WallClock(pub Tape);

impl wasmtime_wasi::HostWallClock for WallClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(VIRTUAL_STEP_NS)
    }
    fn now(&self) -> Duration {
        self.0.wall_now()
    }
}

/// What `wasi:clocks/monotonic-clock` touches: the run's tape and its
/// resource table (for sleep pollables).
pub struct MonotonicView<'a> {
    /// The run's tape.
    pub tape: &'a Tape,
    /// The run's resource table.
    pub table: &'a mut ResourceTable,
}

/// A sleep the guest polls: already over (virtual clocks, replays) or until
/// a host instant.
enum Sleep {
    Over { yielded: bool },
    Until(tokio::time::Instant),
    Never,
}

#[async_trait::async_trait]
impl Pollable for Sleep {
    async fn ready(&mut self) {
        match self {
            Sleep::Over { yielded: true } => {}
            Sleep::Over { yielded } => {
                // Yield once so a guest polling in a loop cannot starve the
                // executor (as wasmtime-wasi's own clock does).
                *yielded = true;
                tokio::task::yield_now().await
            }
            Sleep::Until(t) => tokio::time::sleep_until(*t).await,
            Sleep::Never => std::future::pending().await,
        }
    }
}

fn sleep_pollable(
    table: &mut ResourceTable,
    real: Option<Duration>,
) -> wasmtime::Result<Resource<DynPollable>> {
    let sleep = match real {
        None => Sleep::Over { yielded: false },
        Some(d) if d.is_zero() => Sleep::Over { yielded: false },
        Some(d) => match tokio::time::Instant::now().checked_add(d) {
            Some(t) => Sleep::Until(t),
            None => Sleep::Never,
        },
    };
    let r = table.push(sleep)?;
    subscribe(table, r)
}

impl monotonic_clock::Host for MonotonicView<'_> {
    fn now(&mut self) -> wasmtime::Result<monotonic_clock::Instant> {
        Ok(self.tape.monotonic_now())
    }

    fn resolution(&mut self) -> wasmtime::Result<monotonic_clock::Duration> {
        Ok(VIRTUAL_STEP_NS)
    }

    fn subscribe_instant(
        &mut self,
        when: monotonic_clock::Instant,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        let real = self.tape.sleep_until(when);
        sleep_pollable(self.table, real)
    }

    fn subscribe_duration(
        &mut self,
        duration: monotonic_clock::Duration,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        let real = match self.tape.sleep(duration) {
            Some(()) => None,
            None => Some(Duration::from_nanos(duration)),
        };
        sleep_pollable(self.table, real)
    }
}

struct HasMonotonic;

impl HasData for HasMonotonic {
    type Data<'a> = MonotonicView<'a>;
}

/// Replace WASI's monotonic clock in `linker` (which must already have WASI)
/// with the tape's, reached through `get`.
pub fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> MonotonicView<'_>,
) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let r = monotonic_clock::add_to_linker::<T, HasMonotonic>(linker, get);
    linker.allow_shadowing(false);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drawing ahead changes nothing the guest sees: every draw, of any
    /// length, is what a lock and a `StdRng` draw per call gave, and a
    /// restart starts the new seed's stream from its beginning.
    #[test]
    fn random_bytes_drawn_ahead_are_the_stream_drawn_each_time() {
        use rand::Rng;
        let tape = Tape::new(Source::Virtual { seed: 7 });
        let (mut secure, mut insecure) = tape.rngs();
        let lengths = [
            0usize, 1, 2, 3, 4, 5, 7, 8, 9, 13, 255, 256, 257, 1000, 6, 2496, 1,
        ];
        for seed in [7u64, 8] {
            if seed != 7 {
                // Leave bytes drawn ahead from the old seed behind.
                secure.next_u64();
                tape.restart(Source::Virtual { seed });
            }
            let mut direct = rand::rngs::StdRng::seed_from_u64(seed);
            let mut direct_insecure = rand::rngs::StdRng::seed_from_u64(seed ^ 0x5eed);
            for round in 0..40 {
                for (i, &len) in lengths.iter().enumerate() {
                    let (mut got, mut want) = (vec![0; len], vec![0; len]);
                    match (round + i) % 3 {
                        0 => {
                            secure.fill_bytes(&mut got);
                            direct.fill_bytes(&mut want);
                        }
                        1 => {
                            let mut b = [0u8; 8];
                            direct.fill_bytes(&mut b);
                            assert_eq!(secure.next_u32(), u64::from_le_bytes(b) as u32);
                        }
                        _ => {
                            insecure.fill_bytes(&mut got);
                            direct_insecure.fill_bytes(&mut want);
                        }
                    }
                    assert_eq!(got, want, "seed {seed}, round {round}, a draw of {len}");
                }
            }
        }
    }

    impl Recordable for Result<Option<String>, StorageFailure> {
        const IS_READ: bool = true;
        fn to_reply(&self) -> StorageReply {
            StorageReply::Get(self.clone())
        }
        fn from_reply(r: &StorageReply) -> Option<Self> {
            match r {
                StorageReply::Get(v) => Some(v.clone()),
                _ => None,
            }
        }
        fn unavailable(message: &str) -> Self {
            Err(StorageFailure {
                code: "unavailable".into(),
                message: message.into(),
            })
        }
    }

    #[test]
    fn virtual_clocks_are_deterministic_and_sleeps_advance_them() {
        let a = Tape::new(Source::Virtual { seed: 7 });
        let t0 = a.monotonic_now();
        assert!(a.sleep(5_000_000_000).is_some());
        let t1 = a.monotonic_now();
        assert!(t1 - t0 >= 5_000_000_000);
        let w = a.wall_now();
        assert!(w.as_secs() >= VIRTUAL_EPOCH_SECS + 5);
        let b = Tape::new(Source::Virtual { seed: 7 });
        b.monotonic_now();
        b.sleep(5_000_000_000);
        b.monotonic_now();
        b.wall_now();
        assert_eq!(a.inputs(), b.inputs());
    }

    #[test]
    fn replay_serves_the_record_and_flags_divergence() {
        let live = Tape::new(Source::Host { seed: None });
        let w = live.wall_now();
        let m = live.monotonic_now();
        let r: Result<Option<String>, StorageFailure> = live.storage("k", || Ok(Some("v".into())));
        assert_eq!(r, Ok(Some("v".into())));
        let rec = live.inputs();
        assert!(rec.replayable());

        let replay = Tape::new(Source::Replay(rec.clone()));
        assert_eq!(replay.wall_now(), w);
        assert_eq!(replay.monotonic_now(), m);
        let r: Result<Option<String>, StorageFailure> =
            replay.storage("k", || panic!("a replay never touches storage"));
        assert_eq!(r, Ok(Some("v".into())));
        assert_eq!(replay.diverged(), None);
        assert_eq!(replay.inputs(), rec);
        replay.wall_now();
        assert!(replay.diverged().is_some());

        // Verifying: a read of a recorded key gets the recorded reply once;
        // anything else is live.
        let verify = Tape::new(Source::Verify(rec));
        let r: Result<Option<String>, StorageFailure> = verify.storage("k", || Ok(None));
        assert_eq!(r, Ok(Some("v".into())));
        let r: Result<Option<String>, StorageFailure> = verify.storage("k", || Ok(None));
        assert_eq!(r, Ok(None));
        let r: Result<Option<String>, StorageFailure> = verify.storage("other", || Ok(None));
        assert_eq!(r, Ok(None));
        assert_eq!(verify.wall_now(), w);
    }

    #[test]
    fn the_record_is_bounded() {
        let t = Tape::new(Source::Host { seed: Some(1) });
        for _ in 0..MAX_READINGS + 10 {
            t.monotonic_now();
        }
        let rec = t.inputs();
        assert_eq!(rec.monotonic_ns.len(), MAX_READINGS);
        assert!(!rec.replayable());
    }
}
