//! Partition-image layouts written natively, checked with sfdisk, sgdisk,
//! fdisk, partx, blkid, fsck.vfat, mtools — and compared with what parted
//! makes from IPA's own commands when parted is installed.

#![allow(clippy::unwrap_used)] // test helpers fail loudly

mod tools;
use tools::*;

use std::path::Path;

use ferric_image::partition::fat::{format_fat32, FatOptions};
use ferric_image::partition::swap::{write_swap, SwapOptions};
use ferric_image::partition::{
    plan_layout, read_table, write_layout, BootMode, Disk, DiskLabel, PartitionImageSpec,
    PartitionLayout, PartitionRole,
};
use serde_json::Value;

const DISK: u64 = 4096 * MIB;

fn sparse_file(path: &Path, size: u64) {
    let file = std::fs::File::create(path).unwrap();
    file.set_len(size).unwrap();
}

fn write(path: &Path, spec: &PartitionImageSpec) -> PartitionLayout {
    sparse_file(path, DISK);
    let disk = Disk::open(path).unwrap();
    let layout = plan_layout(spec, disk.size(), 512).unwrap();
    write_layout(&disk, &layout).unwrap();
    layout
}

fn sfdisk(path: &Path) -> Value {
    let text = run("sfdisk", &["--json", path.to_str().unwrap()]);
    serde_json::from_str::<Value>(&text).unwrap()["partitiontable"].clone()
}

/// Partitions as sfdisk reports them: (start, size, type, uuid, name, bootable).
fn sfdisk_parts(table: &Value) -> Vec<(u64, u64, String, String, String, bool)> {
    table["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["start"].as_u64().unwrap(),
                p["size"].as_u64().unwrap(),
                p["type"].as_str().unwrap().to_string(),
                p["uuid"].as_str().unwrap_or("").to_lowercase(),
                p["name"].as_str().unwrap_or("").to_string(),
                p["bootable"].as_bool().unwrap_or(false),
            )
        })
        .collect()
}

fn check_against_tools(path: &Path, layout: &PartitionLayout) {
    let table = sfdisk(path);
    let parts = sfdisk_parts(&table);
    assert_eq!(parts.len(), layout.partitions.len());
    for (planned, seen) in layout.partitions.iter().zip(&parts) {
        assert_eq!(seen.0, planned.offset / 512, "start of {:?}", planned.role);
        assert_eq!(seen.1, planned.length / 512, "size of {:?}", planned.role);
        assert_eq!(
            seen.2,
            planned.part_type.to_string(),
            "type of {:?}",
            planned.role
        );
        assert_eq!(seen.5, planned.bootable, "boot flag of {:?}", planned.role);
        if layout.label == DiskLabel::Gpt {
            assert_eq!(seen.3, layout.part_uuid(planned));
            assert_eq!(seen.4, "primary");
        }
    }
    let path_str = path.to_str().unwrap();
    let fdisk = run("fdisk", &["-l", path_str]);
    assert!(!fdisk.contains("does not"), "{fdisk}");
    let expected_label = if layout.label == DiskLabel::Gpt {
        "gpt"
    } else {
        "dos"
    };
    assert!(
        fdisk.contains(&format!("Disklabel type: {expected_label}")),
        "{fdisk}"
    );
    if layout.label == DiskLabel::Gpt {
        let verify = run("sgdisk", &["-v", path_str]);
        assert!(verify.contains("No problems found"), "{verify}");
    } else {
        let id = table["id"].as_str().unwrap();
        assert_eq!(id, format!("0x{:08x}", layout.mbr_signature));
    }
    // partx prints each partition's PARTUUID as the kernel and blkid do.
    let partx = run(
        "partx",
        &["--show", "-o", "NR,UUID", "--noheadings", path_str],
    );
    let uuids: Vec<String> = partx
        .lines()
        .map(|l| l.split_whitespace().nth(1).unwrap_or("").to_lowercase())
        .collect();
    let ours: Vec<String> = layout
        .partitions
        .iter()
        .map(|p| layout.part_uuid(p))
        .collect();
    assert_eq!(uuids, ours);
    // And our reader reads back what we wrote.
    assert_eq!(read_table(path).unwrap().unwrap(), layout.to_table());
}

fn full_uefi() -> PartitionImageSpec {
    PartitionImageSpec {
        root_mb: 1024,
        swap_mb: 256,
        ephemeral_mb: 128,
        configdrive_mb: 1,
        boot_mode: BootMode::Uefi,
        ..Default::default()
    }
}

#[test]
fn uefi_gpt_layout_passes_sgdisk_and_sfdisk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("disk.img");
    let layout = write(&path, &full_uefi());
    assert_eq!(layout.label, DiskLabel::Gpt);
    check_against_tools(&path, &layout);
    let print = run("sgdisk", &["-p", path.to_str().unwrap()]);
    assert!(print.contains("EF00  primary"), "{print}");
    assert!(print.contains("8200  primary"), "{print}");
}

#[test]
fn bios_msdos_layout_passes_sfdisk_and_fdisk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("disk.img");
    let spec = PartitionImageSpec {
        root_mb: 1024,
        swap_mb: 256,
        ephemeral_mb: 128,
        configdrive_mb: 1,
        ..Default::default()
    };
    let layout = write(&path, &spec);
    assert_eq!(layout.label, DiskLabel::Msdos);
    check_against_tools(&path, &layout);
}

#[test]
fn bios_gpt_and_uefi_msdos_and_ppc64_layouts_pass_the_tools() {
    let dir = tempfile::tempdir().unwrap();
    let specs = [
        PartitionImageSpec {
            root_mb: 512,
            disk_label: Some(DiskLabel::Gpt),
            ..Default::default()
        },
        PartitionImageSpec {
            root_mb: 512,
            swap_mb: 64,
            boot_mode: BootMode::Uefi,
            disk_label: Some(DiskLabel::Msdos),
            ..Default::default()
        },
        PartitionImageSpec {
            root_mb: 512,
            cpu_arch: "ppc64le".to_string(),
            ..Default::default()
        },
    ];
    for (i, spec) in specs.iter().enumerate() {
        let path = dir.path().join(format!("disk{i}.img"));
        let layout = write(&path, spec);
        check_against_tools(&path, &layout);
    }
}

#[test]
fn four_kib_sector_gpt_is_read_back_and_accepted_by_fdisk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("disk4k.img");
    sparse_file(&path, DISK);
    let disk = Disk::open_with(&path, true, 4096).unwrap();
    let layout = plan_layout(&full_uefi(), disk.size(), 4096).unwrap();
    write_layout(&disk, &layout).unwrap();
    let table = read_table(&path).unwrap().unwrap();
    assert_eq!(table.sector_size, 4096);
    assert_eq!(table, layout.to_table());
    let fdisk = run("fdisk", &["-b", "4096", "-l", path.to_str().unwrap()]);
    assert!(fdisk.contains("Disklabel type: gpt"), "{fdisk}");
    assert!(
        fdisk.contains("Sector size (logical/physical): 4096 bytes"),
        "{fdisk}"
    );
    let starts: Vec<u64> = fdisk
        .lines()
        .filter(|l| l.starts_with(path.to_str().unwrap()))
        .map(|l| l.split_whitespace().nth(1).unwrap().parse().unwrap())
        .collect();
    let ours: Vec<u64> = layout.partitions.iter().map(|p| p.offset / 4096).collect();
    assert_eq!(starts, ours);
    assert!(
        !fdisk.contains("corrupt") && !fdisk.contains("mismatch"),
        "{fdisk}"
    );
}

#[test]
fn rewriting_a_gpt_disk_as_msdos_leaves_no_gpt_behind() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("disk.img");
    write(&path, &full_uefi());
    let disk = Disk::open(&path).unwrap();
    let spec = PartitionImageSpec {
        root_mb: 100,
        ..Default::default()
    };
    let layout = plan_layout(&spec, disk.size(), 512).unwrap();
    write_layout(&disk, &layout).unwrap();
    let out = run("blkid", &["-p", path.to_str().unwrap()]);
    assert!(out.contains(r#"PTTYPE="dos""#), "{out}");
    let fdisk = run("fdisk", &["-l", path.to_str().unwrap()]);
    assert!(!fdisk.to_lowercase().contains("gpt"), "{fdisk}");
    check_against_tools(&path, &layout);
}

#[test]
fn esp_is_a_clean_fat32_volume_labelled_efi_part() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("disk.img");
    let layout = write(&path, &full_uefi());
    let esp = layout.get(PartitionRole::EfiSystem).unwrap();
    let disk = Disk::open(&path).unwrap();
    let options = FatOptions::new("efi-part", 512, (esp.offset / 512) as u32);
    format_fat32(&disk, esp.offset, esp.length, &options).unwrap();
    let offset = esp.offset.to_string();
    let out = run("blkid", &["-p", "-O", &offset, path.to_str().unwrap()]);
    assert!(out.contains(r#"TYPE="vfat""#), "{out}");
    assert!(out.contains(r#"LABEL="efi-part""#), "{out}");
    assert!(out.contains(r#"VERSION="FAT32""#), "{out}");
    assert!(
        out.contains(&format!(r#"UUID="{}""#, options.uuid())),
        "{out}"
    );
    // fsck.vfat works on whole files: check a copy of the partition.
    let esp_copy = dir.path().join("esp.img");
    let data = disk.read_at(esp.offset, esp.length as usize).unwrap();
    std::fs::write(&esp_copy, data).unwrap();
    let fsck = run("fsck.vfat", &["-n", esp_copy.to_str().unwrap()]);
    assert!(fsck.contains("1 files"), "{fsck}");
    // mtools can use it: write a file, list it back.
    let image = format!("{}@@{}", path.display(), esp.offset);
    let payload = dir.path().join("BOOTX64.EFI");
    std::fs::write(&payload, b"not really a boot loader").unwrap();
    run("mmd", &["-i", &image, "::/EFI"]);
    run(
        "mcopy",
        &[
            "-i",
            &image,
            payload.to_str().unwrap(),
            "::/EFI/BOOTX64.EFI",
        ],
    );
    let listing = run("mdir", &["-i", &image, "-b", "::/EFI"]);
    assert!(listing.contains("BOOTX64.EFI"), "{listing}");
    let data = disk.read_at(esp.offset, esp.length as usize).unwrap();
    std::fs::write(&esp_copy, data).unwrap();
    run("fsck.vfat", &["-n", esp_copy.to_str().unwrap()]);
}

#[test]
fn swap_signature_matches_mkswap_and_blkid() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("disk.img");
    let layout = write(&path, &full_uefi());
    let swap = layout.get(PartitionRole::Swap).unwrap();
    let disk = Disk::open(&path).unwrap();
    let options = SwapOptions::new("swap1");
    write_swap(&disk, swap.offset, swap.length, &options).unwrap();
    let offset = swap.offset.to_string();
    let out = run("blkid", &["-p", "-O", &offset, path.to_str().unwrap()]);
    assert!(out.contains(r#"TYPE="swap""#), "{out}");
    assert!(out.contains(r#"LABEL="swap1""#), "{out}");
    assert!(out.contains(r#"VERSION="1""#), "{out}");
    assert!(
        out.contains(&format!(r#"UUID="{}""#, options.uuid)),
        "{out}"
    );
    // mkswap's header on a copy of the partition: same size field.
    let copy = dir.path().join("swap.img");
    sparse_file(&copy, swap.length);
    run("mkswap", &["-L", "swap1", copy.to_str().unwrap()]);
    let theirs = std::fs::read(&copy).unwrap();
    let ours = disk.read_at(swap.offset, 4096).unwrap();
    assert_eq!(
        ours[1024..1036],
        theirs[1024..1036],
        "version, last page, bad pages"
    );
    assert_eq!(ours[1052..1068], theirs[1052..1068], "label");
    assert_eq!(ours[4086..], theirs[4086..4096]);
}

/// IPA's `DiskPartitioner.commit` as a parted command line for `spec`.
fn parted_args(spec: &PartitionImageSpec, layout: &PartitionLayout) -> Vec<String> {
    let mut args: Vec<String> = [
        "-a", "optimal", "-s", "PATH", "--", "unit", "MiB", "mklabel",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(spec.label().name().to_string());
    let mut start = 1;
    for p in &layout.partitions {
        let end = start + p.length / MIB;
        let fs = match p.role {
            PartitionRole::EfiSystem => "fat32",
            PartitionRole::Swap => "linux-swap",
            _ => "",
        };
        args.extend([
            "mkpart".into(),
            "primary".into(),
            fs.into(),
            start.to_string(),
            end.to_string(),
        ]);
        let flag = match p.role {
            PartitionRole::EfiSystem => Some("boot"),
            PartitionRole::BiosBoot => Some("bios_grub"),
            PartitionRole::Root if p.bootable => Some("boot"),
            PartitionRole::PrepBoot => Some("prep"),
            _ => None,
        };
        if let Some(flag) = flag {
            args.extend(["set".into(), p.number.to_string(), flag.into(), "on".into()]);
        }
        if p.role == PartitionRole::PrepBoot && spec.label() == DiskLabel::Msdos {
            args.extend([
                "set".into(),
                p.number.to_string(),
                "boot".into(),
                "on".into(),
            ]);
        }
        start = end;
    }
    args
}

#[test]
fn layouts_match_what_parted_makes_from_ipas_commands() {
    if output("parted", &["--version"], None).status.code() != Some(0) {
        eprintln!("parted is not installed: comparison with parted skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let specs = [
        full_uefi(),
        PartitionImageSpec {
            root_mb: 700,
            swap_mb: 64,
            configdrive_mb: 1,
            ..Default::default()
        },
        PartitionImageSpec {
            root_mb: 700,
            disk_label: Some(DiskLabel::Gpt),
            ..Default::default()
        },
        PartitionImageSpec {
            root_mb: 700,
            boot_mode: BootMode::Uefi,
            disk_label: Some(DiskLabel::Msdos),
            ..Default::default()
        },
        PartitionImageSpec {
            root_mb: 700,
            cpu_arch: "ppc64le".into(),
            ..Default::default()
        },
    ];
    for (i, spec) in specs.iter().enumerate() {
        let ours = dir.path().join(format!("ours{i}.img"));
        let layout = write(&ours, spec);
        let theirs = dir.path().join(format!("parted{i}.img"));
        sparse_file(&theirs, DISK);
        let args: Vec<String> = parted_args(spec, &layout)
            .into_iter()
            .map(|a| {
                if a == "PATH" {
                    theirs.display().to_string()
                } else {
                    a
                }
            })
            .collect();
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        // parted on a file calls udevadm, which may be missing: look at
        // the result, not the exit code.
        let _ = output("parted", &refs, None);
        let strip = |v: Vec<(u64, u64, String, String, String, bool)>| {
            v.into_iter()
                .map(|p| (p.0, p.1, p.2, p.4, p.5))
                .collect::<Vec<_>>()
        };
        let a = sfdisk(&ours);
        let b = sfdisk(&theirs);
        assert_eq!(a["label"], b["label"], "spec {i}");
        assert_eq!(
            strip(sfdisk_parts(&a)),
            strip(sfdisk_parts(&b)),
            "spec {i}: {spec:?}"
        );
    }
}
