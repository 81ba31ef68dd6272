//! The test user images boot under qemu (TCG) and print their markers:
//! the whole-disk image under SeaBIOS (raw) and OVMF (qcow2, q35), with and
//! without a config drive, and the partition image netbooted with its own
//! kernel and initramfs, `root=/dev/vda` and `root=UUID=...`.
//!
//! One test builds once and boots each way in turn (a build takes a while,
//! and the boots would only slow each other down on two cores). Run with
//! `--nocapture` to see each boot's time to its marker; with
//! `FERRIC_KEEP_TEST_DIR` set the images and console logs are kept.

#![allow(clippy::unwrap_used)] // test helpers fail loudly

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ferric_lab::build::debian::{default_cache_dir, Packages};
use ferric_lab::build::images::{
    self, ImagesSpec, TestImages, CONFIG_DRIVE_MARKER, CONFIG_DRIVE_UUID_MARKER, DISK_QCOW2,
    DISK_RAW, INSTANCE_MARKER, PART_IMAGE, PART_INITRAMFS, PART_KERNEL,
};
use ferric_lab::build::BuildError;

const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";
/// How long one boot may take to print what is awaited (TCG on a busy
/// two-core machine).
const BOOT_LIMIT: Duration = Duration::from_secs(240);
const TOOLS: &[&str] = &[
    "qemu-system-x86_64",
    "qemu-img",
    "sfdisk",
    "mkfs.vfat",
    "mcopy",
    "mmd",
    "mke2fs",
    "blkid",
    "xorriso",
    "apt-get",
    "dpkg-deb",
    "timeout",
];

fn require_peers() -> bool {
    std::env::var("FERRIC_REQUIRE_PEERS").is_ok_and(|v| v == "1")
}

fn skip(why: &str) {
    assert!(!require_peers(), "FERRIC_REQUIRE_PEERS=1 but {why}");
    eprintln!("skipped: {why}");
}

fn on_path(tool: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .any(|dir| dir.join(tool).is_file())
}

fn missing_peer() -> Option<String> {
    if let Some(tool) = TOOLS.iter().find(|tool| !on_path(tool)) {
        return Some(format!("{tool} is not installed"));
    }
    [OVMF_CODE, OVMF_VARS]
        .iter()
        .find(|file| !Path::new(file).exists())
        .map(|file| format!("{file} is missing (package ovmf)"))
}

/// A qemu run, killed when dropped; `timeout` bounds it should this
/// process die first.
struct Qemu {
    child: Child,
    log: PathBuf,
    started: Instant,
}

impl Qemu {
    fn start(log: &Path, args: &[String]) -> Qemu {
        let _ = std::fs::remove_file(log);
        let limit = (BOOT_LIMIT + Duration::from_secs(60)).as_secs().to_string();
        let child = Command::new("timeout")
            .arg(limit)
            .arg("qemu-system-x86_64")
            .args([
                "-accel",
                "tcg",
                "-m",
                "256",
                "-nographic",
                "-monitor",
                "none",
            ])
            .args(["-nic", "none", "-no-reboot"])
            .arg("-serial")
            .arg(format!("file:{}", log.display()))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Qemu {
            child,
            log: log.to_path_buf(),
            started: Instant::now(),
        }
    }

    /// Waits until every one of `lines` is a line of the console log (kernel
    /// log lines count by their text after the timestamp); the time it took.
    fn wait_for(&mut self, lines: &[String]) -> Duration {
        loop {
            let log = std::fs::read(&self.log).unwrap_or_default();
            let log = String::from_utf8_lossy(&log);
            if lines.iter().all(|want| has_line(&log, want)) {
                return self.started.elapsed();
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "qemu exited ({status}) before printing {lines:?}:\n{}",
                    tail(&log)
                );
            }
            if self.started.elapsed() > BOOT_LIMIT {
                panic!("no {lines:?} after {BOOT_LIMIT:?}:\n{}", tail(&log));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        // SIGTERM reaches qemu through timeout; SIGKILL only if it lingers.
        if let Ok(pid) = i32::try_from(self.child.id()) {
            if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn has_line(log: &str, want: &str) -> bool {
    log.lines()
        .map(|line| line.trim_end_matches('\r'))
        .any(|line| line == want || line.ends_with(&format!("] {want}")))
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

fn boot(name: &str, dir: &Path, args: &[String], expect: &[String]) {
    let mut qemu = Qemu::start(&dir.join(format!("{name}.log")), args);
    let took = qemu.wait_for(expect);
    eprintln!("{name}: {expect:?} after {:.1} s", took.as_secs_f64());
}

fn drive(path: &Path, format: &str) -> Vec<String> {
    vec![
        "-drive".into(),
        format!(
            "file={},format={format},if=virtio,snapshot=on",
            path.display()
        ),
    ]
}

fn ovmf(dir: &Path) -> Vec<String> {
    let vars = dir.join("OVMF_VARS.fd");
    std::fs::copy(OVMF_VARS, &vars).unwrap();
    vec![
        "-drive".into(),
        format!("if=pflash,format=raw,readonly=on,file={OVMF_CODE}"),
        "-drive".into(),
        format!("if=pflash,format=raw,file={}", vars.display()),
    ]
}

fn netboot(out: &Path, root: &str) -> Vec<String> {
    let mut args = drive(&out.join(PART_IMAGE), "raw");
    args.extend([
        "-kernel".into(),
        out.join(PART_KERNEL).display().to_string(),
        "-initrd".into(),
        out.join(PART_INITRAMFS).display().to_string(),
        "-append".into(),
        format!("console=ttyS0 root={root}"),
    ]);
    args
}

fn marker(token: &str) -> String {
    format!("{INSTANCE_MARKER} {token}")
}

fn output(command: &mut Command) -> String {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// What the build wrote agrees with `images.json` and the `.sha256` files.
fn check_outputs(out: &Path, images: &TestImages) {
    assert_eq!(&TestImages::load(out).unwrap(), images);
    assert_eq!(images.files.len(), 5);
    for file in &images.files {
        let path = out.join(&file.name);
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            file.size,
            "{}",
            file.name
        );
        let sha_file = std::fs::read_to_string(out.join(format!("{}.sha256", file.name))).unwrap();
        assert_eq!(sha_file, format!("{}  {}\n", file.sha256, file.name));
        let check = Command::new("sha256sum")
            .args(["--check", "--quiet", &format!("{}.sha256", file.name)])
            .current_dir(out)
            .status()
            .unwrap();
        assert!(check.success(), "{} does not match its .sha256", file.name);
    }
    let uuid = output(
        Command::new("blkid")
            .args(["-o", "value", "-s", "UUID"])
            .arg(out.join(PART_IMAGE)),
    );
    assert_eq!(uuid, images.partition_uuid);
    let info = output(
        Command::new("qemu-img")
            .args(["info", "--output=json"])
            .arg(out.join(DISK_QCOW2)),
    );
    assert!(info.contains("\"format\": \"qcow2\""), "{info}");
    let table = output(Command::new("sfdisk").arg("--dump").arg(out.join(DISK_RAW)));
    assert!(
        table.contains("start=        2048") && table.contains("type=ef, bootable"),
        "{table}"
    );
    assert!(!std::fs::read_dir(out).unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .starts_with(".ferric-images-")));
}

/// A copy of the raw image with a second MBR partition holding an ISO
/// config drive (label `config-2`) whose meta_data.json has `uuid`.
fn disk_with_config_drive(out: &Path, dir: &Path, uuid: &str) -> PathBuf {
    let tree = dir.join("config-drive/openstack/latest");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(
        tree.join("meta_data.json"),
        format!("{{\"availability_zone\": \"\", \"hostname\": \"ferric-test\", \"uuid\": \"{uuid}\", \"name\": \"ferric-test\"}}"),
    )
    .unwrap();
    let iso = dir.join("config-drive.iso");
    output(
        Command::new("xorriso")
            .args([
                "-as", "mkisofs", "-quiet", "-V", "config-2", "-J", "-r", "-o",
            ])
            .arg(&iso)
            .arg(dir.join("config-drive")),
    );
    let disk = dir.join("with-config-drive.raw");
    std::fs::copy(out.join(DISK_RAW), &disk).unwrap();
    let disk_size = std::fs::metadata(&disk).unwrap().len();
    let iso_bytes = std::fs::read(&iso).unwrap();
    let sectors = (iso_bytes.len() as u64).div_ceil(512);
    let file = std::fs::File::options().write(true).open(&disk).unwrap();
    file.set_len(disk_size + sectors * 512 + 1024 * 1024)
        .unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, &iso_bytes, disk_size).unwrap();
    drop(file);
    let mut sfdisk = Command::new("sfdisk")
        .args([
            "--quiet",
            "--append",
            "--no-reread",
            "--no-tell-kernel",
            "--wipe-partitions",
            "never",
        ])
        .arg(&disk)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let line = format!("start={}, size={sectors}, type=83\n", disk_size / 512);
    sfdisk
        .stdin
        .take()
        .unwrap()
        .write_all(line.as_bytes())
        .unwrap();
    assert!(sfdisk.wait().unwrap().success());
    disk
}

fn is_apt_failure(e: &BuildError) -> bool {
    match e {
        BuildError::Tool { tool, .. } => {
            tool.starts_with("\"apt-get\"") || tool.starts_with("\"apt-cache\"")
        }
        BuildError::Missing(why) => {
            why.contains("apt-get download") || why.contains("apt-cache depends")
        }
        _ => false,
    }
}

fn build_images(out: &Path) -> Option<TestImages> {
    let started = Instant::now();
    let packages = Packages::new(default_cache_dir());
    match images::build(&ImagesSpec::new(out), &packages) {
        Ok(images) => {
            eprintln!(
                "built in {:.1} s: {:?}",
                started.elapsed().as_secs_f64(),
                images.files
            );
            Some(images)
        }
        // No Debian archive to download from is a missing peer, not a bug.
        Err(e) if is_apt_failure(&e) => {
            skip(&format!("the Debian packages cannot be had: {e}"));
            None
        }
        Err(e) => panic!("build failed: {e}"),
    }
}

#[test]
fn test_images_boot_and_print_their_markers() {
    if let Some(why) = missing_peer() {
        return skip(&why);
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    eprintln!("working in {}", dir.path().display());
    let Some(images) = build_images(&out) else {
        return;
    };
    check_outputs(&out, &images);
    let disk_marker = marker(&images.instance_marker);
    let no_drive = format!("{CONFIG_DRIVE_MARKER} none");

    boot(
        "bios-raw",
        dir.path(),
        &drive(&out.join(DISK_RAW), "raw"),
        &[disk_marker.clone(), no_drive.clone()],
    );
    // q35, as the lab's VMs are; the BIOS boots above are on the default pc.
    let mut uefi = vec!["-machine".to_owned(), "q35".to_owned()];
    uefi.extend(ovmf(dir.path()));
    uefi.extend(drive(&out.join(DISK_QCOW2), "qcow2"));
    boot(
        "uefi-qcow2",
        dir.path(),
        &uefi,
        std::slice::from_ref(&disk_marker),
    );

    let part_marker = marker(&images.partition_marker);
    boot(
        "netboot-dev-vda",
        dir.path(),
        &netboot(&out, "/dev/vda"),
        std::slice::from_ref(&part_marker),
    );
    let by_uuid = format!("UUID={}", images.partition_uuid);
    boot(
        "netboot-uuid",
        dir.path(),
        &netboot(&out, &by_uuid),
        std::slice::from_ref(&part_marker),
    );

    let uuid = "8d1c2b3a-4e5f-4a6b-9c7d-0e1f2a3b4c5d";
    let disk = disk_with_config_drive(&out, dir.path(), uuid);
    boot(
        "bios-config-drive",
        dir.path(),
        &drive(&disk, "raw"),
        &[
            disk_marker,
            format!("{CONFIG_DRIVE_MARKER} /dev/vda2"),
            format!("{CONFIG_DRIVE_UUID_MARKER} {uuid}"),
        ],
    );
    if std::env::var_os("FERRIC_KEEP_TEST_DIR").is_some() {
        eprintln!("kept {}", dir.keep().display());
    }
}

/// A second build into the same directory replaces every file and the
/// tokens, and leaves no work directory behind.
#[test]
fn test_a_rebuild_replaces_the_images() {
    if let Some(why) = missing_peer() {
        return skip(&why);
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let Some(first) = build_images(&out) else {
        return;
    };
    let started = Instant::now();
    let second =
        images::build(&ImagesSpec::new(&out), &Packages::new(default_cache_dir())).unwrap();
    eprintln!(
        "rebuilt (cached debs) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_ne!(first.instance_marker, second.instance_marker);
    assert_ne!(first.partition_uuid, second.partition_uuid);
    check_outputs(&out, &second);
}
