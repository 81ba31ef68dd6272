//! `ferric serve` with its own DHCP, TFTP and HTTP boot services, in a
//! pair of network namespaces this test creates and always removes: a node
//! enrolled with the `ipxe` interface starts cleaning, and a client on the
//! provisioning network gets from real tools what a PXE ROM and iPXE would:
//! busybox udhcpc an address and the iPXE loader's name, curl the loader
//! over TFTP, then (as iPXE) the node's script URL over DHCP and the script
//! over HTTP. `ferric boot trace MAC` tells the whole story.
//!
//! Needs root, `ip`, `busybox` and `curl`; without them it says why and
//! passes, unless `FERRIC_REQUIRE_PEERS=1`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const MAC: &str = "52:54:00:5e:00:07";
const SERVER_IP: &str = "10.97.0.1";

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

fn have(tool: &str) -> bool {
    ["/usr/bin", "/usr/sbin", "/bin", "/sbin"]
        .iter()
        .any(|d| Path::new(d).join(tool).is_file())
}

fn ready() -> bool {
    let mut missing: Vec<&str> = ["ip", "busybox", "curl"]
        .into_iter()
        .filter(|t| !have(t))
        .collect();
    if !is_root() {
        missing.push("root");
    }
    if missing.is_empty() {
        return true;
    }
    let reason = format!("netboot_netns: skipped, missing {}", missing.join(", "));
    assert!(
        std::env::var("FERRIC_REQUIRE_PEERS").as_deref() != Ok("1"),
        "{reason} (FERRIC_REQUIRE_PEERS=1)"
    );
    eprintln!("{reason}");
    false
}

fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("spawn");
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The server and client namespaces, joined by a veth pair; deleted on drop.
struct Namespaces {
    server: String,
    client: String,
}

impl Namespaces {
    fn new() -> Namespaces {
        let id = std::process::id();
        let ns = Namespaces {
            server: format!("ferric-nb-s-{id}"),
            client: format!("ferric-nb-c-{id}"),
        };
        sh(&["ip", "netns", "add", &ns.server]);
        sh(&["ip", "netns", "add", &ns.client]);
        sh(&[
            "ip", "-n", &ns.server, "link", "add", "veth-s", "type", "veth", "peer", "name",
            "veth-c", "netns", &ns.client,
        ]);
        sh(&[
            "ip", "-n", &ns.client, "link", "set", "veth-c", "address", MAC,
        ]);
        sh(&[
            "ip",
            "-n",
            &ns.server,
            "addr",
            "add",
            &format!("{SERVER_IP}/24"),
            "dev",
            "veth-s",
        ]);
        for (space, dev) in [(&ns.server, "veth-s"), (&ns.client, "veth-c")] {
            sh(&["ip", "-n", space, "link", "set", dev, "up"]);
            sh(&["ip", "-n", space, "link", "set", "lo", "up"]);
        }
        ns
    }

    fn exec(&self, space: &str, args: &[&str]) -> String {
        let mut all = vec!["ip", "netns", "exec", space];
        all.extend_from_slice(args);
        sh(&all)
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for space in [&self.server, &self.client] {
            let _ = Command::new("ip").args(["netns", "del", space]).status();
        }
    }
}

struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn api(ns: &Namespaces, method: &str, path: &str, body: Option<Value>) -> Value {
    let url = format!("http://127.0.0.1:6385{path}");
    let mut args = vec![
        "curl",
        "-sf",
        "-X",
        method,
        "-H",
        "X-OpenStack-Ironic-API-Version: 1.115",
        "-H",
        "Content-Type: application/json",
    ];
    let text = body.map(|b| b.to_string());
    if let Some(text) = &text {
        args.extend(["-d", text.as_str()]);
    }
    args.push(&url);
    let out = ns.exec(&ns.server, &args);
    if out.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&out).expect("json")
    }
}

fn wait_state(ns: &Namespaces, node: &str, state: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let n = api(ns, "GET", &format!("/v1/nodes/{node}"), None);
        if n["provision_state"] == state && n["reservation"].is_null() {
            return;
        }
        assert!(Instant::now() < deadline, "stuck: {n}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// busybox udhcpc in the client namespace; the script takes the address
/// (as a ROM would) and prints what it got.
fn udhcpc(ns: &Namespaces, dir: &Path, extra: &[&str]) -> String {
    let script = dir.join("udhcpc.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\nif [ \"$1\" = bound ]; then\n  ip addr replace \"$ip/$mask\" dev \"$interface\"\n  \
         echo \"ip=$ip siaddr=$siaddr boot_file=$boot_file\"\nfi\nexit 0\n",
    )
    .expect("script");
    sh(&["chmod", "+x", script.to_str().expect("utf8")]);
    let mut args = vec![
        "busybox",
        "udhcpc",
        "-f",
        "-q",
        "-n",
        "-t",
        "5",
        "-T",
        "1",
        "-i",
        "veth-c",
        "-s",
        script.to_str().expect("utf8"),
    ];
    args.extend_from_slice(extra);
    ns.exec(&ns.client, &args)
}

#[test]
fn a_client_boots_through_dhcp_tftp_and_http_and_the_trace_says_so() {
    if !ready() {
        return;
    }
    let ns = Namespaces::new();
    let dir = tempfile::tempdir().expect("dir");
    let kernel = dir.path().join("kernel");
    std::fs::write(&kernel, vec![1u8; 50_000]).expect("kernel");
    let data = dir.path().join("data");
    let mut child = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.server,
            env!("CARGO_BIN_EXE_ferric"),
            "serve",
        ])
        .args(["--listen", "127.0.0.1:6385", "--data-dir"])
        .arg(&data)
        .args([
            "--dhcp-interface",
            "veth-s",
            "--dhcp-range",
            "10.97.0.100,10.97.0.150",
        ])
        .args(["--tftp-listen", &format!("{SERVER_IP}:69")])
        .args(["--http-listen", &format!("{SERVER_IP}:8080")])
        .env("FERRIC_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("ferric serve");
    let stdout = child.stdout.take().expect("stdout");
    let _serve = Serve(child);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    // Drains the server's output (its log goes to stdout) for the whole
    // test, so that it never writes into a closed pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("ferric listening on") {
                let _ = ready_tx.send(());
            }
            eprintln!("serve: {line}");
        }
    });
    ready_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("ferric serve did not start");

    let node = api(
        &ns,
        "POST",
        "/v1/nodes",
        Some(json!({
            "driver": "fake-hardware", "boot_interface": "ipxe", "deploy_interface": "direct",
            "properties": {"capabilities": "boot_mode:bios"},
            "driver_info": {"deploy_kernel": kernel.display().to_string(),
                            "deploy_ramdisk": kernel.display().to_string()},
        })),
    );
    let uuid = node["uuid"].as_str().expect("uuid").to_owned();
    api(
        &ns,
        "POST",
        "/v1/ports",
        Some(json!({"address": MAC, "node_uuid": uuid})),
    );
    for (verb, state) in [("manage", "manageable"), ("provide", "clean wait")] {
        api(
            &ns,
            "PUT",
            &format!("/v1/nodes/{uuid}/states/provision"),
            Some(json!({"target": verb})),
        );
        wait_state(&ns, &uuid, state);
    }

    // The PXE ROM's turn: an address, the TFTP server and the loader.
    let got = udhcpc(&ns, dir.path(), &["-V", "PXEClient", "-x", "93:0000"]);
    assert!(got.contains("ip=10.97.0.1"), "{got}");
    assert!(got.contains(&format!("siaddr={SERVER_IP}")), "{got}");
    assert!(got.contains("boot_file=undionly.kpxe"), "{got}");
    let loader = dir.path().join("undionly.kpxe");
    ns.exec(
        &ns.client,
        &[
            "curl",
            "-sf",
            "--tftp-blksize",
            "1428",
            "-o",
            loader.to_str().expect("utf8"),
            &format!("tftp://{SERVER_IP}/undionly.kpxe"),
        ],
    );
    assert_eq!(
        std::fs::read(&loader).expect("loader"),
        std::fs::read("/usr/lib/ipxe/undionly.kpxe").expect("Debian's loader")
    );

    // iPXE's turn: DHCP again with option 175, the node's script over HTTP.
    let got = udhcpc(&ns, dir.path(), &["-x", "175:0101"]);
    let script_url = format!("http://{SERVER_IP}:8080/{uuid}/config");
    assert!(got.contains(&format!("boot_file={script_url}")), "{got}");
    let script = ns.exec(&ns.client, &["curl", "-sf", &script_url]);
    assert!(script.starts_with("#!ipxe\n"), "{script}");
    assert!(
        script.contains(&format!("http://{SERVER_IP}:8080/{uuid}/deploy_kernel")),
        "{script}"
    );
    assert!(script.contains("ipa-api-url=http://"), "{script}");

    let trace = ns.exec(
        &ns.server,
        &[
            env!("CARGO_BIN_EXE_ferric"),
            "boot",
            "trace",
            MAC,
            "--url",
            "http://127.0.0.1:6385",
        ],
    );
    for step in [
        "DHCP DISCOVER received",
        "DHCP OFFER of 10.97.0.1",
        "DHCP ACK of 10.97.0.1",
        "tftp undionly.kpxe served",
        &format!("http /{uuid}/config served"),
    ] {
        assert!(trace.contains(step), "no {step:?} in the trace:\n{trace}");
    }
}
