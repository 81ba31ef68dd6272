//! The agent binary writing and erasing disk files: raw images over
//! loopback HTTP (byte-equal afterwards), busy/wait semantics and progress
//! while a slow download runs, checksum failures, metadata erasure checked
//! with sfdisk/blkid/wipefs, shredding, root device choice in a fake tree.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const MIB: usize = 1024 * 1024;

/// An 8 MiB raw disk image with an MBR (disk id 0x1a2b3c4d) and noise.
fn mbr_image(dir: &Path) -> Vec<u8> {
    let path = dir.join("image.raw");
    let mut data = vec![0u8; 8 * MIB];
    let mut x: u32 = 12345;
    for b in data[MIB..].iter_mut() {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        *b = (x >> 16) as u8;
    }
    std::fs::write(&path, &data).unwrap();
    sfdisk(&path, "label: dos\nlabel-id: 0x1a2b3c4d\n2048,,83\n");
    std::fs::read(&path).unwrap()
}

fn sfdisk(path: &Path, script: &str) {
    use std::io::Write;
    let mut child = Command::new("sfdisk")
        .arg("--no-reread")
        .arg("--no-tell-kernel")
        .arg(path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "sfdisk: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn sha256(data: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    std::fs::write(&path, data).unwrap();
    let out = Command::new("sha256sum").arg(&path).output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

fn image_info(url: &str, hash: &str) -> Value {
    json!({
        "id": "image.raw", "urls": [url], "disk_format": "raw", "stream_raw_images": true,
        "os_hash_algo": "sha256", "os_hash_value": hash, "node_uuid": NODE_UUID
    })
}

/// The agent with one `--disk` file of `size` bytes chosen by a name hint.
async fn disk_agent(
    dir: &Path,
    size: u64,
) -> (FakeIronic, AgentProcess, AgentApi, std::path::PathBuf) {
    let disk = dir.join("disk.img");
    sparse_file(&disk, size);
    let setup = IronicSetup {
        properties: json!({"root_device": {"name": disk.to_string_lossy()}}),
        ..Default::default()
    };
    let (ironic, agent, api) = agent_with(setup, dir, &["--disk", &disk.to_string_lossy()]).await;
    (ironic, agent, api, disk)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_a_raw_image_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let image = mbr_image(dir.path());
    let server = ImageServer::start(vec![("image.raw".into(), image.clone())]).await;
    let (_ironic, _agent, api, disk) = disk_agent(dir.path(), 64 * MIB as u64).await;
    let mut params = node_params();
    // The node sent with the step replaces the one from lookup, as in IPA.
    params["node"]["properties"] = json!({"root_device": {"name": disk.to_string_lossy()}});
    params["step"] = json!({
        "interface": "deploy", "step": "write_image",
        "args": {"image_info": image_info(&server.url("image.raw"), &sha256(&image)), "configdrive": null}
    });
    let (status, started) = api.run("deploy.execute_deploy_step", params, false).await;
    assert_eq!(status, 200, "{started}");
    let done = api.wait_done(started["id"].as_str().unwrap()).await;
    assert_eq!(done["command_status"], "SUCCEEDED", "{done}");
    let result = done["command_result"]["deploy_result"]["result"]
        .as_str()
        .unwrap();
    assert!(
        result.starts_with("prepare_image: image (image.raw) written to device"),
        "{result}"
    );
    assert!(result.ends_with("root_uuid=0x1a2b3c4d"), "{result}");
    assert_eq!(done["command_result"]["deploy_step"]["step"], "write_image");

    let written = std::fs::read(&disk).unwrap();
    assert_eq!(written.len(), 64 * MIB);
    assert!(
        written[..image.len()] == image[..],
        "disk differs from the image"
    );
    assert!(
        written[image.len()..].iter().all(|b| *b == 0),
        "bytes past the image changed"
    );
    let (_, uuids) = api
        .run("standby.get_partition_uuids", json!({}), true)
        .await;
    assert_eq!(uuids["command_result"], json!({"root uuid": "0x1a2b3c4d"}));
    let out = Command::new("sfdisk")
        .arg("--json")
        .arg(&disk)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("0x1a2b3c4d"));

    // A whole-disk image needs no bootloader, in BIOS or UEFI mode (no NVRAM
    // entry is written, as IPA without efibootmgr).
    let (_, boot) = api
        .run(
            "image.install_bootloader",
            json!({"root_uuid": "0x1a2b3c4d", "target_boot_mode": "bios"}),
            true,
        )
        .await;
    assert_eq!(boot["command_status"], "SUCCEEDED", "{boot}");
    assert!(boot["command_result"]["result"]
        .as_str()
        .unwrap()
        .contains("nothing to install"));
    let (_, uefi) = api
        .run(
            "image.install_bootloader",
            json!({"root_uuid": "0x1a2b3c4d", "target_boot_mode": "uefi"}),
            true,
        )
        .await;
    assert_eq!(uefi["command_status"], "SUCCEEDED", "{uefi}");
    assert!(uefi["command_result"]["result"]
        .as_str()
        .unwrap()
        .contains("no UEFI boot entry was written"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_wait_progress_and_heartbeat_after_an_async_command() {
    let dir = tempfile::tempdir().unwrap();
    let image = mbr_image(dir.path());
    let server = ImageServer::start(vec![("image.raw".into(), image.clone())]).await;
    let (ironic, _agent, api, disk) = disk_agent(dir.path(), 64 * MIB as u64).await;
    let info = image_info(&server.url("slow/image.raw"), &sha256(&image));
    let (status, started) = api
        .run("standby.prepare_image", json!({"image_info": info}), false)
        .await;
    assert_eq!(status, 200, "{started}");
    assert_eq!(started["command_status"], "RUNNING");
    assert_eq!(started["command_name"], "prepare_image");
    let id = started["id"].as_str().unwrap().to_owned();

    let (status, busy) = api.run("standby.sync", json!({}), true).await;
    assert_eq!(status, 409);
    assert_eq!(
        busy,
        json!({"faultcode": "Client", "faultstring": "Agent is busy: executing command prepare_image"})
    );

    tokio::time::sleep(Duration::from_millis(600)).await;
    let (_, running) = api
        .get(&format!("/v1/commands/{id}?agent_token={TOKEN}"))
        .await;
    assert_eq!(running["command_status"], "RUNNING");
    let progress = &running["command_result"]["progress"];
    assert!(
        progress["bytes_downloaded"].as_u64().unwrap() > 0,
        "{running}"
    );
    assert!(progress.get("bytes_written").is_some());

    let beats_before = ironic.heartbeats().len();
    let done = api.wait_done(&id).await;
    assert_eq!(done["command_status"], "SUCCEEDED", "{done}");
    assert_eq!(
        done["command_result"]["result"].as_str().unwrap(),
        format!(
            "prepare_image: image (image.raw) written to device {} root_uuid=0x1a2b3c4d",
            disk.display()
        )
    );
    // The end of an asynchronous command brings a heartbeat soon.
    let extra = ironic
        .wait_heartbeats(beats_before + 1, Duration::from_secs(5))
        .await;
    assert_eq!(extra["agent_token"], TOKEN);
    assert!(std::fs::read(&disk).unwrap()[..image.len()] == image[..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_checksum_fails_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let image = mbr_image(dir.path());
    let server = ImageServer::start(vec![("image.raw".into(), image)]).await;
    let (_ironic, _agent, api, _disk) = disk_agent(dir.path(), 64 * MIB as u64).await;
    let info = image_info(&server.url("image.raw"), &"0".repeat(64));
    let (_, result) = api
        .run("standby.prepare_image", json!({"image_info": info}), true)
        .await;
    assert_eq!(result["command_status"], "FAILED", "{result}");
    assert_eq!(result["command_error"]["type"], "ImageChecksumError");
    assert!(result["command_error"]["details"]
        .as_str()
        .unwrap()
        .contains("sha256"));
    // image_info without any checksum is refused before the command starts.
    let (status, body) = api
        .run(
            "standby.prepare_image",
            json!({"image_info": {"id": "x", "urls": ["http://127.0.0.1:1/x"]}}),
            true,
        )
        .await;
    assert_eq!(status, 400);
    assert!(body["faultstring"]
        .as_str()
        .unwrap()
        .starts_with("Invalid command parameters: Image checksum is not available"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erases_the_metadata_of_a_disk_file() {
    let dir = tempfile::tempdir().unwrap();
    let (_ironic, _agent, api, disk) = disk_agent(dir.path(), 64 * MIB as u64).await;
    sfdisk(&disk, "label: gpt\n2048,,L\n");
    let before = Command::new("sfdisk")
        .arg("--json")
        .arg(&disk)
        .output()
        .unwrap();
    assert!(before.status.success());
    let mut params = node_params();
    params["step"] =
        json!({"step": "erase_devices_metadata", "interface": "deploy", "priority": 99});
    let (_, result) = api.run("clean.execute_clean_step", params, true).await;
    assert_eq!(result["command_status"], "SUCCEEDED", "{result}");
    assert_eq!(result["command_result"]["clean_result"], Value::Null);
    assert_eq!(
        result["command_result"]["clean_step"]["step"],
        "erase_devices_metadata"
    );
    let after = Command::new("sfdisk")
        .arg("--json")
        .arg(&disk)
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&after.stdout).contains("partitions"),
        "{}",
        String::from_utf8_lossy(&after.stdout)
    );
    let blkid = Command::new("blkid").arg("-p").arg(&disk).output().unwrap();
    assert!(
        blkid.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&blkid.stdout)
    );
    let wipefs = Command::new("wipefs")
        .arg("--no-act")
        .arg(&disk)
        .output()
        .unwrap();
    assert!(
        wipefs.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&wipefs.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shreds_a_disk_file() {
    let dir = tempfile::tempdir().unwrap();
    let (_ironic, _agent, api, disk) = disk_agent(dir.path(), 8 * MIB as u64).await;
    std::fs::write(&disk, vec![0xabu8; 8 * MIB]).unwrap();
    let mut params = node_params();
    params["node"]["driver_internal_info"] =
        json!({"agent_erase_devices_iterations": 1, "agent_erase_devices_zeroize": true});
    params["step"] = json!({"step": "erase_devices", "interface": "deploy", "priority": 10});
    let (_, result) = api.run("clean.execute_clean_step", params, true).await;
    assert_eq!(result["command_status"], "SUCCEEDED", "{result}");
    let name = disk.to_string_lossy().into_owned();
    assert_eq!(
        result["command_result"]["clean_result"],
        json!({name: null})
    );
    assert!(std::fs::read(&disk).unwrap().iter().all(|b| *b == 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inventory_of_the_fake_tree() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    copy_fake_root(&root);
    let mut args = base_args("http://127.0.0.1:1", &root);
    args.push("--print-inventory".into());
    let out = Command::new(env!("CARGO_BIN_EXE_ferric-agent"))
        .args(&args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let inv: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(inv["cpu"]["count"], 2);
    assert_eq!(inv["cpu"]["model_name"], "AMD EPYC 7B13");
    assert_eq!(inv["cpu"]["architecture"], "x86_64");
    assert_eq!(inv["memory"]["total"], 2009188u64 * 1024);
    assert_eq!(inv["memory"]["physical_mb"], 256);
    let disks: Vec<&str> = inv["disks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(disks, ["/dev/vda", "/dev/vdb"]);
    assert_eq!(inv["disks"][0]["size"], 5u64 << 30);
    assert_eq!(inv["disks"][0]["serial"], "SERIAL-VDA");
    assert_eq!(
        inv["disks"][0]["by_path"],
        "/dev/disk/by-path/pci-0000:00:04.0"
    );
    assert_eq!(inv["disks"][1]["rotational"], true);
    assert_eq!(inv["disks"][1]["wwn"], "0x5000c500aabbccdd");
    let eth0 = &inv["interfaces"][0];
    assert_eq!(eth0["mac_address"], "52:54:00:12:34:56");
    assert_eq!(eth0["ipv4_address"], "192.0.2.10");
    assert_eq!(eth0["speed_mbps"], 1000);
    assert_eq!(eth0["driver"], "virtio-pci");
    assert_eq!(
        inv["boot"],
        json!({"current_boot_mode": "bios", "pxe_interface": "01-52-54-00-12-34-56"})
    );
    assert_eq!(inv["system_vendor"]["manufacturer"], "QEMU");
    assert_eq!(inv["hostname"], "ferric-test-node");
}

async fn write_in_fake_tree(properties: Value) -> (tempfile::TempDir, Value) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    copy_fake_root(&root);
    sparse_file(&root.join("dev/vda"), 5 << 30);
    sparse_file(&root.join("dev/vdb"), 6 << 30);
    let image = mbr_image(dir.path());
    let server = ImageServer::start(vec![("image.raw".into(), image.clone())]).await;
    let setup = IronicSetup {
        properties,
        ..Default::default()
    };
    let (_ironic, _agent, api) = agent_with(setup, dir.path(), &[]).await;
    let (_, result) = api
        .run(
            "standby.prepare_image",
            json!({"image_info": image_info(&server.url("image.raw"), &sha256(&image))}),
            true,
        )
        .await;
    (dir, result)
}

fn first_sector(path: &Path) -> Vec<u8> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; 512];
    std::fs::File::open(path)
        .unwrap()
        .read_exact_at(&mut buf, 0)
        .unwrap();
    buf
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_device_is_chosen_by_ipa_rules_in_the_fake_tree() {
    // Without hints: the smallest disk of at least 4 GiB (vda, 5 GiB).
    let (dir, result) = write_in_fake_tree(json!({})).await;
    assert_eq!(result["command_status"], "SUCCEEDED", "{result}");
    assert!(result["command_result"]["result"]
        .as_str()
        .unwrap()
        .contains("written to device /dev/vda "));
    let root = dir.path().join("root/dev");
    assert_eq!(&first_sector(&root.join("vda"))[510..], [0x55, 0xaa]);
    assert!(first_sector(&root.join("vdb")).iter().all(|b| *b == 0));

    // With hints: the rotational disk (vdb).
    let (dir, result) =
        write_in_fake_tree(json!({"root_device": {"rotational": true, "size": ">= 6"}})).await;
    assert_eq!(result["command_status"], "SUCCEEDED", "{result}");
    let root = dir.path().join("root/dev");
    assert_eq!(&first_sector(&root.join("vdb"))[510..], [0x55, 0xaa]);
    assert!(first_sector(&root.join("vda")).iter().all(|b| *b == 0));

    // Hints that match nothing fail with IPA's text.
    let (_dir, result) = write_in_fake_tree(json!({"root_device": {"serial": "nope"}})).await;
    assert_eq!(result["command_status"], "FAILED");
    assert_eq!(result["command_error"]["type"], "DeviceNotFound");
    assert_eq!(
        result["command_error"]["details"],
        "No suitable device was found for deployment using these hints {'serial': 'nope'}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_a_partition_image_with_swap() {
    let dir = tempfile::tempdir().unwrap();
    let fs = dir.path().join("root.ext4");
    sparse_file(&fs, 16 * MIB as u64);
    let uuid = "6d6b8a5c-0f0e-4b4a-9c3d-2e1f0a9b8c7d";
    let mkfs = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-U", uuid])
        .arg(&fs)
        .output()
        .unwrap();
    assert!(
        mkfs.status.success(),
        "{}",
        String::from_utf8_lossy(&mkfs.stderr)
    );
    let image = std::fs::read(&fs).unwrap();
    let server = ImageServer::start(vec![("root.ext4".into(), image.clone())]).await;
    let (_ironic, _agent, api, disk) = disk_agent(dir.path(), 128 * MIB as u64).await;
    let mut info = image_info(&server.url("root.ext4"), &sha256(&image));
    info["id"] = json!("root.ext4");
    info["image_type"] = json!("partition");
    info["root_mb"] = json!(32);
    info["swap_mb"] = json!(16);
    info["disk_label"] = json!("msdos");
    info["deploy_boot_mode"] = json!("bios");
    let (_, result) = api
        .run("standby.prepare_image", json!({"image_info": info}), true)
        .await;
    assert_eq!(result["command_status"], "SUCCEEDED", "{result}");
    assert!(
        result["command_result"]["result"]
            .as_str()
            .unwrap()
            .ends_with(&format!("root_uuid={uuid}")),
        "{result}"
    );
    let (_, uuids) = api
        .run("standby.get_partition_uuids", json!({}), true)
        .await;
    let uuids = &uuids["command_result"];
    assert_eq!(uuids["root uuid"], uuid, "{uuids}");
    let parts = uuids["partitions"].as_object().unwrap();
    assert!(
        parts.contains_key("root") && parts.contains_key("swap"),
        "{uuids}"
    );
    let table = Command::new("sfdisk")
        .arg("--json")
        .arg(&disk)
        .output()
        .unwrap();
    let table: Value = serde_json::from_slice(&table.stdout).unwrap();
    let partitions = table["partitiontable"]["partitions"].as_array().unwrap();
    assert_eq!(partitions.len(), 2, "{table}");
    let found_root = partitions.iter().any(|p| {
        let offset = p["start"].as_u64().unwrap() * 512;
        let out = Command::new("blkid")
            .args(["-p", "-O", &offset.to_string(), "-o", "export"])
            .arg(&disk)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).contains(&format!("UUID={uuid}"))
    });
    assert!(found_root, "the root file system is not in any partition");
}
