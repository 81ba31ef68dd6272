//! `deploy_partition_image` end to end: images served over HTTP from
//! 127.0.0.1, written into a disk file, the result checked with sgdisk,
//! sfdisk, blkid and mtools.

#![allow(clippy::unwrap_used)] // test helpers fail loudly

mod tools;
use tools::*;

use std::collections::HashMap;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Path as UrlPath, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use ferric_image::configdrive::{self, ConfigDriveSource};
use ferric_image::partition::deploy::{deploy_partition_image, DeployError, PartitionDeploySpec};
use ferric_image::partition::{BootMode, PartitionImageSpec, PartitionRole};
use ferric_image::{ImageError, ImageSource, Progress};
use serde_json::json;

const ROOT_FS_UUID: &str = "5e0c4a3b-8d2f-4a1e-9b7c-0123456789ab";

fn blkid_at(disk: &Path, offset: u64) -> String {
    run(
        "blkid",
        &["-p", "-O", &offset.to_string(), disk.to_str().unwrap()],
    )
}

/// Serves `files` (name → bytes) on 127.0.0.1; returns the base URL.
async fn serve(files: HashMap<String, Vec<u8>>) -> String {
    async fn file(
        State(files): State<Arc<HashMap<String, Vec<u8>>>>,
        UrlPath(name): UrlPath<String>,
    ) -> axum::response::Response {
        match files.get(&name) {
            Some(data) => (
                [(header::CONTENT_TYPE, "application/octet-stream")],
                data.clone(),
            )
                .into_response(),
            None => StatusCode::NOT_FOUND.into_response(),
        }
    }
    let app = Router::new()
        .route("/{name}", get(file))
        .with_state(Arc::new(files));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

/// A 48 MiB ext4 file system with a known UUID, raw and as qcow2.
fn root_images(dir: &Path) -> (Vec<u8>, Vec<u8>) {
    let raw = dir.join("root.raw");
    let file = std::fs::File::create(&raw).unwrap();
    file.set_len(48 * MIB).unwrap();
    run(
        "mkfs.ext4",
        &[
            "-q",
            "-F",
            "-L",
            "root",
            "-U",
            ROOT_FS_UUID,
            raw.to_str().unwrap(),
        ],
    );
    let qcow = dir.join("root.qcow2");
    run(
        "qemu-img",
        &[
            "convert",
            "-f",
            "raw",
            "-O",
            "qcow2",
            raw.to_str().unwrap(),
            qcow.to_str().unwrap(),
        ],
    );
    (std::fs::read(&raw).unwrap(), std::fs::read(&qcow).unwrap())
}

fn disk_file(dir: &Path, size: u64) -> PathBuf {
    let path = dir.join("disk.img");
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(size).unwrap();
    path
}

fn read_range(path: &Path, offset: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    std::fs::File::open(path)
        .unwrap()
        .read_exact_at(&mut buf, offset)
        .unwrap();
    buf
}

fn source(url: String, format: &str) -> ImageSource {
    ImageSource {
        urls: vec![url],
        checksum: None,
        disk_format: Some(format.to_string()),
    }
}

fn uefi_spec() -> PartitionDeploySpec {
    let mut spec = PartitionDeploySpec::new(PartitionImageSpec {
        root_mb: 64,
        swap_mb: 32,
        ephemeral_mb: 40,
        boot_mode: BootMode::Uefi,
        efi_system_partition_mb: 64,
        ..Default::default()
    });
    spec.ephemeral_format = Some("vfat".to_string());
    let encoded = configdrive::build_configdrive(
        &json!({"meta_data": {"hostname": "n1"}, "user_data": "#!/bin/sh\n"}),
        "node-uuid",
        Some("n1"),
        1_700_000_000,
    )
    .unwrap();
    spec.configdrive = Some(configdrive::decode(&encoded).unwrap());
    spec
}

#[tokio::test]
async fn uefi_qcow2_deploy_lays_out_and_fills_every_partition() {
    let dir = tempfile::tempdir().unwrap();
    let (raw, qcow) = root_images(dir.path());
    let base = serve(HashMap::from([("root.qcow2".to_string(), qcow)])).await;
    let disk = disk_file(dir.path(), 1024 * MIB);
    // An old table and file system that must not survive.
    run("sgdisk", &["-n", "1:0:+100M", disk.to_str().unwrap()]);
    let spec = uefi_spec();
    let progress = Progress::default();
    let uuids = deploy_partition_image(
        &source(format!("{base}/root.qcow2"), "qcow2"),
        &disk,
        &spec,
        &progress,
    )
    .await
    .unwrap();

    let verify = run("sgdisk", &["-v", disk.to_str().unwrap()]);
    assert!(verify.contains("No problems found"), "{verify}");
    let layout = &uuids.layout;
    let roles: Vec<PartitionRole> = layout.partitions.iter().map(|p| p.role).collect();
    use PartitionRole::*;
    assert_eq!(roles, [EfiSystem, Ephemeral, Swap, ConfigDrive, Root]);
    let at = |role| layout.get(role).unwrap().offset;

    assert_eq!(uuids.root_uuid, ROOT_FS_UUID);
    let root = blkid_at(&disk, at(Root));
    assert!(
        root.contains(&format!(r#"UUID="{ROOT_FS_UUID}""#)) && root.contains(r#"TYPE="ext4""#),
        "{root}"
    );
    assert_eq!(
        read_range(&disk, at(Root), raw.len()),
        raw,
        "root partition holds the image"
    );

    let esp = blkid_at(&disk, at(EfiSystem));
    let esp_uuid = uuids.efi_system_partition_uuid.clone().unwrap();
    assert!(
        esp.contains(r#"LABEL="efi-part""#) && esp.contains(&format!(r#"UUID="{esp_uuid}""#)),
        "{esp}"
    );
    let cd = blkid_at(&disk, at(ConfigDrive));
    assert!(
        cd.contains(r#"LABEL="config-2""#) && cd.contains(r#"TYPE="iso9660""#),
        "{cd}"
    );
    let swap = blkid_at(&disk, at(Swap));
    assert!(
        swap.contains(r#"LABEL="swap1""#) && swap.contains(r#"TYPE="swap""#),
        "{swap}"
    );
    let eph = blkid_at(&disk, at(Ephemeral));
    assert!(
        eph.contains(r#"LABEL="ephemeral0""#) && eph.contains(r#"TYPE="vfat""#),
        "{eph}"
    );
    // The config drive partition is its size rounded up to MiB, as in IPA.
    let ConfigDriveSource::Image(image) = spec.configdrive.as_ref().unwrap() else {
        panic!()
    };
    assert_eq!(
        layout.get(ConfigDrive).unwrap().length,
        image.size_mib() * MIB
    );

    let ipa = uuids.to_ipa_json("/dev/sda");
    assert_eq!(ipa["root uuid"], ROOT_FS_UUID);
    assert_eq!(ipa["efi system partition uuid"], esp_uuid.as_str());
    assert_eq!(ipa["partitions"]["root"], "/dev/sda5");
    assert_eq!(ipa["partitions"]["configdrive"], "/dev/sda4");
    assert!(progress.snapshot().written > 0);
}

#[tokio::test]
async fn bios_raw_deploy_with_a_url_config_drive_reports_the_partuuid() {
    let dir = tempfile::tempdir().unwrap();
    let image: Vec<u8> = (0..5 * MIB as usize).map(|i| (i % 251) as u8 + 1).collect();
    let iso_b64 = configdrive::build_configdrive(&json!({}), "u", None, 0).unwrap();
    let base = serve(HashMap::from([
        ("root.img".to_string(), image.clone()),
        ("cd".to_string(), iso_b64.into_bytes()),
    ]))
    .await;
    let disk = disk_file(dir.path(), 256 * MIB);
    let mut spec = PartitionDeploySpec::new(PartitionImageSpec {
        root_mb: 16,
        swap_mb: 8,
        ..Default::default()
    });
    spec.configdrive = Some(ConfigDriveSource::Url(format!("{base}/cd")));
    let uuids = deploy_partition_image(
        &source(format!("{base}/root.img"), "raw"),
        &disk,
        &spec,
        &Progress::default(),
    )
    .await
    .unwrap();
    let table: serde_json::Value =
        serde_json::from_str(&run("sfdisk", &["--json", disk.to_str().unwrap()])).unwrap();
    let parts = table["partitiontable"]["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[2]["bootable"], true);
    let id = table["partitiontable"]["id"]
        .as_str()
        .unwrap()
        .trim_start_matches("0x");
    assert_eq!(
        uuids.root_uuid,
        format!("{id}-03"),
        "no file system: the PARTUUID"
    );
    assert_eq!(uuids.efi_system_partition_uuid, None);
    let root = uuids.layout.get(PartitionRole::Root).unwrap();
    assert_eq!(read_range(&disk, root.offset, image.len()), image);
    let cd = uuids.layout.get(PartitionRole::ConfigDrive).unwrap();
    assert!(blkid_at(&disk, cd.offset).contains(r#"LABEL="config-2""#));
    assert_eq!(
        uuids.to_ipa_json("/dev/vda")["efi system partition uuid"],
        serde_json::Value::Null
    );
}

#[tokio::test]
async fn unsupported_ephemeral_format_fails_before_the_disk_is_touched() {
    let dir = tempfile::tempdir().unwrap();
    let disk = disk_file(dir.path(), 128 * MIB);
    run("sgdisk", &["-n", "1:0:+10M", disk.to_str().unwrap()]);
    let before = read_range(&disk, 0, 64 * 1024);
    let mut spec = PartitionDeploySpec::new(PartitionImageSpec {
        root_mb: 16,
        ephemeral_mb: 40,
        ..Default::default()
    });
    spec.ephemeral_format = Some("ext4".to_string());
    let err = deploy_partition_image(
        &source("http://127.0.0.1:9/none".into(), "raw"),
        &disk,
        &spec,
        &Progress::default(),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains("ephemeral_format \"ext4\""),
        "{err}"
    );
    assert_eq!(read_range(&disk, 0, 64 * 1024), before);
}

#[tokio::test]
async fn an_image_larger_than_the_root_partition_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let image = vec![7u8; 3 * MIB as usize];
    let base = serve(HashMap::from([("big.img".to_string(), image)])).await;
    let disk = disk_file(dir.path(), 64 * MIB);
    let spec = PartitionDeploySpec::new(PartitionImageSpec {
        root_mb: 2,
        ..Default::default()
    });
    let err = deploy_partition_image(
        &source(format!("{base}/big.img"), "raw"),
        &disk,
        &spec,
        &Progress::default(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, DeployError::Image(ImageError::ImageTooLarge(_))),
        "{err}"
    );
    // Nothing was written past the root partition.
    assert!(read_range(&disk, 3 * MIB, MIB as usize)
        .iter()
        .all(|&b| b == 0));
}

#[tokio::test]
async fn preserve_ephemeral_keeps_the_table_and_the_ephemeral_contents() {
    let dir = tempfile::tempdir().unwrap();
    let (_, qcow) = root_images(dir.path());
    let other = vec![0x5au8; MIB as usize];
    let base = serve(HashMap::from([
        ("root.qcow2".to_string(), qcow),
        ("other.img".to_string(), other.clone()),
    ]))
    .await;
    let disk = disk_file(dir.path(), 512 * MIB);
    let spec = uefi_spec();
    let first = deploy_partition_image(
        &source(format!("{base}/root.qcow2"), "qcow2"),
        &disk,
        &spec,
        &Progress::default(),
    )
    .await
    .unwrap();
    let eph = first.layout.get(PartitionRole::Ephemeral).unwrap().offset;
    let image = format!("{}@@{eph}", disk.display());
    let marker = dir.path().join("KEEP.TXT");
    std::fs::write(&marker, b"user data").unwrap();
    run(
        "mcopy",
        &["-i", &image, marker.to_str().unwrap(), "::/KEEP.TXT"],
    );

    let mut again = uefi_spec();
    again.preserve_ephemeral = true;
    let second = deploy_partition_image(
        &source(format!("{base}/other.img"), "raw"),
        &disk,
        &again,
        &Progress::default(),
    )
    .await
    .unwrap();
    assert_eq!(second.layout.disk_guid, first.layout.disk_guid);
    assert_eq!(second.layout.partitions, first.layout.partitions);
    let listing = run("mdir", &["-i", &image, "-b", "::/"]);
    assert!(listing.contains("KEEP.TXT"), "{listing}");
    let root = second.layout.get(PartitionRole::Root).unwrap();
    assert_eq!(read_range(&disk, root.offset, other.len()), other);

    let mut changed = uefi_spec();
    changed.preserve_ephemeral = true;
    changed.layout.swap_mb = 16;
    let err = deploy_partition_image(
        &source(format!("{base}/other.img"), "raw"),
        &disk,
        &changed,
        &Progress::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, DeployError::CannotPreserve { .. }), "{err}");
}
