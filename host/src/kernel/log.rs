//! `llmos:kernel/log`: structured logs from the artifact.
//!
//! Records are kept per run (they become [`Outcome::logs`](crate::Outcome))
//! and forwarded to `tracing` under the target `llmos::artifact` with the
//! artifact id. Both the number of records and their total bytes are bounded:
//! the record that crosses either bound ends the run with `output_limit`.

use wasmtime::component::{HasData, Linker};

use crate::bindings::log::{self, Field, Level};
use crate::capture::OutputLimitExceeded;
use crate::outcome::{LogLevel, LogRecord};

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

    pub fn records(&self) -> &[LogRecord] {
        &self.records
    }

    pub fn into_records(self) -> Vec<LogRecord> {
        self.records
    }

    pub fn truncated(&self) -> bool {
        self.truncated
    }

    fn push(&mut self, record: LogRecord) -> Result<(), OutputLimitExceeded> {
        let size = record.message.len()
            + record
                .fields
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>();
        if self.truncated
            || self.records.len() >= self.max_records
            || self.bytes.saturating_add(size) > self.max_bytes
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

impl log::Host for LogCtx {
    fn write(&mut self, level: Level, message: String, fields: Vec<Field>) -> wasmtime::Result<()> {
        let level = match level {
            Level::Debug => LogLevel::Debug,
            Level::Info => LogLevel::Info,
            Level::Warn => LogLevel::Warn,
            Level::Error => LogLevel::Error,
        };
        let fields = fields.into_iter().map(|f| (f.key, f.value)).collect();
        self.push(LogRecord {
            level,
            message,
            fields,
        })?;
        Ok(())
    }
}

struct HasLog;

impl HasData for HasLog {
    type Data<'a> = &'a mut LogCtx;
}

/// Add `llmos:kernel/log` to `linker`, reaching the context through `get`.
pub fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut LogCtx,
) -> wasmtime::Result<()> {
    log::add_to_linker::<T, HasLog>(linker, get)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::log::Host;

    #[test]
    fn bounded_by_count_and_bytes() {
        let mut ctx = LogCtx::new("t", 2, 1000);
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
        assert!(ctx.truncated());
        assert_eq!(ctx.records().len(), 3); // two records and the marker

        let mut ctx = LogCtx::new("t", 100, 8);
        assert!(ctx.write(Level::Info, "12345".into(), vec![]).is_ok());
        assert!(ctx.write(Level::Info, "12345".into(), vec![]).is_err());
    }
}
