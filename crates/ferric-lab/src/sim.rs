//! A simulated machine: one task owns its state and its agent process, and
//! carries out the BMC's requests one at a time (power, boot override,
//! virtual media) and the agent's end (power off, reboot, hang). Readers get
//! a snapshot without waiting for it; every change is saved and published.
//!
//! With a `boot_url`, booting PXE is a network boot ([`crate::firmware`])
//! that runs inside the task beside its requests: a power request while it
//! downloads drops it (closing the download) and is carried out at once.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::{mpsc, oneshot, watch};

use crate::agent::{self, AgentExit, AgentLauncher, AgentSource, RunningAgent, Stop};
use crate::config::MachineSpec;
use crate::faults::{Faults, LoginGuard};
use crate::firmware::{BootLog, Firmware};
use crate::machine::{
    disk_has_boot_signature, stable_uuid, BootConfig, BootDevice, BootMode, Booted, Loaded,
    MachineState, Media, Power,
};
use crate::state::StateStore;

/// A power request, as IPMI chassis control and Redfish reset types say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerAction {
    /// Boot, if off.
    On,
    /// Pull the plug: the agent is killed at once.
    ForceOff,
    /// ACPI soft off: SIGTERM, SIGKILL after 2 s.
    SoftOff,
    /// Hard reset: kill and boot again (an off machine just boots).
    ForceRestart,
    /// Soft off, then boot again (an off machine just boots).
    SoftRestart,
    /// Power cycle: hard off, then boot (an off machine just boots).
    Cycle,
    /// Diagnostic interrupt: logged and counted.
    Nmi,
}

/// A change of the boot settings; `None` fields stay as they are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BootChange {
    pub device: Option<BootDevice>,
    pub persistent: Option<bool>,
    pub mode: Option<BootMode>,
}

impl BootChange {
    /// Applies the change; no device means no override, once or not.
    pub(crate) fn apply(self, state: &mut MachineState) {
        let over = &mut state.boot_override;
        if let Some(device) = self.device {
            over.device = device;
        }
        if let Some(persistent) = self.persistent {
            over.persistent = persistent;
        }
        if over.device == BootDevice::None {
            over.persistent = false;
        }
        if let Some(mode) = self.mode {
            state.boot_mode = mode;
        }
    }
}

/// A request the machine refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MachineError {
    #[error("the machine is powered off")]
    NotPoweredOn,
    #[error("the machine is shutting down")]
    Stopped,
}

/// What a reader sees of a machine.
#[derive(Debug, Clone, Default)]
pub struct View {
    pub state: MachineState,
    pub agent_pid: Option<u32>,
    pub agent_listen: Option<SocketAddr>,
    /// Why the last agent (or VM) did not start or ended badly.
    pub agent_error: Option<String>,
    /// A VM's qemu process, while it runs.
    pub qemu_pid: Option<u32>,
    /// A VM's serial console log.
    pub serial_log: Option<std::path::PathBuf>,
}

pub(crate) enum Command {
    Power(PowerAction),
    Boot(BootChange),
    InsertMedia(Media),
    EjectMedia,
}

pub(crate) struct Request {
    pub(crate) command: Command,
    pub(crate) reply: oneshot::Sender<Result<(), MachineError>>,
}

/// The owner's ends of a machine's channels: its requests, its view.
pub(crate) struct Wiring {
    pub(crate) inbox: mpsc::Receiver<Request>,
    pub(crate) publish: watch::Sender<View>,
}

/// The handle through which the BMC's listeners reach a machine.
pub struct Machine {
    /// Its position in the machines file.
    pub index: usize,
    /// Its description.
    pub spec: Arc<MachineSpec>,
    /// Its stable UUID.
    pub uuid: uuid::Uuid,
    requests: mpsc::Sender<Request>,
    view: watch::Receiver<View>,
    faults: Mutex<Faults>,
    logins: Mutex<LoginGuard>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Machine {
    /// Starts a machine's task from its saved state; a machine that was on
    /// with its agent running gets its agent started again (one that was
    /// in the middle of a network boot boots from the network again). With
    /// `firmware`, booting PXE follows the boot config at its `boot_url`.
    /// The task ends, stopping the agent, when `shutdown` turns true.
    pub fn start(
        index: usize,
        spec: MachineSpec,
        saved: MachineState,
        store: StateStore,
        launcher: Arc<AgentLauncher>,
        firmware: Option<Arc<Firmware>>,
        shutdown: watch::Receiver<bool>,
    ) -> (Arc<Machine>, tokio::task::JoinHandle<()>) {
        let spec = Arc::new(spec);
        let (machine, Wiring { inbox, publish }) = Machine::wired(index, spec.clone(), &saved);
        let owner = Owner {
            agent_listen: spec.agent_listen,
            spec,
            state: saved,
            store,
            launcher,
            firmware,
            netboot: None,
            agent: None,
            agent_error: None,
            publish,
        };
        let task = tokio::spawn(owner.run(inbox, shutdown));
        (machine, task)
    }

    /// A machine's handle and the other ends of its channels, for the task
    /// that will own it.
    pub(crate) fn wired(
        index: usize,
        spec: Arc<MachineSpec>,
        saved: &MachineState,
    ) -> (Arc<Machine>, Wiring) {
        let (requests, inbox) = mpsc::channel(16);
        let (publish, view) = watch::channel(View {
            state: saved.clone(),
            ..View::default()
        });
        let machine = Arc::new(Machine {
            index,
            uuid: stable_uuid(&spec.name),
            faults: Mutex::new(spec.faults.clone()),
            logins: Mutex::new(LoginGuard::default()),
            spec,
            requests,
            view,
        });
        (machine, Wiring { inbox, publish })
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// A snapshot of its state.
    pub fn view(&self) -> View {
        self.view.borrow().clone()
    }

    /// Carries out a power request; returns when it is done (a soft off
    /// may take up to 2 s).
    pub async fn power(&self, action: PowerAction) -> Result<(), MachineError> {
        self.ask(Command::Power(action)).await
    }

    /// Changes the boot override or mode.
    pub async fn set_boot(&self, change: BootChange) -> Result<(), MachineError> {
        self.ask(Command::Boot(change)).await
    }

    /// Inserts virtual media.
    pub async fn insert_media(&self, media: Media) -> Result<(), MachineError> {
        self.ask(Command::InsertMedia(media)).await
    }

    /// Ejects virtual media.
    pub async fn eject_media(&self) -> Result<(), MachineError> {
        self.ask(Command::EjectMedia).await
    }

    async fn ask(&self, command: Command) -> Result<(), MachineError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Request { command, reply })
            .await
            .map_err(|_| MachineError::Stopped)?;
        answer.await.unwrap_or(Err(MachineError::Stopped))
    }

    /// Its faults now.
    pub fn faults(&self) -> Faults {
        lock(&self.faults).clone()
    }

    /// Replaces its faults.
    pub fn set_faults(&self, faults: Faults) {
        tracing::info!(machine = self.name(), ?faults, "faults changed");
        *lock(&self.faults) = faults;
    }

    /// Whether logins are refused now.
    pub fn is_locked_out(&self, now: Instant) -> bool {
        lock(&self.logins).is_locked(now)
    }

    /// Records a failed login (a wrong password over IPMI or Redfish).
    pub fn record_failed_login(&self, now: Instant) {
        let faults = self.faults();
        if lock(&self.logins).record_failure(now, &faults) {
            tracing::warn!(machine = self.name(), "too many failed logins: locked out");
        }
    }

    /// Records a good login: failures are counted from zero again.
    pub fn record_good_login(&self) {
        lock(&self.logins).record_success();
    }

    /// Seconds of lockout left.
    pub fn locked_for(&self, now: Instant) -> Option<u64> {
        lock(&self.logins).locked_for(now)
    }
}

/// The task that owns a machine.
struct Owner {
    spec: Arc<MachineSpec>,
    state: MachineState,
    store: StateStore,
    launcher: Arc<AgentLauncher>,
    firmware: Option<Arc<Firmware>>,
    /// The network boot in progress.
    netboot: Option<NetbootFuture>,
    agent: Option<RunningAgent>,
    agent_listen: Option<SocketAddr>,
    agent_error: Option<String>,
    publish: watch::Sender<View>,
}

/// Completes once `shutdown` turns true (or its sender is gone).
pub(crate) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

async fn agent_end(agent: &mut Option<RunningAgent>) -> std::io::Result<std::process::ExitStatus> {
    match agent {
        Some(agent) => agent.wait().await,
        None => std::future::pending().await,
    }
}

type NetbootFuture = Pin<Box<dyn Future<Output = BootConfig> + Send>>;

async fn netboot_end(netboot: &mut Option<NetbootFuture>) -> BootConfig {
    match netboot {
        Some(boot) => boot.as_mut().await,
        None => std::future::pending().await,
    }
}

impl Owner {
    async fn run(
        mut self,
        mut inbox: mpsc::Receiver<Request>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        if self.state.power == Power::On && self.state.last_boot == Booted::Pxe {
            self.resume_pxe();
        }
        self.publish();
        loop {
            tokio::select! {
                request = inbox.recv() => {
                    let Some(request) = request else { break };
                    let result = self.handle(request.command).await;
                    let _ = request.reply.send(result);
                }
                ended = agent_end(&mut self.agent) => self.agent_ended(ended),
                record = netboot_end(&mut self.netboot) => {
                    self.netboot = None;
                    self.network_boot_done(record);
                }
                () = stopped(&mut shutdown) => break,
            }
            self.publish();
        }
        if let Some(agent) = self.agent.take() {
            agent.stop(Stop::Soft).await;
        }
    }

    async fn handle(&mut self, command: Command) -> Result<(), MachineError> {
        match command {
            Command::Power(action) => return self.power(action).await,
            Command::Boot(change) => self.set_boot(change),
            Command::InsertMedia(media) => {
                tracing::info!(machine = %self.spec.name, image = ?media.image, "virtual media inserted");
                self.state.media = media;
            }
            Command::EjectMedia => {
                tracing::info!(machine = %self.spec.name, "virtual media ejected");
                self.state.media = Media::default();
            }
        }
        self.save();
        Ok(())
    }

    fn set_boot(&mut self, change: BootChange) {
        change.apply(&mut self.state);
        tracing::info!(
            machine = %self.spec.name,
            boot_override = ?self.state.boot_override,
            mode = ?self.state.boot_mode,
            "boot settings changed"
        );
    }

    async fn power(&mut self, action: PowerAction) -> Result<(), MachineError> {
        let on = self.state.power == Power::On;
        tracing::info!(machine = %self.spec.name, ?action, on, "power request");
        match action {
            PowerAction::On if !on => self.boot(),
            PowerAction::On => {}
            PowerAction::ForceOff | PowerAction::SoftOff if on => {
                let how = if action == PowerAction::SoftOff {
                    Stop::Soft
                } else {
                    Stop::Hard
                };
                self.stop_running(how).await;
                self.state.power = Power::Off;
                self.save();
            }
            PowerAction::ForceOff | PowerAction::SoftOff => {}
            PowerAction::ForceRestart | PowerAction::Cycle => {
                self.stop_running(Stop::Hard).await;
                self.boot();
            }
            PowerAction::SoftRestart => {
                self.stop_running(Stop::Soft).await;
                self.boot();
            }
            PowerAction::Nmi if on => {
                self.state.nmi_count = self.state.nmi_count.saturating_add(1);
                tracing::warn!(machine = %self.spec.name, count = self.state.nmi_count, "NMI");
                self.save();
            }
            PowerAction::Nmi => return Err(MachineError::NotPoweredOn),
        }
        Ok(())
    }

    /// A BMC restart is not a boot: what the machine ran, runs again.
    fn resume_pxe(&mut self) {
        let name = &self.spec.name;
        let config = self.state.last_boot_config.as_ref();
        match config.map(|c| (c.loaded, c.cmdline.clone().unwrap_or_default())) {
            None => {
                tracing::info!(machine = %name, "was running its agent: starting it again");
                self.start_agent(&AgentSource::ApiUrl);
            }
            Some((Loaded::Agent, cmdline)) => {
                tracing::info!(machine = %name, "was running the agent its boot config loaded: starting it again");
                self.start_booted_agent(&cmdline);
            }
            Some((Loaded::Loading, _)) => {
                tracing::info!(machine = %name, "was booting from the network: booting from it again");
                self.start_network_boot();
            }
            Some(_) => {}
        }
    }

    fn disk_bootable(&self) -> bool {
        disk_has_boot_signature(&self.spec.disk).unwrap_or_else(|e| {
            tracing::warn!(machine = %self.spec.name, disk = %self.spec.disk.display(), error = %e, "cannot read the disk");
            false
        })
    }

    fn boot(&mut self) {
        let bootable = self.disk_bootable();
        let booted = self.state.boot(&self.spec.boot_order, bootable);
        let name = &self.spec.name;
        let count = self.state.boot_count;
        match booted {
            Booted::Pxe if self.firmware.is_some() => {
                tracing::info!(machine = %name, count, "booted PXE: following the boot config");
                self.start_network_boot();
            }
            Booted::Pxe => {
                tracing::info!(machine = %name, count, "booted PXE: starting the agent");
                self.start_agent(&AgentSource::ApiUrl);
            }
            other => self.log_boot(other),
        }
        self.save();
    }

    /// Logs a boot that runs nothing of the lab's.
    fn log_boot(&self, booted: Booted) {
        let name = &self.spec.name;
        let count = self.state.boot_count;
        match booted {
            Booted::Pxe => {
                tracing::info!(machine = %name, count, "netbooted its instance: the OS runs")
            }
            Booted::Disk => tracing::info!(machine = %name, count, "booted its disk: the OS runs"),
            Booted::Cd => tracing::info!(
                machine = %name,
                count,
                image = ?self.state.media.image,
                "booted the virtual CD (nothing runs)"
            ),
            Booted::Bios => tracing::info!(machine = %name, count, "booted into firmware setup"),
            Booted::None => tracing::warn!(machine = %name, count, "no bootable device"),
        }
    }

    fn boot_log(&self) -> BootLog {
        BootLog {
            path: self.launcher.boot_log_path(&self.spec.name),
        }
    }

    /// Starts following the boot config; without a `boot_url` (gone from
    /// the machines file since the boot began), starts the agent.
    fn start_network_boot(&mut self) {
        let Some(firmware) = self.firmware.clone() else {
            self.state.last_boot_config = None;
            self.start_agent(&AgentSource::ApiUrl);
            return;
        };
        let log = self.boot_log();
        let config_url = firmware.config_url(&self.spec.mac);
        log.line(&format!(
            "--- ferric-lab: boot {} of {} ({}): network boot from {config_url}",
            self.state.boot_count, self.spec.name, self.spec.mac
        ));
        self.state.last_boot_config = Some(BootConfig::loading(config_url));
        let mac = self.spec.mac;
        self.netboot = Some(Box::pin(
            async move { firmware.network_boot(mac, log).await },
        ));
    }

    fn network_boot_done(&mut self, mut record: BootConfig) {
        if record.loaded == Loaded::Disk && !self.disk_bootable() {
            record.fail("sanboot: the disk holds no boot signature");
            self.boot_log()
                .line("sanboot failed: the disk holds no boot signature");
        }
        let loaded = record.loaded;
        let cmdline = record.cmdline.clone().unwrap_or_default();
        let kernel = record.kernel.clone();
        self.state.last_boot_config = Some(record);
        let name = &self.spec.name;
        match loaded {
            Loaded::Agent => {
                tracing::info!(machine = %name, ?kernel, "the boot config loaded the agent's ramdisk: starting the agent");
                self.start_booted_agent(&cmdline);
            }
            Loaded::Instance => self.log_boot(Booted::Pxe),
            Loaded::Disk => {
                self.state.last_boot = Booted::Disk;
                self.log_boot(Booted::Disk);
            }
            Loaded::Failed | Loaded::Loading => self.network_boot_failed(),
        }
        self.save();
    }

    fn network_boot_failed(&mut self) {
        let why = self
            .state
            .last_boot_config
            .as_ref()
            .and_then(|c| c.error.clone())
            .unwrap_or_default();
        let bootable = self.disk_bootable();
        let booted = self
            .state
            .network_boot_failed(&self.spec.boot_order, bootable);
        tracing::warn!(machine = %self.spec.name, error = %why, next = ?booted, "the network boot failed: the next boot device that is not the network");
        self.boot_log().line(&format!(
            "next boot device that is not the network: {}",
            booted_name(booted)
        ));
        self.log_boot(booted);
    }

    fn start_booted_agent(&mut self, cmdline: &str) {
        match self.launcher.write_cmdline(&self.spec.name, cmdline) {
            Ok(path) => self.start_agent(&AgentSource::Cmdline(path)),
            Err(e) => {
                tracing::error!(machine = %self.spec.name, error = %e, "the agent did not start: the machine hangs in PXE");
                self.agent_error = Some(e.to_string());
            }
        }
    }

    fn start_agent(&mut self, source: &AgentSource) {
        let listen = match self.agent_listen {
            Some(addr) => Ok(addr),
            None => agent::free_loopback_port(),
        };
        let started = listen.and_then(|addr| {
            self.agent_listen = Some(addr);
            self.launcher.start(&self.spec, addr, source)
        });
        match started {
            Ok(agent) => {
                tracing::info!(machine = %self.spec.name, pid = agent.pid(), listen = ?self.agent_listen, "agent started");
                self.agent = Some(agent);
                self.agent_error = None;
            }
            Err(e) => {
                tracing::error!(machine = %self.spec.name, error = %e, "the agent did not start: the machine hangs in PXE");
                self.agent_error = Some(e.to_string());
            }
        }
    }

    /// Stops what the machine runs: a network boot in progress, the agent.
    async fn stop_running(&mut self, how: Stop) {
        if self.netboot.take().is_some() {
            tracing::info!(machine = %self.spec.name, "power request: the network boot is interrupted");
            self.boot_log()
                .line("network boot interrupted by a power request");
            if let Some(record) = &mut self.state.last_boot_config {
                record.fail("interrupted by a power request");
            }
        }
        if let Some(agent) = self.agent.take() {
            tracing::info!(machine = %self.spec.name, pid = agent.pid(), ?how, "stopping the agent");
            agent.stop(how).await;
        }
    }

    fn agent_ended(&mut self, ended: std::io::Result<std::process::ExitStatus>) {
        let pid = self.agent.take().map(|a| a.pid());
        let name = &self.spec.name;
        match ended.map(AgentExit::of) {
            Ok(AgentExit::PowerOff) => {
                tracing::info!(machine = %name, ?pid, "the OS powered the machine off");
                self.state.power = Power::Off;
                self.save();
            }
            Ok(AgentExit::Reboot) => {
                tracing::info!(machine = %name, ?pid, "the OS rebooted the machine");
                self.boot();
            }
            Ok(AgentExit::Hung(why)) => {
                tracing::warn!(machine = %name, ?pid, "{why}: the machine hangs, powered on");
                self.agent_error = Some(why);
            }
            Err(e) => {
                tracing::error!(machine = %name, ?pid, error = %e, "lost track of the agent");
                self.agent_error = Some(e.to_string());
            }
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
            agent_pid: self.agent.as_ref().map(RunningAgent::pid),
            agent_listen: self.agent_listen,
            agent_error: self.agent_error.clone(),
            ..View::default()
        });
    }
}

fn booted_name(booted: Booted) -> &'static str {
    match booted {
        Booted::None => "none",
        Booted::Pxe => "pxe",
        Booted::Disk => "disk",
        Booted::Cd => "cd",
        Booted::Bios => "bios",
    }
}
