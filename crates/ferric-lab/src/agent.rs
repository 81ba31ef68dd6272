//! The agent process of a simulated machine that booted PXE:
//! `ferric-agent --api-url API_URL --disk DISK --mac MAC --listen ADDR`,
//! or, when the machine followed a boot config, `--cmdline NAME.cmdline`
//! (the kernel's command line, with `ipa-api-url` and `BOOTIF`) in place
//! of `--api-url`; its output appended to `NAME.agent.log`. How it ends tells the machine
//! what happened: exit 0 is the OS powering the machine off, exit 10 a
//! reboot, anything else a machine that hung powered on.

use std::fs::OpenOptions;
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use crate::config::MachineSpec;

/// The exit code with which the agent asks for a reboot (`standby.run_image`).
pub const REBOOT_EXIT_CODE: i32 = 10;

/// How long a soft power off waits after SIGTERM before SIGKILL.
pub const SOFT_STOP_GRACE: Duration = Duration::from_secs(2);

/// What an agent's end means for its machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentExit {
    /// Exit 0: the OS powered the machine off.
    PowerOff,
    /// Exit 10: the OS rebooted the machine.
    Reboot,
    /// Anything else: the machine hangs, powered on.
    Hung(String),
}

impl AgentExit {
    /// Reads an exit status.
    pub fn of(status: ExitStatus) -> Self {
        match (status.code(), status.signal()) {
            (Some(0), _) => AgentExit::PowerOff,
            (Some(REBOOT_EXIT_CODE), _) => AgentExit::Reboot,
            (Some(code), _) => AgentExit::Hung(format!("the agent exited with code {code}")),
            (None, Some(signal)) => AgentExit::Hung(format!("the agent died of signal {signal}")),
            (None, None) => AgentExit::Hung("the agent ended".into()),
        }
    }
}

/// How to stop an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGTERM, then SIGKILL after [`SOFT_STOP_GRACE`] (an ACPI soft off).
    Soft,
    /// SIGKILL at once (pulling the plug).
    Hard,
}

/// Where a started agent learns the Ironic API from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentSource {
    /// `--api-url` from the machines file (booting PXE without a boot config).
    ApiUrl,
    /// `--cmdline FILE`: the kernel command line the boot config gave.
    Cmdline(PathBuf),
}

/// Starts agents: which binary, which API, where their logs go.
#[derive(Debug, Clone)]
pub struct AgentLauncher {
    /// The `ferric-agent` binary.
    pub bin: PathBuf,
    /// Its `--api-url`.
    pub api_url: String,
    /// Where `NAME.agent.log` files are written.
    pub log_dir: PathBuf,
}

/// `ferric-agent` next to the current executable, else on PATH.
pub fn default_agent_bin() -> PathBuf {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("ferric-agent")));
    match beside {
        Some(path) if path.is_file() => path,
        _ => PathBuf::from("ferric-agent"),
    }
}

/// A loopback port free right now, for an agent's `--listen`.
pub fn free_loopback_port() -> std::io::Result<SocketAddr> {
    let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
    probe.local_addr()
}

impl AgentLauncher {
    /// The log file of a machine's agent.
    pub fn log_path(&self, name: &str) -> PathBuf {
        self.log_dir.join(format!("{name}.agent.log"))
    }

    /// Where a machine's network boot is logged.
    pub fn boot_log_path(&self, name: &str) -> PathBuf {
        self.log_dir.join(format!("{name}.boot.log"))
    }

    /// Writes a machine's kernel command line to `NAME.cmdline`, for the
    /// agent's `--cmdline`.
    pub fn write_cmdline(&self, name: &str, cmdline: &str) -> std::io::Result<PathBuf> {
        let path = self.log_dir.join(format!("{name}.cmdline"));
        std::fs::write(&path, format!("{cmdline}\n")).map_err(|e| {
            std::io::Error::new(e.kind(), format!("cannot write {}: {e}", path.display()))
        })?;
        Ok(path)
    }

    /// Starts a machine's agent listening on `listen`.
    pub fn start(
        &self,
        spec: &MachineSpec,
        listen: SocketAddr,
        source: &AgentSource,
    ) -> std::io::Result<RunningAgent> {
        let (flag, value) = match source {
            AgentSource::ApiUrl => ("--api-url", self.api_url.clone()),
            AgentSource::Cmdline(path) => ("--cmdline", path.display().to_string()),
        };
        let args = [
            flag.to_string(),
            value,
            "--disk".to_string(),
            spec.disk.display().to_string(),
            "--mac".to_string(),
            spec.mac.to_string(),
            "--listen".to_string(),
            listen.to_string(),
        ];
        let log = open_log(&self.log_path(&spec.name), &self.bin, &args)?;
        let child = tokio::process::Command::new(&self.bin)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                std::io::Error::new(e.kind(), format!("cannot run {}: {e}", self.bin.display()))
            })?;
        let pid = child.id().unwrap_or_default();
        Ok(RunningAgent { child, pid })
    }
}

fn open_log(path: &Path, bin: &Path, args: &[String]) -> std::io::Result<std::fs::File> {
    let mut log = OpenOptions::new().create(true).append(true).open(path)?;
    writeln!(
        log,
        "--- ferric-lab: starting {} {}",
        bin.display(),
        args.join(" ")
    )?;
    Ok(log)
}

/// A started agent process.
#[derive(Debug)]
pub struct RunningAgent {
    child: tokio::process::Child,
    pid: u32,
}

impl RunningAgent {
    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Waits for it to end (cancel-safe).
    pub async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        self.child.wait().await
    }

    /// Stops it and reaps it.
    pub async fn stop(mut self, how: Stop) {
        if how == Stop::Soft && self.terminate() {
            if let Ok(Ok(status)) = tokio::time::timeout(SOFT_STOP_GRACE, self.child.wait()).await {
                tracing::debug!(pid = self.pid, ?status, "agent ended on SIGTERM");
                return;
            }
            tracing::info!(pid = self.pid, "agent still running after SIGTERM: SIGKILL");
        }
        if let Err(e) = self.child.kill().await {
            tracing::warn!(pid = self.pid, error = %e, "cannot kill the agent");
        }
    }

    /// Sends SIGTERM; false if the process is gone already.
    fn terminate(&mut self) -> bool {
        // The child is reaped only through `self.child`, so while it has not
        // been waited for successfully its pid cannot be reused.
        if !matches!(self.child.try_wait(), Ok(None)) {
            return false;
        }
        let Some(pid) = i32::try_from(self.pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        else {
            return false;
        };
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_of(script: &str) -> ExitStatus {
        std::process::Command::new("sh")
            .args(["-c", script])
            .status()
            .unwrap()
    }

    #[test]
    fn exit_codes_say_what_the_os_did() {
        assert_eq!(AgentExit::of(status_of("exit 0")), AgentExit::PowerOff);
        assert_eq!(AgentExit::of(status_of("exit 10")), AgentExit::Reboot);
        assert_eq!(
            AgentExit::of(status_of("exit 3")),
            AgentExit::Hung("the agent exited with code 3".into())
        );
        assert_eq!(
            AgentExit::of(status_of("kill -9 $$")),
            AgentExit::Hung("the agent died of signal 9".into())
        );
    }
}
