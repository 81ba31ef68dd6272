//! sushy-tools' emulator with its fake driver (`sushy-emulator --fake`), on 127.0.0.1, with its
//! state in a temporary directory; killed when dropped. The binary is `FERRIC_SUSHY_EMULATOR`,
//! else the first found of the venvs and `PATH`; without one, tests skip and say why.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What the emulator is started with, beyond its defaults (one fake system, powered off).
#[derive(Default)]
pub struct Setup {
    /// A Python literal for `SUSHY_EMULATOR_FAKE_SYSTEMS`.
    pub fake_systems: Option<String>,
    /// An htpasswd line (bcrypt) to require basic authentication.
    pub htpasswd: Option<String>,
}

pub struct Emulator {
    child: Child,
    dir: tempfile::TempDir,
    pub address: String,
}

fn binary() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("FERRIC_SUSHY_EMULATOR") {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!(
                "FERRIC_SUSHY_EMULATOR={} does not exist",
                path.display()
            ))
        };
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut candidates = vec![workspace.join("target/venv/bin/sushy-emulator")];
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|dir| dir.join("sushy-emulator")));
    }
    candidates
        .into_iter()
        .find(|c| c.is_file())
        .ok_or_else(|| "no sushy-emulator found (set FERRIC_SUSHY_EMULATOR)".to_owned())
}

impl Emulator {
    /// Starts the emulator on `port`, or `None` (printing why) when there is no emulator.
    pub async fn start(port: u16, setup: Setup) -> Option<Emulator> {
        let binary = match binary() {
            Ok(binary) => binary,
            Err(reason) => {
                assert!(
                    std::env::var_os("FERRIC_REQUIRE_PEERS").is_none(),
                    "a peer this test drives is missing (FERRIC_REQUIRE_PEERS is set)"
                );
                eprintln!("SKIPPED: {reason}");
                return None;
            }
        };
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("emulator.conf");
        fs::write(&config, config_text(dir.path(), &setup)).unwrap();
        let log = fs::File::create(dir.path().join("emulator.log")).unwrap();
        let child = Command::new(&binary)
            .args([
                "--fake",
                "-i",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "--config",
            ])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", binary.display()));
        let mut emulator = Emulator {
            child,
            dir,
            address: format!("http://127.0.0.1:{port}"),
        };
        emulator.wait_until_listening(port).await;
        Some(emulator)
    }

    async fn wait_until_listening(&mut self, port: u16) {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the emulator exited ({status}):\n{}", self.log());
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return;
            }
            if started.elapsed() > Duration::from_secs(30) {
                panic!("the emulator did not listen within 30 s:\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("emulator.log")).unwrap_or_default()
    }
}

fn config_text(dir: &Path, setup: &Setup) -> String {
    let mut text = format!("SUSHY_EMULATOR_STATE_DIR = {:?}\n", dir.join("state"));
    if let Some(systems) = &setup.fake_systems {
        text.push_str(&format!("SUSHY_EMULATOR_FAKE_SYSTEMS = {systems}\n"));
    }
    if let Some(line) = &setup.htpasswd {
        let file = dir.join("htpasswd");
        fs::write(&file, format!("{line}\n")).unwrap();
        text.push_str(&format!("SUSHY_EMULATOR_AUTH_FILE = {file:?}\n"));
    }
    text
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
