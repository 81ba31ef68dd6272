//! qcow2 images over HTTP: converted as they stream, checked byte for byte against
//! `qemu-img convert -O raw`; images whose tables come after their data are completed with
//! guarded Range requests; bad images fail before the target is touched.
#![allow(clippy::unwrap_used)] // test helpers fail loudly

mod stream_common;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::Ordering;

use ferric_image::qcow2::{run_in_memory, CheckingSink, StreamReader};
use ferric_image::{
    Algorithm, ExpectedChecksum, ImageError, ImageFormat, ImageSource, Progress, Target,
};
use stream_common::*;

const MIB: u64 = 1024 * 1024;
const VIRTUAL: u64 = 8 * MIB;

fn qemu_img(
    dir: &Path,
    name: &str,
    create: &[&str],
    io: &[&str],
    convert: Option<&[&str]>,
) -> std::path::PathBuf {
    let base = dir.join(format!("{name}-base.qcow2"));
    run(Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .args(create)
        .arg(&base)
        .arg(VIRTUAL.to_string()));
    for op in io {
        run(Command::new("qemu-io").args(["-c", op]).arg(&base));
    }
    match convert {
        None => base,
        Some(args) => {
            let out = dir.join(format!("{name}.qcow2"));
            run(Command::new("qemu-img")
                .args(["convert", "-O", "qcow2"])
                .args(args)
                .arg(&base)
                .arg(&out));
            out
        }
    }
}

const IO: &[&str] = &[
    "write -P 0xab 0 1M",
    "write -z 4M 1M",
    "write -P 0x5a 6M 300k",
    "write -P 0x01 8191k 1k",
];

async fn write_served(
    server: &TestServer,
    name: &str,
    bytes: Vec<u8>,
    target: &Target,
    checksum: Option<ExpectedChecksum>,
) -> Result<ferric_image::WriteReport, ImageError> {
    server.put(name, bytes);
    let src = ImageSource {
        urls: vec![server.url(name)],
        checksum,
        disk_format: Some("qcow2".into()),
    };
    quick_fetcher()
        .write_image(&src, target, &Progress::default())
        .await
}

fn sha256_of(bytes: &[u8]) -> Option<ExpectedChecksum> {
    Some(ExpectedChecksum::Hash {
        algorithm: Algorithm::Sha256,
        hex: sha256_hex(bytes),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qemu_made_images_equal_qemu_img_convert_and_need_one_request() {
    let dir = tempfile::tempdir().unwrap();
    type Case<'a> = (&'a str, &'a [&'a str], Option<&'a [&'a str]>);
    let cases: [Case; 6] = [
        ("v2", &["-o", "compat=0.10"], None),
        ("v3", &["-o", "compat=1.1"], None),
        (
            "v3-converted",
            &["-o", "compat=1.1"],
            Some(&["-o", "compat=1.1"]),
        ),
        (
            "v2-deflate",
            &["-o", "compat=0.10"],
            Some(&["-c", "-o", "compat=0.10"]),
        ),
        (
            "v3-deflate",
            &["-o", "compat=1.1"],
            Some(&["-c", "-o", "compat=1.1"]),
        ),
        (
            "v3-zstd",
            &["-o", "compat=1.1"],
            Some(&["-c", "-o", "compat=1.1,compression_type=zstd"]),
        ),
    ];
    for (name, create, convert) in cases {
        let server = TestServer::start().await;
        let image = qemu_img(dir.path(), name, create, IO, convert);
        let raw = qemu_raw(&image);
        let bytes = std::fs::read(&image).unwrap();
        let path = target_file(dir.path(), name, (VIRTUAL + MIB) as usize, 0xee);
        let report = write_served(
            &server,
            "/disk.qcow2",
            bytes.clone(),
            &Target::whole(&path),
            sha256_of(&bytes),
        )
        .await
        .unwrap();
        assert_eq!(
            (report.format, report.virtual_size),
            (ImageFormat::Qcow2, VIRTUAL),
            "{name}"
        );
        assert_eq!(report.verified, Some(Algorithm::Sha256));
        assert!(report.zeros_skipped >= 5 * MIB, "{name}: {report:?}");
        assert_eq!(report.downloaded, bytes.len() as u64);
        let got = std::fs::read(&path).unwrap();
        assert_eq!(
            sha256_hex(&got[..VIRTUAL as usize]),
            sha256_hex(&raw),
            "{name}"
        );
        assert!(
            got[VIRTUAL as usize..].iter().all(|b| *b == 0),
            "{name}: past the virtual size"
        );
        assert_eq!(
            server.requests().len(),
            1,
            "{name}: {:?}",
            server.requests()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_target_gets_explicit_zeros() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start().await;
    let image = qemu_img(dir.path(), "p", &["-o", "compat=1.1"], IO, None);
    let raw = qemu_raw(&image);
    let path = target_file(dir.path(), "disk", (VIRTUAL + 3 * MIB) as usize, 0xee);
    let target = Target {
        path: path.clone(),
        offset: MIB,
        length: Some(VIRTUAL + MIB),
    };
    let report = write_served(
        &server,
        "/p.qcow2",
        std::fs::read(&image).unwrap(),
        &target,
        None,
    )
    .await
    .unwrap();
    assert_eq!((report.zeros_skipped, report.written), (0, VIRTUAL));
    let got = std::fs::read(&path).unwrap();
    let m = MIB as usize;
    assert!(got[..m].iter().all(|b| *b == 0xee));
    assert_eq!(sha256_hex(&got[m..m + VIRTUAL as usize]), sha256_hex(&raw));
    assert!(got[m + VIRTUAL as usize..].iter().all(|b| *b == 0xee));
}

/// A qcow2 v3 file with 4 KiB clusters laid out by hand: `l1_at` is the L1 table's cluster,
/// `l2s` are (L1 index, host cluster), `data` are (guest cluster, host cluster, fill byte),
/// `zeros` are guest clusters with the zero flag.
struct Layout {
    l1_at: u64,
    l2s: Vec<(u64, u64)>,
    data: Vec<(u64, u64, u8)>,
    zeros: Vec<u64>,
}

const CLUSTER: u64 = 4096;

fn be64(buf: &mut [u8], at: u64, v: u64) {
    buf[at as usize..at as usize + 8].copy_from_slice(&v.to_be_bytes());
}

fn be32(buf: &mut [u8], at: u64, v: u32) {
    buf[at as usize..at as usize + 4].copy_from_slice(&v.to_be_bytes());
}

fn build(layout: &Layout) -> Vec<u8> {
    let clusters = layout
        .data
        .iter()
        .map(|d| d.1)
        .chain(layout.l2s.iter().map(|l| l.1))
        .chain([layout.l1_at, 2])
        .max()
        .unwrap()
        + 1;
    let mut f = vec![0u8; (clusters * CLUSTER) as usize];
    f[..4].copy_from_slice(b"QFI\xfb");
    be32(&mut f, 4, 3);
    be32(&mut f, 20, 12);
    be64(&mut f, 24, VIRTUAL);
    let l1_size = VIRTUAL / (CLUSTER * CLUSTER / 8);
    be32(&mut f, 36, l1_size as u32);
    be64(&mut f, 40, layout.l1_at * CLUSTER);
    be64(&mut f, 48, CLUSTER);
    be32(&mut f, 56, 1);
    be32(&mut f, 96, 4);
    be32(&mut f, 100, 104);
    be64(&mut f, CLUSTER, 2 * CLUSTER);
    let used = [0, 1, 2, layout.l1_at]
        .into_iter()
        .chain(layout.l2s.iter().map(|l| l.1))
        .chain(layout.data.iter().map(|d| d.1));
    for c in used {
        f[(2 * CLUSTER + 2 * c) as usize + 1] = 1;
    }
    let per_l2 = CLUSTER / 8;
    for &(index, host) in &layout.l2s {
        be64(
            &mut f,
            layout.l1_at * CLUSTER + 8 * index,
            (1 << 63) | (host * CLUSTER),
        );
    }
    let l2_of = |guest: u64| {
        layout
            .l2s
            .iter()
            .find(|l| l.0 == guest / per_l2)
            .expect("an L2 for the guest cluster")
            .1
    };
    for &(guest, host, fill) in &layout.data {
        be64(
            &mut f,
            l2_of(guest) * CLUSTER + 8 * (guest % per_l2),
            (1 << 63) | (host * CLUSTER),
        );
        f[(host * CLUSTER) as usize..((host + 1) * CLUSTER) as usize].fill(fill);
    }
    for &guest in &layout.zeros {
        be64(&mut f, l2_of(guest) * CLUSTER + 8 * (guest % per_l2), 1);
    }
    f
}

fn checked_by_qemu(dir: &Path, name: &str, bytes: &[u8]) -> Vec<u8> {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    run(Command::new("qemu-img").arg("check").arg(&path));
    qemu_raw(&path)
}

fn late_l2_layout() -> Layout {
    Layout {
        l1_at: 3,
        // L2 #0 comes after its data; L2 #1 before; L1 index 2 unallocated; L2 #3 holds a
        // zero cluster and data stored before it.
        l2s: vec![(0, 7), (1, 8), (3, 12)],
        data: vec![
            (0, 4, 0x11),
            (10, 5, 0x22),
            (11, 6, 0x33),
            (512, 9, 0x44),
            (1536 + 7, 10, 0x55),
            (2047, 13, 0x66),
        ],
        zeros: vec![1536],
    }
}

fn l1_last_layout() -> Layout {
    Layout {
        l1_at: 9,
        l2s: vec![(0, 3), (1, 6)],
        data: vec![(0, 4, 0x71), (1, 5, 0x72), (600, 7, 0x73), (513, 8, 0x74)],
        zeros: vec![],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_after_their_data_are_completed_by_guarded_ranges() {
    let dir = tempfile::tempdir().unwrap();
    for (name, layout, ranges) in [
        ("late-l2", late_l2_layout(), 1),
        ("l1-last", l1_last_layout(), 2),
    ] {
        let bytes = build(&layout);
        let raw = checked_by_qemu(dir.path(), name, &bytes);
        let server = TestServer::start().await;
        let path = target_file(
            dir.path(),
            &format!("{name}.target"),
            VIRTUAL as usize,
            0xee,
        );
        let report = write_served(
            &server,
            "/d.qcow2",
            bytes.clone(),
            &Target::whole(&path),
            sha256_of(&bytes),
        )
        .await
        .unwrap();
        let got = std::fs::read(&path).unwrap();
        assert_eq!(sha256_hex(&got), sha256_hex(&raw), "{name}");
        let log = server.requests();
        assert_eq!(log[0].range, None);
        assert_eq!(log.len(), 1 + ranges, "{name}: {log:?}");
        for again in &log[1..] {
            assert_eq!(
                (again.if_range.as_deref(), again.status),
                (Some("\"v1\""), 206),
                "{name}: {log:?}"
            );
        }
        assert!(report.downloaded > bytes.len() as u64);
    }
}

#[test]
fn the_sans_io_reader_reports_what_it_must_fetch_again() {
    let bytes = build(&late_l2_layout());
    let mut reader = StreamReader::new();
    let mut sink = CheckingSink::default();
    for piece in bytes.chunks(1000) {
        reader.feed(piece, &mut sink).unwrap();
    }
    reader.finish_stream(&mut sink).unwrap();
    // The data clusters stored before their L2 tables (host clusters 4..7 and 10), merged
    // into one range because the gap between them is small.
    assert_eq!(reader.next_fetch(), Some((4 * CLUSTER, 11 * CLUSTER)));
    let err = reader
        .feed(
            &bytes[4 * CLUSTER as usize..12 * CLUSTER as usize],
            &mut sink,
        )
        .unwrap_err();
    assert!(err.to_string().contains("more bytes fed"), "{err}");
    let mut again = StreamReader::new();
    let mut sink = CheckingSink::default();
    run_in_memory(&mut again, &bytes, 4096, &mut sink).unwrap();
    assert!(again.is_done());
    assert_eq!(sink.covered, VIRTUAL);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_before_the_second_fetch_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = build(&late_l2_layout());
    let server = TestServer::start().await;
    server.put("/d.qcow2", bytes.clone());
    let path = target_file(dir.path(), "t", VIRTUAL as usize, 0);
    *server.knobs().change_on_next_request.lock().unwrap() = None;
    let src = ImageSource {
        urls: vec![server.url("/d.qcow2")],
        checksum: None,
        disk_format: None,
    };
    let fetcher = quick_fetcher();
    let target = Target::whole(&path);
    let progress = Progress::default();
    // Arm the change once the first (sequential) request was seen.
    let arm = async {
        while server.requests().is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        let mut changed = bytes.clone();
        changed[5 * CLUSTER as usize] ^= 0xff;
        *server.knobs().change_on_next_request.lock().unwrap() = Some(changed);
    };
    let (result, ()) = tokio::join!(fetcher.write_image(&src, &target, &progress), arm);
    let err = result.unwrap_err();
    assert!(matches!(err, ImageError::Changed { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_second_fetch_needs_a_validator() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start().await;
    server.knobs().no_validators.store(true, Ordering::SeqCst);
    let path = target_file(dir.path(), "t", VIRTUAL as usize, 0);
    let err = write_served(
        &server,
        "/d.qcow2",
        build(&late_l2_layout()),
        &Target::whole(&path),
        None,
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains("no ETag or Last-Modified"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checksum_is_of_the_qcow2_file_not_the_raw_disk() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start().await;
    let image = qemu_img(dir.path(), "c", &[], IO, None);
    let bytes = std::fs::read(&image).unwrap();
    let raw = qemu_raw(&image);
    let path = target_file(dir.path(), "t", VIRTUAL as usize, 0);
    write_served(
        &server,
        "/c.qcow2",
        bytes.clone(),
        &Target::whole(&path),
        sha256_of(&bytes),
    )
    .await
    .unwrap();
    let err = write_served(
        &server,
        "/c.qcow2",
        bytes,
        &Target::whole(&path),
        sha256_of(&raw),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            ImageError::ChecksumMismatch {
                algorithm: Algorithm::Sha256,
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_or_oversized_images_leave_the_target_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start().await;
    let image = std::fs::read(qemu_img(dir.path(), "b", &["-o", "compat=1.1"], IO, None)).unwrap();
    let path = target_file(dir.path(), "t", (VIRTUAL - 1) as usize, 0xee);
    let err = write_served(
        &server,
        "/big.qcow2",
        image.clone(),
        &Target::whole(&path),
        None,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ImageError::ImageTooLarge(_)), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("the image is {VIRTUAL} bytes")),
        "{err}"
    );
    let untouched = |path: &Path| std::fs::read(path).unwrap().iter().all(|b| *b == 0xee);
    assert!(untouched(&path));

    let path = target_file(dir.path(), "t2", VIRTUAL as usize, 0xee);
    let mut backing = image.clone();
    backing[8..16].copy_from_slice(&512u64.to_be_bytes());
    let err = write_served(
        &server,
        "/backing.qcow2",
        backing,
        &Target::whole(&path),
        None,
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "qcow2 image: images with a backing file are not supported"
    );
    assert!(untouched(&path));

    let mut short = image.clone();
    short.truncate(60);
    let err = write_served(&server, "/short.qcow2", short, &Target::whole(&path), None)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("too short for a qcow2 header"),
        "{err}"
    );
    assert!(untouched(&path));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_qcow2_download_fails_naming_the_cut() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start().await;
    *server.knobs().cut_always.lock().unwrap() = Some(200_000);
    let image = std::fs::read(qemu_img(dir.path(), "tr", &[], IO, None)).unwrap();
    let path = target_file(dir.path(), "t", VIRTUAL as usize, 0);
    let err = write_served(
        &server,
        "/t.qcow2",
        image.clone(),
        &Target::whole(&path),
        None,
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("got 800000 of {} bytes", image.len())),
        "{err}"
    );
}
