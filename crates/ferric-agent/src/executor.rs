//! Command bookkeeping with IPA's semantics (`ExecuteCommandMixin`): one
//! command at a time, results kept in order for `GET /v1/commands/`,
//! asynchronous commands run on their own task, and waiting on a result.
//!
//! Progress of a running command: while an image is written, the running
//! command's `command_result` is `{"progress": {"bytes_downloaded": N,
//! "bytes_written": N, "bytes_total": N|null}}` (IPA has `null` there);
//! once the command ends `command_result` is the command's real result.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use ferric_ipa::command::{CommandError, CommandResult, CommandStatus};
use ferric_ipa::RestError;
use serde_json::Value;
use tokio::sync::watch;

/// Reads a running command's progress as JSON.
pub type ProgressReader = Arc<dyn Fn() -> Value + Send + Sync>;

/// One command's record.
pub struct CommandEntry {
    result: Mutex<CommandResult>,
    progress: Mutex<Option<ProgressReader>>,
    done: watch::Sender<bool>,
}

impl CommandEntry {
    fn new(result: CommandResult) -> Arc<Self> {
        let done = result.command_status.is_done();
        Arc::new(Self {
            result: Mutex::new(result),
            progress: Mutex::new(None),
            done: watch::channel(done).0,
        })
    }

    fn lock(&self) -> MutexGuard<'_, CommandResult> {
        self.result
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The command's id.
    pub fn id(&self) -> String {
        self.lock().id.clone()
    }

    /// The command's short name.
    pub fn name(&self) -> String {
        self.lock().command_name.clone()
    }

    /// True once it ended.
    pub fn is_done(&self) -> bool {
        self.lock().command_status.is_done()
    }

    /// The result as served, with progress while running.
    pub fn snapshot(&self) -> CommandResult {
        let mut result = self.lock().clone();
        if !result.command_status.is_done() {
            let progress = self
                .progress
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            if let Some(read) = progress {
                let mut map = serde_json::Map::new();
                map.insert("progress".into(), read());
                result.command_result = Some(Value::Object(map));
            }
        }
        result
    }

    /// Lets readers see progress while the command runs.
    pub fn set_progress(&self, reader: ProgressReader) {
        *self.progress.lock().unwrap_or_else(|p| p.into_inner()) = Some(reader);
    }

    /// Records the end of the command and wakes waiters.
    pub fn finish(&self, outcome: Result<Value, Failure>) {
        {
            let mut result = self.lock();
            match outcome {
                Ok(value) => {
                    result.command_status = CommandStatus::Succeeded;
                    result.command_result = Some(value);
                }
                Err(Failure::VersionMismatch(error)) => {
                    result.command_status = CommandStatus::VersionMismatch;
                    result.command_error = Some(CommandError::Rest(error));
                    result.command_result = None;
                }
                Err(Failure::Error(error)) => {
                    result.command_status = CommandStatus::Failed;
                    result.command_error = Some(CommandError::Rest(error));
                }
            }
        }
        self.done.send_replace(true);
    }

    /// Waits until the command ends.
    pub async fn wait(&self) {
        let mut rx = self.done.subscribe();
        // The sender lives in self, so the channel cannot close while we wait.
        let _ = rx.wait_for(|done| *done).await;
    }
}

/// How a command failed.
#[derive(Debug, Clone)]
pub enum Failure {
    /// Status FAILED.
    Error(RestError),
    /// Status CLEAN_VERSION_MISMATCH.
    VersionMismatch(RestError),
}

impl From<RestError> for Failure {
    fn from(error: RestError) -> Self {
        if error.error_type == ferric_ipa::ErrorKind::VersionMismatch.type_name() {
            Self::VersionMismatch(error)
        } else {
            Self::Error(error)
        }
    }
}

/// Every command since start, and the one-at-a-time rule.
#[derive(Default)]
pub struct CommandStore {
    entries: Mutex<Vec<Arc<CommandEntry>>>,
    /// Held while a command is being started (IPA's `command_lock`).
    start_lock: tokio::sync::Mutex<()>,
}

impl CommandStore {
    fn entries(&self) -> MutexGuard<'_, Vec<Arc<CommandEntry>>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every result, oldest first.
    pub fn list(&self) -> Vec<CommandResult> {
        self.entries().iter().map(|e| e.snapshot()).collect()
    }

    /// One command by id.
    pub fn get(&self, id: &str) -> Option<Arc<CommandEntry>> {
        self.entries().iter().find(|e| e.id() == id).cloned()
    }

    fn busy_check(&self) -> Result<(), RestError> {
        match self.entries().last() {
            Some(last) if !last.is_done() => Err(RestError::agent_is_busy(&last.name())),
            _ => Ok(()),
        }
    }

    /// Runs a synchronous command to its end and records it. Errors of the
    /// client kind (400/404) are returned for an HTTP error instead of
    /// being recorded, as IPA raises `InvalidContentError`s.
    pub async fn run_sync<F>(&self, name: &str, work: F) -> Result<Arc<CommandEntry>, RestError>
    where
        F: Future<Output = Result<Value, RestError>>,
    {
        let _guard = self.start_lock.lock().await;
        self.busy_check()?;
        let entry = CommandEntry::new(CommandResult::running(
            uuid::Uuid::new_v4().to_string(),
            name,
        ));
        match work.await {
            Err(e) if e.code == 400 => return Err(e),
            outcome => entry.finish(outcome.map_err(Failure::from)),
        }
        self.entries().push(entry.clone());
        Ok(entry)
    }

    /// Starts an asynchronous command: `validate` runs first (its error is
    /// an HTTP error), then `start` receives the new entry and returns the
    /// future that runs the command on its own task; `on_end` runs after it.
    pub async fn run_async<V, S, Fut, E>(
        &self,
        name: &str,
        validate: V,
        start: S,
        on_end: E,
    ) -> Result<Arc<CommandEntry>, RestError>
    where
        V: FnOnce() -> Result<(), RestError>,
        S: FnOnce(Arc<CommandEntry>) -> Fut,
        Fut: Future<Output = Result<Value, Failure>> + Send + 'static,
        E: FnOnce() + Send + 'static,
    {
        let _guard = self.start_lock.lock().await;
        self.busy_check()?;
        validate()?;
        let entry = CommandEntry::new(CommandResult::running(
            uuid::Uuid::new_v4().to_string(),
            name,
        ));
        let work = start(entry.clone());
        let running = entry.clone();
        tokio::spawn(async move {
            let outcome = work.await;
            running.finish(outcome);
            on_end();
        });
        self.entries().push(entry.clone());
        Ok(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferric_ipa::ErrorKind;
    use serde_json::json;
    use std::time::Duration;

    #[tokio::test]
    async fn one_command_at_a_time() {
        let store = CommandStore::default();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let entry = store
            .run_async(
                "power_off",
                || Ok(()),
                |_| async move {
                    let _ = rx.await;
                    Ok(json!({"result": "power_off: done"}))
                },
                || {},
            )
            .await
            .unwrap();
        assert!(!entry.is_done());
        let busy = store
            .run_sync("sync", async { Ok(Value::Null) })
            .await
            .err()
            .unwrap();
        assert_eq!(
            busy.to_string(),
            "Agent is busy: executing command power_off"
        );
        tx.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), entry.wait())
            .await
            .unwrap();
        assert_eq!(entry.snapshot().command_status, CommandStatus::Succeeded);
        let synced = store
            .run_sync("sync", async { Ok(Value::Null) })
            .await
            .unwrap();
        assert!(synced.is_done());
        assert_eq!(store.list().len(), 2);
        assert!(store.get(&entry.id()).is_some());
        assert!(store.get("nope").is_none());
    }

    #[tokio::test]
    async fn validation_errors_are_not_recorded() {
        let store = CommandStore::default();
        let err = store
            .run_async(
                "prepare_image",
                || Err(RestError::new(ErrorKind::InvalidCommandParams, "bad")),
                |_| async { Ok(Value::Null) },
                || {},
            )
            .await
            .err()
            .unwrap();
        assert_eq!(err.code, 400);
        assert!(store.list().is_empty());
        let invalid = store
            .run_sync("get_clean_steps", async {
                Err(RestError::new(ErrorKind::InvalidCommandParams, "x"))
            })
            .await;
        assert!(invalid.is_err());
        let failed = store
            .run_sync("sync", async {
                Err(RestError::new(ErrorKind::CommandExecution, "disk gone"))
            })
            .await
            .unwrap();
        assert_eq!(failed.snapshot().command_status, CommandStatus::Failed);
    }

    #[tokio::test]
    async fn shows_progress_while_running_and_mismatch_status() {
        let store = CommandStore::default();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let entry = store
            .run_async(
                "execute_clean_step",
                || Ok(()),
                |entry: Arc<CommandEntry>| {
                    entry.set_progress(Arc::new(|| json!({"bytes_written": 5})));
                    async move {
                        let _ = rx.await;
                        Err(Failure::from(RestError::version_mismatch(
                            &json!({"a": "1"}),
                            &json!({"a": "2"}),
                        )))
                    }
                },
                || {},
            )
            .await
            .unwrap();
        assert_eq!(
            entry.snapshot().command_result,
            Some(json!({"progress": {"bytes_written": 5}}))
        );
        tx.send(()).unwrap();
        entry.wait().await;
        let done = entry.snapshot();
        assert_eq!(done.command_status, CommandStatus::VersionMismatch);
        assert_eq!(done.command_result, None);
    }
}
