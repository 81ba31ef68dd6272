//! A QMP (QEMU Machine Protocol) client over a Unix socket: the greeting,
//! capability negotiation, commands matched to their answers by `id`, and
//! the events qemu sends in between, handed to the owner in order. When
//! qemu exits the socket closes: pending commands fail and the event stream
//! ends.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot};

/// The longest a command may take to be answered.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// A QMP exchange that failed.
#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    #[error("cannot connect to QMP at {path}: {source}")]
    Connect {
        path: String,
        source: std::io::Error,
    },
    #[error("QMP: {0}")]
    Io(#[from] std::io::Error),
    #[error("QMP: qemu closed the connection")]
    Closed,
    #[error("QMP: no answer to {0} within 10 s")]
    Timeout(String),
    #[error("QMP: unexpected message: {0}")]
    Protocol(String),
    /// qemu answered with an error (its class and description).
    #[error("QMP {command}: {class}: {desc}")]
    Command {
        command: String,
        class: String,
        desc: String,
    },
}

/// An asynchronous event qemu sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// `SHUTDOWN`, `RESET`, `STOP`, `RESUME`, ...
    pub name: String,
    /// Its `data` (`{"guest": true, "reason": "guest-shutdown"}`).
    pub data: Value,
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Value, (String, String)>>>>>;

/// A connected, negotiated QMP session.
pub struct Qmp {
    writer: tokio::sync::Mutex<OwnedWriteHalf>,
    pending: Pending,
    next_id: AtomicU64,
}

impl Qmp {
    /// Connects to qemu's QMP socket, reads the greeting and leaves
    /// capability negotiation mode. Returns the session and its events.
    pub async fn connect(path: &Path) -> Result<(Qmp, mpsc::UnboundedReceiver<Event>), QmpError> {
        let stream = UnixStream::connect(path)
            .await
            .map_err(|source| QmpError::Connect {
                path: path.display().to_string(),
                source,
            })?;
        let (read, write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        let greeting = tokio::time::timeout(COMMAND_TIMEOUT, lines.next_line())
            .await
            .map_err(|_| QmpError::Timeout("the greeting".into()))??
            .ok_or(QmpError::Closed)?;
        let greeting: Value =
            serde_json::from_str(&greeting).map_err(|_| QmpError::Protocol(greeting.clone()))?;
        if greeting.get("QMP").is_none() {
            return Err(QmpError::Protocol(greeting.to_string()));
        }
        let pending: Pending = Arc::default();
        let (events, receiver) = mpsc::unbounded_channel();
        tokio::spawn(read_messages(lines, pending.clone(), events));
        let qmp = Qmp {
            writer: tokio::sync::Mutex::new(write),
            pending,
            next_id: AtomicU64::new(1),
        };
        qmp.execute("qmp_capabilities", None).await?;
        Ok((qmp, receiver))
    }

    /// Runs a command; its `return` value.
    pub async fn execute(
        &self,
        command: &str,
        arguments: Option<Value>,
    ) -> Result<Value, QmpError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut message = json!({"execute": command, "id": id});
        if let Some(arguments) = arguments {
            message["arguments"] = arguments;
        }
        let (reply, answer) = oneshot::channel();
        lock(&self.pending).insert(id, reply);
        let mut line = message.to_string();
        line.push('\n');
        let sent = self.writer.lock().await.write_all(line.as_bytes()).await;
        if let Err(e) = sent {
            lock(&self.pending).remove(&id);
            return Err(if e.kind() == std::io::ErrorKind::BrokenPipe {
                QmpError::Closed
            } else {
                QmpError::Io(e)
            });
        }
        match tokio::time::timeout(COMMAND_TIMEOUT, answer).await {
            Err(_) => {
                lock(&self.pending).remove(&id);
                Err(QmpError::Timeout(command.to_owned()))
            }
            Ok(Err(_)) => Err(QmpError::Closed),
            Ok(Ok(Ok(value))) => Ok(value),
            Ok(Ok(Err((class, desc)))) => Err(QmpError::Command {
                command: command.to_owned(),
                class,
                desc,
            }),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Hands answers to their commands and events to the owner until the
/// socket closes; then fails whatever is still pending.
async fn read_messages(
    mut lines: tokio::io::Lines<BufReader<tokio::net::unix::OwnedReadHalf>>,
    pending: Pending,
    events: mpsc::UnboundedSender<Event>,
) {
    while let Ok(Some(line)) = lines.next_line().await {
        match classify(&line) {
            Message::Answer(id, result) => {
                if let Some(reply) = lock(&pending).remove(&id) {
                    let _ = reply.send(result);
                }
            }
            Message::Event(event) => {
                let _ = events.send(event);
            }
            Message::Other => tracing::debug!(%line, "QMP: message ignored"),
        }
    }
    lock(&pending).clear();
}

#[derive(Debug, PartialEq)]
enum Message {
    Answer(u64, Result<Value, (String, String)>),
    Event(Event),
    Other,
}

fn classify(line: &str) -> Message {
    let Ok(value) = serde_json::from_str::<Value>(line) else {
        return Message::Other;
    };
    if let Some(name) = value.get("event").and_then(Value::as_str) {
        return Message::Event(Event {
            name: name.to_owned(),
            data: value.get("data").cloned().unwrap_or(Value::Null),
        });
    }
    let Some(id) = value.get("id").and_then(Value::as_u64) else {
        return Message::Other;
    };
    if let Some(result) = value.get("return") {
        return Message::Answer(id, Ok(result.clone()));
    }
    match value.get("error") {
        Some(error) => {
            let text = |key: &str| {
                error
                    .get(key)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            Message::Answer(id, Err((text("class"), text("desc"))))
        }
        None => Message::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_events_and_noise_are_told_apart() {
        assert_eq!(
            classify(r#"{"return": {}, "id": 3}"#),
            Message::Answer(3, Ok(json!({})))
        );
        assert_eq!(
            classify(r#"{"id": 4, "error": {"class": "GenericError", "desc": "no"}}"#),
            Message::Answer(4, Err(("GenericError".into(), "no".into())))
        );
        assert_eq!(
            classify(
                r#"{"timestamp": {"seconds": 1}, "event": "SHUTDOWN", "data": {"guest": true, "reason": "guest-reset"}}"#
            ),
            Message::Event(Event {
                name: "SHUTDOWN".into(),
                data: json!({"guest": true, "reason": "guest-reset"})
            })
        );
        assert_eq!(classify("not json"), Message::Other);
        assert_eq!(classify(r#"{"return": {}}"#), Message::Other);
    }

    /// A QMP peer on a socket pair: greets, answers, sends an event.
    #[tokio::test]
    async fn a_session_negotiates_runs_commands_and_gets_events() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qmp.sock");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let peer = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let (read, mut write) = stream.into_split();
            let mut lines = BufReader::new(read).lines();
            write
                .write_all(b"{\"QMP\": {\"version\": {}, \"capabilities\": []}}\n")
                .await
                .unwrap();
            while let Some(line) = lines.next_line().await.unwrap() {
                let message: Value = serde_json::from_str(&line).unwrap();
                let id = message["id"].clone();
                let answer = match message["execute"].as_str().unwrap() {
                    "query-status" => json!({"return": {"status": "running"}, "id": id}),
                    "bogus" => {
                        json!({"error": {"class": "CommandNotFound", "desc": "The command bogus has not been found"}, "id": id})
                    }
                    _ => json!({"return": {}, "id": id}),
                };
                let event = json!({"event": "RESET", "data": {"guest": false}});
                write
                    .write_all(format!("{event}\n{answer}\n").as_bytes())
                    .await
                    .unwrap();
            }
        });
        let (qmp, mut events) = Qmp::connect(&path).await.unwrap();
        let status = qmp.execute("query-status", None).await.unwrap();
        assert_eq!(status["status"], "running");
        let err = qmp.execute("bogus", None).await.unwrap_err();
        assert!(err.to_string().contains("CommandNotFound"), "{err}");
        let first = events.recv().await.unwrap();
        assert_eq!(first.name, "RESET");
        drop(qmp);
        peer.await.unwrap();
    }
}
