//! The `ipxe` and `pxe` boot interfaces through the real binary: the boot
//! config, kernel and ramdisk served over Ferric's HTTP boot server, the
//! DHCP host and option files, and all of it gone after cleaning.

mod common;

use std::path::Path;
use std::time::Duration;

use common::Server;
use reqwest::Method;
use serde_json::{json, Value};

const MAC: &str = "52:54:00:12:34:56";

fn free_port() -> u16 {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("probe");
    probe.local_addr().expect("addr").port()
}

fn http_get(url: &str) -> (u16, Vec<u8>) {
    let resp = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
        .get(url)
        .send()
        .expect("get");
    let status = resp.status().as_u16();
    (status, resp.bytes().expect("body").to_vec())
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

struct Rig {
    server: Server,
    http: String,
    images: tempfile::TempDir,
}

fn rig() -> Rig {
    let port = free_port();
    let server = Server::start(&format!(
        "[http_server]\nenabled = true\nlisten = \"127.0.0.1:{port}\"\n"
    ));
    let images = tempfile::tempdir().expect("images");
    std::fs::write(images.path().join("kernel"), vec![7u8; 100_000]).expect("kernel");
    std::fs::write(images.path().join("ramdisk"), vec![9u8; 300_000]).expect("ramdisk");
    Rig {
        server,
        http: format!("http://127.0.0.1:{port}"),
        images,
    }
}

fn enrol(rig: &Rig, boot_interface: &str, with_images: bool) -> String {
    let mut driver_info = json!({});
    if with_images {
        driver_info = json!({
            "deploy_kernel": rig.images.path().join("kernel").display().to_string(),
            "deploy_ramdisk": format!("file://{}", rig.images.path().join("ramdisk").display()),
        });
    }
    let node = rig.server.post(
        "/v1/nodes",
        json!({
            "driver": "fake-hardware",
            "name": "nb",
            "boot_interface": boot_interface,
            "deploy_interface": "direct",
            "driver_info": driver_info,
            "properties": {"capabilities": "boot_mode:bios"},
        }),
    );
    let uuid = node["uuid"].as_str().expect("uuid").to_owned();
    rig.server
        .post("/v1/ports", json!({"address": MAC, "node_uuid": uuid}));
    uuid
}

fn dhcp_dir(server: &Server, which: &str) -> std::path::PathBuf {
    server.data_dir().join("dhcp").join(which)
}

#[test]
fn ipxe_serves_the_agent_ramdisk_while_cleaning_and_removes_it_after() {
    let rig = rig();
    let s = &rig.server;
    let uuid = enrol(&rig, "ipxe", true);
    s.provision(&uuid, "manage", "manageable");
    s.provision(&uuid, "provide", "clean wait");

    let (status, script) = http_get(&format!("{}/pxelinux.cfg/52-54-00-12-34-56", rig.http));
    assert_eq!(status, 200, "the MAC's script");
    let script = String::from_utf8(script).expect("utf8");
    assert!(script.starts_with("#!ipxe\n"), "{script}");
    let kernel_url = format!("{}/{uuid}/deploy_kernel", rig.http);
    let kernel_line = script
        .lines()
        .find(|l| l.starts_with("kernel "))
        .expect("kernel line");
    assert!(
        kernel_line.starts_with(&format!("kernel {kernel_url} ")),
        "{kernel_line}"
    );
    assert!(
        kernel_line.contains(&format!("ipa-api-url={}", s.url)),
        "{kernel_line}"
    );
    assert!(kernel_line.contains("BOOTIF=${mac}"), "{kernel_line}");
    let (status, kernel) = http_get(&kernel_url);
    assert_eq!((status, kernel.len()), (200, 100_000));
    let (status, ramdisk) = http_get(&format!("{}/{uuid}/deploy_ramdisk", rig.http));
    assert_eq!((status, ramdisk.len()), (200, 300_000));

    let node = s.get(&format!("/v1/nodes/{uuid}"));
    let tag = node["driver_internal_info"]["dnsmasq_tag"]
        .as_str()
        .expect("dnsmasq tag")
        .to_owned();
    let host = read(&dhcp_dir(s, "hostsdir").join(format!("ironic-{MAC}.conf")));
    assert_eq!(host, format!("{MAC},set:{tag},set:ironic\n"));
    let opts = read(&dhcp_dir(s, "optsdir").join(format!("ironic-{uuid}.conf")));
    assert!(
        opts.contains(&format!("tag:{tag},tag:!ipxe,67,undionly.kpxe\n")),
        "{opts}"
    );
    assert!(
        opts.contains(&format!(
            "tag:{tag},tag:ipxe,67,{}/{uuid}/config\n",
            rig.http
        )),
        "{opts}"
    );

    // Every line reads back through Ferric's own DHCP server's parser.
    let lines = opts.lines().count();
    for line in opts.lines() {
        ferric_netboot::dhcp::OptionLine::parse(line)
            .unwrap_or_else(|e| panic!("{line:?} does not parse: {e}"));
    }
    assert_eq!(lines, 5, "{opts}");
    ferric_netboot::dhcp::HostEntry::parse(host.trim()).expect("host line parses");

    s.provision(&uuid, "abort", "clean failed");
    let node = s.get(&format!("/v1/nodes/{uuid}"));
    assert!(
        node["driver_internal_info"]["dnsmasq_tag"].is_null(),
        "{node}"
    );
    let (status, _) = http_get(&format!("{}/pxelinux.cfg/52-54-00-12-34-56", rig.http));
    assert_eq!(status, 404, "the MAC's script is gone");
    let (status, _) = http_get(&kernel_url);
    assert_eq!(status, 404, "the node's kernel is gone");
    let host = read(&dhcp_dir(s, "hostsdir").join(format!("ironic-{MAC}.conf")));
    assert_eq!(host, format!("{MAC},ignore\n"));
    assert!(!dhcp_dir(s, "optsdir")
        .join(format!("ironic-{uuid}.conf"))
        .exists());
}

#[test]
fn pxe_writes_a_pxelinux_config_under_the_tftp_root() {
    let rig = rig();
    let s = &rig.server;
    let uuid = enrol(&rig, "pxe", true);
    s.provision(&uuid, "manage", "manageable");
    s.provision(&uuid, "provide", "clean wait");
    let root = s.data_dir().join("tftpboot");
    let config = read(&root.join("pxelinux.cfg/01-52-54-00-12-34-56"));
    let node_dir = root.join(&uuid);
    assert!(config.contains("default deploy\n"), "{config}");
    assert!(
        config.contains(&format!("kernel {}/deploy_kernel\n", node_dir.display())),
        "{config}"
    );
    assert!(config.contains("ipappend 2\n"), "{config}");
    assert_eq!(
        std::fs::read(node_dir.join("deploy_ramdisk"))
            .expect("ramdisk")
            .len(),
        300_000
    );
    let opts = read(&dhcp_dir(s, "optsdir").join(format!("ironic-{uuid}.conf")));
    assert!(opts.contains(",67,pxelinux.0\n"), "{opts}");
    s.provision(&uuid, "abort", "clean failed");
    assert!(!root.join("pxelinux.cfg/01-52-54-00-12-34-56").exists());
    assert!(!node_dir.exists());
}

#[test]
fn validation_names_what_the_boot_interface_misses() {
    let rig = rig();
    let s = &rig.server;
    let uuid = enrol(&rig, "ipxe", false);
    let (status, body) = s.call(Method::GET, &format!("/v1/nodes/{uuid}/validate"), None);
    assert_eq!(status, 200);
    assert_eq!(body["boot"]["result"], Value::Bool(false), "{body}");
    assert_eq!(
        body["boot"]["reason"],
        "Cannot validate PXE bootloader. Some parameters were missing in node's driver_info \
         and configuration. Missing are: ['deploy_kernel', 'deploy_ramdisk']"
    );
}
