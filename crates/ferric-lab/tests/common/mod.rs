//! The virtual BMC run in-process on loopback, with a tiny shell script as
//! the agent that records its arguments and then sleeps (or exits with a
//! code the test asks for), so no Ferric server is needed.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ferric_lab::bmc::{run, BmcArgs, LabError};
use serde_json::Value;
use tokio::sync::oneshot;

/// A running BMC.
pub struct Bmc {
    pub dir: PathBuf,
    pub url: String,
    pub redfish: SocketAddr,
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), LabError>>>,
}

/// One machine of a test's machines file.
pub struct TestMachine {
    pub name: &'static str,
    pub mac: &'static str,
    pub username: &'static str,
    pub password: &'static str,
    pub ipmi_port: Option<u16>,
    /// Extra lines of the machine's table (before `[machine.faults]`).
    pub extra: &'static str,
}

impl TestMachine {
    pub fn new(name: &'static str, mac: &'static str) -> Self {
        TestMachine {
            name,
            mac,
            username: "admin",
            password: "password",
            ipmi_port: None,
            extra: "",
        }
    }
}

/// The agent stand-in: records `$*` in `DIR/argv`, exits with the code in
/// `DIR/exit.MAC` if that file exists (removing it), else sleeps, ignoring
/// SIGTERM if `DIR/ignore-term.MAC` exists.
pub fn write_agent_script(dir: &Path) -> PathBuf {
    let script = dir.join("fake-agent.sh");
    let body = format!(
        "#!/bin/sh\n\
         echo \"$*\" >> '{dir}/argv'\n\
         mac=\"$6\"\n\
         if [ -f '{dir}/exit.'\"$mac\" ]; then\n\
           code=$(cat '{dir}/exit.'\"$mac\")\n\
           rm -f '{dir}/exit.'\"$mac\"\n\
           exit \"$code\"\n\
         fi\n\
         if [ -f '{dir}/ignore-term.'\"$mac\" ]; then trap '' TERM; fi\n\
         exec sleep 600\n",
        dir = dir.display()
    );
    std::fs::write(&script, body).unwrap();
    let mut perms = std::fs::metadata(&script).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&script, perms).unwrap();
    script
}

/// The machines file for `machines`, disks in `dir`.
pub fn machines_file(dir: &Path, shared_ipmi: Option<u16>, machines: &[TestMachine]) -> String {
    let mut text = String::from("api_url = \"http://127.0.0.1:1\"\n");
    if let Some(port) = shared_ipmi {
        text.push_str(&format!("ipmi_listen = \"127.0.0.1:{port}\"\n"));
    }
    for m in machines {
        text.push_str(&format!(
            "[[machine]]\nname = \"{}\"\nmac = \"{}\"\ndisk = \"{}/{}.disk\"\ndisk_size = \"1M\"\nusername = \"{}\"\npassword = \"{}\"\n",
            m.name,
            m.mac,
            dir.display(),
            m.name,
            m.username,
            m.password
        ));
        if let Some(port) = m.ipmi_port {
            text.push_str(&format!("ipmi_listen = \"127.0.0.1:{port}\"\n"));
        }
        text.push_str(m.extra);
        text.push('\n');
    }
    text
}

/// Writes a disk file with an MBR boot signature.
pub fn sign_disk(path: &Path) {
    let mut disk = vec![0u8; 1 << 20];
    disk[510] = 0x55;
    disk[511] = 0xAA;
    std::fs::write(path, disk).unwrap();
}

impl Bmc {
    /// Starts a BMC in `dir` (its state directory) on a Redfish port.
    pub async fn start(dir: &Path, port: u16, machines_toml: &str) -> Bmc {
        let agent = write_agent_script(dir);
        Bmc::start_with_agent(dir, port, machines_toml, agent).await
    }

    /// Starts a BMC whose machines run `agent`.
    pub async fn start_with_agent(
        dir: &Path,
        port: u16,
        machines_toml: &str,
        agent: PathBuf,
    ) -> Bmc {
        if std::env::var_os("FERRIC_LAB_TEST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter("ferric_lab=debug,ferric_ipmi=debug")
                .with_test_writer()
                .try_init();
        }
        let machines = dir.join("machines.toml");
        std::fs::write(&machines, machines_toml).unwrap();
        let redfish: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let args = BmcArgs {
            machines,
            redfish_listen: Some(redfish),
            state_dir: Some(dir.to_path_buf()),
            agent_bin: Some(agent),
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(run(args, async move {
            let _ = stopped.await;
        }));
        let bmc = Bmc {
            dir: dir.to_path_buf(),
            url: format!("http://{redfish}"),
            redfish,
            client: reqwest::Client::new(),
            stop: Some(stop),
            task: Some(task),
        };
        bmc.wait_ready().await;
        bmc
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let answer = self
                .client
                .get(format!("{}/lab/machines", self.url))
                .send()
                .await;
            if matches!(answer, Ok(ref r) if r.status().is_success()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the BMC did not start: {answer:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the BMC and waits for it (its agents are stopped).
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }

    /// `GET /lab/machines/NAME`.
    pub async fn lab(&self, name: &str) -> Value {
        self.client
            .get(format!("{}/lab/machines/{name}", self.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Waits until the lab state of a machine satisfies `check`.
    pub async fn wait_lab(&self, name: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let state = self.lab(name).await;
            if check(&state) {
                return state;
            }
            assert!(Instant::now() < deadline, "{name}: never {what}: {state}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `PUT /lab/machines/NAME/faults`.
    pub async fn set_faults(&self, name: &str, faults: Value) {
        let answer = self
            .client
            .put(format!("{}/lab/machines/{name}/faults", self.url))
            .json(&faults)
            .send()
            .await
            .unwrap();
        assert!(
            answer.status().is_success(),
            "{}",
            answer.text().await.unwrap()
        );
    }

    /// A Redfish request with basic auth.
    pub fn redfish(
        &self,
        method: reqwest::Method,
        path: &str,
        user: &str,
        password: &str,
    ) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.url))
            .basic_auth(user, Some(password))
    }

    /// The lines the agent stand-in recorded.
    pub fn agent_runs(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("argv"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Waits until the agent stand-in has recorded `count` runs.
    pub async fn wait_agent_runs(&self, count: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let runs = self.agent_runs();
            if runs.len() >= count {
                return runs;
            }
            assert!(
                Instant::now() < deadline,
                "{} agent runs, not {count}: {runs:?}",
                runs.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Makes the agent runs of `mac` ignore SIGTERM.
    pub fn agents_ignore_sigterm(&self, mac: &str) {
        std::fs::write(self.dir.join(format!("ignore-term.{mac}")), "").unwrap();
    }

    /// Makes the next agent run of `mac` exit with `code`.
    pub fn next_agent_exits(&self, mac: &str, code: i32) {
        std::fs::write(self.dir.join(format!("exit.{mac}")), code.to_string()).unwrap();
    }
}

/// Whether a process is alive (not a zombie).
pub fn alive(pid: u64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}
