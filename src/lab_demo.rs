//! `ferric lab demo`: the seed flow for one VM from nothing. It builds what
//! it needs (the deploy ramdisk, the test images), brings up a lab with one
//! VM, enters the lab's network namespace, starts `ferric serve` there,
//! enrols the VM through the API with its BMC, cleans it, deploys the test
//! image, watches the VM's serial console for the image's marker, and
//! removes everything. It prints each phase's time and the deploy's
//! timeline (power on, DHCP, ramdisk fetched, agent lookup, image written,
//! reboot, active, marker) and exits 0 only if the node became active and
//! its marker was seen. A stable interface: scripts outside the repo use
//! its flags, its exit code and its `--json` output.

use std::path::{Path, PathBuf};
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
    /// The hardware type the VM is enrolled with.
    #[arg(long, default_value = "ipmi", value_parser = ["ipmi", "redfish"])]
    pub driver: String,
    /// Boot the VM with UEFI (OVMF) rather than BIOS.
    #[arg(long)]
    pub uefi: bool,
    /// The image format deployed.
    #[arg(long, default_value = "raw", value_parser = ["raw", "qcow2"])]
    pub image: String,
    /// The static ferric-agent for the ramdisk [default: ferric-agent
    /// beside this executable if static, else
    /// target/x86_64-unknown-linux-gnu/release/ferric-agent].
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
    timeline: Vec<(String, f64)>,
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
        json!({"ok": ok, "phases": pairs(&self.phases), "deploy_timeline": pairs(&self.timeline), "error": error})
    }
}

/// Runs the demo; whether the node became active and its marker was seen.
pub fn run(args: DemoArgs) -> Result<bool> {
    let mut report = Report {
        json: args.json,
        phases: Vec::new(),
        timeline: Vec::new(),
    };
    let outcome = run_phases(&args, &mut report);
    if !args.keep {
        let down = ferric_lab::up::DownArgs {
            dir: args.dir.join("lab"),
            netns: args.netns.clone(),
        };
        if let Err(e) = ferric_lab::up::down(&down) {
            eprintln!("ferric lab demo: cleaning up: {e:#}");
        }
    }
    let error = outcome.as_ref().err().map(|e| format!("{e:#}"));
    if args.json {
        println!("{}", report.document(error.is_none(), error.clone()));
    } else if let Some(error) = &error {
        eprintln!("ferric lab demo failed: {error}");
    } else {
        println!("the node is active and its image's marker was seen on the VM's console");
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
    runtime.block_on(flow(args, &assets, &lab, report))
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
        let agent = static_agent(args.agent.as_deref())?;
        ramdisk::build(&ramdisk::RamdiskSpec::new(agent, &dir), &packages)
            .context("building the deploy ramdisk")?;
    }
    if !dir.join(images::MANIFEST).exists() {
        images::build(&images::ImagesSpec::new(&dir), &packages)
            .context("building the test images")?;
    }
    Ok(dir)
}

/// The static agent: the one given, else the first static candidate.
fn static_agent(given: Option<&Path>) -> Result<PathBuf> {
    let candidates: Vec<PathBuf> = match given {
        Some(path) => vec![path.to_path_buf()],
        None => {
            let beside = std::env::current_exe()
                .ok()
                .and_then(|exe| exe.parent().map(|d| d.join("ferric-agent")));
            let built = PathBuf::from("target/x86_64-unknown-linux-gnu/release/ferric-agent");
            beside.into_iter().chain([built]).collect()
        }
    };
    for candidate in &candidates {
        let Ok(bytes) = std::fs::read(candidate) else {
            continue;
        };
        if ramdisk::check_static(candidate, &bytes).is_ok() || given.is_some() {
            return Ok(candidate.clone());
        }
    }
    bail!(
        "no static ferric-agent (looked at {candidates:?}): give --agent; {}",
        ramdisk::STATIC_AGENT_HINT
    )
}

fn lab_up(args: &DemoArgs) -> Result<LabRecord> {
    let up = UpArgs {
        vms: 1,
        dir: args.dir.join("lab"),
        netns: args.netns.clone(),
        subnet: args.subnet.clone(),
        memory_mib: 512,
        disk_size: "8G".into(),
        uefi: args.uefi,
        deploy_kernel: None,
        deploy_ramdisk: None,
    };
    // A demo left behind by a killed run is removed first.
    let _ = ferric_lab::up::down(&ferric_lab::up::DownArgs {
        dir: up.dir.clone(),
        netns: up.netns.clone(),
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

    let start = Instant::now();
    let node = enrol(&api, args, assets, lab).await;
    report.ended("enrol and manage", start, node.is_ok());
    let node = node?;
    let start = Instant::now();
    let cleaned = api
        .provision(&node, "provide", "available", args.timeout)
        .await;
    report.ended("cleaning", start, cleaned.is_ok());
    cleaned?;
    let start = Instant::now();
    let deployed = deploy(&api, args, assets, lab, &node, report).await;
    report.ended("deploy and boot", start, deployed.is_ok());
    deployed
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
        .kill_on_drop(true)
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

/// The Ironic API of the demo's server, and the lab's /lab endpoints.
struct Api {
    client: reqwest::Client,
    base: String,
    lab: String,
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
            lab: lab.redfish_url.clone(),
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

    async fn boot_count(&self, name: &str) -> u64 {
        let url = format!("{}/lab/machines/{name}", self.lab);
        let view: Option<Value> = match self.client.get(url).send().await {
            Ok(response) => response.json().await.ok(),
            Err(_) => None,
        };
        view.and_then(|v| v["boot_count"].as_u64()).unwrap_or(0)
    }
}

async fn enrol(api: &Api, args: &DemoArgs, assets: &Path, lab: &LabRecord) -> Result<String> {
    let vm = lab.vms.first().context("the lab has no VM")?;
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

async fn deploy(
    api: &Api,
    args: &DemoArgs,
    assets: &Path,
    lab: &LabRecord,
    node: &str,
    report: &mut Report,
) -> Result<()> {
    let vm = lab.vms.first().context("the lab has no VM")?;
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
    let mut timeline =
        Timeline::start(api, node, &vm.name, &vm.mac, &vm.serial_log, &marker).await?;
    let path = format!("/v1/nodes/{node}/states/provision");
    api.call(
        reqwest::Method::PUT,
        &path,
        Some(json!({"target": "active"})),
    )
    .await?;
    let result = timeline.follow(api, args.timeout).await;
    report.timeline = timeline.seen.clone();
    if !args.json {
        for (milestone, at) in &timeline.seen {
            println!("    {milestone:<30} +{at:>6.1} s");
        }
    }
    result
}

/// The deploy's milestones, each the first time it was observed, in
/// seconds from the deploy request.
struct Timeline {
    node: String,
    name: String,
    mac: String,
    serial: PathBuf,
    serial_from: usize,
    marker: String,
    start: Instant,
    start_wall: SystemTime,
    heartbeat_before: Value,
    boots_at_write: Option<u64>,
    wrote: bool,
    seen: Vec<(String, f64)>,
}

impl Timeline {
    async fn start(
        api: &Api,
        node: &str,
        name: &str,
        mac: &str,
        serial: &Path,
        marker: &str,
    ) -> Result<Self> {
        let before = api.node(node).await?;
        Ok(Timeline {
            node: node.to_string(),
            name: name.to_string(),
            mac: mac.to_string(),
            serial: serial.to_path_buf(),
            serial_from: std::fs::metadata(serial)
                .map(|m| m.len() as usize)
                .unwrap_or(0),
            marker: marker.to_string(),
            start: Instant::now(),
            start_wall: SystemTime::now(),
            heartbeat_before: before["driver_internal_info"]["agent_last_heartbeat"].clone(),
            boots_at_write: None,
            wrote: false,
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

    /// Polls until the node is active and the marker is on the console.
    async fn follow(&mut self, api: &Api, timeout: u64) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(timeout);
        loop {
            let now = self.start.elapsed().as_secs_f64();
            let node = api.node(&self.node).await?;
            self.observe_node(&node, now);
            if let Ok(trace) = api.boot_trace(&self.mac).await {
                self.observe_trace(&trace);
            }
            if self.wrote && !self.has("reboot") {
                let boots = api.boot_count(&self.name).await;
                match self.boots_at_write {
                    None => self.boots_at_write = Some(boots),
                    Some(before) if boots > before => self.mark("reboot", now),
                    Some(_) => {}
                }
            }
            let state = node["provision_state"].as_str().unwrap_or_default();
            if state.ends_with("failed") {
                bail!("deploy: {state}: {}", node["last_error"]);
            }
            if self.has("active") && self.marker_seen() {
                self.mark("marker on the console", self.start.elapsed().as_secs_f64());
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("deploy: not active with the marker seen after {timeout} s (now {state})");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn observe_node(&mut self, node: &Value, now: f64) {
        if node["power_state"] == "power on" {
            self.mark("power on", now);
        }
        let heartbeat = &node["driver_internal_info"]["agent_last_heartbeat"];
        if !heartbeat.is_null() && *heartbeat != self.heartbeat_before {
            self.mark("agent lookup and heartbeat", now);
        }
        let step = node["deploy_step"]["step"].as_str().unwrap_or_default();
        if step == "write_image" {
            self.mark("image write started", now);
        } else if self.has("image write started") && !self.wrote {
            self.wrote = true;
            self.mark("image written", now);
        }
        if node["provision_state"] == "active" {
            self.mark("active", now);
        }
    }

    fn observe_trace(&mut self, trace: &Value) {
        let events = trace["events"].as_array().cloned().unwrap_or_default();
        for event in events {
            let Some(at) = event["at"]
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            else {
                continue;
            };
            let at: SystemTime = at.with_timezone(&chrono::Utc).into();
            let Ok(offset) = at.duration_since(self.start_wall) else {
                continue;
            };
            let offset = offset.as_secs_f64();
            let description = event["description"].as_str().unwrap_or_default();
            if event["kind"] == "dhcp_sent" && description.contains("ACK") {
                self.mark("DHCP (first ACK)", offset);
            }
            if event["kind"] == "file_served" && description.contains("deploy_ramdisk") {
                self.mark("deploy ramdisk fetched", offset);
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
