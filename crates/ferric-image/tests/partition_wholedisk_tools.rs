//! Whole-disk images (made here with sgdisk and sfdisk, written to larger
//! "disks") after Ferric's fixes: the backup GPT moved as `sgdisk -e`
//! moves it, the config drive partition added as sgdisk or parted add it
//! for IPA, and IPA's errors for disks it cannot handle.

#![allow(clippy::unwrap_used)] // test helpers fail loudly

mod tools;
use tools::*;

use std::path::Path;

use ferric_image::configdrive::{ConfigDriveContent, ConfigDriveImage};
use ferric_image::partition::{
    create_config_drive_partition, disk_identifier, fix_gpt_partition, read_partitions, read_table,
    validate_partitioning, DiskLabel, PartitionError, PartitionType,
};
use serde_json::{json, Value};

/// A 1 GiB GPT image with two partitions, "written" to a 2 GiB disk.
fn gpt_image_on_bigger_disk(path: &Path) {
    sized(path, 1024 * MIB);
    let p = path.to_str().unwrap();
    run(
        "sgdisk",
        &[
            "-n",
            "1:2048:+100M",
            "-t",
            "1:ef00",
            "-n",
            "2:0:+800M",
            "-t",
            "2:8300",
            p,
        ],
    );
    sized(path, 2048 * MIB);
}

/// An MBR image made by sfdisk with `script`, on a disk of `disk` bytes.
fn mbr_image(path: &Path, image: u64, disk: u64, script: &str) {
    sized(path, image);
    run_with_input(
        "sfdisk",
        &["--no-reread", "--no-tell-kernel", path.to_str().unwrap()],
        Some(script),
    );
    sized(path, disk);
}

fn config_drive() -> ConfigDriveImage {
    let iso =
        ConfigDriveContent::from_json(&json!({"meta_data": {"uuid": "u"}, "user_data": "hi"}))
            .unwrap()
            .build_iso(1_700_000_000)
            .unwrap();
    ConfigDriveImage::from_raw(iso).unwrap()
}

fn copy_sparse(from: &Path, to: &Path) {
    run(
        "cp",
        &[
            "--sparse=always",
            from.to_str().unwrap(),
            to.to_str().unwrap(),
        ],
    );
}

fn read_range(path: &Path, offset: u64, len: usize) -> Vec<u8> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; len];
    std::fs::File::open(path)
        .unwrap()
        .read_exact_at(&mut buf, offset)
        .unwrap();
    buf
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

fn sfdisk(path: &Path) -> Value {
    let text = run("sfdisk", &["--json", path.to_str().unwrap()]);
    serde_json::from_str::<Value>(&text).unwrap()["partitiontable"].clone()
}

fn blkid_at(path: &Path, offset: u64) -> String {
    run(
        "blkid",
        &["-p", "-O", &offset.to_string(), path.to_str().unwrap()],
    )
}

#[test]
fn gpt_backup_is_moved_like_sgdisk_e() {
    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("ours.img");
    gpt_image_on_bigger_disk(&ours);
    let verify = output("sgdisk", &["-v", ours.to_str().unwrap()], None);
    let text = String::from_utf8_lossy(&verify.stdout);
    assert!(
        text.contains("it doesn't reside\nat the end of the disk"),
        "{text}"
    );
    let theirs = dir.path().join("theirs.img");
    copy_sparse(&ours, &theirs);
    run("sgdisk", &["-e", theirs.to_str().unwrap()]);

    assert!(fix_gpt_partition(&ours).unwrap());
    let verify = run("sgdisk", &["-v", ours.to_str().unwrap()]);
    assert!(verify.contains("No problems found"), "{verify}");
    assert_eq!(sfdisk(&ours)["lastlba"], sfdisk(&theirs)["lastlba"]);
    let without_node = |path: &Path| {
        let mut parts = sfdisk(path)["partitions"].clone();
        for p in parts.as_array_mut().unwrap() {
            p.as_object_mut().unwrap().remove("node");
        }
        parts
    };
    assert_eq!(without_node(&ours), without_node(&theirs));
    // Both copies of the header and table are identical to sgdisk's.
    let tail = file_len(&ours) - 33 * 512;
    assert_eq!(
        read_range(&ours, 512, 33 * 512),
        read_range(&theirs, 512, 33 * 512),
        "primary"
    );
    assert_eq!(
        read_range(&ours, tail, 33 * 512),
        read_range(&theirs, tail, 33 * 512),
        "backup"
    );
    // The protective entry's type, start and size (sgdisk computes an end
    // CHS where parted writes the saturated value; both are valid).
    let (a, b) = (read_range(&ours, 446, 16), read_range(&theirs, 446, 16));
    assert_eq!((a[4], &a[8..16]), (b[4], &b[8..16]), "protective MBR entry");
    // Nothing left to fix.
    assert!(!fix_gpt_partition(&ours).unwrap());
}

#[test]
fn gpt_config_drive_partition_matches_sgdisk_n() {
    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("ours.img");
    gpt_image_on_bigger_disk(&ours);
    let theirs = dir.path().join("theirs.img");
    copy_sparse(&ours, &theirs);
    let t = theirs.to_str().unwrap();
    run("sgdisk", &["-e", t]);
    run(
        "sgdisk",
        &[
            "-n",
            "0:-64MB:0",
            "-u",
            "0:11111111-2222-3333-4444-555555555555",
            t,
        ],
    );

    let image = config_drive();
    let placement = create_config_drive_partition(&ours, &image).unwrap();
    assert!(placement.created);
    assert_eq!(placement.label, DiskLabel::Gpt);
    assert_eq!(placement.partition.number, 3);
    let target = placement.target(&ours);
    assert_eq!(
        (target.offset, target.length),
        (placement.offset(), Some(placement.length()))
    );
    let mine = sfdisk(&ours)["partitions"][2].clone();
    let reference = sfdisk(&theirs)["partitions"][2].clone();
    assert_eq!(mine["start"], reference["start"]);
    assert_eq!(mine["size"], reference["size"]);
    assert_eq!(mine["type"], reference["type"]);
    assert_eq!(mine["name"], reference["name"]);
    assert_eq!(
        mine["uuid"].as_str().unwrap().to_lowercase(),
        placement.partition.part_uuid
    );
    let verify = run("sgdisk", &["-v", ours.to_str().unwrap()]);
    assert!(verify.contains("No problems found"), "{verify}");
    let found = blkid_at(&ours, placement.offset());
    assert!(
        found.contains(r#"LABEL="config-2""#) && found.contains(r#"TYPE="iso9660""#),
        "{found}"
    );
    // The ISO reads back whole from the partition.
    let written = read_range(&ours, placement.offset(), image.size() as usize);
    assert_eq!(written, image.to_vec().unwrap());
}

#[test]
fn mbr_config_drive_partition_matches_parted_mkpart() {
    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("ours.img");
    mbr_image(
        &ours,
        1024 * MIB,
        2048 * MIB,
        "label: dos\nstart=2048, size=1000M, type=83, bootable\n",
    );
    let image = config_drive();
    let before = sfdisk(&ours);
    let placement = create_config_drive_partition(&ours, &image).unwrap();
    assert_eq!(placement.partition.number, 2);
    let after = sfdisk(&ours);
    assert_eq!(after["id"], before["id"], "disk signature kept");
    let part = &after["partitions"][1];
    // parted -a optimal mkpart primary fat32 -64MiB -0 on a 2 GiB disk:
    assert_eq!(part["start"], 4_063_232);
    assert_eq!(part["size"], 131_072);
    assert_eq!(part["type"], "c");
    assert_eq!(after["partitions"][0], before["partitions"][0]);
    let sig = before["id"]
        .as_str()
        .unwrap()
        .trim_start_matches("0x")
        .to_string();
    assert_eq!(placement.partition.part_uuid, format!("{sig}-02"));
    let found = blkid_at(&ours, placement.offset());
    assert!(found.contains(r#"LABEL="config-2""#), "{found}");
    let fdisk = run("fdisk", &["-l", ours.to_str().unwrap()]);
    assert!(fdisk.contains("W95 FAT32 (LBA)"), "{fdisk}");
    if output("parted", &["--version"], None).status.success() {
        let theirs = dir.path().join("theirs.img");
        mbr_image(
            &theirs,
            1024 * MIB,
            2048 * MIB,
            "label: dos\nstart=2048, size=1000M, type=83, bootable\n",
        );
        let _ = output(
            "parted",
            &[
                "-a",
                "optimal",
                "-s",
                "--",
                theirs.to_str().unwrap(),
                "mkpart",
                "primary",
                "fat32",
                "-64MiB",
                "-0",
            ],
            None,
        );
        let reference = sfdisk(&theirs);
        let strip = |v: &Value| (v["start"].clone(), v["size"].clone(), v["type"].clone());
        assert_eq!(
            strip(&after["partitions"][1]),
            strip(&reference["partitions"][1])
        );
    }
}

#[test]
fn mbr_with_four_primaries_gets_ipas_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("full.img");
    mbr_image(
        &path,
        512 * MIB,
        1024 * MIB,
        "label: dos\nsize=100M\nsize=100M\nsize=100M\nsize=100M\n",
    );
    let err = create_config_drive_partition(&path, &config_drive()).unwrap_err();
    assert!(
        matches!(err, PartitionError::MbrFull { parts: 4, .. }),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "Config drive cannot be created. Disk ({}) uses MBR partitioning and already has 4 \
             primary partitions.",
            path.display()
        )
    );
}

#[test]
fn disks_without_a_table_or_partitions_get_ipas_errors() {
    let dir = tempfile::tempdir().unwrap();
    let blank = dir.path().join("blank.img");
    sized(&blank, 64 * MIB);
    let err = create_config_drive_partition(&blank, &config_drive()).unwrap_err();
    assert!(
        err.to_string().starts_with(
            "Unable to find a valid partition table on the disk after writing the image. The \
             image may be corrupted or it uses a different sector size than the device. Error: "
        ),
        "{err}"
    );
    let empty = dir.path().join("empty.img");
    mbr_image(&empty, 64 * MIB, 64 * MIB, "label: dos\n");
    let err = validate_partitioning(&empty).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "No partitions found on the device {} after writing the image.",
            empty.display()
        )
    );
    assert!(read_partitions(&blank).is_err());
}

#[test]
fn an_existing_config_2_partition_is_reused_and_two_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cd.img");
    mbr_image(
        &path,
        256 * MIB,
        256 * MIB,
        "label: dos\nstart=2048, size=64M\nsize=64M\n",
    );
    let image = config_drive();
    let iso = image.to_vec().unwrap();
    let put = |offset: u64| {
        use std::os::unix::fs::FileExt;
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.write_all_at(&iso, offset).unwrap();
    };
    put((2048 + 131_072) * 512);
    let placement = create_config_drive_partition(&path, &image).unwrap();
    assert!(!placement.created);
    assert_eq!(placement.partition.number, 2);
    assert_eq!(sfdisk(&path)["partitions"].as_array().unwrap().len(), 2);
    // A second one: IPA refuses.
    put(2048 * 512);
    let err = create_config_drive_partition(&path, &image).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("More than one partition with label \"config-2\""),
        "{err}"
    );
}

#[test]
fn a_full_disk_has_no_room_for_the_config_drive() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("full.img");
    sized(&path, 512 * MIB);
    run("sgdisk", &["-n", "1:0:0", path.to_str().unwrap()]);
    let err = create_config_drive_partition(&path, &config_drive()).unwrap_err();
    assert!(matches!(err, PartitionError::NoSpace { .. }), "{err}");
    let verify = run("sgdisk", &["-v", path.to_str().unwrap()]);
    assert!(verify.contains("No problems found"), "{verify}");
}

#[test]
fn mbr_disks_past_two_tib_get_the_partition_below_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.img");
    mbr_image(
        &path,
        64 * MIB,
        3 * 1024 * 1024 * MIB,
        "label: dos\nstart=2048, size=32M\n",
    );
    let placement = create_config_drive_partition(&path, &config_drive()).unwrap();
    let end = placement.offset() + placement.length();
    assert_eq!(end, (1u64 << 41) - MIB);
    assert_eq!(placement.length(), 64 * MIB);
    let table = sfdisk(&path);
    assert_eq!(
        table["partitions"][1]["start"],
        ((1u64 << 32) - 2048 - 131_072)
    );
}

#[test]
fn partition_uuids_match_partx_and_the_disk_identifier_matches_hexdump() {
    let dir = tempfile::tempdir().unwrap();
    let gpt = dir.path().join("gpt.img");
    gpt_image_on_bigger_disk(&gpt);
    let mbr = dir.path().join("mbr.img");
    let m = mbr.display();
    let script = format!(
        "label: dos\nlabel-id: 0x1a2b3c4d\n{m}1 : start=2048, size=50M\n{m}2 : size=100M, type=5\n\
         {m}5 : size=20M\n{m}6 : size=20M\n"
    );
    mbr_image(&mbr, 256 * MIB, 256 * MIB, &script);
    for path in [&gpt, &mbr] {
        let partx = run(
            "partx",
            &[
                "--show",
                "-o",
                "NR,START,SECTORS,UUID",
                "--noheadings",
                path.to_str().unwrap(),
            ],
        );
        let theirs: Vec<(u32, u64, u64, String)> = partx
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (
                    f[0].parse().unwrap(),
                    f[1].parse().unwrap(),
                    f[2].parse().unwrap(),
                    f[3].to_lowercase(),
                )
            })
            .collect();
        let ours: Vec<(u32, u64, u64, String)> = read_partitions(path)
            .unwrap()
            .into_iter()
            .map(|p| (p.number, p.offset / 512, p.length / 512, p.part_uuid))
            .collect();
        // partx shows the extended container as 1 KiB (2 sectors); we
        // report its full extent as the table gives it.
        let shape = |v: &[(u32, u64, u64, String)]| {
            v.iter()
                .map(|p| (p.0, p.1, p.3.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(shape(&ours), shape(&theirs), "{}", path.display());
    }
    let logical = read_partitions(&mbr).unwrap();
    assert_eq!(
        logical.iter().map(|p| p.number).collect::<Vec<_>>(),
        [1, 2, 5, 6]
    );
    assert_eq!(logical[1].part_type, PartitionType::Mbr(5));
    assert_eq!(logical[2].part_uuid, "1a2b3c4d-05");
    let hexdump = run(
        "hexdump",
        &[
            "-s",
            "440",
            "-n",
            "4",
            "-e",
            "\"0x%08x\"",
            mbr.to_str().unwrap(),
        ],
    );
    assert_eq!(disk_identifier(&mbr).unwrap(), hexdump);
    assert_eq!(hexdump, "0x1a2b3c4d");
    assert_eq!(read_table(&gpt).unwrap().unwrap().label, DiskLabel::Gpt);
}
