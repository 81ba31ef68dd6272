//! The partition code on a device instead of a path: partition images
//! deployed with `deploy_partition_image_on` and config drives added with
//! `create_config_drive_partition_on`, onto a sparse in-memory device and a
//! `FileDevice`, leave exactly the bytes (and report exactly the UUIDs) the
//! path-based functions leave on a disk file, given the same seeded ids.

#![allow(clippy::unwrap_used)] // test helpers fail loudly

mod tools;
use tools::*;

use std::collections::HashMap;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use ferric_image::configdrive::{self, ConfigDriveContent, ConfigDriveImage};
use ferric_image::partition::deploy::{
    deploy_partition_image, deploy_partition_image_on, PartitionDeploySpec, PartitionUuids,
    Reproducible,
};
use ferric_image::partition::{
    create_config_drive_partition, create_config_drive_partition_on, disk_identifier,
    disk_identifier_on, BootMode, DiskLabel, PartitionImageSpec, PartitionRole,
};
use ferric_image::writer::SharedDevice;
use ferric_image::{BlockDevice, FileDevice, ImageSource, Progress};
use serde_json::{json, Value};

const ROOT_FS_UUID: &str = "0d9f3c1e-7a44-4b25-8c61-2f0e9a7b5d13";
const PAGE: usize = 64 * 1024;
const SEEDED: Reproducible = Reproducible {
    seed: 42,
    timestamp: 1_700_000_000,
};

/// A sparse disk in memory: 64 KiB pages, made when first written. It
/// counts its I/O and keeps the largest single write, so that a test can
/// tell the partition code's writes stay bounded.
#[derive(Default)]
struct Sparse {
    pages: HashMap<u64, Vec<u8>>,
    largest_write: usize,
    writes: u64,
    reads: u64,
    syncs: u64,
}

#[derive(Clone)]
struct MemDevice {
    size: u64,
    state: Arc<Mutex<Sparse>>,
}

impl MemDevice {
    fn new(size: u64) -> Self {
        MemDevice {
            size,
            state: Arc::default(),
        }
    }

    /// A device holding a copy of the file at `path`.
    fn from_file(path: &Path) -> Self {
        let bytes = std::fs::read(path).unwrap();
        let device = MemDevice::new(bytes.len() as u64);
        {
            let mut state = device.state.lock().unwrap();
            for (i, page) in bytes.chunks(PAGE).enumerate() {
                if page.iter().any(|b| *b != 0) {
                    let mut full = vec![0u8; PAGE];
                    full[..page.len()].copy_from_slice(page);
                    state.pages.insert(i as u64, full);
                }
            }
        }
        device
    }

    fn shared(&self) -> SharedDevice {
        SharedDevice::new(Box::new(self.clone()))
    }

    fn stats(&self) -> (usize, u64, u64, u64) {
        let s = self.state.lock().unwrap();
        (s.largest_write, s.writes, s.reads, s.syncs)
    }

    /// Panics at the first 64 KiB page that differs from the file's.
    fn assert_same_as(&self, path: &Path) {
        let file = std::fs::File::open(path).unwrap();
        assert_eq!(file.metadata().unwrap().len(), self.size);
        let state = self.state.lock().unwrap();
        let zeros = vec![0u8; PAGE];
        let mut buf = vec![0u8; PAGE];
        for index in 0..self.size.div_ceil(PAGE as u64) {
            let offset = index * PAGE as u64;
            let len = (self.size - offset).min(PAGE as u64) as usize;
            file.read_exact_at(&mut buf[..len], offset).unwrap();
            let ours = state.pages.get(&index).map_or(&zeros[..len], |p| &p[..len]);
            assert!(
                ours == &buf[..len],
                "the device differs from {} in the 64 KiB at byte {offset}",
                path.display()
            );
        }
    }

    /// Writes the device out to a sparse file, for the tools.
    fn dump(&self, path: &Path) {
        let file = std::fs::File::create(path).unwrap();
        file.set_len(self.size).unwrap();
        for (index, page) in &self.state.lock().unwrap().pages {
            let offset = index * PAGE as u64;
            let len = (self.size - offset).min(PAGE as u64) as usize;
            file.write_all_at(&page[..len], offset).unwrap();
        }
    }
}

/// The page holding byte `offset`, where in it, and how many of `len`
/// bytes from there it holds.
fn piece(offset: u64, len: usize) -> (u64, usize, usize) {
    let at = (offset % PAGE as u64) as usize;
    (offset / PAGE as u64, at, (PAGE - at).min(len))
}

impl BlockDevice for MemDevice {
    fn name(&self) -> String {
        "memory disk".into()
    }

    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> Result<(), String> {
        if offset + buf.len() as u64 > self.size {
            return Err(format!("read past the end at {offset}"));
        }
        let mut state = self.state.lock().unwrap();
        state.reads += 1;
        let mut done = 0;
        while done < buf.len() {
            let (index, at, n) = piece(offset + done as u64, buf.len() - done);
            let out = &mut buf[done..done + n];
            match state.pages.get(&index) {
                Some(page) => out.copy_from_slice(&page[at..at + n]),
                None => out.fill(0),
            }
            done += n;
        }
        Ok(())
    }

    fn write_at(&mut self, bytes: &[u8], offset: u64) -> Result<(), String> {
        if offset + bytes.len() as u64 > self.size {
            return Err(format!("write past the end at {offset}"));
        }
        let mut state = self.state.lock().unwrap();
        state.writes += 1;
        state.largest_write = state.largest_write.max(bytes.len());
        let mut done = 0;
        while done < bytes.len() {
            let (index, at, n) = piece(offset + done as u64, bytes.len() - done);
            let page = state.pages.entry(index).or_insert_with(|| vec![0u8; PAGE]);
            page[at..at + n].copy_from_slice(&bytes[done..done + n]);
            done += n;
        }
        Ok(())
    }

    fn zero_all(&mut self) -> Result<bool, String> {
        self.state.lock().unwrap().pages.clear();
        Ok(true)
    }

    fn sync(&mut self) -> Result<(), String> {
        self.state.lock().unwrap().syncs += 1;
        Ok(())
    }
}

/// Serves `files` (name → bytes) on 127.0.0.1; returns the base URL.
async fn serve(files: HashMap<String, Vec<u8>>) -> String {
    async fn file(
        State(files): State<Arc<HashMap<String, Vec<u8>>>>,
        UrlPath(name): UrlPath<String>,
    ) -> axum::response::Response {
        match files.get(&name) {
            Some(data) => data.clone().into_response(),
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

/// A 24 MiB ext4 file system with a known UUID, raw and as qcow2.
fn root_images(dir: &Path) -> (Vec<u8>, Vec<u8>) {
    let raw = dir.join("root.raw");
    sized(&raw, 24 * MIB);
    let raw_path = raw.to_str().unwrap();
    run("mkfs.ext4", &["-q", "-F", "-U", ROOT_FS_UUID, raw_path]);
    let qcow = dir.join("root.qcow2");
    let qcow_path = qcow.to_str().unwrap();
    run(
        "qemu-img",
        &["convert", "-f", "raw", "-O", "qcow2", raw_path, qcow_path],
    );
    (std::fs::read(&raw).unwrap(), std::fs::read(&qcow).unwrap())
}

fn blank_disk(dir: &Path, name: &str, size: u64) -> PathBuf {
    let path = dir.join(name);
    sized(&path, size);
    path
}

fn source(url: String, format: &str) -> ImageSource {
    ImageSource {
        urls: vec![url],
        checksum: None,
        disk_format: Some(format.to_string()),
    }
}

fn config_drive_source() -> configdrive::ConfigDriveSource {
    let encoded = configdrive::build_configdrive(
        &json!({"meta_data": {"hostname": "dev-1"}, "user_data": "#!/bin/sh\necho hi\n"}),
        "node-uuid",
        Some("dev-1"),
        1_700_000_000,
    )
    .unwrap();
    configdrive::decode(&encoded).unwrap()
}

/// UEFI on GPT: ESP, ephemeral (vfat), swap, config drive, root.
fn uefi_spec() -> PartitionDeploySpec {
    let mut spec = PartitionDeploySpec::new(PartitionImageSpec {
        root_mb: 32,
        swap_mb: 16,
        ephemeral_mb: 40,
        boot_mode: BootMode::Uefi,
        efi_system_partition_mb: 40,
        ..Default::default()
    });
    spec.ephemeral_format = Some("vfat".to_string());
    spec.configdrive = Some(config_drive_source());
    spec.reproducible = Some(SEEDED);
    spec
}

/// BIOS on MBR: swap, config drive, root.
fn bios_spec() -> PartitionDeploySpec {
    let mut spec = PartitionDeploySpec::new(PartitionImageSpec {
        root_mb: 32,
        swap_mb: 8,
        disk_label: Some(DiskLabel::Msdos),
        ..Default::default()
    });
    spec.configdrive = Some(config_drive_source());
    spec.reproducible = Some(SEEDED);
    spec
}

async fn on_path(source: &ImageSource, disk: &Path, spec: &PartitionDeploySpec) -> PartitionUuids {
    deploy_partition_image(source, disk, spec, &Progress::default())
        .await
        .unwrap()
}

async fn on_device(
    source: &ImageSource,
    device: SharedDevice,
    spec: &PartitionDeploySpec,
) -> PartitionUuids {
    let deployed = deploy_partition_image_on(source, device, spec, &Progress::default())
        .await
        .unwrap();
    assert!(deployed.image.written > 0);
    deployed.uuids
}

#[tokio::test]
async fn a_uefi_deploy_on_a_device_leaves_the_bytes_of_the_deploy_on_a_path() {
    let dir = tempfile::tempdir().unwrap();
    let (raw, qcow) = root_images(dir.path());
    let base = serve(HashMap::from([("root.qcow2".to_string(), qcow)])).await;
    let image = source(format!("{base}/root.qcow2"), "qcow2");
    let spec = uefi_spec();
    let size = 320 * MIB;

    let path = blank_disk(dir.path(), "path.img", size);
    let by_path = on_path(&image, &path, &spec).await;
    let mem = MemDevice::new(size);
    let by_device = on_device(&image, mem.shared(), &spec).await;

    assert_eq!(by_device, by_path);
    assert_eq!(by_device.root_uuid, ROOT_FS_UUID);
    let esp = by_device.efi_system_partition_uuid.clone().unwrap();
    assert_eq!(esp.len(), "ABCD-1234".len(), "{esp}");
    mem.assert_same_as(&path);

    // What the tools read on it, besides: the image in the root partition.
    let dumped = dir.path().join("dumped.img");
    mem.dump(&dumped);
    let verify = run("sgdisk", &["-v", dumped.to_str().unwrap()]);
    assert!(verify.contains("No problems found"), "{verify}");
    let root = by_device.layout.get(PartitionRole::Root).unwrap();
    let mut written = vec![0u8; raw.len()];
    std::fs::File::open(&dumped)
        .unwrap()
        .read_exact_at(&mut written, root.offset)
        .unwrap();
    assert!(written == raw, "the root partition holds the image");

    let (largest, writes, reads, syncs) = mem.stats();
    assert!(largest <= 2 * MIB as usize, "a write of {largest} bytes");
    assert!(
        writes > 10 && reads > 0 && syncs > 0,
        "{writes} {reads} {syncs}"
    );
}

#[tokio::test]
async fn a_bios_deploy_on_memory_and_on_a_file_device_match_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let image: Vec<u8> = (0..3 * MIB as usize).map(|i| (i % 253) as u8 + 1).collect();
    let base = serve(HashMap::from([("root.img".to_string(), image.clone())])).await;
    let image_source = source(format!("{base}/root.img"), "raw");
    let spec = bios_spec();
    let size = 128 * MIB;

    let path = blank_disk(dir.path(), "path.img", size);
    // Something old that the deploy must clear everywhere alike.
    run_with_input(
        "sfdisk",
        &["--no-reread", "--no-tell-kernel", path.to_str().unwrap()],
        Some("label: gpt\n,20M\n,30M\n"),
    );
    let mem = MemDevice::from_file(&path);
    let file_dev_path = dir.path().join("filedev.img");
    std::fs::copy(&path, &file_dev_path).unwrap();

    let by_path = on_path(&image_source, &path, &spec).await;
    let by_mem = on_device(&image_source, mem.shared(), &spec).await;
    let file_device = FileDevice::open(&file_dev_path).unwrap();
    let by_file_device = on_device(
        &image_source,
        SharedDevice::new(Box::new(file_device)),
        &spec,
    )
    .await;

    assert_eq!(by_mem, by_path);
    assert_eq!(by_file_device, by_path);
    assert_eq!(by_path.layout.label, DiskLabel::Msdos);
    let signature = by_path.layout.mbr_signature;
    assert_eq!(by_path.root_uuid, format!("{signature:08x}-03"));
    mem.assert_same_as(&path);
    assert!(std::fs::read(&file_dev_path).unwrap() == std::fs::read(&path).unwrap());
    let table: Value =
        serde_json::from_str(&run("sfdisk", &["--json", path.to_str().unwrap()])).unwrap();
    assert_eq!(
        table["partitiontable"]["partitions"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
}

#[tokio::test]
async fn seeded_ids_repeat_and_another_seed_changes_them() {
    let dir = tempfile::tempdir().unwrap();
    let image = vec![0x5au8; MIB as usize];
    let base = serve(HashMap::from([("root.img".to_string(), image)])).await;
    let image = source(format!("{base}/root.img"), "raw");
    let mut spec = uefi_spec();
    spec.configdrive = None;
    let first = MemDevice::new(256 * MIB);
    let again = MemDevice::new(256 * MIB);
    let other = MemDevice::new(256 * MIB);
    let a = on_device(&image, first.shared(), &spec).await;
    let b = on_device(&image, again.shared(), &spec).await;
    spec.reproducible = Some(Reproducible { seed: 43, ..SEEDED });
    let c = on_device(&image, other.shared(), &spec).await;
    assert_eq!(a, b);
    assert_ne!(a.layout.disk_guid, c.layout.disk_guid);
    assert_ne!(a.efi_system_partition_uuid, c.efi_system_partition_uuid);
    let dumped = dir.path().join("again.img");
    again.dump(&dumped);
    first.assert_same_as(&dumped);
}

fn config_drive() -> ConfigDriveImage {
    let iso = ConfigDriveContent::from_json(&json!({"meta_data": {"uuid": "u"}}))
        .unwrap()
        .build_iso(1_700_000_000)
        .unwrap();
    ConfigDriveImage::from_raw(iso).unwrap()
}

#[test]
fn an_mbr_config_drive_on_a_device_matches_the_path_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let path = blank_disk(dir.path(), "mbr.img", 200 * MIB);
    run_with_input(
        "sfdisk",
        &["--no-reread", "--no-tell-kernel", path.to_str().unwrap()],
        Some("label: dos\nlabel-id: 0x1234abcd\n,50M,L\n"),
    );
    let mem = MemDevice::from_file(&path);
    let drive = config_drive();

    let by_path = create_config_drive_partition(&path, &drive).unwrap();
    let disk = ferric_image::partition::Disk::on_device(mem.shared(), 512).unwrap();
    let by_device = create_config_drive_partition_on(&disk, &drive).unwrap();

    assert_eq!(by_device, by_path);
    assert!(by_device.created);
    assert_eq!(by_device.partition.number, 2);
    mem.assert_same_as(&path);
    assert_eq!(disk_identifier_on(&disk).unwrap(), "0x1234abcd");
    assert_eq!(disk_identifier(&path).unwrap(), "0x1234abcd");
    let (largest, ..) = mem.stats();
    assert!(largest <= MIB as usize, "a write of {largest} bytes");
}

#[test]
fn a_gpt_config_drive_on_a_device_matches_the_path_but_for_its_guid() {
    let dir = tempfile::tempdir().unwrap();
    let path = blank_disk(dir.path(), "gpt.img", 100 * MIB);
    run(
        "sgdisk",
        &["-n", "1:2048:+40M", "-t", "1:8300", path.to_str().unwrap()],
    );
    // The image was smaller than the disk: the backup GPT is not at the end.
    sized(&path, 300 * MIB);
    let mem = MemDevice::from_file(&path);
    let drive = config_drive();

    let by_path = create_config_drive_partition(&path, &drive).unwrap();
    let disk = ferric_image::partition::Disk::on_device(mem.shared(), 512).unwrap();
    let by_device = create_config_drive_partition_on(&disk, &drive).unwrap();

    let (mut ours, mut theirs) = (by_device.clone(), by_path.clone());
    ours.partition.part_uuid.clear();
    theirs.partition.part_uuid.clear();
    assert_eq!(ours, theirs);
    assert_ne!(by_device.partition.part_uuid, by_path.partition.part_uuid);

    let dumped = dir.path().join("dumped.img");
    mem.dump(&dumped);
    let verify = run("sgdisk", &["-v", dumped.to_str().unwrap()]);
    assert!(verify.contains("No problems found"), "{verify}");
    let table = |p: &Path| -> Value {
        let text = run("sfdisk", &["--json", p.to_str().unwrap()]);
        let mut t: Value = serde_json::from_str(&text).unwrap();
        for part in t["partitiontable"]["partitions"].as_array_mut().unwrap() {
            let part = part.as_object_mut().unwrap();
            part.remove("uuid");
            part.remove("node");
        }
        t["partitiontable"]["partitions"].clone()
    };
    assert_eq!(table(&dumped), table(&path));
    let offset = by_device.offset();
    let probe = run(
        "blkid",
        &["-p", "-O", &offset.to_string(), dumped.to_str().unwrap()],
    );
    assert!(probe.contains(r#"LABEL="config-2""#), "{probe}");
    let mut iso = vec![0u8; drive.size() as usize];
    std::fs::File::open(&dumped)
        .unwrap()
        .read_exact_at(&mut iso, offset)
        .unwrap();
    assert!(iso == drive.to_vec().unwrap());
}
