//! `llmos:kernel/log`: structured logs from the artifact.
//!
//! Records are kept per run (they become [`Outcome::logs`](crate::Outcome))
//! and forwarded to `tracing` under the target `llmos::artifact` with the
//! artifact id. Both the number of records and their total bytes are bounded:
//! the record that crosses either bound ends the run with `output_limit`.
//! Two sizes are counted per record, so a flood of empty fields is as
//! bounded as a flood of text:
//! - against the run's output limit, the record as it will be shown: its
//!   text plus [`SHOWN_RECORD_OVERHEAD`] and [`SHOWN_FIELD_OVERHEAD`] (about
//!   what its JSON punctuation costs);
//! - against the run's host-memory budget, what the host keeps for it: its
//!   text plus [`RECORD_OVERHEAD`] and [`FIELD_OVERHEAD`] (the `String`s,
//!   `Vec`s and allocator headers).

use wasmtime::component::{HasData, Linker};

use crate::bindings::log::{self, Field, Level};
use crate::capture::OutputLimitExceeded;
use crate::meter::Meter;
use crate::outcome::{LogLevel, LogRecord};

/// Host bytes counted for each record beyond its text.
pub const RECORD_OVERHEAD: usize = 64;
/// Host bytes counted for each field beyond its key and value.
pub const FIELD_OVERHEAD: usize = 48;
/// Output bytes counted for each record beyond its text.
pub const SHOWN_RECORD_OVERHEAD: usize = 16;
/// Output bytes counted for each field beyond its key and value.
pub const SHOWN_FIELD_OVERHEAD: usize = 8;

/// Per-run state of the log API.
#[derive(Debug)]
pub struct LogCtx {
    artifact: String,
    max_records: usize,
    max_bytes: usize,
    bytes: usize,
    records: Vec<LogRecord>,
    truncated: bool,
}

impl LogCtx {
    /// A run's log, bounded by record count and bytes (overheads included).
    pub fn new(artifact: impl Into<String>, max_records: usize, max_bytes: usize) -> Self {
        LogCtx {
            artifact: artifact.into(),
            max_records,
            max_bytes,
            bytes: 0,
            records: Vec::new(),
            truncated: false,
        }
    }

    /// The records so far.
    pub fn records(&self) -> &[LogRecord] {
        &self.records
    }

    /// The records, for the outcome.
    pub fn into_records(self) -> Vec<LogRecord> {
        self.records
    }

    /// The records so far, for the outcome, leaving none.
    pub fn take_records(&mut self) -> Vec<LogRecord> {
        std::mem::take(&mut self.records)
    }

    /// Whether a record was refused.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    fn push(&mut self, record: LogRecord, meter: &mut Meter) -> Result<(), OutputLimitExceeded> {
        let text = record.message.len()
            + record
                .fields
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>();
        let n = record.fields.len();
        let size = text + SHOWN_RECORD_OVERHEAD + n * SHOWN_FIELD_OVERHEAD;
        let held = text + RECORD_OVERHEAD + n * FIELD_OVERHEAD;
        if self.truncated
            || self.records.len() >= self.max_records
            || self.bytes.saturating_add(size) > self.max_bytes
            || meter.reserve(held as u64).is_err()
        {
            if !self.truncated {
                self.truncated = true;
                self.records.push(LogRecord {
                    level: LogLevel::Warn,
                    message: format!(
                        "[llmos: logs truncated at {} records / {} bytes]",
                        self.max_records, self.max_bytes
                    ),
                    fields: Vec::new(),
                });
            }
            return Err(OutputLimitExceeded {
                stream: "logs",
                limit: self.max_bytes,
            });
        }
        self.bytes += size;
        match record.level {
            LogLevel::Debug => {
                tracing::debug!(target: "llmos::artifact", artifact = %self.artifact, fields = ?record.fields, "{}", record.message)
            }
            LogLevel::Info => {
                tracing::info!(target: "llmos::artifact", artifact = %self.artifact, fields = ?record.fields, "{}", record.message)
            }
            LogLevel::Warn => {
                tracing::warn!(target: "llmos::artifact", artifact = %self.artifact, fields = ?record.fields, "{}", record.message)
            }
            LogLevel::Error => {
                tracing::error!(target: "llmos::artifact", artifact = %self.artifact, fields = ?record.fields, "{}", record.message)
            }
        }
        self.records.push(record);
        Ok(())
    }
}

/// What the log API touches: its context and the run's meter.
pub struct LogView<'a> {
    /// The run's log records.
    pub ctx: &'a mut LogCtx,
    /// The run's accounting of host work.
    pub meter: &'a mut Meter,
}

impl log::Host for LogView<'_> {
    fn write(&mut self, level: Level, message: String, fields: Vec<Field>) -> wasmtime::Result<()> {
        let level = match level {
            Level::Debug => LogLevel::Debug,
            Level::Info => LogLevel::Info,
            Level::Warn => LogLevel::Warn,
            Level::Error => LogLevel::Error,
        };
        let fields = fields.into_iter().map(|f| (f.key, f.value)).collect();
        self.ctx.push(
            LogRecord {
                level,
                message,
                fields,
            },
            self.meter,
        )?;
        Ok(())
    }
}

struct HasLog;

impl HasData for HasLog {
    type Data<'a> = LogView<'a>;
}

/// Add `llmos:kernel/log` to `linker`, reaching the context through `get`.
pub fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> LogView<'_>,
) -> wasmtime::Result<()> {
    log::add_to_linker::<T, HasLog>(linker, get)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::log::Host;

    #[test]
    fn bounded_by_count_and_bytes() {
        let mut log = LogCtx::new("t", 2, 1000);
        let mut meter = Meter::unlimited();
        let mut ctx = LogView {
            ctx: &mut log,
            meter: &mut meter,
        };
        assert!(ctx.write(Level::Info, "a".into(), vec![]).is_ok());
        assert!(
            ctx.write(
                Level::Warn,
                "b".into(),
                vec![Field {
                    key: "k".into(),
                    value: "v".into()
                }]
            )
            .is_ok()
        );
        let err = ctx.write(Level::Info, "c".into(), vec![]);
        assert!(err.is_err_and(|e| e.downcast_ref::<OutputLimitExceeded>().is_some()));
        assert!(log.truncated());
        assert_eq!(log.records().len(), 3); // two records and the marker

        let mut log = LogCtx::new("t", 100, SHOWN_RECORD_OVERHEAD + 8);
        let mut ctx = LogView {
            ctx: &mut log,
            meter: &mut meter,
        };
        assert!(ctx.write(Level::Info, "12345".into(), vec![]).is_ok());
        assert!(ctx.write(Level::Info, "12345".into(), vec![]).is_err());
    }

    /// Whether a record of `n` empty fields is refused under these budgets.
    fn refuses_empty_fields(n: usize, output_bytes: usize, host_memory: u64) -> bool {
        let mut log = LogCtx::new("t", 1_000_000, output_bytes);
        let mut meter = Meter::new(
            std::time::Instant::now(),
            std::time::Duration::from_secs(60),
            None,
            host_memory,
        );
        let mut ctx = LogView {
            ctx: &mut log,
            meter: &mut meter,
        };
        let fields: Vec<Field> = (0..n)
            .map(|_| Field {
                key: String::new(),
                value: String::new(),
            })
            .collect();
        let refused = ctx.write(Level::Info, String::new(), fields).is_err();
        refused && log.truncated()
    }

    #[test]
    fn empty_fields_are_not_free() {
        // Shown size against the output limit...
        assert!(refuses_empty_fields(200_000, 1 << 20, u64::MAX));
        assert!(!refuses_empty_fields(1_000, 1 << 20, u64::MAX));
        // ...and what the host holds for them against its memory budget.
        assert!(refuses_empty_fields(30_000, 1 << 30, 1 << 20));
    }
}
