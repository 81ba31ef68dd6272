//! Disk erasure checked with the tools IPA uses: after `destroy_metadata`
//! wipefs, blkid and sfdisk find nothing on disks carrying GPT or MBR
//! tables and real file systems (made by mkfs.ext4, mkswap, mkfs.vfat,
//! genisoimage); `erase` overwrites every byte.

#![allow(clippy::unwrap_used)] // test helpers fail loudly

mod tools;
use tools::*;

use std::ops::ControlFlow;
use std::os::unix::fs::FileExt;
use std::path::Path;

use ferric_image::erase::{destroy_metadata, erase, EraseError, EraseProgress, PassKind};

/// Copies the file `from` into `disk` at `offset`.
fn put(disk: &Path, offset: u64, from: &Path) {
    let data = std::fs::read(from).unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(disk).unwrap();
    file.write_all_at(&data, offset).unwrap();
}

fn swap_file(dir: &Path, size: u64) -> std::path::PathBuf {
    let path = dir.join("swap.part");
    sized(&path, size);
    run("mkswap", &["-L", "old-swap", path.to_str().unwrap()]);
    path
}

/// Asserts that no tool sees a table or a signature on `disk` or at any
/// of `offsets`.
fn assert_blank(disk: &Path, offsets: &[u64]) {
    let d = disk.to_str().unwrap();
    let wipefs = run("wipefs", &[d]);
    assert!(wipefs.trim().is_empty(), "wipefs still finds: {wipefs}");
    let blkid = output("blkid", &["-p", d], None);
    assert_eq!(
        blkid.status.code(),
        Some(2),
        "blkid still finds: {}",
        String::from_utf8_lossy(&blkid.stdout)
    );
    let sfdisk = output("sfdisk", &["--json", d], None);
    assert!(!sfdisk.status.success(), "sfdisk still reads a table");
    for offset in offsets {
        let at = output("blkid", &["-p", "-O", &offset.to_string(), d], None);
        assert_eq!(
            at.status.code(),
            Some(2),
            "blkid at {offset}: {}",
            String::from_utf8_lossy(&at.stdout)
        );
    }
}

#[test]
fn gpt_with_ext4_swap_and_vfat_is_blank_afterwards() {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk.img");
    sized(&disk, 256 * MIB);
    let d = disk.to_str().unwrap();
    run(
        "sgdisk",
        &[
            "-n",
            "1:2048:+64M",
            "-n",
            "2:0:+32M",
            "-t",
            "2:8200",
            "-n",
            "3:0:+64M",
            "-t",
            "3:0700",
            d,
        ],
    );
    let (p1, p2, p3) = (MIB, 65 * MIB, 97 * MIB);
    run(
        "mkfs.ext4",
        &[
            "-q",
            "-F",
            "-L",
            "old-root",
            "-E",
            &format!("offset={p1}"),
            d,
            "64M",
        ],
    );
    put(&disk, p2, &swap_file(dir.path(), 32 * MIB));
    run(
        "mkfs.vfat",
        &["--offset", &(p3 / 512).to_string(), d, "65536"],
    );
    // The setup is what we think it is.
    let before = run("wipefs", &[d]);
    assert!(
        before.contains("gpt") && before.contains("PMBR"),
        "{before}"
    );
    for (offset, kind) in [(p1, "ext4"), (p2, "swap"), (p3, "vfat")] {
        let seen = run("blkid", &["-p", "-O", &offset.to_string(), d]);
        assert!(seen.contains(&format!(r#"TYPE="{kind}""#)), "{seen}");
    }

    let report = destroy_metadata(&disk).unwrap();
    assert_eq!(report.partitions, 3);
    assert!(report.bytes_zeroed() < 64 * MIB);
    assert_blank(&disk, &[p1, p2, p3]);
}

#[test]
fn mbr_with_a_logical_partition_is_blank_afterwards() {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk.img");
    sized(&disk, 256 * MIB);
    let d = disk.display();
    let script = format!(
        "label: dos\n{d}1 : start=2048, size=64M\n{d}2 : size=150M, type=5\n{d}5 : size=64M\n"
    );
    run_with_input(
        "sfdisk",
        &["--no-reread", "--no-tell-kernel", disk.to_str().unwrap()],
        Some(&script),
    );
    let json = run("sfdisk", &["--json", disk.to_str().unwrap()]);
    let table: serde_json::Value = serde_json::from_str(&json).unwrap();
    let logical = table["partitiontable"]["partitions"][2]["start"]
        .as_u64()
        .unwrap()
        * 512;
    let ds = disk.to_str().unwrap();
    run(
        "mkfs.ext4",
        &["-q", "-F", "-E", &format!("offset={logical}"), ds, "32M"],
    );
    run(
        "mkfs.ext4",
        &["-q", "-F", "-E", &format!("offset={MIB}"), ds, "32M"],
    );
    assert!(run("blkid", &["-p", "-O", &logical.to_string(), ds]).contains("ext4"));

    destroy_metadata(&disk).unwrap();
    assert_blank(&disk, &[MIB, logical]);
}

#[test]
fn file_systems_on_the_bare_disk_and_a_stale_backup_gpt_are_cleared() {
    let dir = tempfile::tempdir().unwrap();
    // An ISO written straight to a disk, as a live image would be.
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("file"), b"x").unwrap();
    let iso = dir.path().join("disk.iso");
    run(
        "genisoimage",
        &[
            "-quiet",
            "-o",
            iso.to_str().unwrap(),
            "-V",
            "LIVE",
            src.to_str().unwrap(),
        ],
    );
    sized(&iso, 64 * MIB);
    assert!(run("blkid", &["-p", iso.to_str().unwrap()]).contains("iso9660"));
    destroy_metadata(&iso).unwrap();
    assert_blank(&iso, &[]);

    // A GPT image written to a larger disk: its backup is mid-disk.
    let disk = dir.path().join("grown.img");
    sized(&disk, 128 * MIB);
    run("sgdisk", &["-n", "1:0:0", disk.to_str().unwrap()]);
    sized(&disk, 512 * MIB);
    let stale = 128 * MIB - 512;
    let file = std::fs::File::open(&disk).unwrap();
    let mut sector = [0u8; 8];
    file.read_exact_at(&mut sector, stale).unwrap();
    assert_eq!(&sector, b"EFI PART");
    let report = destroy_metadata(&disk).unwrap();
    file.read_exact_at(&mut sector, stale).unwrap();
    assert_eq!(sector, [0u8; 8]);
    assert!(report
        .regions
        .iter()
        .any(|&(s, l)| s <= stale && stale < s + l));
    assert_blank(&disk, &[MIB]);
}

#[test]
fn tiny_and_empty_disks_are_handled() {
    let dir = tempfile::tempdir().unwrap();
    let tiny = dir.path().join("tiny.img");
    std::fs::write(&tiny, vec![0xffu8; 1000]).unwrap();
    let report = destroy_metadata(&tiny).unwrap();
    assert_eq!(report.regions, [(0, 1000)]);
    assert!(std::fs::read(&tiny).unwrap().iter().all(|&b| b == 0));
    let empty = dir.path().join("empty.img");
    std::fs::write(&empty, b"").unwrap();
    assert!(destroy_metadata(&empty).unwrap().regions.is_empty());
    assert!(destroy_metadata(&dir.path().join("missing")).is_err());
}

fn patterned(path: &Path, size: usize) {
    std::fs::write(path, vec![0xabu8; size]).unwrap();
}

#[test]
fn erase_overwrites_everything_and_ends_with_zeroes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("disk.img");
    let size = 9 * MIB as usize + 12_345;
    patterned(&path, size);
    let mut seen: Vec<EraseProgress> = Vec::new();
    let report = erase(&path, 2, true, &mut |p| {
        seen.push(*p);
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(report.passes, 3);
    assert_eq!(report.bytes_written, 3 * size as u64);
    let data = std::fs::read(&path).unwrap();
    assert_eq!(data.len(), size);
    assert!(data.iter().all(|&b| b == 0));
    // Progress: three passes of three writes, monotonic, ending complete.
    assert_eq!(seen.len(), 9);
    assert!(seen.windows(2).all(|w| w[1].done > w[0].done));
    let last = seen.last().unwrap();
    assert_eq!(
        (last.pass, last.kind, last.done, last.total),
        (3, PassKind::Zero, last.total, 3 * size as u64)
    );
    assert_eq!(seen[0].kind, PassKind::Random);
    assert_eq!(seen[0].pass_done, 4 * MIB);
}

#[test]
fn random_passes_leave_no_pattern_behind() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("disk.img");
    patterned(&path, 5 * MIB as usize);
    erase(&path, 1, false, &mut |_| ControlFlow::Continue(())).unwrap();
    let data = std::fs::read(&path).unwrap();
    let same = data.iter().filter(|&&b| b == 0xab).count();
    let zero = data.iter().filter(|&&b| b == 0).count();
    // About 1/256 of random bytes match any given value.
    assert!(same < data.len() / 100, "{same} bytes still 0xab");
    assert!(zero < data.len() / 100, "{zero} zero bytes");
}

#[test]
fn erase_can_be_stopped_and_zero_passes_do_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("disk.img");
    patterned(&path, 10 * MIB as usize);
    let err = erase(&path, 3, true, &mut |_| ControlFlow::Break(())).unwrap_err();
    assert!(
        matches!(err, EraseError::Aborted { written, .. } if written == 4 * MIB),
        "{err}"
    );
    let data = std::fs::read(&path).unwrap();
    assert!(data[(4 * MIB) as usize..].iter().all(|&b| b == 0xab));

    patterned(&path, MIB as usize);
    let report = erase(&path, 0, false, &mut |_| ControlFlow::Continue(())).unwrap();
    assert_eq!(report.bytes_written, 0);
    assert!(std::fs::read(&path).unwrap().iter().all(|&b| b == 0xab));
    let report = erase(&path, 0, true, &mut |_| ControlFlow::Continue(())).unwrap();
    assert_eq!(report.passes, 1);
    assert!(std::fs::read(&path).unwrap().iter().all(|&b| b == 0));
}

/// Throughput figures for the report: `cargo test -p ferric-image --test
/// erase_tools -- --ignored --nocapture` (writes 1 GiB to a temp file).
#[test]
#[ignore]
fn measure_erase_and_destroy() {
    use std::time::Instant;
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.img");
    sized(&big, 100 << 30);
    let t = Instant::now();
    let report = destroy_metadata(&big).unwrap();
    println!(
        "destroy_metadata, 100 GiB sparse file: {} bytes zeroed in {:?}",
        report.bytes_zeroed(),
        t.elapsed()
    );
    let path = dir.path().join("erase.img");
    sized(&path, 512 * MIB);
    for (passes, zero) in [(0, true), (1, false)] {
        let t = Instant::now();
        let r = erase(&path, passes, zero, &mut |_| ControlFlow::Continue(())).unwrap();
        let secs = t.elapsed().as_secs_f64();
        let mib = (r.bytes_written / MIB) as f64;
        println!(
            "erase passes={passes} zero={zero}: {mib} MiB in {secs:.2}s = {:.0} MiB/s",
            mib / secs
        );
    }
}
