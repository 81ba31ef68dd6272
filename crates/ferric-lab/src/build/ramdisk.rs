//! The deploy ramdisk (`ferric ramdisk build`): the kernel of Debian's
//! `linux-image-cloud-amd64` and a gzip-compressed initramfs holding
//! busybox (from `busybox-static`), the kernel modules the agent needs and
//! a static `ferric-agent`, started by a small `/init` script.
//!
//! The initramfs:
//! - `/init`: mounts proc, sys, devtmpfs, /run and /tmp, loads the modules,
//!   configures the boot NIC (`BOOTIF`, else every ethernet NIC) with
//!   DHCP and runs the agent, restarted when it fails; every step prints a
//!   `ferric-ramdisk: ` line on the console;
//! - `/bin/busybox` and its applet links (`/sbin` links to `/bin`, so the
//!   kernel's `/sbin/modprobe` loads modules on demand);
//! - `/usr/bin/ferric-agent`;
//! - `/usr/sbin/poweroff` and `/usr/sbin/reboot`: with a shell as PID 1,
//!   busybox's own would signal an init that is not there, so these sync
//!   and call `busybox poweroff -f` / `reboot -f` a second later (after
//!   the agent has answered the request);
//! - `/lib/modules/RELEASE/`: the modules (decompressed when the package
//!   compresses them), `modules.dep`, `modules.alias`, `modules.builtin`;
//! - `/etc/ferric-ramdisk/modules`: what `/init` loads, in load order; the
//!   drivers for common hardware are loaded from the devices' modaliases.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use flate2::write::GzEncoder;

use super::cpio::CpioWriter;
use super::debian::{self, Packages};
use super::{run as run_tool, BuildError};

/// The kernel metapackage used unless told otherwise.
pub const DEFAULT_KERNEL_PACKAGE: &str = "linux-image-cloud-amd64";
/// Where busybox comes from.
pub const BUSYBOX_PACKAGE: &str = "busybox-static";
/// The kernel's file name in the output directory.
pub const KERNEL_FILE: &str = "ferric-deploy.kernel";
/// The initramfs's file name in the output directory.
pub const INITRAMFS_FILE: &str = "ferric-deploy.initramfs";
/// How to build the static agent the ramdisk needs.
pub const STATIC_AGENT_HINT: &str = "build a static one with \
    `RUSTFLAGS=\"-C target-feature=+crt-static\" cargo build --release -p ferric-agent \
    --target x86_64-unknown-linux-gnu` (output: target/x86_64-unknown-linux-gnu/release/ferric-agent)";

/// Modules the ramdisk cannot do without (unless built into the kernel):
/// the virtio transport, NIC, disks, SCSI disks and RNG.
pub const REQUIRED_MODULES: &[&str] = &[
    "virtio_pci",
    "virtio_net",
    "virtio_blk",
    "virtio_scsi",
    "sd_mod",
    "virtio_rng",
];

/// Drivers for common hardware, included when the kernel package has them
/// (the cloud kernel has few; `linux-image-amd64` has them all) and loaded
/// at boot only when such a device is present.
pub const HARDWARE_MODULES: &[&str] = &[
    // disk controllers
    "ahci",
    "ata_piix",
    "ata_generic",
    "nvme",
    "megaraid_sas",
    "mpt3sas",
    "mpi3mr",
    "hpsa",
    "smartpqi",
    "aacraid",
    "vmw_pvscsi",
    // NICs
    "e1000",
    "e1000e",
    "igb",
    "igc",
    "ixgbe",
    "ixgbevf",
    "i40e",
    "iavf",
    "ice",
    "bnxt_en",
    "tg3",
    "bnx2",
    "bnx2x",
    "r8169",
    "be2net",
    "qede",
    "sfc",
    "mlx4_en",
    "mlx5_core",
    "ena",
    "gve",
    "vmxnet3",
    // mounted by /init on UEFI machines
    "efivarfs",
];

/// The busybox applets `/init`, its helper scripts and someone debugging
/// on the console use (not `poweroff`/`reboot`/`halt`: see the wrappers).
const APPLETS: &[&str] = &[
    "sh", "ash", "[", "[[", "test", "echo", "printf", "cat", "ls", "ln", "cp", "mv", "rm", "mkdir",
    "rmdir", "touch", "chmod", "mount", "umount", "mdev", "modprobe", "insmod", "rmmod", "lsmod",
    "modinfo", "ip", "ifconfig", "route", "udhcpc", "ping", "nslookup", "wget", "hostname",
    "sleep", "sync", "uname", "dmesg", "ps", "kill", "free", "df", "grep", "sed", "awk", "tr",
    "cut", "head", "tail", "wc", "sort", "uniq", "xargs", "find", "readlink", "basename",
    "dirname", "stat", "env", "true", "false", "seq", "date", "vi", "less", "more", "top",
    "hexdump", "dd", "blockdev", "fdisk", "lsscsi", "tar", "gzip", "gunzip", "zcat", "xz", "unxz",
    "setsid", "cttyhack", "sysctl", "watch", "timeout",
];

/// What to build the ramdisk from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RamdiskSpec {
    /// The static `ferric-agent` binary.
    pub agent: PathBuf,
    /// The kernel package: a metapackage such as `linux-image-cloud-amd64`
    /// or a versioned one (`linux-image-6.1.0-41-cloud-amd64`).
    pub kernel_package: String,
    /// Modules to include and load besides [`REQUIRED_MODULES`].
    pub extra_modules: Vec<String>,
    /// Where `ferric-deploy.kernel` and `ferric-deploy.initramfs` go.
    pub out_dir: PathBuf,
}

impl RamdiskSpec {
    /// The default kernel and modules, `agent` and `out_dir` given.
    pub fn new(agent: impl Into<PathBuf>, out_dir: impl Into<PathBuf>) -> Self {
        RamdiskSpec {
            agent: agent.into(),
            kernel_package: DEFAULT_KERNEL_PACKAGE.to_owned(),
            extra_modules: Vec::new(),
            out_dir: out_dir.into(),
        }
    }
}

/// What [`build`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ramdisk {
    /// `OUT/ferric-deploy.kernel`.
    pub kernel: PathBuf,
    /// `OUT/ferric-deploy.initramfs` (gzip-compressed newc cpio).
    pub initramfs: PathBuf,
    /// The versioned kernel package (`linux-image-6.1.0-41-cloud-amd64`).
    pub kernel_package: String,
    /// That package's Debian version (`6.1.158-1`).
    pub kernel_version: String,
    /// The kernel release, as `uname -r` says it.
    pub kernel_release: String,
    /// Every module in the initramfs, dependencies before their users.
    pub modules: Vec<String>,
    /// The modules `/init` loads unconditionally, in load order.
    pub boot_modules: Vec<String>,
    /// Modules asked for that the kernel has built in.
    pub builtin: Vec<String>,
    /// Size of the kernel in bytes.
    pub kernel_size: u64,
    /// Size of the compressed initramfs in bytes.
    pub initramfs_size: u64,
}

/// `ferric ramdisk build` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct RamdiskArgs {
    /// The static ferric-agent to put in the ramdisk [default: the first
    /// static one beside this executable, in its workspace's
    /// target/x86_64-unknown-linux-gnu/release, or on PATH].
    #[arg(long)]
    pub agent: Option<PathBuf>,
    /// Where to write ferric-deploy.kernel and ferric-deploy.initramfs.
    #[arg(long, default_value = ".")]
    pub out: PathBuf,
    /// The kernel package (a metapackage or a versioned one).
    #[arg(long, default_value = DEFAULT_KERNEL_PACKAGE)]
    pub kernel_package: String,
    /// A kernel module to include and load at boot (repeatable).
    #[arg(long = "module")]
    pub modules: Vec<String>,
    /// Where downloaded packages are kept [default: $FERRIC_CACHE_DIR/debs,
    /// else ~/.cache/ferric/debs].
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
}

/// `ferric ramdisk build`: builds the ramdisk and prints what it wrote.
pub fn run(args: RamdiskArgs) -> Result<(), BuildError> {
    let agent = match args.agent {
        Some(path) => path,
        None => default_agent()?,
    };
    let spec = RamdiskSpec {
        agent,
        kernel_package: args.kernel_package,
        extra_modules: args.modules,
        out_dir: args.out,
    };
    let packages = Packages::new(args.cache_dir.unwrap_or_else(debian::default_cache_dir));
    let ramdisk = build(&spec, &packages)?;
    println!("{}", summary(&ramdisk));
    Ok(())
}

/// What [`run`] prints: the files written, their sizes and the modules.
pub fn summary(ramdisk: &Ramdisk) -> String {
    let mut lines = vec![
        format!(
            "wrote {} ({}, {} {}, release {})",
            ramdisk.kernel.display(),
            mib(ramdisk.kernel_size),
            ramdisk.kernel_package,
            ramdisk.kernel_version,
            ramdisk.kernel_release
        ),
        format!(
            "wrote {} ({}, gzip)",
            ramdisk.initramfs.display(),
            mib(ramdisk.initramfs_size)
        ),
        format!(
            "total {}",
            mib(ramdisk.kernel_size + ramdisk.initramfs_size)
        ),
        format!("modules loaded at boot: {}", ramdisk.boot_modules.join(" ")),
        format!("modules included: {}", ramdisk.modules.join(" ")),
    ];
    if !ramdisk.builtin.is_empty() {
        lines.push(format!(
            "built into the kernel: {}",
            ramdisk.builtin.join(" ")
        ));
    }
    lines.join("\n")
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}

/// The first static `ferric-agent` among: the one beside the running
/// executable, the workspace's static build next to the executable's
/// target directory (`target/x86_64-unknown-linux-gnu/release/`, for a
/// `ferric` run from `target/debug` or `target/release`), then those on PATH.
pub fn default_agent() -> Result<PathBuf, BuildError> {
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf));
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(dir) = &exe_dir {
        candidates.push(dir.join("ferric-agent"));
        candidates.push(dir.join("../x86_64-unknown-linux-gnu/release/ferric-agent"));
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|dir| dir.join("ferric-agent")));
    }
    let is_static =
        |path: &PathBuf| std::fs::read(path).is_ok_and(|bytes| check_static(path, &bytes).is_ok());
    candidates.iter().find(|c| is_static(c)).cloned().ok_or_else(|| {
        BuildError::Missing(format!(
            "no static ferric-agent beside this executable, in its workspace's target directory or on PATH: give --agent; {STATIC_AGENT_HINT}"
        ))
    })
}

/// Builds the kernel and initramfs into `spec.out_dir` (both written to
/// temporary files, then renamed into place).
pub fn build(spec: &RamdiskSpec, packages: &Packages) -> Result<Ramdisk, BuildError> {
    let agent = read(&spec.agent)?;
    check_static(&spec.agent, &agent)?;
    let work = tempfile::Builder::new()
        .prefix("ferric-ramdisk-")
        .tempdir()
        .map_err(|e| BuildError::io(std::env::temp_dir(), e))?;
    let kernel = unpack_kernel(&spec.kernel_package, packages, &work.path().join("kernel"))?;
    tracing::info!(package = %kernel.package, release = %kernel.release, "kernel unpacked");
    let busybox = unpack_busybox(packages, &work.path().join("busybox"))?;
    let modules = select_modules(&kernel.modules, &spec.extra_modules)?;
    std::fs::create_dir_all(&spec.out_dir).map_err(|e| BuildError::io(&spec.out_dir, e))?;
    let kernel_path = spec.out_dir.join(KERNEL_FILE);
    let (kernel_file, kernel_size) = stage(&kernel_path, |out| {
        let bytes = read(&kernel.vmlinuz)?;
        out.write_all(&bytes)
            .map_err(|e| BuildError::io(&kernel_path, e))
    })?;
    let initramfs_path = spec.out_dir.join(INITRAMFS_FILE);
    let contents = Contents {
        agent: &agent,
        busybox: &busybox,
        kernel: &kernel,
        modules: &modules,
    };
    let (initramfs_file, initramfs_size) = stage(&initramfs_path, |out| {
        write_initramfs(out, &contents).map_err(|e| BuildError::io(&initramfs_path, e))
    })?;
    // Both complete before either replaces an older one.
    persist(kernel_file, &kernel_path)?;
    persist(initramfs_file, &initramfs_path)?;
    Ok(Ramdisk {
        kernel: kernel_path,
        initramfs: initramfs_path,
        kernel_package: kernel.package,
        kernel_version: kernel.version,
        kernel_release: kernel.release,
        modules: modules.all,
        boot_modules: modules.boot,
        builtin: modules.builtin,
        kernel_size,
        initramfs_size,
    })
}

fn read(path: &Path) -> Result<Vec<u8>, BuildError> {
    std::fs::read(path).map_err(|e| BuildError::io(path, e))
}

/// Writes what is to become `path` into a temporary file beside it (mode
/// 0644, synced); returns it and its size.
fn stage(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<&File>) -> Result<(), BuildError>,
) -> Result<(tempfile::NamedTempFile, u64), BuildError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let temp = tempfile::Builder::new()
        .prefix(".ferric-ramdisk-")
        .tempfile_in(dir)
        .map_err(|e| BuildError::io(dir, e))?;
    {
        let mut out = BufWriter::new(temp.as_file());
        fill(&mut out)?;
        out.flush().map_err(|e| BuildError::io(path, e))?;
    }
    let file = temp.as_file();
    file.sync_all().map_err(|e| BuildError::io(path, e))?;
    let size = file.metadata().map_err(|e| BuildError::io(path, e))?.len();
    set_mode_644(file).map_err(|e| BuildError::io(path, e))?;
    Ok((temp, size))
}

/// Renames a staged file into place.
fn persist(staged: tempfile::NamedTempFile, path: &Path) -> Result<(), BuildError> {
    staged
        .persist(path)
        .map(drop)
        .map_err(|e| BuildError::io(path, e.error))
}

fn set_mode_644(file: &File) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(0o644))
}

// ---------------------------------------------------------------- ELF

/// Refuses what cannot run as the ramdisk's agent: not an x86-64 ELF, or
/// one that needs a dynamic loader (a `PT_INTERP` program header).
pub fn check_static(path: &Path, bytes: &[u8]) -> Result<(), BuildError> {
    let bad = |why: &str| {
        BuildError::Missing(format!(
            "{} {why}: the ramdisk needs a static x86-64 ferric-agent; {STATIC_AGENT_HINT}",
            path.display()
        ))
    };
    let elf = elf::Elf::parse(bytes).map_err(|e| bad(&format!("is not usable ({e})")))?;
    if elf.machine() != elf::EM_X86_64 {
        return Err(bad("is not an x86-64 program"));
    }
    match elf.has_interpreter() {
        Ok(false) => Ok(()),
        Ok(true) => Err(bad("is dynamically linked (it has a PT_INTERP header)")),
        Err(e) => Err(bad(&format!("has unreadable program headers ({e})"))),
    }
}

/// Just enough of 64-bit little-endian ELF: the machine, the program
/// headers' types and sections by name.
mod elf {
    /// `e_machine` of x86-64.
    pub const EM_X86_64: u16 = 62;
    const PT_INTERP: u32 = 3;

    /// `offset + index * size` of a header table, refused on overflow (the
    /// values come from the file).
    fn table_entry(offset: u64, index: u64, size: u64) -> Result<u64, String> {
        index
            .checked_mul(size)
            .and_then(|at| at.checked_add(offset))
            .ok_or_else(|| "header table out of range".to_string())
    }

    pub struct Elf<'a> {
        bytes: &'a [u8],
    }

    impl<'a> Elf<'a> {
        pub fn parse(bytes: &'a [u8]) -> Result<Self, String> {
            if bytes.get(..4) != Some(b"\x7fELF".as_slice()) {
                return Err("not an ELF file".into());
            }
            if bytes.get(4) != Some(&2) || bytes.get(5) != Some(&1) {
                return Err("not a 64-bit little-endian ELF file".into());
            }
            if bytes.len() < 64 {
                return Err("truncated ELF header".into());
            }
            Ok(Elf { bytes })
        }

        pub fn machine(&self) -> u16 {
            self.u16_at(18).unwrap_or(0)
        }

        pub fn has_interpreter(&self) -> Result<bool, String> {
            let offset = self.u64_at(32).ok_or("no e_phoff")?;
            let size = u64::from(self.u16_at(54).ok_or("no e_phentsize")?);
            let count = u64::from(self.u16_at(56).ok_or("no e_phnum")?);
            for index in 0..count {
                let header = table_entry(offset, index, size)?;
                let kind = self
                    .u32_at(header)
                    .ok_or("program header out of the file")?;
                if kind == PT_INTERP {
                    return Ok(true);
                }
            }
            Ok(false)
        }

        /// The contents of the section named `wanted`.
        pub fn section(&self, wanted: &str) -> Result<Option<&'a [u8]>, String> {
            let offset = self.u64_at(40).ok_or("no e_shoff")?;
            let size = u64::from(self.u16_at(58).ok_or("no e_shentsize")?);
            let count = u64::from(self.u16_at(60).ok_or("no e_shnum")?);
            let names_index = u64::from(self.u16_at(62).ok_or("no e_shstrndx")?);
            let names = self.section_data(table_entry(offset, names_index, size)?)?;
            for index in 0..count {
                let header = table_entry(offset, index, size)?;
                let name_at = self
                    .u32_at(header)
                    .ok_or("section header out of the file")?;
                if c_string(names, name_at as usize) == Some(wanted.as_bytes()) {
                    return self.section_data(header).map(Some);
                }
            }
            Ok(None)
        }

        fn section_data(&self, header: u64) -> Result<&'a [u8], String> {
            let start = self
                .u64_at(
                    header
                        .checked_add(24)
                        .ok_or("section header out of range")?,
                )
                .ok_or("section header out of the file")?;
            let len = self
                .u64_at(
                    header
                        .checked_add(32)
                        .ok_or("section header out of range")?,
                )
                .ok_or("section header out of the file")?;
            let end = start.checked_add(len).ok_or("section size overflows")?;
            let range = usize::try_from(start).map_err(|e| e.to_string())?
                ..usize::try_from(end).map_err(|e| e.to_string())?;
            self.bytes
                .get(range)
                .ok_or_else(|| "section out of the file".to_owned())
        }

        fn field<const N: usize>(&self, at: u64) -> Option<[u8; N]> {
            let start = usize::try_from(at).ok()?;
            self.bytes
                .get(start..start.checked_add(N)?)?
                .try_into()
                .ok()
        }

        fn u16_at(&self, at: u64) -> Option<u16> {
            self.field(at).map(u16::from_le_bytes)
        }

        fn u32_at(&self, at: u64) -> Option<u32> {
            self.field(at).map(u32::from_le_bytes)
        }

        fn u64_at(&self, at: u64) -> Option<u64> {
            self.field(at).map(u64::from_le_bytes)
        }
    }

    fn c_string(table: &[u8], start: usize) -> Option<&[u8]> {
        let rest = table.get(start..)?;
        let end = rest.iter().position(|&b| b == 0)?;
        Some(&rest[..end])
    }
}

// ---------------------------------------------------------------- packages

/// The kernel package, unpacked.
struct Kernel {
    package: String,
    version: String,
    release: String,
    vmlinuz: PathBuf,
    modules: ModuleTree,
}

fn unpack_kernel(requested: &str, packages: &Packages, into: &Path) -> Result<Kernel, BuildError> {
    let package = versioned_kernel_package(requested)?;
    let deb = packages.deb(&package)?;
    let version = package_version(&deb)?;
    packages.unpack(&package, into)?;
    let vmlinuz = find_vmlinuz(&into.join("boot"))?;
    let release = vmlinuz
        .file_name()
        .and_then(|name| name.to_str())
        .and_then(|name| name.strip_prefix("vmlinuz-"))
        .map(str::to_owned)
        .ok_or_else(|| BuildError::Missing(format!("{package}: bad kernel file name")))?;
    check_kernel_config(&into.join("boot").join(format!("config-{release}")))?;
    let modules = ModuleTree::open(&modules_dir(into, &release)?)?;
    Ok(Kernel {
        package,
        version,
        release,
        vmlinuz,
        modules,
    })
}

/// A versioned package name as is (`linux-image-6.1...`), else the
/// package a metapackage depends on.
fn versioned_kernel_package(requested: &str) -> Result<String, BuildError> {
    let versioned = requested
        .strip_prefix("linux-image-")
        .and_then(|rest| rest.chars().next())
        .is_some_and(|c| c.is_ascii_digit());
    if versioned {
        return Ok(requested.to_owned());
    }
    debian::kernel_behind(requested)
}

fn package_version(deb: &Path) -> Result<String, BuildError> {
    let out = run_tool(Command::new("dpkg-deb").arg("-f").arg(deb).arg("Version"))?;
    Ok(String::from_utf8_lossy(&out).trim().to_owned())
}

fn find_vmlinuz(boot: &Path) -> Result<PathBuf, BuildError> {
    let entries = std::fs::read_dir(boot).map_err(|e| BuildError::io(boot, e))?;
    entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinuz-"))
        })
        .ok_or_else(|| BuildError::Missing(format!("no vmlinuz-* in {}", boot.display())))
}

/// The kernel must unpack a gzip initramfs and mount devtmpfs.
fn check_kernel_config(config: &Path) -> Result<(), BuildError> {
    let text = std::fs::read_to_string(config).map_err(|e| BuildError::io(config, e))?;
    for option in ["CONFIG_BLK_DEV_INITRD", "CONFIG_RD_GZIP", "CONFIG_DEVTMPFS"] {
        if !text.lines().any(|line| line == format!("{option}=y")) {
            return Err(BuildError::Missing(format!(
                "{}: the ramdisk needs {option}=y",
                config.display()
            )));
        }
    }
    Ok(())
}

/// `lib/modules/RELEASE` (or `usr/lib/modules/RELEASE`) in the package.
fn modules_dir(root: &Path, release: &str) -> Result<PathBuf, BuildError> {
    ["lib/modules", "usr/lib/modules"]
        .iter()
        .map(|dir| root.join(dir).join(release))
        .find(|dir| dir.is_dir())
        .ok_or_else(|| {
            BuildError::Missing(format!("no lib/modules/{release} in the kernel package"))
        })
}

fn unpack_busybox(packages: &Packages, into: &Path) -> Result<Vec<u8>, BuildError> {
    packages.unpack(BUSYBOX_PACKAGE, into)?;
    let path = into.join("bin/busybox");
    let bytes = read(&path)?;
    let elf = elf::Elf::parse(&bytes)
        .map_err(|e| BuildError::Missing(format!("{}: {e}", path.display())))?;
    if elf.has_interpreter().unwrap_or(true) {
        return Err(BuildError::Missing(format!(
            "{} of {BUSYBOX_PACKAGE} is not static",
            path.display()
        )));
    }
    Ok(bytes)
}

// ---------------------------------------------------------------- modules

/// A module's name as the kernel knows it: the file name without `.ko`
/// (and a compression suffix), with `-` as `_`.
pub fn module_name(path: &str) -> Option<String> {
    let file = path.rsplit('/').next()?;
    let stem = ["", ".xz", ".zst", ".gz"]
        .iter()
        .find_map(|ext| file.strip_suffix(&format!(".ko{ext}")))?;
    (!stem.is_empty()).then(|| normalize_module(stem))
}

fn normalize_module(name: &str) -> String {
    name.trim().replace('-', "_")
}

/// `modules.dep` as depmod writes it: `path: dependency paths`, read into
/// module name → (path, dependency names).
pub fn parse_modules_dep(text: &str) -> BTreeMap<String, (String, Vec<String>)> {
    text.lines()
        .filter_map(|line| {
            let (path, deps) = line.split_once(':')?;
            let name = module_name(path.trim())?;
            let deps = deps.split_whitespace().filter_map(module_name).collect();
            Some((name, (path.trim().to_owned(), deps)))
        })
        .collect()
}

/// Every module `wanted` needs, each after its dependencies (`deps` gives
/// a module's direct ones), wanted modules in the order given.
pub fn load_order<F>(wanted: &[String], mut deps: F) -> Result<Vec<String>, BuildError>
where
    F: FnMut(&str) -> Result<Vec<String>, BuildError>,
{
    let mut order = Vec::new();
    let mut seen = BTreeSet::new();
    for name in wanted {
        visit(name, &mut deps, &mut seen, &mut order)?;
    }
    Ok(order)
}

fn visit<F>(
    name: &str,
    deps: &mut F,
    seen: &mut BTreeSet<String>,
    order: &mut Vec<String>,
) -> Result<(), BuildError>
where
    F: FnMut(&str) -> Result<Vec<String>, BuildError>,
{
    if !seen.insert(name.to_owned()) {
        return Ok(());
    }
    for dep in deps(name)? {
        visit(&dep, deps, seen, order)?;
    }
    order.push(name.to_owned());
    Ok(())
}

/// What a module's `.modinfo` section says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModInfo {
    /// `depends=`: modules that must be loaded first.
    pub depends: Vec<String>,
    /// `softdep=pre:`: modules to load first when there.
    pub soft_pre: Vec<String>,
    /// `alias=`: the device (and other) patterns the module serves.
    pub aliases: Vec<String>,
}

impl ModInfo {
    /// Parses a `.modinfo` section: `key=value` strings ending with NUL.
    pub fn parse(section: &[u8]) -> Self {
        let mut info = ModInfo::default();
        for entry in section.split(|&b| b == 0) {
            let text = String::from_utf8_lossy(entry);
            let Some((key, value)) = text.split_once('=') else {
                continue;
            };
            match key {
                "depends" => info.depends.extend(
                    value
                        .split(',')
                        .filter(|d| !d.trim().is_empty())
                        .map(normalize_module),
                ),
                "softdep" => info.soft_pre.extend(soft_pre(value)),
                "alias" => info.aliases.push(value.to_owned()),
                _ => {}
            }
        }
        info
    }
}

/// The `pre:` names of a `softdep` value such as `pre: crc32c post: x`.
fn soft_pre(value: &str) -> Vec<String> {
    let mut pre = Vec::new();
    let mut in_pre = false;
    for word in value.split_whitespace() {
        match word {
            "pre:" => in_pre = true,
            "post:" => in_pre = false,
            name if in_pre => pre.push(normalize_module(name)),
            _ => {}
        }
    }
    pre
}

/// The modules of the kernel package: their files, what is built in and
/// (when the package has one) `modules.dep`.
struct ModuleTree {
    dir: PathBuf,
    files: BTreeMap<String, String>,
    builtin: BTreeSet<String>,
    listed_deps: Option<BTreeMap<String, (String, Vec<String>)>>,
}

impl ModuleTree {
    fn open(dir: &Path) -> Result<Self, BuildError> {
        let mut files = BTreeMap::new();
        collect_module_files(dir, dir, &mut files)?;
        let builtin = read_optional(&dir.join("modules.builtin"))?
            .map(|text| text.lines().filter_map(module_name).collect())
            .unwrap_or_default();
        let listed_deps = read_optional(&dir.join("modules.dep"))?.map(|t| parse_modules_dep(&t));
        Ok(ModuleTree {
            dir: dir.to_path_buf(),
            files,
            builtin,
            listed_deps,
        })
    }

    fn has(&self, name: &str) -> bool {
        self.files.contains_key(name)
    }

    /// A module's contents, decompressed.
    fn contents(&self, name: &str) -> Result<Vec<u8>, BuildError> {
        let relative = self.files.get(name).ok_or_else(|| {
            BuildError::Missing(format!("no module {name} in the kernel package"))
        })?;
        let path = self.dir.join(relative);
        decompress_module(&path)
    }

    fn modinfo(&self, name: &str) -> Result<ModInfo, BuildError> {
        let bytes = self.contents(name)?;
        let elf = elf::Elf::parse(&bytes)
            .map_err(|e| BuildError::Missing(format!("module {name}: {e}")))?;
        let section = elf
            .section(".modinfo")
            .map_err(|e| BuildError::Missing(format!("module {name}: {e}")))?;
        Ok(section.map(ModInfo::parse).unwrap_or_default())
    }

    /// A module's direct dependencies: `modules.dep`'s when the package
    /// has one, else its `.modinfo`'s (plus soft ones that are there).
    fn dependencies(&self, name: &str) -> Result<Vec<String>, BuildError> {
        let mut deps = match &self.listed_deps {
            Some(listed) => listed.get(name).map(|(_, d)| d.clone()).unwrap_or_default(),
            None => {
                let info = self.modinfo(name)?;
                let soft = info.soft_pre.into_iter().filter(|m| self.has(m));
                soft.chain(info.depends).collect()
            }
        };
        deps.dedup();
        if let Some(missing) = deps.iter().find(|d| !self.has(d)) {
            return Err(BuildError::Missing(format!(
                "module {name} needs {missing}, which the kernel package does not have"
            )));
        }
        Ok(deps)
    }

    /// Path inside the initramfs, relative to `lib/modules/RELEASE`: the
    /// package's, without a compression suffix.
    fn archive_path(&self, name: &str) -> Option<String> {
        let path = self.files.get(name)?;
        let end = path.rfind(".ko").map_or(path.len(), |i| i + 3);
        Some(path[..end].to_owned())
    }
}

fn read_optional(path: &Path) -> Result<Option<String>, BuildError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(BuildError::io(path, e)),
    }
}

fn collect_module_files(
    root: &Path,
    dir: &Path,
    files: &mut BTreeMap<String, String>,
) -> Result<(), BuildError> {
    let entries = std::fs::read_dir(dir).map_err(|e| BuildError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| BuildError::io(dir, e))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(|e| BuildError::io(&path, e))?;
        if kind.is_dir() {
            collect_module_files(root, &path, files)?;
            continue;
        }
        let Ok(relative) = path.strip_prefix(root) else {
            continue;
        };
        let relative = relative.to_string_lossy().into_owned();
        if let Some(name) = module_name(&relative) {
            files.insert(name, relative);
        }
    }
    Ok(())
}

/// Debian's bookworm modules are plain `.ko`; later releases compress
/// them (`.ko.xz`, `.ko.zst`). The initramfs stores them plain: the whole
/// archive is compressed, and busybox's modprobe needs no decompressor.
fn decompress_module(path: &Path) -> Result<Vec<u8>, BuildError> {
    let name = path.to_string_lossy();
    if name.ends_with(".ko") {
        return read(path);
    }
    if name.ends_with(".gz") {
        let mut out = Vec::new();
        let file = File::open(path).map_err(|e| BuildError::io(path, e))?;
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(file), &mut out)
            .map_err(|e| BuildError::io(path, e))?;
        return Ok(out);
    }
    let tool = if name.ends_with(".xz") { "xz" } else { "zstd" };
    run_tool(Command::new(tool).arg("-dc").arg(path))
}

/// The modules chosen for the initramfs.
#[derive(Debug, Default)]
struct Modules {
    /// Every module included, dependencies first.
    all: Vec<String>,
    /// Loaded by `/init` unconditionally, dependencies first.
    boot: Vec<String>,
    /// Asked for and built into the kernel.
    builtin: Vec<String>,
    /// Direct dependencies of every included module.
    deps: BTreeMap<String, Vec<String>>,
    /// `modules.alias` lines of every included module.
    aliases: Vec<(String, String)>,
    /// The package's `lib/modules/RELEASE`, for errors.
    tree_dir: PathBuf,
    /// Each module's path under `lib/modules/RELEASE`.
    archive_paths: BTreeMap<String, String>,
    /// The package's `modules.builtin`.
    builtin_list: Option<String>,
}

fn select_modules(tree: &ModuleTree, extra: &[String]) -> Result<Modules, BuildError> {
    let mut required: Vec<String> = REQUIRED_MODULES.iter().map(|m| (*m).to_owned()).collect();
    required.extend(extra.iter().map(|m| normalize_module(m)));
    let mut builtin = Vec::new();
    let mut boot_wanted = Vec::new();
    for name in required {
        if tree.has(&name) {
            boot_wanted.push(name);
        } else if tree.builtin.contains(&name) {
            builtin.push(name);
        } else {
            return Err(BuildError::Missing(format!(
                "module {name} is neither in the kernel package nor built into it"
            )));
        }
    }
    let hardware: Vec<String> = HARDWARE_MODULES
        .iter()
        .map(|m| (*m).to_owned())
        .filter(|m| tree.has(m))
        .collect();
    let mut deps = BTreeMap::new();
    let mut record = |name: &str| -> Result<Vec<String>, BuildError> {
        let direct = tree.dependencies(name)?;
        deps.insert(name.to_owned(), direct.clone());
        Ok(direct)
    };
    let boot = load_order(&boot_wanted, &mut record)?;
    let all = load_order(&[boot.clone(), hardware].concat(), &mut record)?;
    let mut aliases = Vec::new();
    for name in &all {
        let info = tree.modinfo(name)?;
        aliases.extend(info.aliases.into_iter().map(|a| (a, name.clone())));
    }
    let archive_paths = all
        .iter()
        .filter_map(|m| Some((m.clone(), tree.archive_path(m)?)))
        .collect();
    Ok(Modules {
        all,
        boot,
        builtin,
        deps,
        aliases,
        tree_dir: tree.dir.clone(),
        archive_paths,
        builtin_list: read_optional(&tree.dir.join("modules.builtin"))?,
    })
}

impl Modules {
    /// `modules.dep` for the included modules: each module's dependencies,
    /// the one to load first last (as depmod writes it).
    fn modules_dep(&self) -> Result<String, BuildError> {
        let mut text = String::new();
        for name in &self.all {
            let mut closure = load_order(std::slice::from_ref(name), |m| {
                Ok(self.deps.get(m).cloned().unwrap_or_default())
            })?;
            closure.pop();
            let paths: Vec<&str> = closure
                .iter()
                .rev()
                .filter_map(|m| self.archive_paths.get(m).map(String::as_str))
                .collect();
            let own = self.archive_paths.get(name).map_or("", String::as_str);
            text.push_str(own);
            text.push(':');
            for path in paths {
                text.push(' ');
                text.push_str(path);
            }
            text.push('\n');
        }
        Ok(text)
    }

    fn modules_alias(&self) -> String {
        self.aliases
            .iter()
            .map(|(alias, name)| format!("alias {alias} {name}\n"))
            .collect()
    }
}

// ---------------------------------------------------------------- archive

/// What goes into the initramfs.
struct Contents<'a> {
    agent: &'a [u8],
    busybox: &'a [u8],
    kernel: &'a Kernel,
    modules: &'a Modules,
}

/// A cpio archive that makes each entry's parent directories first (the
/// kernel's unpacker does not).
struct Archive<W: Write> {
    cpio: CpioWriter<W>,
    dirs: BTreeSet<String>,
}

impl<W: Write> Archive<W> {
    fn new(out: W) -> Self {
        Archive {
            cpio: CpioWriter::new(out),
            dirs: BTreeSet::new(),
        }
    }

    fn dir(&mut self, path: &str) -> std::io::Result<()> {
        let path = path.trim_matches('/');
        if path.is_empty() || self.dirs.contains(path) {
            return Ok(());
        }
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.dir(parent)?;
        }
        self.dirs.insert(path.to_owned());
        self.cpio.dir(path, 0o755)
    }

    fn parent(&mut self, path: &str) -> std::io::Result<()> {
        match path.trim_matches('/').rsplit_once('/') {
            Some((parent, _)) => self.dir(parent),
            None => Ok(()),
        }
    }

    fn file(&mut self, path: &str, mode: u32, contents: &[u8]) -> std::io::Result<()> {
        self.parent(path)?;
        self.cpio.file(path, mode, contents)
    }

    fn symlink(&mut self, path: &str, target: &str) -> std::io::Result<()> {
        self.parent(path)?;
        self.cpio.symlink(path, target)
    }

    fn finish(self) -> std::io::Result<W> {
        self.cpio.finish()
    }
}

fn write_initramfs<W: Write>(out: W, contents: &Contents) -> std::io::Result<()> {
    let gzip = GzEncoder::new(out, flate2::Compression::best());
    let mut archive = Archive::new(gzip);
    write_skeleton(&mut archive)?;
    write_programs(&mut archive, contents)?;
    write_modules(&mut archive, contents.kernel, contents.modules)?;
    archive.finish()?.finish()?;
    Ok(())
}

fn write_skeleton<W: Write>(archive: &mut Archive<W>) -> std::io::Result<()> {
    for dir in [
        "dev", "proc", "sys", "run", "tmp", "root", "mnt", "var", "etc", "usr/bin",
    ] {
        archive.dir(dir)?;
    }
    archive.cpio.char_device("dev/console", 0o600, 5, 1)?;
    archive.symlink("sbin", "bin")?;
    archive.symlink("var/run", "../run")?;
    archive.symlink("var/tmp", "../tmp")?;
    archive.file("etc/passwd", 0o644, b"root:x:0:0:root:/root:/bin/sh\n")?;
    archive.file("etc/group", 0o644, b"root:x:0:\n")?;
    archive.file("etc/hosts", 0o644, b"127.0.0.1 localhost\n::1 localhost\n")?;
    archive.file("etc/nsswitch.conf", 0o644, b"hosts: files dns\n")?;
    archive.file("etc/hostname", 0o644, b"ferric-deploy\n")?;
    Ok(())
}

fn write_programs<W: Write>(archive: &mut Archive<W>, contents: &Contents) -> std::io::Result<()> {
    archive.file("init", 0o755, INIT_SCRIPT.as_bytes())?;
    archive.file("etc/udhcpc/default.script", 0o755, DHCP_SCRIPT.as_bytes())?;
    archive.file("bin/busybox", 0o755, contents.busybox)?;
    for applet in APPLETS {
        archive.symlink(&format!("bin/{applet}"), "busybox")?;
    }
    archive.file("usr/bin/ferric-agent", 0o755, contents.agent)?;
    archive.file(
        "usr/sbin/poweroff",
        0o755,
        power_script("poweroff").as_bytes(),
    )?;
    archive.file("usr/sbin/reboot", 0o755, power_script("reboot").as_bytes())?;
    Ok(())
}

fn write_modules<W: Write>(
    archive: &mut Archive<W>,
    kernel: &Kernel,
    modules: &Modules,
) -> std::io::Result<()> {
    let base = format!("lib/modules/{}", kernel.release);
    archive.dir(&base)?;
    for name in &modules.all {
        let (Some(path), Ok(bytes)) = (
            modules.archive_paths.get(name),
            kernel.modules.contents(name),
        ) else {
            return Err(std::io::Error::other(format!(
                "module {name}: cannot read it from {}",
                modules.tree_dir.display()
            )));
        };
        archive.file(&format!("{base}/{path}"), 0o644, &bytes)?;
    }
    let dep = modules.modules_dep().map_err(std::io::Error::other)?;
    archive.file(&format!("{base}/modules.dep"), 0o644, dep.as_bytes())?;
    let alias = modules.modules_alias();
    archive.file(&format!("{base}/modules.alias"), 0o644, alias.as_bytes())?;
    if let Some(builtin) = &modules.builtin_list {
        archive.file(
            &format!("{base}/modules.builtin"),
            0o644,
            builtin.as_bytes(),
        )?;
    }
    let boot = modules
        .boot
        .iter()
        .map(|m| format!("{m}\n"))
        .collect::<String>();
    archive.file("etc/ferric-ramdisk/modules", 0o644, boot.as_bytes())
}

// ---------------------------------------------------------------- scripts

/// `poweroff`/`reboot` for a PID 1 that is not an init: sync, answer at
/// once (as systemd's do), and power off or reboot a second later so the
/// agent can still reply to the request that asked for it.
fn power_script(action: &str) -> String {
    format!(
        r#"#!/bin/sh
# {action} without an init to signal: sync, then busybox {action} -f.
echo "ferric-ramdisk: {action} requested" >/dev/console
sync
( sleep 1; sync; echo "ferric-ramdisk: {action} now" >/dev/console; busybox {action} -f ) </dev/null >/dev/console 2>&1 &
exit 0
"#
    )
}

/// udhcpc's event script: address, default route, resolv.conf; a
/// `/run/ferric-lease.IFACE` file tells `/init` a lease arrived.
const DHCP_SCRIPT: &str = r#"#!/bin/sh
# udhcpc event script ($1: deconfig, bound, renew, leasefail or nak).
say() { echo "ferric-ramdisk: $*" >/dev/console; }
case "$1" in
deconfig)
    ip -4 addr flush dev "$interface"
    ip link set dev "$interface" up
    ;;
bound|renew)
    if [ "$1" = bound ] || ! ip -4 addr show dev "$interface" | grep -q "inet $ip/"; then
        ip -4 addr flush dev "$interface"
    fi
    ip addr replace "$ip/${mask:-24}" brd + dev "$interface"
    [ -n "$mtu" ] && ip link set dev "$interface" mtu "$mtu"
    if [ -n "$router" ]; then
        set -- $router
        ip route replace default via "$1" dev "$interface"
    fi
    {
        [ -n "$domain" ] && echo "search $domain"
        for server in $dns; do echo "nameserver $server"; done
    } >/etc/resolv.conf.new && mv /etc/resolv.conf.new /etc/resolv.conf
    [ -n "$hostname" ] && hostname "$hostname"
    touch "/run/ferric-lease.$interface"
    say "lease on $interface: $ip/${mask:-24} router ${router:-none} dns ${dns:-none}"
    ;;
leasefail|nak)
    say "no DHCP lease on $interface yet ($1), retrying"
    ;;
esac
exit 0
"#;

/// The ramdisk's PID 1.
pub const INIT_SCRIPT: &str = r#"#!/bin/sh
# Ferric deploy ramdisk: PID 1. Every step prints one ferric-ramdisk: line.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root NO_COLOR=1
SYS=${FERRIC_SYS:-/sys}

say() { echo "ferric-ramdisk: $*"; }

mount_filesystems() {
    mount -t proc -o nosuid,nodev,noexec proc /proc
    mount -t sysfs -o nosuid,nodev,noexec sysfs /sys
    mount -t devtmpfs -o nosuid,mode=0755 devtmpfs /dev
    exec </dev/console >/dev/console 2>&1
    mkdir -p /dev/pts /dev/shm
    mount -t devpts -o nosuid,noexec devpts /dev/pts
    mount -t tmpfs -o nosuid,nodev,mode=0755 tmpfs /run
    mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs /tmp
    mounted="/proc /sys /dev /run /tmp"
    # efivarfs is a module: mounting it has the kernel run /sbin/modprobe.
    if [ -d /sys/firmware/efi/efivars ] &&
        mount -t efivarfs -o nosuid,nodev,noexec efivarfs /sys/firmware/efi/efivars; then
        mounted="$mounted /sys/firmware/efi/efivars"
    fi
    say "mounted $mounted"
}

load_modules() {
    failed=""
    while read -r module; do
        [ -n "$module" ] || continue
        modprobe "$module" || failed="$failed $module"
    done </etc/ferric-ramdisk/modules
    say "loaded modules: $(tr '\n' ' ' </etc/ferric-ramdisk/modules)"
    [ -z "$failed" ] || say "modules that failed to load:$failed"
}

# Loads the drivers of the devices present (modules.alias), twice: a
# driver may add devices of its own.
load_hardware_drivers() {
    for pass in 1 2; do
        cat /sys/bus/*/devices/*/modalias 2>/dev/null | sort -u >/run/modaliases
        while read -r alias; do
            modprobe -q "$alias" 2>/dev/null
        done </run/modaliases
    done
    say "drivers for present devices loaded; modules now: $(cut -d' ' -f1 /proc/modules | tr '\n' ' ')"
}

cmdline_value() {
    for arg in $(cat /proc/cmdline); do
        case "$arg" in
        "$1"=*) echo "${arg#*=}" ;;
        esac
    done
}

# BOOTIF as aa:bb:cc:dd:ee:ff (iPXE's) or 01-aa-bb-cc-dd-ee-ff (PXELINUX's,
# 01 being ethernet), in any case; prints the MAC in lowercase with colons.
bootif_mac() {
    mac=$(echo "$1" | tr 'ABCDEF-' 'abcdef:')
    hex='[0-9a-f][0-9a-f]'
    case "$mac" in
    01:$hex:$hex:$hex:$hex:$hex:$hex) mac=${mac#01:} ;;
    esac
    case "$mac" in
    $hex:$hex:$hex:$hex:$hex:$hex) echo "$mac" ;;
    esac
}

ethernet_nics() {
    for dir in "$SYS"/class/net/*; do
        [ -e "$dir/device" ] || continue
        [ "$(cat "$dir/type" 2>/dev/null)" = 1 ] || continue
        echo "${dir##*/}"
    done
}

nic_with_mac() {
    for nic in $(ethernet_nics); do
        if [ "$(cat "$SYS/class/net/$nic/address")" = "$1" ]; then
            echo "$nic"
            return
        fi
    done
}

# The NIC whose MAC is BOOTIF's, else every ethernet NIC.
pick_nics() {
    want=$(bootif_mac "$1")
    found=""
    [ -z "$want" ] || found=$(nic_with_mac "$want")
    if [ -n "$found" ]; then
        echo "$found"
    else
        echo $(ethernet_nics)
    fi
}

# Waits up to 30 s for the BOOTIF NIC (without BOOTIF: any ethernet NIC)
# to appear; sets nics to those to configure.
wait_for_nics() {
    want=$(bootif_mac "$1")
    i=0
    while [ $i -lt 30 ]; do
        if [ -n "$want" ]; then
            [ -z "$(nic_with_mac "$want")" ] || break
        else
            [ -z "$(ethernet_nics)" ] || break
        fi
        [ $i -ne 0 ] || say "waiting for the NIC ${want:-of any MAC} to appear"
        sleep 1
        i=$((i + 1))
    done
    nics=$(pick_nics "$1")
}

# One udhcpc per NIC, each retrying until it gets a lease (and renewing it
# after); once one NIC has a lease, those still without one stop trying.
start_dhcp() {
    for nic in $nics; do
        ip link set dev "$nic" up
        udhcpc -f -i "$nic" -s /etc/udhcpc/default.script -t 5 -T 2 -A 5 \
            -p "/run/udhcpc.$nic.pid" &
    done
    i=0
    while ! ls /run/ferric-lease.* >/dev/null 2>&1; do
        sleep 0.2
        i=$((i + 1))
        [ $((i % 75)) -ne 0 ] || say "still waiting for a DHCP lease on $nics ($((i / 5))s)"
    done
    for nic in $nics; do
        if [ ! -e "/run/ferric-lease.$nic" ] && [ -e "/run/udhcpc.$nic.pid" ]; then
            say "no lease on $nic: stopping DHCP there"
            kill "$(cat "/run/udhcpc.$nic.pid")"
        fi
    done
}

# The agent's first random numbers wait for the kernel's pool: without
# RDRAND, a hardware RNG (virtio-rng) or the EFI seed it may never fill.
report_entropy() {
    bits=$(cat /proc/sys/kernel/random/entropy_avail 2>/dev/null)
    if [ "${bits:-0}" -ge 256 ]; then
        say "random pool ready"
    else
        say "random pool not ready (${bits:-?} bits; no RDRAND or hardware RNG?): the agent may wait for it"
    fi
}

run_agent() {
    report_entropy
    while :; do
        say "starting ferric-agent"
        ferric-agent --allow-block-devices --power-off-mode system
        status=$?
        case $status in
        0|10)
            say "ferric-agent exited with status $status (machine shutting down)"
            while :; do sleep 3600; done
            ;;
        esac
        say "ferric-agent exited with status $status; restarting in 5 s"
        sleep 5
    done
}

main() {
    say "init started"
    mount_filesystems
    hostname -F /etc/hostname
    say "kernel $(uname -r), cmdline: $(cat /proc/cmdline)"
    load_modules
    load_hardware_drivers
    ip link set dev lo up
    say "lo is up"
    bootif=$(cmdline_value BOOTIF)
    wait_for_nics "$bootif"
    if [ -z "$nics" ]; then
        say "no ethernet NIC found; starting the agent anyway"
    else
        say "BOOTIF=${bootif:-none}: configuring $nics with DHCP"
        start_dhcp
        say "network up: $(ip -4 -o addr show | grep -v ' lo ' | awk '{print $2, $4}' | tr '\n' ' ')"
    fi
    run_agent
}

[ "${FERRIC_INIT_LIBRARY:-}" = 1 ] || main
"#;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_dynamic_program_is_refused_with_the_way_to_build_a_static_one() {
        let bytes = std::fs::read("/bin/ls").unwrap();
        let err = check_static(Path::new("/bin/ls"), &bytes)
            .unwrap_err()
            .to_string();
        assert!(err.contains("dynamically linked"), "{err}");
        assert!(err.contains("+crt-static"), "{err}");
        assert!(
            err.contains("x86_64-unknown-linux-gnu/release/ferric-agent"),
            "{err}"
        );
    }

    #[test]
    fn a_static_program_is_accepted() {
        check_static(Path::new("static"), &tiny_elf(PT_LOAD, 64)).unwrap();
        let err = check_static(Path::new("dynamic"), &tiny_elf(PT_INTERP_TYPE, 64))
            .unwrap_err()
            .to_string();
        assert!(err.contains("dynamically linked"), "{err}");
        // A program header table beyond any address: refused, no panic.
        let err = check_static(Path::new("huge"), &tiny_elf(PT_LOAD, u64::MAX - 8))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unreadable program headers"), "{err}");
    }

    const PT_LOAD: u32 = 1;
    const PT_INTERP_TYPE: u32 = 3;

    /// A 64-bit x86-64 ELF header with one program header of `kind`, the
    /// table at `phoff`.
    fn tiny_elf(kind: u32, phoff: u64) -> Vec<u8> {
        let mut bytes = vec![0u8; 64 + 56];
        bytes[..4].copy_from_slice(b"\x7fELF");
        bytes[4] = 2;
        bytes[5] = 1;
        bytes[6] = 1;
        bytes[18..20].copy_from_slice(&62u16.to_le_bytes());
        bytes[32..40].copy_from_slice(&phoff.to_le_bytes());
        bytes[54..56].copy_from_slice(&56u16.to_le_bytes());
        bytes[56..58].copy_from_slice(&1u16.to_le_bytes());
        bytes[64..68].copy_from_slice(&kind.to_le_bytes());
        bytes
    }

    #[test]
    fn non_elf_and_foreign_files_are_refused() {
        let err = check_static(Path::new("x"), b"#!/bin/sh\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not an ELF"), "{err}");
        let mut header = std::fs::read("/bin/ls").unwrap();
        header[18] = 183; // aarch64
        let err = check_static(Path::new("x"), &header)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not an x86-64"), "{err}");
        let err = check_static(Path::new("x"), &header[..40])
            .unwrap_err()
            .to_string();
        assert!(err.contains("truncated"), "{err}");
    }

    #[test]
    fn sections_are_found_by_name() {
        let bytes = std::fs::read("/bin/ls").unwrap();
        let elf = elf::Elf::parse(&bytes).unwrap();
        let interp = elf.section(".interp").unwrap().unwrap();
        assert!(
            interp.starts_with(b"/lib64/ld-linux-x86-64.so"),
            "{interp:?}"
        );
        assert_eq!(elf.section(".no-such-section").unwrap(), None);
    }

    #[test]
    fn module_names_drop_suffixes_and_dashes() {
        assert_eq!(
            module_name("kernel/drivers/char/hw_random/virtio-rng.ko").as_deref(),
            Some("virtio_rng")
        );
        assert_eq!(
            module_name("kernel/x/e1000e.ko.xz").as_deref(),
            Some("e1000e")
        );
        assert_eq!(module_name("kernel/x/nvme.ko.zst").as_deref(), Some("nvme"));
        assert_eq!(module_name("modules.dep"), None);
        assert_eq!(module_name("kernel/x/.ko"), None);
    }

    const MODULES_DEP: &str = "\
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/net/core/failover.ko:
kernel/drivers/virtio/virtio.ko:
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/drivers/char/hw_random/virtio-rng.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
";

    fn deps_from(
        listed: &BTreeMap<String, (String, Vec<String>)>,
    ) -> impl FnMut(&str) -> Result<Vec<String>, BuildError> + '_ {
        |name| {
            listed
                .get(name)
                .map(|(_, deps)| deps.clone())
                .ok_or_else(|| BuildError::Missing(name.to_owned()))
        }
    }

    #[test]
    fn modules_dep_is_read_and_dependencies_come_first() {
        let listed = parse_modules_dep(MODULES_DEP);
        assert_eq!(
            listed["virtio_rng"].0,
            "kernel/drivers/char/hw_random/virtio-rng.ko"
        );
        assert_eq!(listed["failover"].1, Vec::<String>::new());
        let wanted = vec!["virtio_net".to_owned(), "virtio_rng".to_owned()];
        let order = load_order(&wanted, deps_from(&listed)).unwrap();
        let at = |m: &str| order.iter().position(|x| x == m).unwrap();
        assert_eq!(order.len(), 6, "{order:?}");
        assert!(at("failover") < at("net_failover"));
        assert!(at("net_failover") < at("virtio_net"));
        assert!(at("virtio") < at("virtio_net") && at("virtio_ring") < at("virtio_net"));
        assert!(at("virtio_net") < at("virtio_rng"));
        assert!(!order.contains(&"virtio_blk".to_owned()));
    }

    #[test]
    fn an_unknown_dependency_is_an_error() {
        let listed = parse_modules_dep("kernel/a.ko: kernel/b.ko\n");
        let err = load_order(&["a".to_owned()], deps_from(&listed)).unwrap_err();
        assert!(err.to_string().contains('b'), "{err}");
    }

    #[test]
    fn modinfo_gives_dependencies_soft_ones_and_aliases() {
        let section = b"license=GPL\0depends=virtio_ring,virtio,pci-hyperv-intf\0softdep=pre: crc32c post: foo\0alias=virtio:d00000001v*\0alias=pci:v00001AF4d*\0name=virtio_net\0";
        let info = ModInfo::parse(section);
        assert_eq!(info.depends, ["virtio_ring", "virtio", "pci_hyperv_intf"]);
        assert_eq!(info.soft_pre, ["crc32c"]);
        assert_eq!(info.aliases, ["virtio:d00000001v*", "pci:v00001AF4d*"]);
        assert_eq!(ModInfo::parse(b"depends=\0"), ModInfo::default());
    }

    #[test]
    fn generated_modules_dep_lists_what_to_load_first_last() {
        let listed = parse_modules_dep(MODULES_DEP);
        let all = load_order(&["virtio_net".to_owned()], deps_from(&listed)).unwrap();
        let modules = Modules {
            deps: listed
                .iter()
                .map(|(n, (_, d))| (n.clone(), d.clone()))
                .collect(),
            archive_paths: listed
                .iter()
                .map(|(n, (p, _))| (n.clone(), p.clone()))
                .collect(),
            all,
            ..Modules::default()
        };
        let text = modules.modules_dep().unwrap();
        let line = text
            .lines()
            .find(|l| l.starts_with("kernel/drivers/net/virtio_net.ko:"))
            .unwrap();
        let deps: Vec<&str> = line.split_once(": ").unwrap().1.split(' ').collect();
        assert_eq!(deps.len(), 4, "{line}");
        let at = |p: &str| deps.iter().position(|d| d.ends_with(p)).unwrap();
        assert!(at("/failover.ko") > at("/net_failover.ko"), "{line}");
        assert!(text.contains("kernel/net/core/failover.ko:\n"), "{text}");
    }

    /// Runs a function of `/init` with the host's busybox sh, `sys` as /sys.
    fn init_function_with(sys: &Path, call: &str) -> Option<String> {
        let script = format!("{INIT_SCRIPT}\n{call}\n");
        let out = std::process::Command::new("busybox")
            .args(["sh", "-c", &script])
            .env("FERRIC_INIT_LIBRARY", "1")
            .env("FERRIC_SYS", sys)
            .output()
            .ok()?;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    fn init_function(call: &str) -> Option<String> {
        init_function_with(Path::new("/nonexistent"), call)
    }

    fn fake_nic(sys: &Path, name: &str, kind: &str, mac: &str, physical: bool) {
        let dir = sys.join("class/net").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("type"), format!("{kind}\n")).unwrap();
        std::fs::write(dir.join("address"), format!("{mac}\n")).unwrap();
        if physical {
            std::fs::create_dir(dir.join("device")).unwrap();
        }
    }

    #[test]
    fn init_picks_the_bootif_nic_else_every_ethernet_one() {
        let sys = tempfile::tempdir().unwrap();
        fake_nic(sys.path(), "eth0", "1", "52:54:00:00:00:01", true);
        fake_nic(sys.path(), "eth1", "1", "52:54:00:ab:cd:ef", true);
        fake_nic(sys.path(), "lo", "772", "00:00:00:00:00:00", false);
        fake_nic(sys.path(), "ib0", "32", "80:00:00:00:00:00", true);
        fake_nic(sys.path(), "dummy0", "1", "52:54:00:00:00:09", false);
        let cases = [
            ("52:54:00:AB:CD:EF", "eth1"),
            ("01-52-54-00-ab-cd-ef", "eth1"),
            ("01-52-54-00-00-00-01", "eth0"),
            ("52:54:00:99:99:99", "eth0 eth1"),
            ("", "eth0 eth1"),
        ];
        for (bootif, want) in cases {
            let Some(got) = init_function_with(sys.path(), &format!("pick_nics '{bootif}'")) else {
                eprintln!("skipped: no busybox to run /init's functions");
                return;
            };
            assert_eq!(got, want, "BOOTIF={bootif}");
        }
    }

    #[test]
    fn init_accepts_both_bootif_forms() {
        let cases = [
            ("52:54:00:12:34:56", "52:54:00:12:34:56"),
            ("52:54:00:AB:CD:EF", "52:54:00:ab:cd:ef"),
            ("01-52-54-00-12-34-56", "52:54:00:12:34:56"),
            ("01-52-54-00-AB-cd-EF", "52:54:00:ab:cd:ef"),
            ("52-54-00-12-34-56", "52:54:00:12:34:56"),
            ("06-52-54-00-12-34-56", ""),
            ("52:54:00:12:34", ""),
            ("zz:54:00:12:34:56", ""),
            ("", ""),
        ];
        for (given, want) in cases {
            let Some(got) = init_function(&format!("bootif_mac '{given}'")) else {
                eprintln!("skipped: no busybox to run /init's functions");
                return;
            };
            assert_eq!(got, want, "BOOTIF={given}");
        }
    }

    #[test]
    fn init_and_helper_scripts_parse() {
        for (name, script) in [
            ("init", INIT_SCRIPT.to_owned()),
            ("dhcp", DHCP_SCRIPT.to_owned()),
            ("poweroff", power_script("poweroff")),
        ] {
            let Ok(out) = std::process::Command::new("busybox")
                .args(["sh", "-n", "-c", &script])
                .output()
            else {
                eprintln!("skipped: no busybox");
                return;
            };
            assert!(
                out.status.success(),
                "{name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    #[test]
    fn archive_makes_parent_directories_once() {
        let mut archive = Archive::new(Vec::new());
        archive
            .file("lib/modules/6.1/kernel/a.ko", 0o644, b"a")
            .unwrap();
        archive
            .file("lib/modules/6.1/kernel/b.ko", 0o644, b"b")
            .unwrap();
        archive.symlink("sbin", "bin").unwrap();
        let bytes = archive.finish().unwrap();
        let text = String::from_utf8_lossy(&bytes);
        for dir in [
            "lib\0",
            "lib/modules\0",
            "lib/modules/6.1\0",
            "lib/modules/6.1/kernel\0",
        ] {
            assert_eq!(text.matches(dir).count(), 1, "{dir}");
        }
        let dir_at = text.find("lib/modules/6.1/kernel\0").unwrap();
        let file_at = text.find("lib/modules/6.1/kernel/a.ko").unwrap();
        assert!(dir_at < file_at);
    }

    #[test]
    fn the_command_line_takes_repeated_modules() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: RamdiskArgs,
        }
        let cli = Cli::parse_from(["ramdisk", "--module", "e1000e", "--module", "igb"]);
        assert_eq!(cli.args.modules, ["e1000e", "igb"]);
        assert_eq!(cli.args.out, PathBuf::from("."));
        assert_eq!(cli.args.kernel_package, DEFAULT_KERNEL_PACKAGE);
        assert_eq!(cli.args.agent, None);
        let cli = Cli::parse_from([
            "ramdisk",
            "--agent",
            "/a",
            "--out",
            "/o",
            "--cache-dir",
            "/c",
        ]);
        assert_eq!(cli.args.agent.as_deref(), Some(Path::new("/a")));
        assert_eq!(cli.args.cache_dir.as_deref(), Some(Path::new("/c")));
    }

    #[test]
    fn run_refuses_a_dynamic_agent_before_fetching_anything() {
        let cache = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        let args = RamdiskArgs {
            agent: Some(PathBuf::from("/bin/ls")),
            out: out.path().to_path_buf(),
            kernel_package: DEFAULT_KERNEL_PACKAGE.to_owned(),
            modules: Vec::new(),
            cache_dir: Some(cache.path().join("debs")),
        };
        let err = run(args).unwrap_err().to_string();
        assert!(err.contains("dynamically linked"), "{err}");
        assert!(!cache.path().join("debs").exists());
        assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0);
    }

    #[test]
    fn versioned_kernel_packages_are_taken_as_they_are() {
        assert_eq!(
            versioned_kernel_package("linux-image-6.1.0-41-cloud-amd64").unwrap(),
            "linux-image-6.1.0-41-cloud-amd64"
        );
    }
}
