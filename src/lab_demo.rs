//! `ferric lab demo`: the seed flow for one VM from nothing. It builds what
//! it needs (the deploy ramdisk, the test images), brings up a lab with one
//! VM, enters the lab's network namespace, starts `ferric serve` there,
//! enrols the VMs through the API with their BMCs, cleans them, deploys the
//! test image to all at once, watches their serial consoles for the image's
//! marker, and removes everything. It prints each phase's time and each
//! deploy's timeline (power on, DHCP, ramdisk fetched, agent lookup, image
//! written, reboot, active, marker) and exits 0 only if every node became
//! active and its marker was seen. A stable interface: scripts outside the repo use
//! its flags, its exit code and its `--json` output, which is also written to
//! `DIR/report.json` whether or not `--json` is given.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};
use ferric_lab::build::debian::{default_cache_dir, Packages};
use ferric_lab::build::{images, ramdisk};
use ferric_lab::up::{LabRecord, UpArgs};
use serde_json::{json, Value};

/// `ferric lab demo` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Where the demo keeps its lab, its server's data and its assets.
    #[arg(long, default_value = "/var/tmp/ferric-demo")]
    pub dir: PathBuf,
    /// How many VMs to deploy at once.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=8))]
    pub vms: u8,
    /// The hardware type the VMs are enrolled with.
    #[arg(long, default_value = "ipmi", value_parser = ["ipmi", "redfish"])]
    pub driver: String,
    /// Boot the VM with UEFI (OVMF) rather than BIOS.
    #[arg(long)]
    pub uefi: bool,
    /// The image format deployed.
    #[arg(long, default_value = "raw", value_parser = ["raw", "qcow2"])]
    pub image: String,
    /// The static ferric-agent for the ramdisk [default: the first static
    /// one beside this executable, in its workspace's
    /// target/x86_64-unknown-linux-gnu/release, or on PATH].
    #[arg(long)]
    pub agent: Option<PathBuf>,
    /// A directory with the ramdisk and images already built (as `ferric
    /// ramdisk build` and `ferric lab images` write them) [default: DIR/assets,
    /// built when missing].
    #[arg(long)]
    pub assets: Option<PathBuf>,
    /// The lab's network namespace.
    #[arg(long, default_value = "ferric-demo")]
    pub netns: String,
    /// The lab's /24 (three octets).
    #[arg(long, default_value = "10.76.0")]
    pub subnet: String,
    /// Seconds each of cleaning and deploying may take.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// Leave the lab and the server running at the end.
    #[arg(long)]
    pub keep: bool,
    /// Print one JSON document at the end instead of the phases as they go.
    #[arg(long)]
    pub json: bool,
}

const API_VERSION: &str = "1.78";

/// Phase times, printed as they end.
struct Report {
    json: bool,
    phases: Vec<(String, f64)>,
    /// Each VM's deploy timeline, by VM name.
    timelines: Vec<(String, Vec<(String, f64)>)>,
}

impl Report {
    fn phase<T>(&mut self, name: &str, work: impl FnOnce() -> Result<T>) -> Result<T> {
        let start = Instant::now();
        let result = work();
        self.ended(name, start, result.is_ok());
        result
    }

    fn ended(&mut self, name: &str, start: Instant, ok: bool) {
        let seconds = start.elapsed().as_secs_f64();
        if ok {
            self.phases.push((name.to_string(), seconds));
        }
        if !self.json {
            let status = if ok { "" } else { "  FAILED" };
            println!("{name:<22} {seconds:>7.1} s{status}");
        }
    }

    fn document(&self, ok: bool, error: Option<String>) -> Value {
        let pairs = |items: &[(String, f64)]| {
            items
                .iter()
                .map(|(k, v)| (k.clone(), json!((v * 10.0).round() / 10.0)))
                .collect::<serde_json::Map<String, Value>>()
        };
        let first = self
            .timelines
            .first()
            .map(|(_, t)| pairs(t))
            .unwrap_or_default();
        let vms: serde_json::Map<String, Value> = self
            .timelines
            .iter()
            .map(|(name, t)| (name.clone(), Value::Object(pairs(t))))
            .collect();
        json!({"ok": ok, "phases": pairs(&self.phases), "deploy_timeline": first, "vms": vms, "error": error})
    }
}

/// Runs the demo; whether the node became active and its marker was seen.
pub fn run(args: DemoArgs) -> Result<bool> {
    let mut report = Report {
        json: args.json,
        phases: Vec::new(),
        timelines: Vec::new(),
    };
    let outcome = run_phases(&args, &mut report);
    if !args.keep {
        let down = ferric_lab::up::DownArgs {
            dir: args.dir.join("lab"),
            netns: Some(args.netns.clone()),
        };
        if let Err(e) = ferric_lab::up::down(&down) {
            eprintln!("ferric lab demo: cleaning up: {e:#}");
        }
    }
    let error = outcome.as_ref().err().map(|e| format!("{e:#}"));
    let document = report.document(error.is_none(), error.clone());
    let saved = args.dir.join("report.json");
    if let Err(e) = std::fs::write(&saved, format!("{document}\n")) {
        eprintln!("ferric lab demo: cannot write {}: {e}", saved.display());
    }
    if args.json {
        println!("{document}");
    } else if let Some(error) = &error {
        eprintln!("ferric lab demo failed: {error}");
    } else {
        println!("every node is active and its image's marker was seen on its VM's console");
    }
    Ok(error.is_none())
}

fn run_phases(args: &DemoArgs, report: &mut Report) -> Result<()> {
    check_root()?;
    let assets = report.phase("build", || prepare_assets(args))?;
    let lab = report.phase("lab up", || lab_up(args))?;
    ferric_lab::up::enter_netns(&args.netns).context("entering the lab's network namespace")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        tokio::select! {
            done = flow(args, &assets, &lab, report) => done,
            signal = interrupted() => bail!("interrupted by {signal}"),
        }
    })
}

/// Completes on SIGINT or SIGTERM (the lab is removed all the same).
async fn interrupted() -> &'static str {
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}

fn check_root() -> Result<()> {
    if !rustix_is_root() {
        bail!("the demo makes a network namespace and taps: run it as root");
    }
    Ok(())
}

fn rustix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// The assets directory, with the ramdisk and images built when missing.
fn prepare_assets(args: &DemoArgs) -> Result<PathBuf> {
    let dir = args
        .assets
        .clone()
        .unwrap_or_else(|| args.dir.join("assets"));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    // Absolute: the boot interface refuses relative deploy_kernel paths.
    let dir = dir
        .canonicalize()
        .with_context(|| format!("resolving {}", dir.display()))?;
    let packages = Packages::new(default_cache_dir());
    if !dir.join("ferric-deploy.initramfs").exists() {
        let agent = match &args.agent {
            Some(agent) => agent.clone(),
            None => ramdisk::default_agent()?,
        };
        ramdisk::build(&ramdisk::RamdiskSpec::new(agent, &dir), &packages)
            .context("building the deploy ramdisk")?;
    }
    if !dir.join(images::MANIFEST).exists() {
        images::build(&images::ImagesSpec::new(&dir), &packages)
            .context("building the test images")?;
    }
    Ok(dir)
}

fn lab_up(args: &DemoArgs) -> Result<LabRecord> {
    let up = UpArgs {
        vms: usize::from(args.vms),
        dir: args.dir.join("lab"),
        netns: args.netns.clone(),
        subnet: args.subnet.clone(),
        memory_mib: 512,
        disk_size: "8G".into(),
        uefi: args.uefi,
        accel: "tcg".into(),
        deploy_kernel: None,
        deploy_ramdisk: None,
    };
    // A demo left behind by a killed run is removed first.
    let _ = ferric_lab::up::down(&ferric_lab::up::DownArgs {
        dir: up.dir.clone(),
        netns: Some(up.netns.clone()),
    });
    Ok(ferric_lab::up::up(&up)?)
}

/// Everything after the lab is up, inside its network namespace.
async fn flow(args: &DemoArgs, assets: &Path, lab: &LabRecord, report: &mut Report) -> Result<()> {
    let api = Api::new(lab)?;
    let start = Instant::now();
    let server = start_server(args, lab).await;
    let _server = match server {
        Ok(child) => child,
        Err(e) => {
            report.ended("serve", start, false);
            return Err(e);
        }
    };
    api.wait_ready().await?;
    report.ended("serve", start, true);
    let http_root = args.dir.join("serve/data/httpboot/images");
    publish_images(assets, &http_root)?;

    let ctx = Arc::new(Ctx {
        api,
        args: args.clone(),
        assets: assets.to_path_buf(),
        lab: lab.clone(),
    });
    let start = Instant::now();
    let nodes = on_every_vm(&ctx, |ctx, vm| async move { enrol(&ctx, vm).await }).await;
    report.ended("enrol and manage", start, nodes.is_ok());
    let nodes = Arc::new(nodes?);
    let start = Instant::now();
    let cleaned = on_every_vm(&ctx, |ctx, vm| {
        let node = nodes[vm].clone();
        async move {
            let timeout = ctx.args.timeout;
            ctx.api
                .provision(&node, "provide", "available", timeout)
                .await
        }
    })
    .await;
    report.ended("cleaning", start, cleaned.is_ok());
    cleaned?;
    let start = Instant::now();
    let deployed = on_every_vm(&ctx, |ctx, vm| {
        let node = nodes[vm].clone();
        async move { deploy(&ctx, vm, &node).await }
    })
    .await;
    report.ended("deploy and boot", start, deployed.is_ok());
    for (name, seen) in deployed? {
        if !args.json {
            println!("  {name}:");
            for (milestone, at) in &seen {
                println!("    {milestone:<30} +{at:>6.1} s");
            }
        }
        report.timelines.push((name, seen));
    }
    Ok(())
}

/// What every VM's flow shares.
struct Ctx {
    api: Api,
    args: DemoArgs,
    assets: PathBuf,
    lab: LabRecord,
}

/// Runs `work` for every VM at once; their results in VM order, or the
/// first error (the others are dropped).
async fn on_every_vm<T, F, Fut>(ctx: &Arc<Ctx>, work: F) -> Result<Vec<T>>
where
    T: Send + 'static,
    F: Fn(Arc<Ctx>, usize) -> Fut,
    Fut: std::future::Future<Output = Result<T>> + Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    for vm in 0..ctx.lab.vms.len() {
        let job = work(ctx.clone(), vm);
        set.spawn(async move { (vm, job.await) });
    }
    let mut results: Vec<Option<T>> = (0..ctx.lab.vms.len()).map(|_| None).collect();
    while let Some(joined) = set.join_next().await {
        let (vm, result) = joined.context("a VM's flow panicked")?;
        let name = &ctx.lab.vms[vm].name;
        results[vm] = Some(result.with_context(|| name.clone())?);
    }
    Ok(results.into_iter().flatten().collect())
}

/// `ferric serve` (this executable) on the lab's bridge.
async fn start_server(args: &DemoArgs, lab: &LabRecord) -> Result<tokio::process::Child> {
    let dir = args.dir.join("serve");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let config = dir.join("ferric.toml");
    std::fs::write(
        &config,
        "[pxe]\nkernel_append_params = \"console=ttyS0 panic=-1\"\n",
    )
    .with_context(|| format!("writing {}", config.display()))?;
    let log = std::fs::File::create(dir.join("serve.log")).context("serve.log")?;
    let ip = lab.host_ip;
    let exe = std::env::current_exe().context("this executable")?;
    let child = tokio::process::Command::new(exe)
        .args(["serve", "--listen", &format!("{ip}:6385")])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--config")
        .arg(&config)
        .args(["--dhcp-interface", &lab.bridge])
        .arg("--dhcp-range")
        .arg(format!("{},{}", lab.dhcp_range.0, lab.dhcp_range.1))
        .args(["--tftp-listen", &format!("{ip}:69")])
        .args(["--http-listen", &format!("{ip}:8080")])
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().context("serve.log")?)
        .stderr(log)
        .kill_on_drop(!args.keep)
        .spawn()
        .context("starting ferric serve")?;
    Ok(child)
}

fn publish_images(assets: &Path, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for name in [images::DISK_RAW, images::DISK_QCOW2] {
        std::fs::copy(assets.join(name), dir.join(name))
            .with_context(|| format!("publishing {name}"))?;
    }
    Ok(())
}

/// The Ironic API of the demo's server.
struct Api {
    client: reqwest::Client,
    base: String,
}

impl Api {
    fn new(lab: &LabRecord) -> Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .context("HTTP client")?;
        Ok(Api {
            client,
            base: format!("http://{}:6385", lab.host_ip),
        })
    }

    async fn wait_ready(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.client.get(&self.base).send().await.is_ok() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        bail!("ferric serve did not answer at {} within 30 s", self.base)
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let mut request = self
            .client
            .request(method.clone(), format!("{}{path}", self.base))
            .header("X-OpenStack-Ironic-API-Version", API_VERSION);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            bail!("{method} {path}: {status}: {text}");
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn node(&self, node: &str) -> Result<Value> {
        self.call(reqwest::Method::GET, &format!("/v1/nodes/{node}"), None)
            .await
    }

    /// A provision verb, then waits up to `timeout` s for `want`; a failed
    /// state is an error with the node's last error.
    async fn provision(&self, node: &str, verb: &str, want: &str, timeout: u64) -> Result<()> {
        let path = format!("/v1/nodes/{node}/states/provision");
        self.call(reqwest::Method::PUT, &path, Some(json!({"target": verb})))
            .await?;
        let deadline = Instant::now() + Duration::from_secs(timeout);
        loop {
            let state = self.node(node).await?;
            let now = state["provision_state"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if now == want {
                return Ok(());
            }
            if now.ends_with("failed") {
                bail!("{verb}: {now}: {}", state["last_error"]);
            }
            if Instant::now() >= deadline {
                bail!("{verb}: still {now} after {timeout} s");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn boot_trace(&self, mac: &str) -> Result<Value> {
        self.call(
            reqwest::Method::GET,
            &format!("/ferric/v1/boot/trace/{mac}"),
            None,
        )
        .await
    }
}

async fn enrol(ctx: &Ctx, index: usize) -> Result<String> {
    let (api, args, assets, lab) = (&ctx.api, &ctx.args, &ctx.assets, &ctx.lab);
    let vm = &lab.vms[index];
    let bmc = match args.driver.as_str() {
        "redfish" => json!({
            "redfish_address": lab.redfish_url,
            "redfish_system_id": format!("/redfish/v1/Systems/{}", vm.name),
            "redfish_username": vm.username, "redfish_password": vm.password,
        }),
        _ => json!({
            "ipmi_address": vm.ipmi_address.to_string(), "ipmi_port": vm.ipmi_port,
            "ipmi_username": vm.username, "ipmi_password": vm.password,
        }),
    };
    let mut driver_info = bmc;
    driver_info["deploy_kernel"] = json!(assets.join("ferric-deploy.kernel").display().to_string());
    driver_info["deploy_ramdisk"] =
        json!(assets.join("ferric-deploy.initramfs").display().to_string());
    let mode = if args.uefi { "uefi" } else { "bios" };
    let node = api
        .call(
            reqwest::Method::POST,
            "/v1/nodes",
            Some(json!({
                "name": format!("demo-{}", vm.name), "driver": args.driver,
                "driver_info": driver_info,
                "properties": {"capabilities": format!("boot_mode:{mode}")},
            })),
        )
        .await?;
    let uuid = node["uuid"]
        .as_str()
        .context("the new node has no uuid")?
        .to_string();
    api.call(
        reqwest::Method::POST,
        "/v1/ports",
        Some(json!({"address": vm.mac, "node_uuid": uuid})),
    )
    .await?;
    api.provision(&uuid, "manage", "manageable", 120).await?;
    Ok(uuid)
}

/// Deploys one VM; its name and timeline.
async fn deploy(ctx: &Ctx, index: usize, node: &str) -> Result<(String, Vec<(String, f64)>)> {
    let (api, args, assets, lab) = (&ctx.api, &ctx.args, &ctx.assets, &ctx.lab);
    let vm = &lab.vms[index];
    let name = if args.image == "qcow2" {
        images::DISK_QCOW2
    } else {
        images::DISK_RAW
    };
    let manifest = images::TestImages::load(assets).context("reading images.json")?;
    let checksum = manifest
        .file(name)
        .map(|f| f.sha256.clone())
        .context("the image is not in images.json")?;
    let url = format!("http://{}:8080/images/{name}", lab.host_ip);
    let patch = json!([
        {"op": "add", "path": "/instance_info/image_source", "value": url},
        {"op": "add", "path": "/instance_info/image_checksum", "value": checksum},
    ]);
    api.call(
        reqwest::Method::PATCH,
        &format!("/v1/nodes/{node}"),
        Some(patch),
    )
    .await?;
    let marker = format!("{} {}", images::INSTANCE_MARKER, manifest.instance_marker);
    let mut timeline = Timeline::start(api, node, &vm.mac, &vm.serial_log, &marker).await?;
    let path = format!("/v1/nodes/{node}/states/provision");
    api.call(
        reqwest::Method::PUT,
        &path,
        Some(json!({"target": "active"})),
    )
    .await?;
    timeline.follow(api, args.timeout).await?;
    Ok((vm.name.clone(), timeline.seen))
}

/// The deploy's milestones in seconds from the deploy request: from the
/// node's history (the deploy timeline the conductor records), the boot
/// trace (DHCP, the ramdisk's download), the node's state (`active`) and
/// the VM's serial console (the marker).
struct Timeline {
    node: String,
    mac: String,
    serial: PathBuf,
    serial_from: usize,
    marker: String,
    start: Instant,
    start_wall: SystemTime,
    seen: Vec<(String, f64)>,
}

/// History events of a deploy, and the milestone each one is.
const HISTORY_MILESTONES: [(&str, &str); 6] = [
    ("Booting the deploy ramdisk", "ramdisk boot (power on)"),
    ("The agent looked its node up", "agent lookup"),
    ("Image write started", "image write started"),
    ("Image written to the disk", "image written"),
    ("Powered off by the agent", "powered off by the agent"),
    ("Powered on into the instance", "rebooted into the instance"),
];

impl Timeline {
    async fn start(api: &Api, node: &str, mac: &str, serial: &Path, marker: &str) -> Result<Self> {
        let _ = api.node(node).await?;
        Ok(Timeline {
            node: node.to_string(),
            mac: mac.to_string(),
            serial: serial.to_path_buf(),
            serial_from: std::fs::metadata(serial)
                .map(|m| m.len() as usize)
                .unwrap_or(0),
            marker: marker.to_string(),
            start: Instant::now(),
            start_wall: SystemTime::now(),
            seen: Vec::new(),
        })
    }

    fn mark(&mut self, milestone: &str, at: f64) {
        if !self.seen.iter().any(|(m, _)| m == milestone) {
            self.seen.push((milestone.to_string(), at));
        }
    }

    fn has(&self, milestone: &str) -> bool {
        self.seen.iter().any(|(m, _)| m == milestone)
    }

    /// Polls until the node is active and the marker is on the console,
    /// then reads the history and the boot trace.
    async fn follow(&mut self, api: &Api, timeout: u64) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(timeout);
        loop {
            let node = api.node(&self.node).await?;
            let state = node["provision_state"].as_str().unwrap_or_default();
            if state == "active" {
                self.mark("active", self.start.elapsed().as_secs_f64());
            }
            if state.ends_with("failed") {
                bail!("deploy: {state}: {}", node["last_error"]);
            }
            if self.has("active") && self.marker_seen() {
                self.mark("marker on the console", self.start.elapsed().as_secs_f64());
                break;
            }
            if Instant::now() >= deadline {
                bail!("deploy: not active with the marker seen after {timeout} s (now {state})");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.read_history(api).await?;
        if let Ok(trace) = api.boot_trace(&self.mac).await {
            self.read_trace(&trace);
        }
        self.seen.sort_by(|a, b| a.1.total_cmp(&b.1));
        Ok(())
    }

    /// Seconds from the deploy request to a timestamp, if after it.
    fn offset(&self, text: &str) -> Option<f64> {
        let at = chrono::DateTime::parse_from_rfc3339(text).ok()?;
        let at: SystemTime = at.with_timezone(&chrono::Utc).into();
        at.duration_since(self.start_wall)
            .ok()
            .map(|d| d.as_secs_f64())
    }

    async fn read_history(&mut self, api: &Api) -> Result<()> {
        let path = format!("/v1/nodes/{}/history?detail=true&limit=1000", self.node);
        let history = api.call(reqwest::Method::GET, &path, None).await?;
        for event in history["history"].as_array().cloned().unwrap_or_default() {
            let text = event["event"].as_str().unwrap_or_default();
            let Some(at) = event["created_at"].as_str().and_then(|t| self.offset(t)) else {
                continue;
            };
            if let Some((_, milestone)) = HISTORY_MILESTONES
                .iter()
                .find(|(prefix, _)| text.starts_with(prefix))
            {
                self.mark(milestone, at);
            }
        }
        Ok(())
    }

    fn read_trace(&mut self, trace: &Value) {
        for event in trace["events"].as_array().cloned().unwrap_or_default() {
            let Some(at) = event["at"].as_str().and_then(|t| self.offset(t)) else {
                continue;
            };
            let description = event["description"].as_str().unwrap_or_default();
            if event["kind"] == "dhcp_sent" && description.contains("ACK") {
                self.mark("DHCP (first ACK)", at);
            }
            if event["kind"] == "file_served" && description.contains("deploy_ramdisk") {
                self.mark("deploy ramdisk fetched", at);
            }
        }
    }

    fn marker_seen(&self) -> bool {
        let bytes = std::fs::read(&self.serial).unwrap_or_default();
        bytes
            .get(self.serial_from..)
            .is_some_and(|new| String::from_utf8_lossy(new).contains(&self.marker))
    }
}
