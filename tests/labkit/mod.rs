//! Shared by the VM lab's tests: a lab made by `ferric lab up` (removed by
//! `ferric lab down` whatever happens), the peers that drive it (ipmitool,
//! curl, the openstack CLI) run inside its network namespace, `ferric
//! serve` on its bridge, and the lab's boot artefacts.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The tools missing for a lab test (and `root` when not root).
pub fn missing(tools: &[&'static str]) -> Vec<String> {
    let mut missing: Vec<String> = tools
        .iter()
        .filter(|tool| {
            !Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .map(|t| t.to_string())
        .collect();
    if !is_root() {
        missing.push("root".into());
    }
    missing
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// Whether to skip: prints why, or panics when FERRIC_REQUIRE_PEERS=1.
pub fn skip(test: &str, missing: &[String]) -> bool {
    if missing.is_empty() {
        return false;
    }
    if std::env::var("FERRIC_REQUIRE_PEERS").as_deref() == Ok("1") {
        panic!("{test}: missing {missing:?} (FERRIC_REQUIRE_PEERS=1)");
    }
    eprintln!("{test}: skipped, missing {missing:?}");
    true
}

pub fn ferric() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ferric"))
}

/// The BMC passwords of the labs up: never in a failure message.
static SECRETS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

fn redact(text: &str) -> String {
    let secrets = SECRETS.lock().unwrap_or_else(|p| p.into_inner());
    secrets.iter().fold(text.to_string(), |text, secret| {
        text.replace(secret.as_str(), "***")
    })
}

/// Runs a command to success; its stdout.
pub fn run(command: &mut Command) -> String {
    let out = command.output().expect("run");
    assert!(
        out.status.success(),
        "{}",
        redact(&format!(
            "{command:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether `needle` occurs in `hay`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

/// The last `n` bytes of a log, as text.
pub fn tail(bytes: &[u8], n: usize) -> String {
    String::from_utf8_lossy(&bytes[bytes.len().saturating_sub(n)..]).into_owned()
}

pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(')')
            .is_some_and(|(_, r)| !r.trim_start().starts_with('Z'))
    })
}

/// A lab of VMs, removed by `ferric lab down` when dropped.
pub struct Lab {
    pub dir: PathBuf,
    pub netns: String,
    pub subnet: String,
    pub record: Value,
}

impl Lab {
    /// `ferric lab up` with `extra` flags (e.g. `--vms 2 --uefi`).
    pub fn up(dir: &Path, netns: &str, subnet: &str, extra: &[&str]) -> Lab {
        let _ = ferric()
            .args(["lab", "down", "--dir"])
            .arg(dir)
            .args(["--netns", netns])
            .output();
        run(ferric()
            .args(["lab", "up", "--subnet", subnet, "--dir"])
            .arg(dir)
            .args(["--netns", netns])
            .args(extra));
        let record: Value =
            serde_json::from_slice(&std::fs::read(dir.join("lab.json")).expect("lab.json"))
                .expect("lab.json");
        if let Some(vms) = record["vms"].as_array() {
            let mut secrets = SECRETS.lock().unwrap_or_else(|p| p.into_inner());
            secrets.extend(
                vms.iter()
                    .filter_map(|vm| vm["password"].as_str().map(String::from)),
            );
        }
        Lab {
            dir: dir.to_path_buf(),
            netns: netns.to_string(),
            subnet: subnet.to_string(),
            record,
        }
    }

    /// The bridge's address.
    pub fn host_ip(&self) -> String {
        format!("{}.1", self.subnet)
    }

    /// A field of VM `index`'s record, as text.
    pub fn vm(&self, index: usize, key: &str) -> String {
        match &self.record["vms"][index][key] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }

    /// A long-running command inside the namespace.
    pub fn daemon(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.netns, program]);
        command
    }

    /// A command run inside the namespace, for at most 120 s.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.netns, "timeout", "120", program]);
        command
    }

    pub fn ipmitool(&self, index: usize, words: &str) -> String {
        run(self
            .command("ipmitool")
            .args(["-I", "lanplus", "-H"])
            .arg(self.vm(index, "ipmi_address"))
            .args(["-p", &self.vm(index, "ipmi_port")])
            .args(["-U", &self.vm(index, "username")])
            .args(["-P", &self.vm(index, "password")])
            .args(words.split(' ')))
    }

    pub fn redfish(&self, method: &str, path: &str, body: Option<&str>) -> String {
        let url = format!(
            "{}{path}",
            self.record["redfish_url"].as_str().expect("url")
        );
        let mut command = self.command("curl");
        command
            .args(["-sSf", "-X", method, "-u"])
            .arg(format!(
                "{}:{}",
                self.vm(0, "username"),
                self.vm(0, "password")
            ))
            .args(["-H", "Content-Type: application/json"]);
        if let Some(body) = body {
            command.args(["-d", body]);
        }
        run(command.arg(url))
    }

    /// `/lab/machines/NAME`.
    pub fn machine(&self, index: usize) -> Value {
        let path = format!("/lab/machines/{}", self.vm(index, "name"));
        serde_json::from_str(&self.redfish("GET", &path, None)).expect("lab view")
    }

    /// VM `index`'s serial log, as bytes.
    pub fn serial(&self, index: usize) -> Vec<u8> {
        std::fs::read(self.vm(index, "serial_log")).unwrap_or_default()
    }

    /// Waits up to `limit` for VM `index`'s serial log to hold `text` after
    /// `from` bytes; how long it took.
    pub fn wait_serial(&self, index: usize, from: usize, text: &str, limit: Duration) -> Duration {
        let start = Instant::now();
        while start.elapsed() < limit {
            if self
                .serial(index)
                .get(from..)
                .is_some_and(|s| contains(s, text.as_bytes()))
            {
                return start.elapsed();
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        let tail = tail(&self.serial(index), 3000);
        panic!(
            "no {text:?} on {}'s serial console: ...{tail}",
            self.vm(index, "name")
        );
    }

    pub fn down(&self) -> String {
        run(ferric()
            .args(["lab", "down", "--dir"])
            .arg(&self.dir)
            .args(["--netns", &self.netns]))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = ferric()
            .args(["lab", "down", "--dir"])
            .arg(&self.dir)
            .args(["--netns", &self.netns])
            .output();
    }
}

/// A child killed when dropped.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `ferric serve` on the lab's bridge: the API (where the agents call
/// back too), DHCP, TFTP and HTTP boot; `config` is its TOML. Its log
/// (stdout) is drained into `DIR/serve.log`.
pub fn serve(lab: &Lab, dir: &Path, config: &str) -> Killed {
    std::fs::create_dir_all(dir).expect("serve dir");
    let config_path = dir.join("ferric.toml");
    std::fs::write(&config_path, config).expect("config");
    let ip = lab.host_ip();
    let mut command = lab.daemon(env!("CARGO_BIN_EXE_ferric"));
    command
        .args(["serve", "--listen", &format!("{ip}:6385")])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--config")
        .arg(&config_path)
        .args(["--dhcp-interface", "br0", "--dhcp-range"])
        .arg(format!("{}.100,{}.199", lab.subnet, lab.subnet))
        .args(["--tftp-listen", &format!("{ip}:69")])
        .args(["--http-listen", &format!("{ip}:8080")])
        .env("FERRIC_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = command.spawn().expect("ferric serve");
    let stdout = child.stdout.take().expect("stdout");
    let server = Killed(child);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let log_path = dir.join("serve.log");
    std::thread::spawn(move || {
        use std::io::Write;
        let mut log = std::fs::File::create(log_path).ok();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("ferric listening on") {
                let _ = ready_tx.send(());
            }
            if let Some(log) = &mut log {
                let _ = writeln!(log, "{line}");
            }
        }
    });
    ready_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("ferric serve did not start");
    server
}

/// The openstack CLI: FERRIC_OPENSTACK, else target/venv's, else PATH's.
pub fn openstack_bin() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("FERRIC_OPENSTACK") {
        return Some(PathBuf::from(path));
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/venv/bin/openstack");
    if venv.exists() {
        return Some(venv);
    }
    let found = Command::new("sh")
        .args(["-c", "command -v openstack"])
        .output()
        .ok()?;
    found
        .status
        .success()
        .then(|| PathBuf::from(String::from_utf8_lossy(&found.stdout).trim()))
}

/// The openstack CLI against the lab's `ferric serve`.
pub struct Openstack {
    pub bin: PathBuf,
    pub netns: String,
    pub endpoint: String,
}

impl Openstack {
    pub fn new(lab: &Lab, bin: PathBuf) -> Self {
        Openstack {
            bin,
            netns: lab.netns.clone(),
            endpoint: format!("http://{}:6385", lab.host_ip()),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.netns, "timeout", "120"])
            .arg(&self.bin)
            .args(["baremetal"])
            .args(args)
            .env("OS_AUTH_TYPE", "none")
            .env("OS_ENDPOINT", &self.endpoint)
            .env("OS_BAREMETAL_API_VERSION", "1.78");
        command
    }

    /// `openstack baremetal ARGS`, to success; its stdout.
    pub fn run(&self, args: &[&str]) -> String {
        run(&mut self.command(args))
    }

    /// A field of `node show`.
    pub fn field(&self, node: &str, field: &str) -> String {
        self.run(&["node", "show", node, "-f", "value", "-c", field])
            .trim()
            .to_string()
    }

    /// Waits up to `limit` for the node's provision state; fails on a
    /// `* failed` state with the node's last error.
    pub fn wait_state(&self, node: &str, want: &str, limit: Duration) -> Duration {
        let start = Instant::now();
        loop {
            let state = self.field(node, "provision_state");
            if state == want {
                return start.elapsed();
            }
            if state.ends_with("failed") {
                panic!("{node}: {state}: {}", self.field(node, "last_error"));
            }
            assert!(
                start.elapsed() < limit,
                "{node}: still {state} after {limit:?}, waiting for {want}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// The lab's boot artefacts: the deploy ramdisk and the test images.
pub struct Assets {
    pub dir: PathBuf,
    pub images: Value,
}

impl Assets {
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// A file's sha256, from images.json.
    pub fn sha256(&self, name: &str) -> String {
        self.images["files"]
            .as_array()
            .and_then(|files| files.iter().find(|f| f["name"] == name))
            .and_then(|f| f["sha256"].as_str())
            .unwrap_or_else(|| panic!("{name} not in images.json"))
            .to_string()
    }

    pub fn marker(&self, key: &str) -> String {
        self.images[key].as_str().expect("marker").to_string()
    }
}

/// The static agent the ramdisk is built with.
pub fn static_agent() -> PathBuf {
    std::env::var_os("FERRIC_STATIC_AGENT")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("target/x86_64-unknown-linux-gnu/release/ferric-agent")
        })
}

/// FERRIC_LAB_ASSETS (default target/lab-assets), built there by `ferric
/// ramdisk build` and `ferric lab images` when missing; `None` (with why)
/// when they cannot be.
pub fn assets() -> Result<Assets, String> {
    let dir = std::env::var_os("FERRIC_LAB_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/lab-assets"));
    // Tests run in parallel processes: one builds, the others wait.
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let lock = std::fs::File::create(dir.join(".build.lock")).map_err(|e| e.to_string())?;
    lock.lock().map_err(|e| e.to_string())?;
    if !dir.join("ferric-deploy.initramfs").exists() {
        let agent = static_agent();
        if !agent.exists() {
            return Err(format!(
                "no static agent at {} (RUSTFLAGS=\"-C target-feature=+crt-static\" cargo build --release -p ferric-agent --target x86_64-unknown-linux-gnu)",
                agent.display()
            ));
        }
        let out = ferric()
            .args(["ramdisk", "build", "--agent"])
            .arg(&agent)
            .arg("--out")
            .arg(&dir)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "ferric ramdisk build: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    if !dir.join("images.json").exists() {
        let out = ferric()
            .args(["lab", "images", "--out"])
            .arg(&dir)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "ferric lab images: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    let images = std::fs::read(dir.join("images.json")).map_err(|e| e.to_string())?;
    let images = serde_json::from_slice(&images).map_err(|e| e.to_string())?;
    Ok(Assets { dir, images })
}
