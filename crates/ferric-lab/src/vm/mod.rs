//! Machines that are qemu VMs: the BMC's requests carried out on a real
//! virtual machine through QMP. A power-on starts qemu with that boot's
//! boot order; a guest reboot ends qemu (`-no-reboot`) and the BMC starts it
//! again with the next boot's settings, so a boot device set through the
//! BMC takes effect at the next boot, once or persistently, as on real
//! hardware; a guest power-off ends it for good. qemu runs in its own
//! process group: a BMC that crashes leaves its VMs running, and the next
//! BMC adopts them through their QMP sockets.
//!
//! - [`qmp`]: the QMP client;
//! - [`qemu`]: the command line of one boot.

pub mod qemu;
pub mod qmp;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::{mpsc, watch};

use crate::config::MachineSpec;
use crate::machine::{disk_has_boot_signature, BootDevice, BootMode, MachineState, Media, Power};
use crate::sim::{
    stopped, BootChange, Command, Machine, MachineError, PowerAction, Request, View, Wiring,
};
use crate::state::{StateError, StateStore};

use qemu::{Launch, VmFiles};
use qmp::{Event, Qmp};

/// How long a soft restart waits for the guest to power off before it is
/// forced.
const SOFT_RESTART_GRACE: Duration = Duration::from_secs(60);
/// How long qemu has to open its QMP socket, and to exit when told to.
const QEMU_START_TIMEOUT: Duration = Duration::from_secs(15);
const QEMU_QUIT_TIMEOUT: Duration = Duration::from_secs(5);

/// qemu's accelerator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    /// KVM, else TCG when KVM cannot start at all (qemu falls back by
    /// itself; a KVM that starts and then fails is not caught).
    Auto,
    Kvm,
    /// Software emulation: the default, as a /dev/kvm may be there and not
    /// work.
    #[default]
    Tcg,
}

/// The disk file's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiskFormat {
    #[default]
    Raw,
    Qcow2,
}

/// A machine's `[machine.vm]` table: it is a qemu VM.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VmSpec {
    /// Memory in MiB.
    pub memory_mib: u64,
    /// Virtual CPUs.
    pub cpus: u32,
    /// The tap device its NIC is on (it must exist, in qemu's network
    /// namespace).
    pub tap: String,
    pub disk_format: DiskFormat,
    pub accel: Accel,
    /// The boot mode of a machine without saved state.
    pub boot_mode: Option<BootMode>,
    /// The qemu binary.
    pub qemu: PathBuf,
}

impl Default for VmSpec {
    fn default() -> Self {
        VmSpec {
            memory_mib: 512,
            cpus: 1,
            tap: String::new(),
            disk_format: DiskFormat::Raw,
            accel: Accel::Tcg,
            boot_mode: None,
            qemu: PathBuf::from("qemu-system-x86_64"),
        }
    }
}

impl VmSpec {
    /// Checks the values; `(field, message)` on the first bad one.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(64..=65536).contains(&self.memory_mib) {
            return Err(("memory_mib", "must be 64 to 65536".into()));
        }
        if !(1..=64).contains(&self.cpus) {
            return Err(("cpus", "must be 1 to 64".into()));
        }
        let tap_ok = !self.tap.is_empty()
            && self.tap.len() < 16
            && self
                .tap
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !tap_ok {
            return Err((
                "tap",
                "must be an interface name (1 to 15 of a-z, 0-9, '-', '_', '.')".into(),
            ));
        }
        Ok(())
    }
}

/// qemu running one boot of the machine.
struct Running {
    qmp: Qmp,
    events: mpsc::UnboundedReceiver<Event>,
    /// Our child; `None` for a qemu adopted from an earlier BMC.
    child: Option<tokio::process::Child>,
    pid: Option<u32>,
    /// The reason of the last SHUTDOWN event.
    shutdown_reason: Option<String>,
}

/// The task that owns a VM.
struct VmOwner {
    spec: Arc<MachineSpec>,
    vm: VmSpec,
    files: VmFiles,
    state: MachineState,
    store: StateStore,
    publish: watch::Sender<View>,
    running: Option<Running>,
    error: Option<String>,
    /// A soft restart waits for the guest's power-off until then.
    restart_by: Option<tokio::time::Instant>,
}

/// Why qemu ended.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    Rebooted,
    PoweredOff,
    Other(String),
}

fn ended_by(reason: Option<&str>) -> Ended {
    match reason {
        Some("guest-reset") => Ended::Rebooted,
        Some("guest-shutdown") => Ended::PoweredOff,
        Some(other) => Ended::Other(format!("qemu stopped ({other})")),
        None => Ended::Other("qemu exited without saying why".into()),
    }
}

async fn next_event(running: &mut Option<Running>) -> Option<Event> {
    match running {
        Some(r) => r.events.recv().await,
        None => std::future::pending().await,
    }
}

async fn restart_deadline(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Starts the task of a machine that is a VM (`spec.vm`; without one, the
/// defaults, which no tap validates: callers pass VM specs only): its qemu
/// runs in `run_dir` (QMP socket, pid file, serial log), its state is in
/// `store`. The task ends when
/// `shutdown` turns true, stopping its qemu.
pub fn start(
    index: usize,
    spec: MachineSpec,
    run_dir: &std::path::Path,
    store: StateStore,
    shutdown: watch::Receiver<bool>,
) -> Result<(Arc<Machine>, tokio::task::JoinHandle<()>), StateError> {
    let fresh = store.path(&spec.name).is_none_or(|path| !path.exists());
    let mut state = store.load(&spec.name)?;
    let vm = spec.vm.clone().unwrap_or_default();
    if fresh {
        if let Some(mode) = vm.boot_mode {
            state.boot_mode = mode;
        }
    }
    let spec = Arc::new(spec);
    let (machine, Wiring { inbox, publish }) = Machine::wired(index, spec.clone(), &state);
    let owner = VmOwner {
        files: VmFiles::new(run_dir, &spec.name),
        spec,
        vm,
        state,
        store,
        publish,
        running: None,
        error: None,
        restart_by: None,
    };
    Ok((machine, tokio::spawn(owner.run(inbox, shutdown))))
}

impl VmOwner {
    async fn run(
        mut self,
        mut inbox: mpsc::Receiver<Request>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        self.resume().await;
        self.publish();
        loop {
            tokio::select! {
                request = inbox.recv() => {
                    let Some(request) = request else { break };
                    let result = self.handle(request.command).await;
                    let _ = request.reply.send(result);
                }
                event = next_event(&mut self.running) => match event {
                    Some(event) => self.on_event(event),
                    None => self.qemu_ended().await,
                },
                () = restart_deadline(self.restart_by) => {
                    tracing::warn!(machine = %self.spec.name, "the guest did not power off for the soft restart: forcing it");
                    self.restart_by = None;
                    self.quit().await;
                    self.boot().await;
                }
                () = stopped(&mut shutdown) => break,
            }
            self.publish();
        }
        if self.running.is_some() {
            tracing::info!(machine = %self.spec.name, "the BMC stops: stopping the VM (its saved power state stays)");
            self.quit().await;
        }
    }

    /// A BMC (re)start: a VM that was on is adopted if its qemu still runs,
    /// else booted again. A qemu that runs but does not answer on its QMP
    /// socket (hung, or another client holds it) is killed first: two
    /// qemus must never share the disk and the tap.
    async fn resume(&mut self) {
        if self.state.power != Power::On {
            return;
        }
        let mut last_error = None;
        for attempt in 0..3 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            match Qmp::connect(&self.files.qmp).await {
                Ok((qmp, events)) => {
                    let pid = read_pid(&self.files.pid);
                    tracing::info!(machine = %self.spec.name, ?pid, "adopted the VM's running qemu");
                    self.running = Some(Running {
                        qmp,
                        events,
                        child: None,
                        pid,
                        shutdown_reason: None,
                    });
                    return;
                }
                Err(e) => last_error = Some(e),
            }
        }
        if let Some(pid) = self.own_qemu_pid() {
            tracing::warn!(machine = %self.spec.name, pid, error = ?last_error.map(|e| e.to_string()), "its qemu runs but cannot be reached over QMP: killing it");
            kill(Some(pid));
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        tracing::info!(machine = %self.spec.name, "was on and its qemu is gone: booting it again");
        self.boot().await;
    }

    /// The pid in the pid file, if that process is this VM's qemu (its
    /// command line names this VM's QMP socket).
    fn own_qemu_pid(&self) -> Option<u32> {
        let pid = read_pid(&self.files.pid)?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let qmp = self.files.qmp.display().to_string().replace(',', ",,");
        String::from_utf8_lossy(&cmdline)
            .contains(&qmp)
            .then_some(pid)
    }

    async fn handle(&mut self, command: Command) -> Result<(), MachineError> {
        match command {
            Command::Power(action) => return self.power(action).await,
            Command::Boot(change) => self.set_boot(change),
            Command::InsertMedia(media) => {
                tracing::warn!(machine = %self.spec.name, image = ?media.image, "virtual media recorded, but the lab's VMs have no CD drive");
                self.state.media = media;
            }
            Command::EjectMedia => self.state.media = Media::default(),
        }
        self.save();
        Ok(())
    }

    fn set_boot(&mut self, change: BootChange) {
        change.apply(&mut self.state);
        tracing::info!(machine = %self.spec.name, boot_override = ?self.state.boot_override, mode = ?self.state.boot_mode, "boot settings changed: they take effect at the next boot");
    }

    async fn power(&mut self, action: PowerAction) -> Result<(), MachineError> {
        let on = self.running.is_some();
        tracing::info!(machine = %self.spec.name, ?action, on, "power request");
        match action {
            PowerAction::On if !on => self.boot().await,
            PowerAction::ForceOff if on => {
                self.quit().await;
                self.powered_off();
            }
            PowerAction::SoftOff if on => self.acpi_power_button().await,
            PowerAction::ForceRestart | PowerAction::Cycle => {
                self.quit().await;
                self.boot().await;
            }
            PowerAction::SoftRestart if on => {
                self.acpi_power_button().await;
                self.restart_by = Some(tokio::time::Instant::now() + SOFT_RESTART_GRACE);
            }
            PowerAction::SoftRestart => self.boot().await,
            PowerAction::Nmi if on => {
                let sent = match &self.running {
                    Some(running) => running.qmp.execute("inject-nmi", None).await,
                    None => return Err(MachineError::NotPoweredOn),
                };
                match sent {
                    Ok(_) => {
                        self.state.nmi_count = self.state.nmi_count.saturating_add(1);
                        self.save();
                    }
                    Err(e) => {
                        tracing::warn!(machine = %self.spec.name, error = %e, "NMI not delivered")
                    }
                }
            }
            PowerAction::Nmi => return Err(MachineError::NotPoweredOn),
            PowerAction::On | PowerAction::ForceOff | PowerAction::SoftOff => {}
        }
        Ok(())
    }

    async fn acpi_power_button(&mut self) {
        if let Some(running) = &self.running {
            if let Err(e) = running.qmp.execute("system_powerdown", None).await {
                tracing::warn!(machine = %self.spec.name, error = %e, "ACPI power button not delivered");
            }
        }
    }

    fn on_event(&mut self, event: Event) {
        tracing::debug!(machine = %self.spec.name, event = %event.name, data = %event.data, "qemu event");
        if event.name == "SHUTDOWN" {
            if let Some(running) = &mut self.running {
                running.shutdown_reason = event
                    .data
                    .get("reason")
                    .and_then(|r| r.as_str())
                    .map(str::to_owned);
            }
        }
    }

    /// qemu's QMP connection closed: it exited. A reboot boots again.
    async fn qemu_ended(&mut self) {
        let Some(mut running) = self.running.take() else {
            return;
        };
        reap(&mut running).await;
        let ended = ended_by(running.shutdown_reason.as_deref());
        let name = &self.spec.name;
        match ended {
            Ended::Rebooted => {
                tracing::info!(machine = %name, "the guest rebooted");
                self.boot().await;
            }
            Ended::PoweredOff if self.restart_by.take().is_some() => {
                tracing::info!(machine = %name, "the guest powered off for the soft restart");
                self.boot().await;
            }
            Ended::PoweredOff => {
                tracing::info!(machine = %name, "the guest powered the machine off");
                self.powered_off();
            }
            Ended::Other(why) => {
                tracing::error!(machine = %name, error = %why, log = %self.files.log.display(), "the VM stopped");
                self.error = Some(why);
                self.powered_off();
            }
        }
    }

    fn powered_off(&mut self) {
        self.restart_by = None;
        self.state.power = Power::Off;
        self.save();
    }

    /// Ends qemu: `quit` over QMP, SIGKILL if it lingers.
    async fn quit(&mut self) {
        let Some(mut running) = self.running.take() else {
            return;
        };
        let _ = running.qmp.execute("quit", None).await;
        let closed = tokio::time::timeout(QEMU_QUIT_TIMEOUT, async {
            while running.events.recv().await.is_some() {}
        })
        .await;
        if closed.is_err() {
            tracing::warn!(machine = %self.spec.name, pid = ?running.pid, "qemu did not quit: killing it");
            match &mut running.child {
                Some(child) => {
                    let _ = child.start_kill();
                }
                None => kill(running.pid.or_else(|| self.own_qemu_pid())),
            }
        }
        reap(&mut running).await;
    }

    /// A boot: picks the devices (a once override is consumed), starts
    /// qemu with them.
    async fn boot(&mut self) {
        // A qcow2 file is not read here: the VM's firmware finds out.
        let bootable = match self.vm.disk_format {
            DiskFormat::Qcow2 => true,
            DiskFormat::Raw => disk_has_boot_signature(&self.spec.disk).unwrap_or(false),
        };
        // The override's device goes first even if it looks unbootable:
        // the firmware tries it and goes on, as a real machine's does.
        let asked = self.state.boot_override.device;
        let mut picked = self.state.boot(&self.spec.boot_order, bootable);
        match asked {
            BootDevice::Pxe => picked = crate::machine::Booted::Pxe,
            BootDevice::Disk => picked = crate::machine::Booted::Disk,
            BootDevice::None | BootDevice::Cdrom | BootDevice::Bios => {}
        }
        self.state.last_boot = picked;
        let order = qemu::boot_devices(picked, &self.spec.boot_order);
        tracing::info!(machine = %self.spec.name, count = self.state.boot_count, ?picked, ?order, mode = ?self.state.boot_mode, "booting the VM");
        match self.start_qemu(order).await {
            Ok(running) => {
                self.running = Some(running);
                self.error = None;
            }
            Err(why) => {
                tracing::error!(machine = %self.spec.name, error = %why, "the VM did not start");
                self.error = Some(why);
                self.state.power = Power::Off;
            }
        }
        self.save();
    }

    async fn start_qemu(&self, order: Vec<crate::config::BootSource>) -> Result<Running, String> {
        if self.state.boot_mode == BootMode::Uefi && !self.files.uefi_vars.exists() {
            std::fs::copy(qemu::OVMF_VARS, &self.files.uefi_vars)
                .map_err(|e| format!("cannot copy {}: {e}", qemu::OVMF_VARS))?;
        }
        std::fs::write(&self.files.sercon, qemu::SERCON_PORT)
            .map_err(|e| format!("{}: {e}", self.files.sercon.display()))?;
        let _ = std::fs::remove_file(&self.files.qmp);
        let launch = Launch {
            name: &self.spec.name,
            mac: self.spec.mac,
            disk: &self.spec.disk,
            vm: &self.vm,
            files: &self.files,
            mode: self.state.boot_mode,
            order,
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.files.log)
            .map_err(|e| format!("{}: {e}", self.files.log.display()))?;
        let log_err = log
            .try_clone()
            .map_err(|e| format!("{}: {e}", self.files.log.display()))?;
        let mut child = tokio::process::Command::new(&self.vm.qemu)
            .args(qemu::arguments(&launch))
            .stdin(std::process::Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.vm.qemu.display()))?;
        let pid = child.id();
        let deadline = tokio::time::Instant::now() + QEMU_START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "qemu exited at once ({status}): {}",
                    last_lines(&self.files.log, 5)
                ));
            }
            if let Ok((qmp, events)) = Qmp::connect(&self.files.qmp).await {
                tracing::info!(machine = %self.spec.name, ?pid, serial = %self.files.serial.display(), "qemu started");
                return Ok(Running {
                    qmp,
                    events,
                    child: Some(child),
                    pid,
                    shutdown_reason: None,
                });
            }
            if tokio::time::Instant::now() >= deadline {
                let _ = child.start_kill();
                let _ = child.wait().await;
                return Err("qemu did not open its QMP socket within 15 s".into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn save(&self) {
        if let Err(e) = self.store.save(&self.spec.name, &self.state) {
            tracing::error!(machine = %self.spec.name, error = %e, "cannot save the machine's state");
        }
    }

    fn publish(&self) {
        self.publish.send_replace(View {
            state: self.state.clone(),
            qemu_pid: self.running.as_ref().and_then(|r| r.pid),
            serial_log: Some(self.files.serial.clone()),
            agent_error: self.error.clone(),
            ..View::default()
        });
    }
}

/// Waits for our own qemu child to be reaped (an adopted one is not ours).
async fn reap(running: &mut Running) {
    if let Some(child) = &mut running.child {
        if tokio::time::timeout(QEMU_QUIT_TIMEOUT, child.wait())
            .await
            .is_err()
        {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }
}

fn kill(pid: Option<u32>) {
    let pid = pid
        .and_then(|p| i32::try_from(p).ok())
        .and_then(rustix::process::Pid::from_raw);
    if let Some(pid) = pid {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    }
}

fn read_pid(path: &std::path::Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The last lines of a log, for an error message.
fn last_lines(path: &std::path::Path, count: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(count)..].join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn why_qemu_ended() {
        assert_eq!(ended_by(Some("guest-reset")), Ended::Rebooted);
        assert_eq!(ended_by(Some("guest-shutdown")), Ended::PoweredOff);
        assert!(matches!(ended_by(Some("guest-panic")), Ended::Other(_)));
        assert!(matches!(ended_by(None), Ended::Other(_)));
    }

    #[test]
    fn specs_are_validated() {
        let good = VmSpec {
            tap: "ferric-tap0".into(),
            ..VmSpec::default()
        };
        assert!(good.validate().is_ok());
        let no_tap = VmSpec::default();
        assert_eq!(no_tap.validate().unwrap_err().0, "tap");
        let tiny = VmSpec {
            memory_mib: 16,
            ..good.clone()
        };
        assert_eq!(tiny.validate().unwrap_err().0, "memory_mib");
        let long = VmSpec {
            tap: "a-very-long-tap-name".into(),
            ..good
        };
        assert_eq!(long.validate().unwrap_err().0, "tap");
    }
}
