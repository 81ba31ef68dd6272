//! The agent's log kept in memory (the last [`LOG_CAP`] bytes) as well as
//! written to stderr, so `log.collect_system_logs` can return it. Secrets
//! never reach it: nothing logs tokens or passwords.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Arc, Mutex};

use tracing_subscriber::fmt::MakeWriter;

/// How much of the log is kept.
pub const LOG_CAP: usize = 1024 * 1024;

/// A shared, bounded copy of the log.
#[derive(Clone, Default)]
pub struct LogBuffer {
    bytes: Arc<Mutex<VecDeque<u8>>>,
}

impl LogBuffer {
    /// The kept log.
    pub fn contents(&self) -> Vec<u8> {
        let bytes = self.bytes.lock().unwrap_or_else(|p| p.into_inner());
        bytes.iter().copied().collect()
    }

    fn append(&self, data: &[u8]) {
        let mut bytes = self.bytes.lock().unwrap_or_else(|p| p.into_inner());
        bytes.extend(data);
        let excess = bytes.len().saturating_sub(LOG_CAP);
        bytes.drain(..excess);
    }
}

/// Writes one log event to stderr and the buffer.
pub struct TeeWriter {
    buffer: LogBuffer,
}

impl Write for TeeWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buffer.append(data);
        // A closed stderr must not stop the agent.
        let _ = std::io::stderr().write_all(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> MakeWriter<'a> for LogBuffer {
    type Writer = TeeWriter;

    fn make_writer(&'a self) -> Self::Writer {
        TeeWriter {
            buffer: self.clone(),
        }
    }
}

/// Installs the global subscriber writing through `buffer`.
pub fn init(buffer: &LogBuffer, debug: bool) {
    let level = if debug {
        tracing::Level::DEBUG
    } else {
        tracing::Level::INFO
    };
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(false)
        .with_writer(buffer.clone())
        .try_init();
}

/// Logging to standard error only, for the binary's tools.
pub fn init_stderr(debug: bool) {
    let level = if debug {
        tracing::Level::DEBUG
    } else {
        tracing::Level::INFO
    };
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_the_tail() {
        let buf = LogBuffer::default();
        let mut w = buf.make_writer();
        w.write_all(&vec![b'a'; LOG_CAP]).unwrap();
        w.write_all(b"tail").unwrap();
        let got = buf.contents();
        assert_eq!(got.len(), LOG_CAP);
        assert!(got.ends_with(b"tail"));
    }
}
