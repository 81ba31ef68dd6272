//! Disk and filesystem images made in userspace: a FAT boot partition
//! (mtools, syslinux's mtools installer), an MBR disk around it (sfdisk,
//! syslinux's `mbr.bin`) and an ext4 partition image (`mke2fs -d`).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::build::{run, BuildError};

const MIB: u64 = 1024 * 1024;
const SECTOR: u64 = 512;
/// The boot partition starts 1 MiB in, as partitioning tools align it.
pub const BOOT_PARTITION_START: u64 = MIB;
/// The smallest disk the kernel, two boot loaders and the initramfs fit on.
pub const MIN_DISK_SIZE: u64 = 32 * MIB;
/// The boot code part of an MBR (before the disk id and partition table).
const MBR_CODE_SIZE: usize = 440;

/// Parses a size: bytes, or a number with `K`, `M`, `G` (`KiB`, `MiB`,
/// `GiB`; all powers of 1024).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size (like 64M or 67108864)"))?;
    let scale = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1024,
        "m" | "mib" => MIB,
        "g" | "gib" => 1024 * MIB,
        other => return Err(format!("unknown size unit {other:?} in {text:?}")),
    };
    number
        .checked_mul(scale)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// A disk size the image can have: whole MiB, at least [`MIN_DISK_SIZE`].
pub fn check_disk_size(size: u64) -> Result<(), BuildError> {
    if size < MIN_DISK_SIZE || !size.is_multiple_of(MIB) {
        return Err(BuildError::Missing(format!(
            "disk size {size} must be a whole number of MiB, at least {} MiB",
            MIN_DISK_SIZE / MIB
        )));
    }
    Ok(())
}

/// The sfdisk script of the disk: one active FAT partition (type `ef`,
/// the ESP type on MBR) from 1 MiB to the end.
pub fn sfdisk_script(disk_size: u64) -> String {
    let start = BOOT_PARTITION_START / SECTOR;
    let size = (disk_size - BOOT_PARTITION_START) / SECTOR;
    format!("label: dos\nunit: sectors\n\nstart={start}, size={size}, type=ef, bootable\n")
}

/// What goes into the FAT boot partition.
pub struct BootFiles<'a> {
    pub kernel: &'a Path,
    pub initramfs: &'a Path,
    /// systemd-boot's EFI binary, installed as `EFI/BOOT/BOOTX64.EFI`.
    pub efi_loader: &'a Path,
    /// syslinux's mtools installer (`usr/bin/syslinux` of the package).
    pub syslinux: &'a Path,
    pub cmdline: &'a str,
}

/// `syslinux.cfg`: boot the one entry at once.
pub fn syslinux_cfg(cmdline: &str) -> String {
    format!(
        "DEFAULT ferric\nPROMPT 0\nTIMEOUT 0\n\nLABEL ferric\n  LINUX /vmlinuz\n  INITRD /initrd.img\n  APPEND {cmdline}\n"
    )
}

/// systemd-boot's `loader/loader.conf`: no menu, the one entry.
pub const LOADER_CONF: &str = "timeout 0\ndefault ferric.conf\n";

/// systemd-boot's `loader/entries/ferric.conf`.
pub fn loader_entry(cmdline: &str) -> String {
    format!("title Ferric test image\nlinux /vmlinuz\ninitrd /initrd.img\noptions {cmdline}\n")
}

/// Makes the FAT boot partition image `out` of `size` bytes, bootable
/// by syslinux (BIOS) and by `EFI/BOOT/BOOTX64.EFI` (UEFI).
pub fn make_boot_partition(
    files: &BootFiles<'_>,
    size: u64,
    out: &Path,
    work: &Path,
) -> Result<(), BuildError> {
    create_sized(out, size)?;
    let hidden_sectors = (BOOT_PARTITION_START / SECTOR).to_string();
    run(Command::new("mkfs.vfat")
        .args(["-h", &hidden_sectors, "-n", "FERRIC-BOOT"])
        .arg(out))?;
    let cfg = write_text(work, "syslinux.cfg", &syslinux_cfg(files.cmdline))?;
    let loader_conf = write_text(work, "loader.conf", LOADER_CONF)?;
    let entry = write_text(work, "ferric.conf", &loader_entry(files.cmdline))?;
    mtools(Command::new("mmd").arg("-i").arg(out).args([
        "::/EFI",
        "::/EFI/BOOT",
        "::/loader",
        "::/loader/entries",
    ]))?;
    let copies: [(&Path, &str); 6] = [
        (files.kernel, "::/vmlinuz"),
        (files.initramfs, "::/initrd.img"),
        (&cfg, "::/syslinux.cfg"),
        (files.efi_loader, "::/EFI/BOOT/BOOTX64.EFI"),
        (&loader_conf, "::/loader/loader.conf"),
        (&entry, "::/loader/entries/ferric.conf"),
    ];
    for (from, to) in copies {
        mtools(
            Command::new("mcopy")
                .arg("-o")
                .arg("-i")
                .arg(out)
                .arg(from)
                .arg(to),
        )?;
    }
    // Writes ldlinux.sys, ldlinux.c32 and the boot sector (through mtools).
    mtools(Command::new(files.syslinux).arg("--install").arg(out))?;
    Ok(())
}

/// Lays the boot partition image into a new MBR disk image `out` of
/// `disk_size` bytes with syslinux's `mbr.bin` as its boot code.
pub fn make_disk(
    boot_partition: &Path,
    mbr_code: &Path,
    disk_size: u64,
    out: &Path,
) -> Result<(), BuildError> {
    create_sized(out, disk_size)?;
    run_with_input(
        Command::new("sfdisk")
            .args(["--quiet", "--no-reread", "--no-tell-kernel"])
            .arg(out),
        sfdisk_script(disk_size).as_bytes(),
    )?;
    let code = std::fs::read(mbr_code).map_err(|e| BuildError::io(mbr_code, e))?;
    write_mbr_code(out, &code)?;
    copy_into(boot_partition, out, BOOT_PARTITION_START)
}

/// Writes MBR boot code over the first bytes of `disk`, keeping its disk
/// id and partition table.
pub fn write_mbr_code(disk: &Path, code: &[u8]) -> Result<(), BuildError> {
    if code.len() > MBR_CODE_SIZE {
        return Err(BuildError::Missing(format!(
            "MBR boot code is {} bytes, over the {MBR_CODE_SIZE} an MBR holds",
            code.len()
        )));
    }
    let mut file = File::options()
        .write(true)
        .open(disk)
        .map_err(|e| BuildError::io(disk, e))?;
    file.write_all(code).map_err(|e| BuildError::io(disk, e))
}

/// Copies `from` into `disk` at byte `offset`, skipping all-zero blocks so
/// the disk file stays sparse.
pub fn copy_into(from: &Path, disk: &Path, offset: u64) -> Result<(), BuildError> {
    let mut input = File::open(from).map_err(|e| BuildError::io(from, e))?;
    let mut output = File::options()
        .write(true)
        .open(disk)
        .map_err(|e| BuildError::io(disk, e))?;
    let mut block = vec![0u8; 64 * 1024];
    let mut at = offset;
    loop {
        let read = read_full(&mut input, &mut block).map_err(|e| BuildError::io(from, e))?;
        if read == 0 {
            return Ok(());
        }
        if block[..read].iter().any(|b| *b != 0) {
            output
                .seek(SeekFrom::Start(at))
                .and_then(|_| output.write_all(&block[..read]))
                .map_err(|e| BuildError::io(disk, e))?;
        }
        at += read as u64;
    }
}

/// Makes an ext4 image `out` of `size` bytes holding the files of `root`,
/// with that filesystem UUID and label.
pub fn make_ext4(
    root: &Path,
    size: u64,
    uuid: &str,
    label: &str,
    out: &Path,
) -> Result<(), BuildError> {
    create_sized(out, size)?;
    run(Command::new("mke2fs")
        .args([
            "-q",
            "-F",
            "-t",
            "ext4",
            "-U",
            uuid,
            "-L",
            label,
            "-E",
            "root_owner=0:0",
            "-d",
        ])
        .arg(root)
        .arg(out))?;
    Ok(())
}

fn read_full(input: &mut File, block: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < block.len() {
        match input.read(&mut block[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// A new (sparse) file of exactly `size` bytes.
fn create_sized(path: &Path, size: u64) -> Result<(), BuildError> {
    let file = File::create(path).map_err(|e| BuildError::io(path, e))?;
    file.set_len(size).map_err(|e| BuildError::io(path, e))
}

fn write_text(dir: &Path, name: &str, text: &str) -> Result<PathBuf, BuildError> {
    let path = dir.join(name);
    std::fs::write(&path, text).map_err(|e| BuildError::io(&path, e))?;
    Ok(path)
}

/// Runs an mtools command on an image file that is no partitioned disk
/// (mtools would otherwise check the geometry of a floppy).
fn mtools(command: &mut Command) -> Result<Vec<u8>, BuildError> {
    run(command.env("MTOOLS_SKIP_CHECK", "1"))
}

/// [`run`] with `input` on the command's stdin.
fn run_with_input(command: &mut Command, input: &[u8]) -> Result<Vec<u8>, BuildError> {
    let tool = format!("{command:?}");
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| BuildError::Spawn {
            tool: command.get_program().to_string_lossy().into_owned(),
            source,
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input).map_err(|source| BuildError::Spawn {
            tool: tool.clone(),
            source,
        })?;
    }
    let output = child
        .wait_with_output()
        .map_err(|source| BuildError::Spawn {
            tool: tool.clone(),
            source,
        })?;
    super::super::finished(tool, output)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("67108864"), Ok(64 * MIB));
        assert_eq!(parse_size("64M"), Ok(64 * MIB));
        assert_eq!(parse_size("64MiB"), Ok(64 * MIB));
        assert_eq!(parse_size("1G"), Ok(1024 * MIB));
        assert_eq!(parse_size("512k"), Ok(512 * 1024));
        assert!(parse_size("64X").is_err());
        assert!(parse_size("M").is_err());
        assert!(parse_size("99999999999999G").is_err());
    }

    #[test]
    fn disk_sizes_are_whole_mib_and_big_enough() {
        assert!(check_disk_size(64 * MIB).is_ok());
        assert!(check_disk_size(16 * MIB).is_err());
        assert!(check_disk_size(64 * MIB + 512).is_err());
    }

    #[test]
    fn the_partition_fills_the_disk_after_the_first_mib() {
        assert_eq!(
            sfdisk_script(64 * MIB),
            "label: dos\nunit: sectors\n\nstart=2048, size=129024, type=ef, bootable\n"
        );
    }

    #[test]
    fn both_loaders_boot_the_same_files_and_command_line() {
        let cfg = syslinux_cfg("console=ttyS0");
        assert!(cfg.contains("LINUX /vmlinuz\n") && cfg.contains("INITRD /initrd.img\n"));
        assert!(cfg.contains("APPEND console=ttyS0\n"));
        let entry = loader_entry("console=ttyS0");
        assert!(entry.contains("linux /vmlinuz\n") && entry.contains("initrd /initrd.img\n"));
        assert!(entry.contains("options console=ttyS0\n"));
        assert!(LOADER_CONF.contains("default ferric.conf"));
    }

    #[test]
    fn mbr_code_keeps_the_partition_table() {
        let dir = tempfile::tempdir().unwrap();
        let disk = dir.path().join("disk");
        let mut image = vec![0u8; 1024];
        image[446] = 0x80;
        image[510] = 0x55;
        image[511] = 0xaa;
        std::fs::write(&disk, &image).unwrap();
        write_mbr_code(&disk, &[0xfa; 440]).unwrap();
        let after = std::fs::read(&disk).unwrap();
        assert_eq!(after.len(), 1024);
        assert!(after[..440].iter().all(|b| *b == 0xfa));
        assert_eq!(&after[440..], &image[440..]);
        assert!(write_mbr_code(&disk, &[0; 441]).is_err());
    }

    #[test]
    fn copies_land_at_the_offset_and_keep_holes() {
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("part");
        let mut data = vec![0u8; 200 * 1024];
        data[0] = 1;
        data[150 * 1024] = 2;
        std::fs::write(&part, &data).unwrap();
        let disk = dir.path().join("disk");
        create_sized(&disk, 2 * MIB).unwrap();
        copy_into(&part, &disk, MIB).unwrap();
        let after = std::fs::read(&disk).unwrap();
        assert_eq!(after.len() as u64, 2 * MIB);
        assert_eq!(&after[MIB as usize..MIB as usize + data.len()], &data[..]);
        assert!(after[..MIB as usize].iter().all(|b| *b == 0));
    }
}
