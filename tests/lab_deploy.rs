//! The seed flow on qemu VMs, end to end, driven by the stock openstack
//! CLI: nodes enrolled with their BMC (`ipmi` and `redfish`, served by
//! `ferric lab up`'s virtual BMCs), `manage` (verified through the BMC),
//! `provide` (cleaning boots Ferric's deploy ramdisk over iPXE from `ferric
//! serve`'s DHCP and HTTP and erases the disk's metadata), `deploy` (the
//! agent writes the image to the VM's disk; the VM reboots into it, whose
//! init prints its marker on the serial console), `undeploy` (cleaning
//! again) and a netboot of a partition image.
//!
//! vm0: ipmi, BIOS (SeaBIOS), a raw whole-disk image with a config drive;
//! then undeploy, then netboot of a partition image with its own kernel.
//! vm1: redfish, UEFI (OVMF), a qcow2 whole-disk image.
//!
//! Needs root, `ip`, `curl`, `qemu-system-x86_64`, the openstack CLI
//! (FERRIC_OPENSTACK or target/venv) and the lab assets (FERRIC_LAB_ASSETS
//! or target/lab-assets, built from a static agent when missing); skipped
//! without them unless FERRIC_REQUIRE_PEERS=1.

#![allow(clippy::unwrap_used)] // a test fails loudly on what it cannot do

mod labkit;

use std::path::Path;
use std::time::{Duration, Instant};

use labkit::{Assets, Lab, Openstack};

const SUBNET: &str = "10.79.0";
/// Under TCG a boot into the ramdisk takes 10-20 s, an image write and a
/// reboot as much again; the bounds leave room for a loaded machine.
const FLOW_LIMIT: Duration = Duration::from_secs(600);

fn http_url(lab: &Lab, name: &str) -> String {
    format!("http://{}:8080/images/{name}", lab.host_ip())
}

/// Puts the images where `ferric serve`'s HTTP server serves them.
fn publish_images(assets: &Assets, http_root: &Path) {
    let dir = http_root.join("images");
    std::fs::create_dir_all(&dir).unwrap();
    for name in [
        "ferric-test-disk.raw",
        "ferric-test-disk.qcow2",
        "ferric-test-part.img",
        "ferric-test-part.kernel",
        "ferric-test-part.initramfs",
    ] {
        std::fs::copy(assets.path(name), dir.join(name)).unwrap();
    }
}

fn enrol(
    os: &Openstack,
    lab: &Lab,
    assets: &Assets,
    index: usize,
    driver: &str,
    mode: &str,
    deploy_interface: &str,
) -> String {
    let name = lab.vm(index, "name");
    let kernel = assets.path("ferric-deploy.kernel").display().to_string();
    let ramdisk = assets.path("ferric-deploy.initramfs").display().to_string();
    let mut args: Vec<String> = [
        "node",
        "create",
        "--name",
        &name,
        "--driver",
        driver,
        "--deploy-interface",
        deploy_interface,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let info =
        |key: &str, value: String| vec!["--driver-info".to_string(), format!("{key}={value}")];
    match driver {
        "ipmi" => {
            args.extend(info("ipmi_address", lab.vm(index, "ipmi_address")));
            args.extend(info("ipmi_port", lab.vm(index, "ipmi_port")));
            args.extend(info("ipmi_username", lab.vm(index, "username")));
            args.extend(info("ipmi_password", lab.vm(index, "password")));
        }
        _ => {
            let url = lab.record["redfish_url"].as_str().unwrap().to_string();
            args.extend(info("redfish_address", url));
            args.extend(info(
                "redfish_system_id",
                format!("/redfish/v1/Systems/{name}"),
            ));
            args.extend(info("redfish_username", lab.vm(index, "username")));
            args.extend(info("redfish_password", lab.vm(index, "password")));
        }
    }
    args.extend(info("deploy_kernel", kernel));
    args.extend(info("deploy_ramdisk", ramdisk));
    args.extend([
        "--property".into(),
        format!("capabilities=boot_mode:{mode}"),
    ]);
    args.extend(["-f", "value", "-c", "uuid"].map(String::from));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let uuid = os.run(&refs).trim().to_string();
    os.run(&["port", "create", &lab.vm(index, "mac"), "--node", &uuid]);
    uuid
}

/// manage, then provide: cleaning boots the ramdisk and erases metadata.
fn make_available(os: &Openstack, node: &str, name: &str) {
    os.run(&["node", "manage", node]);
    os.wait_state(node, "manageable", Duration::from_secs(120));
    let start = Instant::now();
    os.run(&["node", "provide", node]);
    os.wait_state(node, "available", FLOW_LIMIT);
    assert_eq!(os.field(node, "power_state"), "power off");
    eprintln!(
        "lab_deploy[{name}]: cleaning to available in {:.1}s",
        start.elapsed().as_secs_f64()
    );
}

/// Deploys with the given instance_info and waits for `active` and then
/// for `marker` on the serial console.
fn deploy(
    os: &Openstack,
    lab: &Lab,
    index: usize,
    node: &str,
    info: &[String],
    extra: &[&str],
    marker: &str,
) {
    let name = lab.vm(index, "name");
    let mut set: Vec<&str> = vec!["node", "set", node];
    for item in info {
        set.extend(["--instance-info", item.as_str()]);
    }
    os.run(&set);
    let from = lab.serial(index).len();
    let start = Instant::now();
    let mut args = vec!["node", "deploy", node];
    args.extend(extra);
    os.run(&args);
    os.wait_state(node, "active", FLOW_LIMIT);
    let active = start.elapsed();
    assert_eq!(os.field(node, "power_state"), "power on");
    lab.wait_serial(index, from, marker, Duration::from_secs(180));
    eprintln!(
        "lab_deploy[{name}]: deploy to active in {:.1}s, marker {:.1}s after deploy",
        active.as_secs_f64(),
        start.elapsed().as_secs_f64()
    );
}

fn whole_disk_info(lab: &Lab, assets: &Assets, image: &str) -> Vec<String> {
    vec![
        format!("image_source={}", http_url(lab, image)),
        format!("image_checksum={}", assets.sha256(image)),
    ]
}

fn flow_vm0(os: &Openstack, lab: &Lab, assets: &Assets, dir: &Path) {
    let node = enrol(os, lab, assets, 0, "ipmi", "bios", "direct");
    make_available(os, &node, "vm0");
    let drive = dir.join("configdrive");
    std::fs::create_dir_all(drive.join("openstack/latest")).unwrap();
    std::fs::write(
        drive.join("openstack/latest/meta_data.json"),
        r#"{"uuid": "lab-deploy-vm0-uuid", "hostname": "vm0"}"#,
    )
    .unwrap();
    let marker = format!(
        "FERRIC-INSTANCE-MARKER {}",
        assets.marker("instance_marker")
    );
    let drive_arg = drive.display().to_string();
    deploy(
        os,
        lab,
        0,
        &node,
        &whole_disk_info(lab, assets, "ferric-test-disk.raw"),
        &["--config-drive", &drive_arg],
        &marker,
    );
    lab.wait_serial(
        0,
        0,
        "FERRIC-CONFIG-DRIVE-UUID lab-deploy-vm0-uuid",
        Duration::from_secs(60),
    );

    let start = Instant::now();
    os.run(&["node", "undeploy", &node]);
    os.wait_state(&node, "available", FLOW_LIMIT);
    // Cleaning erased the disk's metadata: the partition table is gone.
    let disk = std::path::PathBuf::from(lab.vm(0, "disk"));
    assert!(
        !ferric_lab::machine::disk_has_boot_signature(&disk).unwrap(),
        "cleaning left the partition table on {}",
        disk.display()
    );
    eprintln!(
        "lab_deploy[vm0]: undeploy to available in {:.1}s",
        start.elapsed().as_secs_f64()
    );

    // Netboot: the partition image's own kernel and initrd, served by
    // Ferric, with root= the partition the agent wrote.
    let part = "ferric-test-part.img";
    let info = vec![
        format!("image_source={}", http_url(lab, part)),
        format!("image_checksum={}", assets.sha256(part)),
        format!("kernel={}", http_url(lab, "ferric-test-part.kernel")),
        format!("ramdisk={}", http_url(lab, "ferric-test-part.initramfs")),
        "root_gb=1".into(),
        r#"capabilities={"boot_option": "netboot"}"#.into(),
    ];
    let marker = format!(
        "FERRIC-INSTANCE-MARKER {}",
        assets.marker("partition_marker")
    );
    deploy(os, lab, 0, &node, &info, &[], &marker);
}

/// The iSCSI deploy: the conductor writes the image onto the VM's disk
/// through the agent's target, qcow2 then raw.
fn flow_vm1(os: &Openstack, lab: &Lab, assets: &Assets) {
    let node = enrol(os, lab, assets, 1, "redfish", "uefi", "iscsi");
    make_available(os, &node, "vm1");
    let marker = format!(
        "FERRIC-INSTANCE-MARKER {}",
        assets.marker("instance_marker")
    );
    for image in ["ferric-test-disk.qcow2", "ferric-test-disk.raw"] {
        deploy(
            os,
            lab,
            1,
            &node,
            &whole_disk_info(lab, assets, image),
            &[],
            &marker,
        );
        let history = os.run(&["node", "history", "list", &node, "-f", "value"]);
        assert!(
            history.contains("Image written over iSCSI"),
            "vm1's deploy of {image} did not go over iSCSI: {history}"
        );
        os.run(&["node", "undeploy", &node]);
        os.wait_state(&node, "available", FLOW_LIMIT);
    }
}

#[test]
fn the_seed_flow_on_qemu_vms() {
    let mut missing = labkit::missing(&["ip", "curl", "qemu-system-x86_64"]);
    let openstack = labkit::openstack_bin();
    if openstack.is_none() {
        missing.push("openstack CLI".into());
    }
    let assets = match labkit::assets() {
        Ok(assets) => Some(assets),
        Err(why) => {
            missing.push(format!("lab assets: {why}"));
            None
        }
    };
    if labkit::skip("lab_deploy", &missing) {
        return;
    }
    let (Some(openstack), Some(assets)) = (openstack, assets) else {
        return;
    };
    let temp = tempfile::tempdir().unwrap();
    let netns = format!("ferric-labd-{}", std::process::id());
    let lab = Lab::up(
        &temp.path().join("lab"),
        &netns,
        SUBNET,
        &["--vms", "2", "--disk-size", "8G"],
    );
    let serve_dir = temp.path().join("serve");
    let _server = labkit::serve(
        &lab,
        &serve_dir,
        "[pxe]\nkernel_append_params = \"console=ttyS0 panic=-1\"\n",
    );
    publish_images(&assets, &serve_dir.join("data/httpboot"));
    let os = Openstack::new(&lab, openstack);
    std::thread::scope(|scope| {
        let vm0 = scope.spawn(|| flow_vm0(&os, &lab, &assets, temp.path()));
        let vm1 = scope.spawn(|| flow_vm1(&os, &lab, &assets));
        let results = [vm0.join(), vm1.join()];
        for result in results {
            if let Err(panic) = result {
                let log = std::fs::read(serve_dir.join("serve.log")).unwrap_or_default();
                let tail = labkit::tail(&log, 4000);
                eprintln!("lab_deploy: ferric serve's log ends: {tail}");
                std::panic::resume_unwind(panic);
            }
        }
    });
}
