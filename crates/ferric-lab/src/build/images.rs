//! The VM lab's test user images (`ferric lab images`): images that prove
//! they booted by printing a marker on the serial console.
//!
//! In the output directory:
//! - `ferric-test-disk.raw` (and `.qcow2`, the same converted): a whole-disk
//!   image, MBR with syslinux's `mbr.bin` and one active FAT partition (type
//!   `ef`) holding syslinux (BIOS) and systemd-boot as
//!   `EFI/BOOT/BOOTX64.EFI` (UEFI), both booting Debian's cloud kernel with an
//!   initramfs whose `/init` prints `FERRIC-INSTANCE-MARKER <token>`, then
//!   `FERRIC-CONFIG-DRIVE <device>` (or `none`) and
//!   `FERRIC-CONFIG-DRIVE-UUID <uuid>` from the config drive's
//!   `openstack/latest/meta_data.json`, then sleeps forever;
//! - `ferric-test-part.img`: an ext4 partition image holding `/ferric-marker`
//!   (a second token), with `ferric-test-part.kernel` and
//!   `ferric-test-part.initramfs` to netboot it: that `/init` mounts `root=`
//!   (`/dev/...`, `UUID=...`, `LABEL=...`) read-only and prints
//!   `FERRIC-INSTANCE-MARKER <the token in /ferric-marker>` (or
//!   `FERRIC-INSTANCE-ERROR <why>`), then reports the config drive the same
//!   way;
//! - `NAME.sha256` for each of those five files, and `images.json`
//!   ([`TestImages`]): sizes, sha256 and md5 digests, both tokens.
//!
//! Everything inside the images comes from Debian packages
//! ([`Packages`]); the build runs mtools, mkfs.vfat, sfdisk, mke2fs and
//! qemu-img, and syslinux's installer from its package. A rebuild
//! writes everything in a temporary directory beside the outputs and
//! renames each into place, `images.json` last.

mod disk;
mod initrd;
mod kmod;
mod manifest;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::build::debian::{self, Packages};
use crate::build::{run as run_tool, BuildError};

pub use disk::{parse_size, MIN_DISK_SIZE};
pub use manifest::{ImageFile, TestImages, MANIFEST};

/// The whole-disk raw image.
pub const DISK_RAW: &str = "ferric-test-disk.raw";
/// The whole-disk image as qcow2.
pub const DISK_QCOW2: &str = "ferric-test-disk.qcow2";
/// The ext4 partition image.
pub const PART_IMAGE: &str = "ferric-test-part.img";
/// The kernel that netboots the partition image.
pub const PART_KERNEL: &str = "ferric-test-part.kernel";
/// The initramfs that netboots the partition image.
pub const PART_INITRAMFS: &str = "ferric-test-part.initramfs";

/// Starts the line a booted image prints with its token.
pub const INSTANCE_MARKER: &str = "FERRIC-INSTANCE-MARKER";
/// Starts the line the partition image's init prints when it cannot find
/// or read its root.
pub const INSTANCE_ERROR: &str = "FERRIC-INSTANCE-ERROR";
/// Starts the line naming the config drive's device, or `none`.
pub const CONFIG_DRIVE_MARKER: &str = "FERRIC-CONFIG-DRIVE";
/// Starts the line with the uuid in the config drive's meta_data.json.
pub const CONFIG_DRIVE_UUID_MARKER: &str = "FERRIC-CONFIG-DRIVE-UUID";

/// The whole-disk image's size unless told otherwise.
pub const DEFAULT_DISK_SIZE: u64 = 64 * 1024 * 1024;
/// The partition image's size unless told otherwise.
pub const DEFAULT_PART_SIZE: u64 = 16 * 1024 * 1024;
/// The kernel command line of the whole-disk image (`/dev/console` is the
/// last console, the serial port).
pub const DISK_CMDLINE: &str = "console=tty0 console=ttyS0,115200 panic=10";

const KERNEL_METAPACKAGE: &str = "linux-image-cloud-amd64";
const PART_MARKER_FILE: &str = "ferric-marker";

/// Kernel options whose modules the initramfs carries when the kernel
/// builds them as modules: disk drivers, ext4 (and its checksum) and
/// isofs (to read the config drive).
const DRIVERS: &[(&str, &str)] = &[
    ("VIRTIO_PCI", "virtio_pci"),
    ("VIRTIO_BLK", "virtio_blk"),
    ("SCSI_VIRTIO", "virtio_scsi"),
    ("BLK_DEV_SD", "sd_mod"),
    ("ATA_PIIX", "ata_piix"),
    ("SATA_AHCI", "ahci"),
    ("BLK_DEV_NVME", "nvme"),
    ("EXT4_FS", "ext4"),
    ("CRYPTO_CRC32C", "crc32c_generic"),
    ("ISO9660_FS", "isofs"),
];

/// What to build, and where.
#[derive(Debug, Clone)]
pub struct ImagesSpec {
    /// Created when missing.
    pub out_dir: PathBuf,
    /// The whole-disk image's size in bytes (whole MiB, at least
    /// [`MIN_DISK_SIZE`]).
    pub disk_size: u64,
    /// The ext4 partition image's size in bytes.
    pub part_size: u64,
}

impl ImagesSpec {
    /// The default sizes, written to `out_dir`.
    pub fn new(out_dir: impl Into<PathBuf>) -> Self {
        ImagesSpec {
            out_dir: out_dir.into(),
            disk_size: DEFAULT_DISK_SIZE,
            part_size: DEFAULT_PART_SIZE,
        }
    }
}

/// `ferric lab images` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct ImagesArgs {
    /// Where the images are written (created when missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Where downloaded .deb files are kept [default: $FERRIC_CACHE_DIR/debs,
    /// else $XDG_CACHE_HOME/ferric/debs, else ~/.cache/ferric/debs].
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// The whole-disk image's size: bytes, or with K, M or G (powers of 1024).
    #[arg(long, default_value = "64M", value_parser = parse_size)]
    pub disk_size: u64,
}

/// Builds the images as `args` say and prints what was written.
pub fn run(args: ImagesArgs) -> Result<(), BuildError> {
    let started = Instant::now();
    let packages = Packages::new(args.cache_dir.unwrap_or_else(debian::default_cache_dir));
    let spec = ImagesSpec {
        disk_size: args.disk_size,
        ..ImagesSpec::new(args.out)
    };
    let images = build(&spec, &packages)?;
    for file in &images.files {
        println!(
            "{}  {} bytes  sha256 {}",
            spec.out_dir.join(&file.name).display(),
            file.size,
            file.sha256
        );
    }
    println!("{}", spec.out_dir.join(MANIFEST).display());
    println!(
        "whole-disk image marker: {INSTANCE_MARKER} {}",
        images.instance_marker
    );
    println!(
        "partition image marker:  {INSTANCE_MARKER} {} (root=UUID={})",
        images.partition_marker, images.partition_uuid
    );
    println!(
        "kernel: {}; built in {:.1} s",
        images.kernel_package,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Builds every image into `spec.out_dir`, replacing what a previous
/// build left there.
pub fn build(spec: &ImagesSpec, packages: &Packages) -> Result<TestImages, BuildError> {
    disk::check_disk_size(spec.disk_size)?;
    std::fs::create_dir_all(&spec.out_dir).map_err(|e| BuildError::io(&spec.out_dir, e))?;
    let work = tempfile::Builder::new()
        .prefix(".ferric-images-")
        .tempdir_in(&spec.out_dir)
        .map_err(|e| BuildError::io(&spec.out_dir, e))?;
    let work = work.path();
    let inputs = Inputs::fetch(packages, &work.join("packages"))?;
    let modules = inputs.initramfs_modules()?;
    let instance_marker = random_token();
    let partition_marker = random_token();
    let partition_uuid = uuid::Uuid::new_v4().to_string();

    build_disk(spec, &inputs, &modules, &instance_marker, work)?;
    build_partition(
        spec,
        &inputs,
        &modules,
        &partition_marker,
        &partition_uuid,
        work,
    )?;

    let names = [
        DISK_RAW,
        DISK_QCOW2,
        PART_IMAGE,
        PART_KERNEL,
        PART_INITRAMFS,
    ];
    let files = names
        .iter()
        .map(|name| ImageFile::of(&work.join(name)))
        .collect::<Result<Vec<_>, _>>()?;
    let images = TestImages {
        instance_marker,
        partition_marker,
        partition_uuid,
        kernel_package: inputs.kernel_package.clone(),
        disk_cmdline: DISK_CMDLINE.to_owned(),
        files,
    };
    publish(&images, work, &spec.out_dir)?;
    Ok(images)
}

/// The whole-disk images: raw, then qcow2.
fn build_disk(
    spec: &ImagesSpec,
    inputs: &Inputs,
    modules: &[(String, Vec<u8>)],
    token: &str,
    work: &Path,
) -> Result<(), BuildError> {
    tracing::info!(disk_size = spec.disk_size, "building the whole-disk image");
    let initramfs = work.join("disk.initramfs");
    initrd::write_initramfs(
        &initrd::InitramfsParts {
            busybox: &inputs.busybox,
            modules,
            init: initrd::InitKind::Disk { token },
        },
        &initramfs,
    )?;
    let boot = work.join("boot.fat");
    let files = disk::BootFiles {
        kernel: &inputs.vmlinuz,
        initramfs: &initramfs,
        efi_loader: &inputs.efi_loader,
        syslinux: &inputs.syslinux,
        cmdline: DISK_CMDLINE,
    };
    disk::make_boot_partition(
        &files,
        spec.disk_size - disk::BOOT_PARTITION_START,
        &boot,
        work,
    )?;
    let raw = work.join(DISK_RAW);
    disk::make_disk(&boot, &inputs.mbr_code, spec.disk_size, &raw)?;
    std::fs::remove_file(&boot).map_err(|e| BuildError::io(&boot, e))?;
    run_tool(
        Command::new("qemu-img")
            .args(["convert", "-f", "raw", "-O", "qcow2"])
            .arg(&raw)
            .arg(work.join(DISK_QCOW2)),
    )?;
    Ok(())
}

/// The netboot partition image, its kernel and initramfs.
fn build_partition(
    spec: &ImagesSpec,
    inputs: &Inputs,
    modules: &[(String, Vec<u8>)],
    token: &str,
    uuid: &str,
    work: &Path,
) -> Result<(), BuildError> {
    tracing::info!(part_size = spec.part_size, "building the partition image");
    let root = work.join("part-root");
    std::fs::create_dir_all(&root).map_err(|e| BuildError::io(&root, e))?;
    let marker = root.join(PART_MARKER_FILE);
    std::fs::write(&marker, format!("{token}\n")).map_err(|e| BuildError::io(&marker, e))?;
    disk::make_ext4(
        &root,
        spec.part_size,
        uuid,
        "ferric-root",
        &work.join(PART_IMAGE),
    )?;
    let kernel = work.join(PART_KERNEL);
    std::fs::copy(&inputs.vmlinuz, &kernel).map_err(|e| BuildError::io(&kernel, e))?;
    initrd::write_initramfs(
        &initrd::InitramfsParts {
            busybox: &inputs.busybox,
            modules,
            init: initrd::InitKind::Partition,
        },
        &work.join(PART_INITRAMFS),
    )
}

/// Renames the images, their `.sha256` files and then `images.json` from
/// `work` into `out_dir` (the same filesystem, so each is atomic).
fn publish(images: &TestImages, work: &Path, out_dir: &Path) -> Result<(), BuildError> {
    for file in &images.files {
        let sha_name = format!("{}.sha256", file.name);
        let sha = work.join(&sha_name);
        std::fs::write(&sha, file.sha256_line()).map_err(|e| BuildError::io(&sha, e))?;
        rename(&work.join(&file.name), &out_dir.join(&file.name))?;
        rename(&sha, &out_dir.join(&sha_name))?;
    }
    let manifest = work.join(MANIFEST);
    std::fs::write(&manifest, images.to_json()).map_err(|e| BuildError::io(&manifest, e))?;
    rename(&manifest, &out_dir.join(MANIFEST))
}

fn rename(from: &Path, to: &Path) -> Result<(), BuildError> {
    std::fs::rename(from, to).map_err(|e| BuildError::io(to, e))
}

/// 128 random bits in hex.
fn random_token() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// The files the images are made of, unpacked from their packages.
struct Inputs {
    kernel_package: String,
    vmlinuz: PathBuf,
    kernel_config: String,
    modules: kmod::ModuleTree,
    busybox: PathBuf,
    syslinux: PathBuf,
    mbr_code: PathBuf,
    efi_loader: PathBuf,
}

impl Inputs {
    fn fetch(packages: &Packages, into: &Path) -> Result<Self, BuildError> {
        let kernel_package = debian::kernel_behind(KERNEL_METAPACKAGE)?;
        tracing::info!(%kernel_package, "unpacking the build inputs");
        let unpack = |package: &str| packages.unpack(package, &into.join(package));
        let kernel = unpack(&kernel_package)?;
        let (vmlinuz, version) = find_vmlinuz(&kernel.join("boot"))?;
        let config_path = kernel.join("boot").join(format!("config-{version}"));
        let kernel_config =
            std::fs::read_to_string(&config_path).map_err(|e| BuildError::io(&config_path, e))?;
        let modules_dir = existing(
            &kernel,
            &[
                &format!("lib/modules/{version}"),
                &format!("usr/lib/modules/{version}"),
            ],
        )?;
        let busybox = existing(
            &unpack("busybox-static")?,
            &["bin/busybox", "usr/bin/busybox"],
        )?;
        let syslinux = existing(&unpack("syslinux")?, &["usr/bin/syslinux"])?;
        let mbr_code = existing(
            &unpack("syslinux-common")?,
            &["usr/lib/syslinux/mbr/mbr.bin", "usr/lib/SYSLINUX/mbr.bin"],
        )?;
        let efi_loader = existing(
            &unpack("systemd-boot-efi")?,
            &["usr/lib/systemd/boot/efi/systemd-bootx64.efi"],
        )?;
        Ok(Inputs {
            kernel_package,
            vmlinuz,
            kernel_config,
            modules: kmod::ModuleTree::scan(&modules_dir)?,
            busybox,
            syslinux,
            mbr_code,
            efi_loader,
        })
    }

    /// The modules the initramfs loads, in load order, with their bytes.
    fn initramfs_modules(&self) -> Result<Vec<(String, Vec<u8>)>, BuildError> {
        if kmod::config_setting(&self.kernel_config, "EXT4_FS") == kmod::Builtin::No {
            return Err(BuildError::Missing(format!(
                "{} has no ext4 (CONFIG_EXT4_FS), which the partition image needs",
                self.kernel_package
            )));
        }
        let wanted = wanted_modules(&self.kernel_config);
        let order = self.modules.load_order(&wanted)?;
        tracing::info!(modules = ?order, "initramfs modules");
        order
            .into_iter()
            .map(|name| {
                let path = self.modules.path(&name).ok_or_else(|| {
                    BuildError::Missing(format!("kernel module {name} is missing"))
                })?;
                Ok((name, kmod::module_bytes(path)?))
            })
            .collect()
    }
}

/// The [`DRIVERS`] a kernel config builds as modules.
fn wanted_modules(config: &str) -> Vec<String> {
    DRIVERS
        .iter()
        .filter(|(symbol, _)| kmod::config_setting(config, symbol) == kmod::Builtin::Module)
        .map(|(_, module)| (*module).to_owned())
        .collect()
}

/// `boot/vmlinuz-VERSION` and its VERSION.
fn find_vmlinuz(boot: &Path) -> Result<(PathBuf, String), BuildError> {
    let entries = std::fs::read_dir(boot).map_err(|e| BuildError::io(boot, e))?;
    entries
        .filter_map(Result::ok)
        .find_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let version = name.strip_prefix("vmlinuz-")?.to_owned();
            Some((entry.path(), version))
        })
        .ok_or_else(|| BuildError::Missing(format!("no vmlinuz-* in {}", boot.display())))
}

/// The first of `candidates` (relative to `root`) that exists.
fn existing(root: &Path, candidates: &[&str]) -> Result<PathBuf, BuildError> {
    candidates
        .iter()
        .map(|candidate| root.join(candidate))
        .find(|path| path.exists())
        .ok_or_else(|| BuildError::Missing(format!("none of {candidates:?} in {}", root.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_modular_drivers_are_carried() {
        let config =
            "CONFIG_VIRTIO_PCI=m\nCONFIG_VIRTIO_BLK=m\nCONFIG_EXT4_FS=y\nCONFIG_ISO9660_FS=m\n\
                      CONFIG_BLK_DEV_NVME=y\n# CONFIG_SATA_AHCI is not set\n";
        assert_eq!(
            wanted_modules(config),
            ["virtio_pci", "virtio_blk", "isofs"]
        );
    }

    #[test]
    fn tokens_are_random_hex() {
        let (a, b) = (random_token(), random_token());
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn the_kernel_is_found_with_its_version() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config-6.1.0-57-cloud-amd64"), b"").unwrap();
        std::fs::write(dir.path().join("vmlinuz-6.1.0-57-cloud-amd64"), b"").unwrap();
        let (path, version) = find_vmlinuz(dir.path()).unwrap();
        assert_eq!(version, "6.1.0-57-cloud-amd64");
        assert!(path.ends_with("vmlinuz-6.1.0-57-cloud-amd64"));
        assert!(find_vmlinuz(&dir.path().join("none")).is_err());
        assert!(existing(dir.path(), &["nope", "config-6.1.0-57-cloud-amd64"]).is_ok());
        assert!(existing(dir.path(), &["nope"]).is_err());
    }

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        images: ImagesArgs,
    }

    #[test]
    fn the_flags_parse() {
        use clap::Parser;
        let cli = Cli::try_parse_from(["images", "--out", "/o", "--disk-size", "128M"]).unwrap();
        assert_eq!(cli.images.out, PathBuf::from("/o"));
        assert_eq!(cli.images.disk_size, 128 * 1024 * 1024);
        assert_eq!(cli.images.cache_dir, None);
        let cli = Cli::try_parse_from(["images", "--out", "/o", "--cache-dir", "/c"]).unwrap();
        assert_eq!(cli.images.disk_size, DEFAULT_DISK_SIZE);
        assert_eq!(cli.images.cache_dir, Some(PathBuf::from("/c")));
        assert!(Cli::try_parse_from(["images", "--out", "/o", "--disk-size", "big"]).is_err());
        assert!(Cli::try_parse_from(["images"]).is_err());
    }

    #[test]
    fn a_bad_disk_size_fails_before_any_download() {
        let dir = tempfile::tempdir().unwrap();
        let spec = ImagesSpec {
            disk_size: 1024,
            ..ImagesSpec::new(dir.path().join("out"))
        };
        let packages = Packages::new(dir.path().join("cache"));
        assert!(matches!(
            build(&spec, &packages),
            Err(BuildError::Missing(_))
        ));
        assert!(!dir.path().join("cache").exists());
    }
}
