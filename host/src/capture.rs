//! Bounded capture of a guest's stdout and stderr.
//!
//! The guest writes to its WASI output streams; each write lands in a
//! [`CapturePipe`] that keeps at most `limit` bytes. The write that would cross
//! the limit keeps what fits and then traps with [`OutputLimitExceeded`], which
//! ends the run as `output_limit`. Host memory per stream is therefore bounded
//! by the limit, whatever the guest does, and output produced before any trap
//! is kept.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// The run produced more output than its limit allows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{stream} exceeded the output limit of {limit} bytes")]
pub struct OutputLimitExceeded {
    pub stream: &'static str,
    pub limit: usize,
}

/// Largest write permit granted at once.
const PERMIT: usize = 64 * 1024;

#[derive(Debug, Default)]
struct Inner {
    buf: Vec<u8>,
    truncated: bool,
    limit: usize,
}

/// A cloneable, bounded in-memory sink for one output stream.
#[derive(Debug, Clone)]
pub struct CapturePipe {
    stream: &'static str,
    inner: Arc<Mutex<Inner>>,
}

/// What a pipe captured, as text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Captured {
    pub text: String,
    pub truncated: bool,
}

impl CapturePipe {
    pub fn new(stream: &'static str, limit: usize) -> Self {
        CapturePipe {
            stream,
            inner: Arc::new(Mutex::new(Inner {
                limit,
                ..Inner::default()
            })),
        }
    }

    /// Empty the pipe for the next session cell, with its own limit.
    pub fn reset(&self, limit: usize) {
        let mut inner = self.lock();
        inner.buf = Vec::new();
        inner.truncated = false;
        inner.limit = limit;
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A poisoned lock only means another writer panicked mid-append; the
        // buffer is still a valid byte vector.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Append `bytes`, or as much as fits; `Err` once the limit is crossed.
    pub fn append(&self, bytes: &[u8]) -> Result<(), OutputLimitExceeded> {
        let mut inner = self.lock();
        let limit = inner.limit;
        let room = limit.saturating_sub(inner.buf.len());
        if bytes.len() <= room && !inner.truncated {
            inner.buf.extend_from_slice(bytes);
            return Ok(());
        }
        if !inner.truncated {
            inner.buf.extend_from_slice(&bytes[..room.min(bytes.len())]);
            inner.truncated = true;
        }
        Err(OutputLimitExceeded {
            stream: self.stream,
            limit,
        })
    }

    /// The captured text (invalid UTF-8 replaced), with a marker if truncated.
    pub fn captured(&self) -> Captured {
        let inner = self.lock();
        let mut text = String::from_utf8_lossy(&inner.buf).into_owned();
        if inner.truncated {
            if !text.ends_with('\n') && !text.is_empty() {
                text.push('\n');
            }
            text.push_str(&truncation_marker(self.stream, inner.limit));
        }
        Captured {
            text,
            truncated: inner.truncated,
        }
    }
}

/// The line appended to a stream cut at its limit.
pub fn truncation_marker(stream: &str, limit: usize) -> String {
    format!("[llmos: {stream} truncated at {limit} bytes]\n")
}

#[async_trait::async_trait]
impl OutputStream for CapturePipe {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.append(&bytes)
            .map_err(|e| StreamError::Trap(wasmtime::Error::new(e)))
    }
    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }
    fn check_write(&mut self) -> Result<usize, StreamError> {
        // Always grant a permit: a write past the limit must trap (output_limit)
        // rather than leave the guest waiting on a stream that never drains.
        Ok(PERMIT)
    }
}

#[async_trait::async_trait]
impl Pollable for CapturePipe {
    async fn ready(&mut self) {}
}

impl AsyncWrite for CapturePipe {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(
            self.append(buf)
                .map(|()| buf.len())
                .map_err(|e| io::Error::new(io::ErrorKind::StorageFull, e)),
        )
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl IsTerminal for CapturePipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturePipe {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_what_fits_then_refuses() {
        let p = CapturePipe::new("stdout", 10);
        assert!(p.append(b"hello").is_ok());
        assert!(p.append(b" world!").is_err());
        assert!(p.append(b"more").is_err());
        let c = p.captured();
        assert!(c.truncated);
        assert!(
            c.text
                .starts_with("hello worl\n[llmos: stdout truncated at 10 bytes]")
        );
    }

    #[test]
    fn exact_fit_is_not_truncated() {
        let p = CapturePipe::new("stderr", 4);
        assert!(p.append(b"abcd").is_ok());
        assert_eq!(
            p.captured(),
            Captured {
                text: "abcd".into(),
                truncated: false
            }
        );
    }
}
