//! Raw images over HTTP: verification, retries, Range resume with If-Range, URL fallback,
//! timeouts, size checks, progress, and every failure's error text.
#![allow(clippy::unwrap_used)] // test helpers fail loudly

mod stream_common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use ferric_image::{
    Algorithm, ExpectedChecksum, ImageError, ImageFormat, ImageSource, Progress, Target,
};
use stream_common::*;

const MIB: usize = 1024 * 1024;

fn source(urls: Vec<String>, checksum: Option<ExpectedChecksum>) -> ImageSource {
    ImageSource {
        urls,
        checksum,
        disk_format: None,
    }
}

fn sha256(bytes: &[u8]) -> Option<ExpectedChecksum> {
    Some(ExpectedChecksum::Hash {
        algorithm: Algorithm::Sha256,
        hex: sha256_hex(bytes),
    })
}

async fn write(
    src: &ImageSource,
    target: &Target,
) -> Result<ferric_image::WriteReport, ImageError> {
    quick_fetcher()
        .write_image(src, target, &Progress::default())
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_image_is_written_verified_and_followed_by_zeros() {
    let server = TestServer::start().await;
    let mut image = patterned(3 * MIB + 123, 1);
    image[MIB..2 * MIB].fill(0);
    server.put("/disk.img", image.clone());
    let dir = tempfile::tempdir().unwrap();
    let path = target_file(dir.path(), "disk", 5 * MIB, 0xee);
    let report = write(
        &source(vec![server.url("/disk.img")], sha256(&image)),
        &Target::whole(&path),
    )
    .await
    .unwrap();
    assert_eq!(report.format, ImageFormat::Raw);
    assert_eq!(report.virtual_size, image.len() as u64);
    assert_eq!(report.downloaded, image.len() as u64);
    assert_eq!(report.verified, Some(Algorithm::Sha256));
    assert_eq!(report.zeros_skipped, MIB as u64);
    assert_eq!(report.written, (image.len() - MIB) as u64);
    let got = std::fs::read(&path).unwrap();
    assert_eq!(got.len(), 5 * MIB);
    assert!(got[..image.len()] == image[..]);
    assert!(got[image.len()..].iter().all(|b| *b == 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_target_is_written_inside_its_range_only() {
    let server = TestServer::start().await;
    let image = patterned(MIB, 2);
    server.put("/part.img", image.clone());
    let dir = tempfile::tempdir().unwrap();
    let path = target_file(dir.path(), "disk", 4 * MIB, 0xee);
    let target = Target {
        path: path.clone(),
        offset: MIB as u64,
        length: Some(2 * MIB as u64),
    };
    let report = write(
        &source(vec![server.url("/part.img")], sha256(&image)),
        &target,
    )
    .await
    .unwrap();
    assert_eq!(report.zeros_skipped, 0);
    let got = std::fs::read(&path).unwrap();
    assert!(
        got[..MIB].iter().all(|b| *b == 0xee),
        "before the range untouched"
    );
    assert!(got[MIB..2 * MIB] == image[..]);
    assert!(
        got[2 * MIB..].iter().all(|b| *b == 0xee),
        "after the image untouched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn md5_sha512_and_os_hash_fields_verify() {
    let server = TestServer::start().await;
    let image = patterned(300_000, 3);
    server.put("/i.img", image.clone());
    let dir = tempfile::tempdir().unwrap();
    let path = target_file(dir.path(), "disk", MIB, 0);
    let md5 = md5_hex(&image);
    let sha512 = sha512_hex(&image);
    let cases = [
        (
            ExpectedChecksum::from_image_info(Some(&md5), None, None),
            Algorithm::Md5,
        ),
        (
            ExpectedChecksum::from_image_info(Some(&md5), Some("sha512"), Some(&sha512)),
            Algorithm::Sha512,
        ),
        (
            ExpectedChecksum::from_image_info(Some(&format!("sha512:{sha512}")), None, None),
            Algorithm::Sha512,
        ),
    ];
    for (checksum, algorithm) in cases {
        let src = source(vec![server.url("/i.img")], checksum.unwrap());
        let report = write(&src, &Target::whole(&path)).await.unwrap();
        assert_eq!(report.verified, Some(algorithm));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checksum_files_by_url_find_the_image_line() {
    let server = TestServer::start().await;
    let image = patterned(200_000, 4);
    server.put("/images/disk.img", image.clone());
    let sums = format!(
        "{}  other.img\n{} *disk.img\n",
        sha256_hex(b"x"),
        sha256_hex(&image)
    );
    server.put("/images/SHA256SUMS", sums.into_bytes());
    server.put(
        "/images/MD5SUMS",
        format!("{}  disk.img\n", md5_hex(&image)).into_bytes(),
    );
    server.put(
        "/images/WRONG",
        format!("{}  disk.img\n", sha256_hex(b"y")).into_bytes(),
    );
    server.put(
        "/images/NONAME",
        format!("{}  else.img\n{}  x\n", sha256_hex(b"y"), sha256_hex(b"z")).into_bytes(),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = target_file(dir.path(), "disk", MIB, 0);
    let with_sums = |name: &str, algo: Option<&str>| {
        let checksum = ExpectedChecksum::from_image_info(Some(&server.url(name)), algo, None);
        let checksum = match algo {
            Some(a) => ExpectedChecksum::from_image_info(None, Some(a), Some(&server.url(name))),
            None => checksum,
        };
        source(vec![server.url("/images/disk.img")], checksum.unwrap())
    };
    let report = write(
        &with_sums("/images/SHA256SUMS", None),
        &Target::whole(&path),
    )
    .await
    .unwrap();
    assert_eq!(report.verified, Some(Algorithm::Sha256));
    let report = write(&with_sums("/images/MD5SUMS", None), &Target::whole(&path))
        .await
        .unwrap();
    assert_eq!(report.verified, Some(Algorithm::Md5));
    let err = write(&with_sums("/images/WRONG", None), &Target::whole(&path))
        .await
        .unwrap_err();
    assert!(matches!(err, ImageError::ChecksumMismatch { .. }), "{err}");
    let err = write(&with_sums("/images/NONAME", None), &Target::whole(&path))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not contain name disk.img"), "{err}");
    let err = write(
        &with_sums("/images/SHA256SUMS", Some("sha512")),
        &Target::whole(&path),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("not a sha512 digest"), "{err}");
    let err = write(&with_sums("/images/MISSING", None), &Target::whole(&path))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("404"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mismatch_names_the_algorithm_and_both_values() {
    let server = TestServer::start().await;
    let image = patterned(100_000, 5);
    server.put("/i.img", image.clone());
    let dir = tempfile::tempdir().unwrap();
    let path = target_file(dir.path(), "disk", MIB, 0);
    let wrong = "0".repeat(64);
    let src = source(
        vec![server.url("/i.img")],
        ExpectedChecksum::from_image_info(Some(&wrong), None, None).unwrap(),
    );
    let err = write(&src, &Target::whole(&path))
        .await
        .unwrap_err()
        .to_string();
    let want = format!(
        "image failed sha256 verification: expected {wrong}, got {}",
        sha256_hex(&image)
    );
    assert_eq!(err, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_download_resumes_with_range_and_if_range() {
    for last_modified_only in [false, true] {
        let server = TestServer::start().await;
        let image = patterned(2 * MIB + 7, 6);
        server.put("/i.img", image.clone());
        server
            .knobs()
            .last_modified_only
            .store(last_modified_only, Ordering::SeqCst);
        *server.knobs().cut_once.lock().unwrap() = Some(700_000);
        let dir = tempfile::tempdir().unwrap();
        let path = target_file(dir.path(), "disk", 3 * MIB, 0);
        let report = write(
            &source(vec![server.url("/i.img")], sha256(&image)),
            &Target::whole(&path),
        )
        .await
        .unwrap();
        assert_eq!(report.verified, Some(Algorithm::Sha256));
        let log = server.requests();
        assert_eq!(log.len(), 2, "{log:?}");
        let range = log[1].range.as_deref().unwrap();
        let (first, last) = range.trim_start_matches("bytes=").split_once('-').unwrap();
        let resumed_at: u64 = first.parse().unwrap();
        assert_eq!(last, (image.len() - 1).to_string());
        assert!(resumed_at > 0 && resumed_at <= 700_000, "{range}");
        let want_guard = if last_modified_only { "GMT" } else { "\"v1\"" };
        assert!(
            log[1].if_range.as_deref().unwrap().contains(want_guard),
            "{log:?}"
        );
        assert_eq!(log[1].status, 206);
        assert!(report.downloaded >= image.len() as u64);
        assert!(std::fs::read(&path).unwrap()[..image.len()] == image[..]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_is_retried_after_back_off() {
    let server = TestServer::start().await;
    let image = patterned(100_000, 7);
    server.put("/i.img", image.clone());
    server.knobs().fail_500.store(2, Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let path = target_file(dir.path(), "disk", MIB, 0);
    write(
        &source(vec![server.url("/i.img")], sha256(&image)),
        &Target::whole(&path),
    )
    .await
    .unwrap();
    let statuses: Vec<u16> = server.requests().iter().map(|l| l.status).collect();
    assert_eq!(statuses, [500, 500, 200]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_changed_between_requests_is_never_stitched() {
    let server = TestServer::start().await;
    let image = patterned(2 * MIB, 8);
    server.put("/i.img", image.clone());
    *server.knobs().cut_once.lock().unwrap() = Some(500_000);
    *server.knobs().change_on_next_request.lock().unwrap() = None;
    let dir = tempfile::tempdir().unwrap();
    let path = target_file(dir.path(), "disk", 3 * MIB, 0);
    let fetcher = quick_fetcher();
    let src = source(vec![server.url("/i.img")], sha256(&image));
    let target = Target::whole(&path);
    let progress = Progress::default();
    let writing = fetcher.write_image(&src, &target, &progress);
    // The change is armed once the first response has started.
    let arm = async {
        while server.requests().is_empty() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        *server.knobs().change_on_next_request.lock().unwrap() = Some(patterned(2 * MIB, 9));
    };
    let (result, ()) = tokio::join!(writing, arm);
    let err = result.unwrap_err();
    assert!(matches!(err, ImageError::Changed { .. }), "{err}");
    assert!(
        err.to_string().contains("validator was \"v1\", now \"v2\""),
        "{err}"
    );
    let log = server.requests();
    assert_eq!(
        (log[1].if_range.as_deref(), log[1].status),
        (Some("\"v1\""), 200)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_validators_a_cut_restarts_and_checks_the_prefix() {
    let server = TestServer::start().await;
    let image = patterned(MIB + 99, 10);
    server.put("/i.img", image.clone());
    server.knobs().no_validators.store(true, Ordering::SeqCst);
    *server.knobs().cut_once.lock().unwrap() = Some(300_000);
    let dir = tempfile::tempdir().unwrap();
    let path = target_file(dir.path(), "disk", 2 * MIB, 0);
    write(
        &source(vec![server.url("/i.img")], sha256(&image)),
        &Target::whole(&path),
    )
    .await
    .unwrap();
    let log = server.requests();
    assert_eq!(log.len(), 2);
    assert!(
        log[1].range.is_none() && log[1].if_range.is_none(),
        "{log:?}"
    );
    assert!(std::fs::read(&path).unwrap()[..image.len()] == image[..]);

    // Without validators and without a checksum there is no safe way to resume.
    *server.knobs().cut_once.lock().unwrap() = Some(300_000);
    let err = write(
        &source(vec![server.url("/i.img")], None),
        &Target::whole(&path),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ImageError::Truncated { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_ignoring_range_is_skipped_to_the_resume_point() {
    let server = TestServer::start().await;
    let image = patterned(MIB, 11);
    server.put("/i.img", image.clone());
    server.knobs().ignore_range.store(true, Ordering::SeqCst);
    *server.knobs().cut_once.lock().unwrap() = Some(400_000);
    let dir = tempfile::tempdir().unwrap();
    let path = target_file(dir.path(), "disk", 2 * MIB, 0);
    write(
        &source(vec![server.url("/i.img")], sha256(&image)),
        &Target::whole(&path),
    )
    .await
    .unwrap();
    let log = server.requests();
    assert_eq!((log.len(), log[1].status), (2, 200));
    assert!(std::fs::read(&path).unwrap()[..image.len()] == image[..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn urls_are_tried_in_order() {
    let server = TestServer::start().await;
    let image = patterned(100_000, 12);
    server.put("/good.img", image.clone());
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}/x.img", dead.local_addr().unwrap());
    drop(dead);
    let urls = vec![
        server.url("/missing.img"),
        dead_url.clone(),
        server.url("/good.img"),
    ];
    let dir = tempfile::tempdir().unwrap();
    let path = target_file(dir.path(), "disk", MIB, 0);
    write(&source(urls, sha256(&image)), &Target::whole(&path))
        .await
        .unwrap();

    let urls = vec![server.url("/missing.img?temp_url_sig=SECRET"), dead_url];
    let err = write(&source(urls, None), &Target::whole(&path))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("download failed: "), "{err}");
    assert!(
        err.contains("missing.img?…") && err.contains("404 Not Found"),
        "{err}"
    );
    assert!(
        err.contains("connection failed") && err.contains("after 3 retries"),
        "{err}"
    );
    assert!(!err.contains("SECRET"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_read_times_out_and_resumes() {
    let server = TestServer::start().await;
    let image = patterned(MIB, 13);
    server.put("/i.img", image.clone());
    *server.knobs().stall_once.lock().unwrap() = Some((200_000, Duration::from_secs(3)));
    let dir = tempfile::tempdir().unwrap();
    let path = target_file(dir.path(), "disk", 2 * MIB, 0);
    let started = std::time::Instant::now();
    write(
        &source(vec![server.url("/i.img")], sha256(&image)),
        &Target::whole(&path),
    )
    .await
    .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the stall was waited out"
    );
    let log = server.requests();
    assert_eq!(log.len(), 2);
    assert!(
        log[1]
            .range
            .as_deref()
            .unwrap()
            .starts_with("bytes=200000-"),
        "{log:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_cut_every_time_fails_as_truncated() {
    let server = TestServer::start().await;
    server.put("/i.img", patterned(MIB, 14));
    *server.knobs().cut_always.lock().unwrap() = Some(1000);
    let dir = tempfile::tempdir().unwrap();
    let path = target_file(dir.path(), "disk", 2 * MIB, 0);
    let err = write(
        &source(vec![server.url("/i.img")], None),
        &Target::whole(&path),
    )
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, ImageError::Truncated { got: 4000, .. }),
        "{text}"
    );
    assert!(
        text.contains("truncated: got 4000 of 1048576 bytes"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_larger_than_the_target_is_refused_before_writing() {
    let server = TestServer::start().await;
    server.put("/i.img", patterned(MIB + 1, 15));
    let dir = tempfile::tempdir().unwrap();
    let path = target_file(dir.path(), "disk", MIB, 0xee);
    let err = write(
        &source(vec![server.url("/i.img")], None),
        &Target::whole(&path),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ImageError::ImageTooLarge(_)), "{err}");
    assert!(err.to_string().contains("1048577 bytes"), "{err}");
    assert!(
        std::fs::read(&path).unwrap().iter().all(|b| *b == 0xee),
        "target untouched"
    );

    server.knobs().no_length.store(true, Ordering::SeqCst);
    let err = write(
        &source(vec![server.url("/i.img")], None),
        &Target::whole(&path),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("gave no length") && err.contains("at byte 1048576"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_content_length_an_image_that_fits_is_written() {
    let server = TestServer::start().await;
    let image = patterned(MIB + 5, 16);
    server.put("/i.img", image.clone());
    server.knobs().no_length.store(true, Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let path = target_file(dir.path(), "disk", 2 * MIB, 0xee);
    let report = write(
        &source(vec![server.url("/i.img")], sha256(&image)),
        &Target::whole(&path),
    )
    .await
    .unwrap();
    assert_eq!(report.virtual_size, image.len() as u64);
    assert!(std::fs::read(&path).unwrap()[..image.len()] == image[..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_format_must_agree_with_the_content() {
    let server = TestServer::start().await;
    server.put("/raw.img", patterned(100_000, 17));
    let mut qcow = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fuzz/corpus/qcow2/v3-512.qcow2"
    ))
    .unwrap();
    server.put("/q.qcow2", std::mem::take(&mut qcow));
    let dir = tempfile::tempdir().unwrap();
    let path = target_file(dir.path(), "disk", MIB, 0xee);
    let cases = [
        (
            "/raw.img",
            "qcow2",
            "expected format was qcow2, but the image is actually raw",
        ),
        (
            "/q.qcow2",
            "raw",
            "expected format was raw, but the image is actually qcow2",
        ),
        (
            "/q.qcow2",
            "iso",
            "expected format was iso, but the image is actually qcow2",
        ),
        ("/raw.img", "vmdk", "disk_format vmdk is not supported"),
    ];
    for (file, format, want) in cases {
        let src = ImageSource {
            urls: vec![server.url(file)],
            checksum: None,
            disk_format: Some(format.into()),
        };
        let err = write(&src, &Target::whole(&path))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "{err}");
        assert!(
            std::fs::read(&path).unwrap().iter().all(|b| *b == 0xee),
            "target untouched"
        );
    }
    for (file, format) in [
        ("/raw.img", Some("raw")),
        ("/raw.img", Some("iso")),
        ("/q.qcow2", Some("qcow2")),
        ("/q.qcow2", None),
    ] {
        let src = ImageSource {
            urls: vec![server.url(file)],
            checksum: None,
            disk_format: format.map(Into::into),
        };
        write(&src, &Target::whole(&path)).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_is_readable_while_the_write_runs() {
    let server = TestServer::start().await;
    let image = patterned(2 * MIB, 18);
    server.put("/i.img", image.clone());
    *server.knobs().piece_delay.lock().unwrap() = Some(Duration::from_millis(15));
    let dir = tempfile::tempdir().unwrap();
    let path = target_file(dir.path(), "disk", 3 * MIB, 0);
    let progress = Progress::default();
    let fetcher = quick_fetcher();
    let src = source(vec![server.url("/i.img")], sha256(&image));
    let target = Target::whole(&path);
    let task = fetcher.write_image(&src, &target, &progress);
    let watch = async {
        let mut seen_midway = false;
        for _ in 0..400 {
            let s = progress.snapshot();
            if s.downloaded > 0 && s.downloaded < image.len() as u64 {
                assert_eq!(s.download_total, Some(image.len() as u64));
                seen_midway = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        seen_midway
    };
    let (result, seen_midway) = tokio::join!(task, watch);
    result.unwrap();
    assert!(seen_midway, "progress never showed a partial download");
    let s = progress.snapshot();
    assert_eq!(
        (s.downloaded, s.written, s.image_size),
        (
            image.len() as u64,
            image.len() as u64,
            Some(image.len() as u64)
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_bytes_is_capped() {
    let server = TestServer::start().await;
    server.put("/cd", patterned(5000, 19));
    let fetcher = quick_fetcher();
    assert_eq!(
        fetcher.bytes(&server.url("/cd"), 5000).await.unwrap(),
        patterned(5000, 19)
    );
    let err = fetcher
        .bytes(&server.url("/cd"), 4999)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("larger than the 4999 bytes allowed"), "{err}");
    server.knobs().no_length.store(true, Ordering::SeqCst);
    assert!(fetcher.bytes(&server.url("/cd"), 4999).await.is_err());
    assert_eq!(
        ferric_image::fetch_bytes(&server.url("/cd"), 5000)
            .await
            .unwrap()
            .len(),
        5000
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_targets_fail_before_any_download() {
    let server = TestServer::start().await;
    server.put("/i.img", patterned(1000, 20));
    let dir = tempfile::tempdir().unwrap();
    let target = Target::whole(dir.path().join("missing"));
    let err = write(&source(vec![server.url("/i.img")], None), &target)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot open"), "{err}");
    assert!(server.requests().is_empty());
    let err = write(
        &source(vec![], None),
        &Target::whole(target_file(dir.path(), "d", 10, 0)),
    )
    .await
    .unwrap_err();
    assert_eq!(err.to_string(), "download failed: no image URL given");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_keeps_its_connection_alive() {
    let server = TestServer::start().await;
    server.put("/a", patterned(1000, 21));
    let fetcher = quick_fetcher();
    for _ in 0..3 {
        fetcher.bytes(&server.url("/a"), 1000).await.unwrap();
    }
    let peers: Vec<_> = server.requests().iter().map(|l| l.peer).collect();
    assert_eq!(peers.len(), 3);
    assert!(
        peers.iter().all(|p| *p == peers[0]),
        "one connection reused: {peers:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_times_out_and_500s_give_up() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/i.img", silent.local_addr().unwrap());
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = silent.accept().await {
            held.push(conn);
        }
    });
    let fetcher = ferric_image::Fetcher::new(ferric_image::FetchOptions {
        connect_timeout: Duration::from_millis(200),
        read_timeout: Duration::from_millis(200),
        retries: 1,
        retry_delay: Duration::from_millis(10),
        ..Default::default()
    })
    .unwrap();
    let started = std::time::Instant::now();
    let err = fetcher.bytes(&url, 10).await.unwrap_err().to_string();
    assert!(
        err.contains("no response before the timeout (after 1 retries)"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    hold.abort();

    let server = TestServer::start().await;
    server.put("/i.img", patterned(10, 22));
    server.knobs().fail_500.store(10, Ordering::SeqCst);
    let err = fetcher
        .bytes(&server.url("/i.img"), 10)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("server answered 500 Internal Server Error (after 1 retries)"),
        "{err}"
    );
    assert_eq!(server.requests().len(), 2);
}
