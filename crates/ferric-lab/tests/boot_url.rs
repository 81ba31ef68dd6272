//! Machines with a `boot_url` boot PXE as iPXE would: a small HTTP server
//! here serves a boot root laid out as Ferric's `ipxe` boot interface lays
//! it out (`NODE/config`, `NODE/deploy_kernel`, ..., and the link
//! `pxelinux.cfg/MAC -> ../NODE/config`), counts the GETs, and can trickle
//! a file to keep a download going. The agent is the shell stand-in of
//! `common`.

#![allow(clippy::unwrap_used)] // test helpers fail loudly

mod common;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{alive, machines_file, sign_disk, Bmc, TestMachine};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const NODE: &str = "1be26c0b-03f2-4d2e-ae87-c02d7f33c123";
const KERNEL_SIZE: usize = 300_000;
const RAMDISK_SIZE: usize = 1_200_000;

/// A boot root served over HTTP/1.1, one request per connection.
struct BootServer {
    url: String,
    root: PathBuf,
    gets: Arc<Mutex<HashMap<String, usize>>>,
    slow: Arc<Mutex<HashSet<String>>>,
    /// Trickled downloads the client closed before their end.
    cut_off: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for BootServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl BootServer {
    async fn start(root: PathBuf) -> BootServer {
        std::fs::create_dir_all(&root).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let gets = Arc::new(Mutex::new(HashMap::new()));
        let slow = Arc::new(Mutex::new(HashSet::new()));
        let cut_off = Arc::new(Mutex::new(Vec::new()));
        let served = Served {
            root: root.clone(),
            gets: gets.clone(),
            slow: slow.clone(),
            cut_off: cut_off.clone(),
        };
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let served = served.clone();
                tokio::spawn(async move { served.answer(stream).await });
            }
        });
        BootServer {
            url,
            root,
            gets,
            slow,
            cut_off,
            task,
        }
    }

    fn gets(&self, path: &str) -> usize {
        self.gets.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    fn total_gets(&self) -> usize {
        self.gets.lock().unwrap().values().sum()
    }

    fn trickle(&self, path: &str) {
        self.slow.lock().unwrap().insert(path.to_string());
    }

    /// Writes `NODE/config` with `script` and links the MAC to it.
    fn write_node(&self, mac: &str, script: &str) {
        let node = self.root.join(NODE);
        std::fs::create_dir_all(&node).unwrap();
        std::fs::write(node.join("config"), script).unwrap();
        std::fs::write(node.join("deploy_kernel"), vec![1u8; KERNEL_SIZE]).unwrap();
        std::fs::write(node.join("deploy_ramdisk"), vec![2u8; RAMDISK_SIZE]).unwrap();
        std::fs::write(node.join("kernel"), vec![3u8; KERNEL_SIZE / 2]).unwrap();
        std::fs::write(node.join("ramdisk"), vec![4u8; RAMDISK_SIZE / 2]).unwrap();
        let links = self.root.join("pxelinux.cfg");
        std::fs::create_dir_all(&links).unwrap();
        let link = links.join(mac.replace(':', "-"));
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(format!("../{NODE}/config"), link).unwrap();
    }

    fn node_url(&self, file: &str) -> String {
        format!("{}/{NODE}/{file}", self.url)
    }
}

#[derive(Clone)]
struct Served {
    root: PathBuf,
    gets: Arc<Mutex<HashMap<String, usize>>>,
    slow: Arc<Mutex<HashSet<String>>>,
    cut_off: Arc<Mutex<Vec<String>>>,
}

impl Served {
    async fn answer(&self, mut stream: tokio::net::TcpStream) {
        let Some((method, path)) = read_request(&mut stream).await else {
            return;
        };
        let key = match method.as_str() {
            "GET" => path.clone(),
            _ => format!("{method} {path}"),
        };
        *self.gets.lock().unwrap().entry(key).or_insert(0) += 1;
        if method != "GET" {
            let _ = stream
                .write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                )
                .await;
            let _ = stream.shutdown().await;
            return;
        }
        if self.slow.lock().unwrap().contains(&path) {
            return self.trickle(stream, path).await;
        }
        let file = self.root.join(path.trim_start_matches('/'));
        let answer = match std::fs::read(&file) {
            Ok(body) if !path.contains("..") => {
                let mut answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                )
                .into_bytes();
                answer.extend_from_slice(&body);
                answer
            }
            _ => {
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec()
            }
        };
        let _ = stream.write_all(&answer).await;
        let _ = stream.shutdown().await;
    }

    /// 1 KiB every 20 ms of a 100 MB file, until the client goes away.
    async fn trickle(&self, mut stream: tokio::net::TcpStream, path: String) {
        let head = "HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\nConnection: close\r\n\r\n";
        if stream.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        loop {
            if stream.write_all(&[0u8; 1024]).await.is_err() {
                self.cut_off.lock().unwrap().push(path);
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Reads a request (its body too, so that closing does not reset the
/// connection); returns its method and target.
async fn read_request(stream: &mut tokio::net::TcpStream) -> Option<(String, String)> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let end = loop {
        if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 || data.len() > 16 << 10 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&data[..end]).to_string();
    let length: usize = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse().ok())
        .unwrap_or(0);
    let mut body = data.len() - end;
    while body < length {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            break;
        }
        body += n;
    }
    let mut words = head.lines().next()?.split_whitespace();
    Some((words.next()?.to_string(), words.next()?.to_string()))
}

/// What Ferric's `ipxe` boot interface renders (the text of
/// crates/ferric-drivers/src/pxe/render.rs, `ipxe_script`), for one target.
fn ferric_script(server: &BootServer, label: &str) -> String {
    ferric_script_for(server, label, "http://10.0.0.1:6385")
}

fn ferric_script_for(server: &BootServer, label: &str, api_url: &str) -> String {
    let params = format!("nofb vga=normal ipa-api-url={api_url}");
    let mut out = format!(
        "#!ipxe\n# Ferric: boot config of node {NODE}\n\nset attempts:int32 10\nset i:int32 0\n\ngoto {label}\n"
    );
    match label {
        "deploy" => out.push_str(&format!(
            "\n:deploy\nimgfree\nkernel {kernel} selinux=0 troubleshoot=0 text {params} \
             BOOTIF=${{mac}} initrd=deploy_ramdisk || goto retry\ninitrd {ramdisk} || goto retry\nboot\n\n\
             :retry\niseq ${{i}} ${{attempts}} && goto fail ||\ninc i\n\
             echo No response, retrying in ${{i}} seconds.\nsleep ${{i}}\ngoto deploy\n\n\
             :fail\necho Failed to get a response after ${{attempts}} attempts\n\
             echo Powering off in 30 seconds.\nsleep 30\npoweroff\n",
            kernel = server.node_url("deploy_kernel"),
            ramdisk = server.node_url("deploy_ramdisk"),
        )),
        "boot_partition" => out.push_str(&format!(
            "\n:boot_partition\nimgfree\nkernel {kernel} root=UUID=4f1c-77 ro text {params} \
             initrd=ramdisk || goto boot_partition\ninitrd {ramdisk} || goto boot_partition\nboot\n",
            kernel = server.node_url("kernel"),
            ramdisk = server.node_url("ramdisk"),
        )),
        _ => {}
    }
    out.push_str("\n:boot_whole_disk\nsanboot --no-describe || exit 0\n");
    out
}

/// A machines file with `boot_url` first.
fn with_boot_url(dir: &Path, boot_url: &str, machines: &[TestMachine]) -> String {
    format!(
        "boot_url = \"{boot_url}\"\n{}",
        machines_file(dir, None, machines)
    )
}

async fn reset(bmc: &Bmc, system: &str, reset_type: &str) -> StatusCode {
    bmc.redfish(
        Method::POST,
        &format!("/redfish/v1/Systems/{system}/Actions/ComputerSystem.Reset"),
        "admin",
        "password",
    )
    .json(&json!({ "ResetType": reset_type }))
    .send()
    .await
    .unwrap()
    .status()
}

async fn pxe_once(bmc: &Bmc, system: &str) {
    let answer = bmc
        .redfish(
            Method::PATCH,
            &format!("/redfish/v1/Systems/{system}"),
            "admin",
            "password",
        )
        .json(&json!({"Boot": {"BootSourceOverrideTarget": "Pxe", "BootSourceOverrideEnabled": "Once"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::NO_CONTENT);
}

/// Waits until the machine's network boot has an outcome.
async fn booted(bmc: &Bmc, name: &str) -> Value {
    bmc.wait_lab(name, "done with its network boot", |s| {
        s["last_boot_config"]["loaded"] != "loading"
    })
    .await
}

fn boot_log(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(format!("{name}.boot.log"))).unwrap_or_default()
}

#[tokio::test]
async fn the_deploy_config_starts_the_agent_with_its_kernel_command_line() {
    const MAC: &str = "52:54:00:07:00:01";
    let dir = tempfile::tempdir().unwrap();
    let server = BootServer::start(dir.path().join("http")).await;
    server.write_node(MAC, &ferric_script(&server, "deploy"));
    let file = with_boot_url(dir.path(), &server.url, &[TestMachine::new("m1", MAC)]);
    let bmc = Bmc::start(dir.path(), 16600, &file).await;

    assert_eq!(reset(&bmc, "m1", "On").await, StatusCode::NO_CONTENT);
    let state = booted(&bmc, "m1").await;
    let config = &state["last_boot_config"];
    assert_eq!(config["loaded"], "agent", "{state}");
    assert_eq!(state["last_boot"], "pxe");
    assert_eq!(state["boot_count"], 1);
    assert_eq!(
        config["config_url"],
        format!("{}/pxelinux.cfg/52-54-00-07-00-01", server.url)
    );
    assert_eq!(config["kernel"], server.node_url("deploy_kernel"));
    assert_eq!(
        config["initrds"],
        json!([server.node_url("deploy_ramdisk")])
    );
    assert_eq!(config["kernel_bytes"], KERNEL_SIZE);
    assert_eq!(config["initrd_bytes"], RAMDISK_SIZE);
    assert_eq!(config["error"], Value::Null);
    assert_eq!(server.gets("/pxelinux.cfg/52-54-00-07-00-01"), 1);
    assert_eq!(server.gets(&format!("/{NODE}/deploy_kernel")), 1);
    assert_eq!(server.gets(&format!("/{NODE}/deploy_ramdisk")), 1);
    assert_eq!(server.total_gets(), 3);

    // The agent: --cmdline instead of --api-url, the rest as before.
    let runs = bmc.wait_agent_runs(1).await;
    let cmdline_file = dir.path().join("m1.cmdline");
    let listen = state["agent_listen"].as_str().unwrap();
    assert_eq!(
        runs[0],
        format!(
            "--cmdline {} --disk {}/m1.disk --mac {MAC} --listen {listen}",
            cmdline_file.display(),
            dir.path().display()
        )
    );
    let cmdline = std::fs::read_to_string(&cmdline_file).unwrap();
    assert_eq!(
        cmdline,
        "selinux=0 troubleshoot=0 text nofb vga=normal ipa-api-url=http://10.0.0.1:6385 \
         BOOTIF=52:54:00:07:00:01 initrd=deploy_ramdisk\n"
    );
    assert_eq!(config["cmdline"], cmdline.trim_end());
    assert!(alive(state["agent_pid"].as_u64().unwrap()));
    let log = boot_log(dir.path(), "m1");
    assert!(log.contains("network boot from"), "{log}");
    assert!(
        log.contains(&format!("{KERNEL_SIZE} bytes")),
        "the downloads are logged: {log}"
    );
    assert!(log.contains("loaded: the agent's ramdisk"), "{log}");

    // The agent reboots the machine (exit 10): a new boot, fetched again.
    bmc.next_agent_exits(MAC, 10);
    assert_eq!(
        reset(&bmc, "m1", "ForceRestart").await,
        StatusCode::NO_CONTENT
    );
    bmc.wait_lab("m1", "rebooted twice", |s| {
        s["boot_count"] == 3 && s["last_boot_config"]["loaded"] == "agent"
    })
    .await;
    assert_eq!(server.gets(&format!("/{NODE}/deploy_kernel")), 3);
    bmc.wait_agent_runs(3).await;
    bmc.stop().await;
}

#[tokio::test]
async fn a_bmc_restart_starts_the_booted_agent_again_without_fetching() {
    const MAC: &str = "52:54:00:07:00:02";
    let dir = tempfile::tempdir().unwrap();
    let server = BootServer::start(dir.path().join("http")).await;
    server.write_node(MAC, &ferric_script(&server, "deploy"));
    let file = with_boot_url(dir.path(), &server.url, &[TestMachine::new("m1", MAC)]);
    let bmc = Bmc::start(dir.path(), 16601, &file).await;
    assert_eq!(reset(&bmc, "m1", "On").await, StatusCode::NO_CONTENT);
    let first = booted(&bmc, "m1").await;
    assert_eq!(first["last_boot_config"]["loaded"], "agent");
    bmc.wait_agent_runs(1).await;
    bmc.stop().await;

    std::fs::remove_file(dir.path().join("m1.cmdline")).unwrap();
    let bmc = Bmc::start(dir.path(), 16601, &file).await;
    let runs = bmc.wait_agent_runs(2).await;
    let without_listen = |run: &str| run.split(" --listen ").next().unwrap().to_string();
    assert_eq!(
        without_listen(&runs[1]),
        without_listen(&runs[0]),
        "the same --cmdline again (a new free port to listen on)"
    );
    assert!(runs[1].starts_with("--cmdline "), "{runs:?}");
    let state = bmc.lab("m1").await;
    assert_eq!(state["boot_count"], 1, "a BMC restart is not a boot");
    assert_eq!(state["last_boot_config"], first["last_boot_config"]);
    assert!(std::fs::read_to_string(dir.path().join("m1.cmdline"))
        .unwrap()
        .contains("BOOTIF=52:54:00:07:00:02"));
    assert_eq!(server.total_gets(), 3, "nothing fetched again");
    bmc.stop().await;
}

#[tokio::test]
async fn no_config_for_the_mac_falls_back_to_the_disk() {
    const MAC: &str = "52:54:00:07:00:03";
    let dir = tempfile::tempdir().unwrap();
    let server = BootServer::start(dir.path().join("http")).await;
    let file = with_boot_url(dir.path(), &server.url, &[TestMachine::new("m1", MAC)]);
    let bmc = Bmc::start(dir.path(), 16602, &file).await;
    sign_disk(&dir.path().join("m1.disk"));
    pxe_once(&bmc, "m1").await;
    assert_eq!(reset(&bmc, "m1", "On").await, StatusCode::NO_CONTENT);
    let state = booted(&bmc, "m1").await;
    assert_eq!(state["last_boot_config"]["loaded"], "failed", "{state}");
    let error = state["last_boot_config"]["error"].as_str().unwrap();
    assert!(
        error.contains("pxelinux.cfg/52-54-00-07-00-03") && error.contains("404"),
        "{error}"
    );
    assert_eq!(state["last_boot"], "disk");
    assert_eq!(state["power"], "on");
    assert_eq!(state["agent_pid"], Value::Null);
    assert_eq!(server.gets("/pxelinux.cfg/52-54-00-07-00-03"), 1);
    assert!(bmc.agent_runs().is_empty());
    let log = boot_log(dir.path(), "m1");
    assert!(
        log.contains("network boot failed") && log.contains("404"),
        "{log}"
    );
    assert!(log.contains("not the network: disk"), "{log}");
    bmc.stop().await;
}

#[tokio::test]
async fn goto_boot_whole_disk_boots_the_disk_if_it_can() {
    const MAC: &str = "52:54:00:07:00:04";
    let dir = tempfile::tempdir().unwrap();
    let server = BootServer::start(dir.path().join("http")).await;
    server.write_node(MAC, &ferric_script(&server, "boot_whole_disk"));
    let mut m1 = TestMachine::new("m1", MAC);
    m1.extra = "boot_order = [\"pxe\", \"disk\"]\n";
    let file = with_boot_url(dir.path(), &server.url, &[m1]);
    let bmc = Bmc::start(dir.path(), 16603, &file).await;
    sign_disk(&dir.path().join("m1.disk"));
    assert_eq!(reset(&bmc, "m1", "On").await, StatusCode::NO_CONTENT);
    let state = booted(&bmc, "m1").await;
    assert_eq!(state["last_boot_config"]["loaded"], "disk", "{state}");
    assert_eq!(state["last_boot_config"]["kernel"], Value::Null);
    assert_eq!(state["last_boot"], "disk");
    assert_eq!(state["agent_pid"], Value::Null);
    assert_eq!(server.total_gets(), 1, "the config only");

    // An unsigned disk: sanboot fails, and so does the rest of the order.
    std::fs::write(dir.path().join("m1.disk"), vec![0u8; 4096]).unwrap();
    assert_eq!(
        reset(&bmc, "m1", "PowerCycle").await,
        StatusCode::NO_CONTENT
    );
    let state = bmc
        .wait_lab("m1", "booted again", |s| {
            s["boot_count"] == 2 && s["last_boot_config"]["loaded"] != "loading"
        })
        .await;
    assert_eq!(state["last_boot_config"]["loaded"], "failed");
    assert!(state["last_boot_config"]["error"]
        .as_str()
        .unwrap()
        .contains("sanboot"));
    assert_eq!(state["last_boot"], "none");
    assert!(bmc.agent_runs().is_empty());
    bmc.stop().await;
}

#[tokio::test]
async fn boot_partition_runs_the_netbooted_instance() {
    const MAC: &str = "52:54:00:07:00:05";
    let dir = tempfile::tempdir().unwrap();
    let server = BootServer::start(dir.path().join("http")).await;
    server.write_node(MAC, &ferric_script(&server, "boot_partition"));
    let file = with_boot_url(dir.path(), &server.url, &[TestMachine::new("m1", MAC)]);
    let bmc = Bmc::start(dir.path(), 16604, &file).await;
    assert_eq!(reset(&bmc, "m1", "On").await, StatusCode::NO_CONTENT);
    let state = booted(&bmc, "m1").await;
    let config = &state["last_boot_config"];
    assert_eq!(config["loaded"], "instance", "{state}");
    assert_eq!(config["kernel"], server.node_url("kernel"));
    assert_eq!(config["kernel_bytes"], KERNEL_SIZE / 2);
    assert_eq!(config["initrd_bytes"], RAMDISK_SIZE / 2);
    assert!(config["cmdline"]
        .as_str()
        .unwrap()
        .starts_with("root=UUID=4f1c-77 ro text"));
    assert_eq!(state["last_boot"], "pxe");
    assert_eq!(state["power"], "on");
    assert_eq!(state["agent_pid"], Value::Null);
    assert_eq!(server.gets(&format!("/{NODE}/kernel")), 1);
    assert_eq!(server.gets(&format!("/{NODE}/ramdisk")), 1);

    // A BMC restart: the instance still runs; nothing is started or fetched.
    bmc.stop().await;
    let bmc = Bmc::start(dir.path(), 16604, &file).await;
    let again = bmc.lab("m1").await;
    assert_eq!(again["power"], "on");
    assert_eq!(again["last_boot_config"]["loaded"], "instance");
    assert_eq!(again["agent_pid"], Value::Null);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(bmc.agent_runs().is_empty());
    assert_eq!(server.total_gets(), 3);
    bmc.stop().await;
}

#[tokio::test]
async fn a_missing_kernel_fails_the_network_boot() {
    const MAC: &str = "52:54:00:07:00:06";
    let dir = tempfile::tempdir().unwrap();
    let server = BootServer::start(dir.path().join("http")).await;
    server.write_node(MAC, &ferric_script(&server, "deploy"));
    std::fs::remove_file(server.root.join(NODE).join("deploy_kernel")).unwrap();
    let file = with_boot_url(dir.path(), &server.url, &[TestMachine::new("m1", MAC)]);
    let bmc = Bmc::start(dir.path(), 16605, &file).await;
    assert_eq!(reset(&bmc, "m1", "On").await, StatusCode::NO_CONTENT);
    let state = booted(&bmc, "m1").await;
    let config = &state["last_boot_config"];
    assert_eq!(config["loaded"], "failed", "{state}");
    assert_eq!(config["kernel"], server.node_url("deploy_kernel"));
    let error = config["error"].as_str().unwrap();
    assert!(
        error.contains("deploy_kernel") && error.contains("404"),
        "{error}"
    );
    assert_eq!(
        server.gets(&format!("/{NODE}/deploy_ramdisk")),
        0,
        "no initrd after a failed kernel"
    );
    assert_eq!(state["last_boot"], "none", "a blank disk, nothing else");
    assert_eq!(state["power"], "on");
    assert!(bmc.agent_runs().is_empty());
    bmc.stop().await;
}

#[tokio::test]
async fn a_boot_server_that_is_down_fails_within_seconds() {
    const MAC: &str = "52:54:00:07:00:07";
    let dir = tempfile::tempdir().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let file = with_boot_url(dir.path(), &url, &[TestMachine::new("m1", MAC)]);
    let bmc = Bmc::start(dir.path(), 16606, &file).await;
    sign_disk(&dir.path().join("m1.disk"));
    pxe_once(&bmc, "m1").await;
    let started = Instant::now();
    assert_eq!(reset(&bmc, "m1", "On").await, StatusCode::NO_CONTENT);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "the request does not wait for the boot"
    );
    let state = booted(&bmc, "m1").await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(2),
        "connection errors are retried: {took:?}"
    );
    assert!(took < Duration::from_secs(6), "but not for long: {took:?}");
    assert_eq!(state["last_boot_config"]["loaded"], "failed");
    let error = state["last_boot_config"]["error"].as_str().unwrap();
    assert!(error.contains("retried"), "{error}");
    assert_eq!(state["last_boot"], "disk");
    bmc.stop().await;
}

#[tokio::test]
async fn a_power_off_during_the_download_aborts_it() {
    const MAC: &str = "52:54:00:07:00:08";
    let dir = tempfile::tempdir().unwrap();
    let server = BootServer::start(dir.path().join("http")).await;
    server.write_node(MAC, &ferric_script(&server, "deploy"));
    let ramdisk = format!("/{NODE}/deploy_ramdisk");
    server.trickle(&ramdisk);
    let file = with_boot_url(dir.path(), &server.url, &[TestMachine::new("m1", MAC)]);
    let bmc = Bmc::start(dir.path(), 16607, &file).await;
    assert_eq!(reset(&bmc, "m1", "On").await, StatusCode::NO_CONTENT);
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.gets(&ramdisk) == 0 {
        assert!(Instant::now() < deadline, "the ramdisk was never asked for");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // While it downloads, the BMC answers.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let state = bmc.lab("m1").await;
    assert_eq!(state["last_boot_config"]["loaded"], "loading", "{state}");
    assert_eq!(state["power"], "on");
    let answer = bmc
        .redfish(Method::GET, "/redfish/v1/Systems/m1", "admin", "password")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);

    let started = Instant::now();
    assert_eq!(reset(&bmc, "m1", "ForceOff").await, StatusCode::NO_CONTENT);
    assert!(started.elapsed() < Duration::from_secs(1));
    let state = bmc.lab("m1").await;
    assert_eq!(state["power"], "off");
    assert_eq!(state["last_boot_config"]["loaded"], "failed");
    assert_eq!(
        state["last_boot_config"]["error"],
        "interrupted by a power request"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.cut_off.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the download was not closed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(*server.cut_off.lock().unwrap(), vec![ramdisk.clone()]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(bmc.agent_runs().is_empty(), "no agent after the power off");
    assert!(boot_log(dir.path(), "m1").contains("interrupted"));

    // Powered on again with the ramdisk served in full: the agent boots.
    server.slow.lock().unwrap().clear();
    assert_eq!(reset(&bmc, "m1", "On").await, StatusCode::NO_CONTENT);
    let state = booted(&bmc, "m1").await;
    assert_eq!(state["last_boot_config"]["loaded"], "agent", "{state}");
    assert_eq!(state["boot_count"], 2);
    bmc.wait_agent_runs(1).await;
    bmc.stop().await;
}

#[tokio::test]
async fn a_restart_during_the_download_boots_again() {
    const MAC: &str = "52:54:00:07:00:09";
    let dir = tempfile::tempdir().unwrap();
    let server = BootServer::start(dir.path().join("http")).await;
    server.write_node(MAC, &ferric_script(&server, "deploy"));
    let kernel = format!("/{NODE}/deploy_kernel");
    server.trickle(&kernel);
    let file = with_boot_url(dir.path(), &server.url, &[TestMachine::new("m1", MAC)]);
    let bmc = Bmc::start(dir.path(), 16608, &file).await;
    assert_eq!(reset(&bmc, "m1", "On").await, StatusCode::NO_CONTENT);
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.gets(&kernel) == 0 {
        assert!(Instant::now() < deadline, "the kernel was never asked for");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.slow.lock().unwrap().clear();
    assert_eq!(
        reset(&bmc, "m1", "ForceRestart").await,
        StatusCode::NO_CONTENT
    );
    let state = booted(&bmc, "m1").await;
    assert_eq!(state["last_boot_config"]["loaded"], "agent", "{state}");
    assert_eq!(state["boot_count"], 2);
    assert_eq!(server.gets(&kernel), 2);
    assert_eq!(bmc.wait_agent_runs(1).await.len(), 1);
    bmc.stop().await;
}

fn have_ipmitool() -> bool {
    let found = std::process::Command::new("ipmitool")
        .arg("-V")
        .output()
        .is_ok_and(|out| out.status.success());
    if !found {
        assert!(
            std::env::var_os("FERRIC_REQUIRE_PEERS").is_none(),
            "a peer this test drives is missing (FERRIC_REQUIRE_PEERS is set)"
        );
        eprintln!("skipped: ipmitool is not installed (apt-get install ipmitool)");
    }
    found
}

async fn ipmitool(port: u16, args: &[&str]) -> String {
    let port = port.to_string();
    let out = tokio::process::Command::new("ipmitool")
        .args(["-I", "lanplus", "-C", "17", "-H", "127.0.0.1", "-p", &port])
        .args(["-U", "admin", "-P", "password"])
        .args(args)
        .output()
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "ipmitool {args:?}: {text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipmitool_bootdev_pxe_and_power_on_follow_the_boot_config() {
    if !have_ipmitool() {
        return;
    }
    const MAC: &str = "52:54:00:07:00:0a";
    let dir = tempfile::tempdir().unwrap();
    let server = BootServer::start(dir.path().join("http")).await;
    server.write_node(MAC, &ferric_script(&server, "deploy"));
    let mut m1 = TestMachine::new("m1", MAC);
    m1.ipmi_port = Some(16621);
    let file = with_boot_url(dir.path(), &server.url, &[m1]);
    let bmc = Bmc::start(dir.path(), 16620, &file).await;
    sign_disk(&dir.path().join("m1.disk"));
    ipmitool(16621, &["chassis", "bootdev", "pxe"]).await;
    ipmitool(16621, &["power", "on"]).await;
    let state = booted(&bmc, "m1").await;
    assert_eq!(state["last_boot_config"]["loaded"], "agent", "{state}");
    assert_eq!(state["last_boot"], "pxe");
    let runs = bmc.wait_agent_runs(1).await;
    assert!(runs[0].starts_with("--cmdline "), "{runs:?}");
    assert!(std::fs::read_to_string(dir.path().join("m1.cmdline"))
        .unwrap()
        .contains("BOOTIF=52:54:00:07:00:0a"));
    assert!(ipmitool(16621, &["power", "status"])
        .await
        .contains("Chassis Power is on"));
    // The once override is consumed: the next boot is the signed disk.
    ipmitool(16621, &["power", "reset"]).await;
    let state = bmc
        .wait_lab("m1", "booted its disk", |s| s["boot_count"] == 2)
        .await;
    assert_eq!(state["last_boot"], "disk");
    assert_eq!(state["last_boot_config"], Value::Null);
    assert_eq!(state["agent_pid"], Value::Null);
    bmc.stop().await;
}

/// The real `ferric-agent`: FERRIC_AGENT_BIN, else the one built beside
/// this test (target/debug), if any.
fn real_agent() -> Option<PathBuf> {
    let built = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("ferric-agent")));
    let agent = std::env::var_os("FERRIC_AGENT_BIN")
        .map(PathBuf::from)
        .or(built)
        .filter(|path| path.is_file());
    if agent.is_none() {
        assert!(
            std::env::var_os("FERRIC_REQUIRE_PEERS").is_none(),
            "a peer this test drives is missing (FERRIC_REQUIRE_PEERS is set)"
        );
        eprintln!(
            "skipped: no ferric-agent (cargo build -p ferric-agent, or set FERRIC_AGENT_BIN)"
        );
    }
    agent
}

#[tokio::test]
async fn the_real_agent_looks_itself_up_at_the_boot_configs_api_url() {
    let Some(agent) = real_agent() else {
        return;
    };
    const MAC: &str = "52:54:00:07:00:0b";
    let dir = tempfile::tempdir().unwrap();
    let server = BootServer::start(dir.path().join("http")).await;
    // The boot server stands in for Ironic too: it answers the lookup 404.
    let api_url = server.url.clone();
    server.write_node(MAC, &ferric_script_for(&server, "deploy", &api_url));
    let file = with_boot_url(dir.path(), &server.url, &[TestMachine::new("m1", MAC)]);
    let bmc = Bmc::start_with_agent(dir.path(), 16609, &file, agent).await;
    assert_eq!(reset(&bmc, "m1", "On").await, StatusCode::NO_CONTENT);
    let state = booted(&bmc, "m1").await;
    assert_eq!(state["last_boot_config"]["loaded"], "agent", "{state}");
    let lookup = "/v1/lookup?addresses=52%3A54%3A00%3A07%3A00%3A0b";
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.gets(lookup) == 0 {
        let log = std::fs::read_to_string(dir.path().join("m1.agent.log")).unwrap_or_default();
        assert!(
            Instant::now() < deadline,
            "the agent never looked itself up at {api_url}: {:?}\n{log}",
            server.gets.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pid = bmc.lab("m1").await["agent_pid"].as_u64().unwrap();
    assert!(alive(pid), "still looking itself up");
    bmc.stop().await;
    assert!(!alive(pid));
}

#[tokio::test]
async fn a_bmc_restart_during_a_network_boot_does_it_again() {
    const MAC: &str = "52:54:00:07:00:0c";
    let dir = tempfile::tempdir().unwrap();
    let server = BootServer::start(dir.path().join("http")).await;
    server.write_node(MAC, &ferric_script(&server, "deploy"));
    let kernel = format!("/{NODE}/deploy_kernel");
    server.trickle(&kernel);
    let file = with_boot_url(dir.path(), &server.url, &[TestMachine::new("m1", MAC)]);
    let bmc = Bmc::start(dir.path(), 16610, &file).await;
    assert_eq!(reset(&bmc, "m1", "On").await, StatusCode::NO_CONTENT);
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.gets(&kernel) == 0 {
        assert!(Instant::now() < deadline, "the kernel was never asked for");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bmc.stop().await;
    let saved: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("m1.json")).unwrap()).unwrap();
    assert_eq!(saved["last_boot_config"]["loaded"], "loading");

    server.slow.lock().unwrap().clear();
    let bmc = Bmc::start(dir.path(), 16610, &file).await;
    let state = booted(&bmc, "m1").await;
    assert_eq!(state["last_boot_config"]["loaded"], "agent", "{state}");
    assert_eq!(state["boot_count"], 1, "a BMC restart is not a boot");
    assert_eq!(server.gets(&kernel), 2);
    bmc.wait_agent_runs(1).await;
    bmc.stop().await;
}
