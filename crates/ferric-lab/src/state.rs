//! Where machines' state lives across restarts of the BMC: one JSON file per
//! machine in `--state-dir` (`NAME.json`), written atomically (a temporary
//! file, synced, then renamed over the old one). Without a directory the
//! state lives in memory only.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::machine::MachineState;

/// A state file that could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read machine state {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("machine state {path} is not valid: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("cannot write machine state {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Reads and writes machines' state files.
#[derive(Debug, Clone)]
pub struct StateStore {
    dir: Option<PathBuf>,
}

impl StateStore {
    /// A store in `dir`, or in memory only.
    pub fn new(dir: Option<PathBuf>) -> Self {
        StateStore { dir }
    }

    /// The file of a machine, when there is a directory.
    pub fn path(&self, name: &str) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(format!("{name}.json")))
    }

    /// The saved state of a machine; a machine never saved is off.
    pub fn load(&self, name: &str) -> Result<MachineState, StateError> {
        let Some(path) = self.path(name) else {
            return Ok(MachineState::default());
        };
        let text = match std::fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(MachineState::default())
            }
            Err(source) => return Err(StateError::Read { path, source }),
        };
        serde_json::from_slice(&text).map_err(|e| StateError::Invalid {
            path,
            message: e.to_string(),
        })
    }

    /// Saves a machine's state; a crash leaves the old file or the new one.
    pub fn save(&self, name: &str, state: &MachineState) -> Result<(), StateError> {
        let Some(path) = self.path(name) else {
            return Ok(());
        };
        let body = serde_json::to_vec_pretty(state).map_err(|e| StateError::Invalid {
            path: path.clone(),
            message: e.to_string(),
        })?;
        write_atomically(&path, &body).map_err(|source| StateError::Write { path, source })
    }
}

fn write_atomically(path: &Path, body: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(body)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::{BootDevice, BootMode, BootOverride, Booted, Power};

    fn sample() -> MachineState {
        MachineState {
            power: Power::On,
            boot_override: BootOverride {
                device: BootDevice::Disk,
                persistent: true,
            },
            boot_mode: BootMode::Legacy,
            boot_count: 7,
            last_boot: Booted::Pxe,
            nmi_count: 1,
            ..MachineState::default()
        }
    }

    #[test]
    fn saved_state_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(Some(dir.path().to_path_buf()));
        assert_eq!(store.load("m1").unwrap(), MachineState::default());
        store.save("m1", &sample()).unwrap();
        let again = StateStore::new(Some(dir.path().to_path_buf()));
        assert_eq!(again.load("m1").unwrap(), sample());
        assert_eq!(again.load("m2").unwrap(), MachineState::default());
        assert!(!dir.path().join("m1.json.tmp").exists());
        let text = std::fs::read_to_string(dir.path().join("m1.json")).unwrap();
        assert!(text.contains("\"power\": \"on\""), "{text}");
    }

    #[test]
    fn a_newer_save_replaces_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(Some(dir.path().to_path_buf()));
        store.save("m1", &sample()).unwrap();
        let off = MachineState {
            power: Power::Off,
            ..sample()
        };
        store.save("m1", &off).unwrap();
        assert_eq!(store.load("m1").unwrap().power, Power::Off);
    }

    #[test]
    fn a_broken_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("m1.json"), b"{\"power\": \"sideways\"}").unwrap();
        let store = StateStore::new(Some(dir.path().to_path_buf()));
        let e = store.load("m1").unwrap_err().to_string();
        assert!(e.contains("m1.json") && e.contains("sideways"), "{e}");
    }

    #[test]
    fn without_a_directory_nothing_is_written() {
        let store = StateStore::new(None);
        store.save("m1", &sample()).unwrap();
        assert_eq!(store.load("m1").unwrap(), MachineState::default());
    }
}
