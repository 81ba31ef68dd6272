//! Config drive ISOs checked with real tools: isoinfo, blkid, xorriso,
//! osirrox, genisoimage (the tool openstacksdk runs), base64 and gzip.

#![allow(clippy::unwrap_used)] // test helpers fail loudly

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use ferric_image::configdrive::{self, ConfigDriveContent, ConfigDriveSource};
use ferric_image::iso9660::{IsoBuilder, IsoOptions};
use serde_json::json;

fn run(program: &str, args: &[&str]) -> (String, String) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} could not run: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {stdout}\n{stderr}"
    );
    (stdout, stderr)
}

fn sample_content() -> ConfigDriveContent {
    ConfigDriveContent::from_json(&json!({
        "meta_data": {"hostname": "node-1.example", "public_keys": {"k": "ssh-ed25519 AAAA"}},
        "user_data": "#cloud-config\nusers:\n  - name: ferric\n",
        "network_data": {"links": [{"id": "eth0", "type": "phy", "mtu": 1500}],
                         "networks": [], "services": []},
        "vendor_data": {"vendor": {"x": 1.5}},
    }))
    .unwrap()
    .with_node_defaults("1be26c0b-03f2-4d2e-ae87-c02d7f33c123", Some("node-1"))
}

fn write_iso(dir: &Path, name: &str, image: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, image).unwrap();
    path
}

/// Every regular file below `root`, by path relative to it.
fn tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

fn extract(iso: &Path, into: &Path) -> BTreeMap<String, Vec<u8>> {
    let (_, stderr) = run(
        "osirrox",
        &[
            "-indev",
            iso.to_str().unwrap(),
            "-extract",
            "/",
            into.to_str().unwrap(),
        ],
    );
    assert!(
        !stderr.contains("FAILURE") && !stderr.contains("SORRY"),
        "{stderr}"
    );
    tree(into)
}

#[test]
fn isoinfo_sees_volume_id_rock_ridge_and_joliet() {
    let dir = tempfile::tempdir().unwrap();
    let iso = write_iso(
        dir.path(),
        "cd.iso",
        &sample_content().build_iso(1_700_000_000).unwrap(),
    );
    let (info, _) = run("isoinfo", &["-d", "-i", iso.to_str().unwrap()]);
    assert!(info.contains("Volume id: config-2"), "{info}");
    assert!(
        info.contains("Rock Ridge signatures version 1 found"),
        "{info}"
    );
    assert!(info.contains("Joliet with UCS level 3 found"), "{info}");
    assert!(info.contains("Logical block size is: 2048"), "{info}");
    let (joliet, _) = run("isoinfo", &["-J", "-l", "-i", iso.to_str().unwrap()]);
    for name in [
        "meta_data.json",
        "network_data.json",
        "vendor_data2.json",
        "user_data",
        "2012-08-10",
    ] {
        assert!(
            joliet.contains(name),
            "Joliet listing lacks {name}: {joliet}"
        );
    }
}

#[test]
fn blkid_reports_label_and_type() {
    let dir = tempfile::tempdir().unwrap();
    let iso = write_iso(
        dir.path(),
        "cd.iso",
        &sample_content().build_iso(1_700_000_000).unwrap(),
    );
    let (out, _) = run("blkid", &["-p", iso.to_str().unwrap()]);
    assert!(out.contains(r#"LABEL="config-2""#), "{out}");
    assert!(out.contains(r#"TYPE="iso9660""#), "{out}");
    assert!(out.contains(r#"UUID="2023-11-14-22-13-20-00""#), "{out}");
}

#[test]
fn xorriso_lists_the_tree_with_rock_ridge_modes() {
    let dir = tempfile::tempdir().unwrap();
    let iso = write_iso(
        dir.path(),
        "cd.iso",
        &sample_content().build_iso(1_700_000_000).unwrap(),
    );
    let (out, stderr) = run(
        "xorriso",
        &[
            "-indev",
            iso.to_str().unwrap(),
            "-find",
            "/",
            "-exec",
            "lsdl",
        ],
    );
    assert!(
        !stderr.contains("WARNING") && !stderr.contains("SORRY"),
        "{stderr}"
    );
    let lines: Vec<&str> = out.lines().collect();
    let expect = [
        ("dr-xr-xr-x", "'/openstack'"),
        ("dr-xr-xr-x", "'/openstack/2012-08-10'"),
        ("-r--r--r--", "'/openstack/2012-08-10/meta_data.json'"),
        ("-r--r--r--", "'/openstack/2012-08-10/network_data.json'"),
        ("-r--r--r--", "'/openstack/2012-08-10/user_data'"),
        ("-r--r--r--", "'/openstack/2012-08-10/vendor_data2.json'"),
        ("dr-xr-xr-x", "'/openstack/latest'"),
        ("-r--r--r--", "'/openstack/latest/user_data'"),
    ];
    for (mode, path) in expect {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(mode) && l.ends_with(path)),
            "missing {mode} {path} in:\n{out}"
        );
    }
}

#[test]
fn osirrox_extracts_exactly_the_files_written() {
    let dir = tempfile::tempdir().unwrap();
    let content = sample_content();
    let iso = write_iso(
        dir.path(),
        "cd.iso",
        &content.build_iso(1_700_000_000).unwrap(),
    );
    let extracted = extract(&iso, &dir.path().join("out"));
    let expected: BTreeMap<String, Vec<u8>> = content.files().into_iter().collect();
    assert_eq!(extracted, expected);
    assert_eq!(
        extracted["openstack/latest/meta_data.json"],
        br#"{"hostname": "node-1.example", "public_keys": {"k": "ssh-ed25519 AAAA"}, "uuid": "1be26c0b-03f2-4d2e-ae87-c02d7f33c123", "name": "node-1"}"#
    );
}

#[test]
fn same_tree_and_names_as_genisoimage() {
    let dir = tempfile::tempdir().unwrap();
    let content = sample_content();
    let src = dir.path().join("src");
    for (path, data) in content.files() {
        let file = src.join(&path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, data).unwrap();
    }
    let reference = dir.path().join("reference.iso");
    run(
        "genisoimage",
        &[
            "-o",
            reference.to_str().unwrap(),
            "-ldots",
            "-allow-lowercase",
            "-allow-multidot",
            "-l",
            "-publisher",
            "metalsmith",
            "-quiet",
            "-J",
            "-r",
            "-V",
            "config-2",
            src.to_str().unwrap(),
        ],
    );
    let ours = write_iso(
        dir.path(),
        "ours.iso",
        &content.build_iso(1_700_000_000).unwrap(),
    );
    let theirs = extract(&reference, &dir.path().join("theirs"));
    let mine = extract(&ours, &dir.path().join("mine"));
    assert_eq!(mine, theirs);
    // The plain ISO 9660 names (no Rock Ridge, no Joliet) match too.
    let plain = |iso: &Path| {
        let (out, _) = run("isoinfo", &["-f", "-i", iso.to_str().unwrap()]);
        out.lines().map(str::to_string).collect::<Vec<_>>()
    };
    let mut a = plain(&ours);
    let mut b = plain(&reference);
    a.sort();
    b.sort();
    assert_eq!(a, b);
}

#[test]
fn encoded_drive_decodes_with_base64_and_gunzip() {
    let dir = tempfile::tempdir().unwrap();
    let iso = sample_content().build_iso(1_700_000_000).unwrap();
    let encoded = configdrive::encode(&iso);
    let text = dir.path().join("cd.b64");
    std::fs::write(&text, &encoded).unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("base64 -d {} | gzip -dc", text.display()))
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, iso);
    // And what gzip + base64 make, we decode.
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "gzip -c {} | base64 -w 60",
            write_iso(dir.path(), "cd.iso", &iso).display()
        ))
        .output()
        .unwrap();
    let ConfigDriveSource::Image(image) =
        configdrive::decode(std::str::from_utf8(&out.stdout).unwrap()).unwrap()
    else {
        panic!("not an image");
    };
    assert_eq!(image.to_vec().unwrap(), iso);
}

#[test]
fn build_configdrive_is_deterministic() {
    let dict = json!({"meta_data": {"a": 1}, "user_data": {"b": [1, 2]}});
    let one = configdrive::build_configdrive(&dict, "u", Some("n"), 1_700_000_000).unwrap();
    let two = configdrive::build_configdrive(&dict, "u", Some("n"), 1_700_000_000).unwrap();
    assert_eq!(one, two);
}

#[test]
fn big_directories_and_deep_trees_extract_intact() {
    let dir = tempfile::tempdir().unwrap();
    let mut iso = IsoBuilder::new(IsoOptions::new("many", 1_600_000_000)).unwrap();
    let mut expected = BTreeMap::new();
    for i in 0..300 {
        let path = format!("content/{i:04}-a-rather-long-file-name-for-sector-spill.txt");
        let data = format!("file {i}\n").repeat(i % 700 + 1).into_bytes();
        iso.add_file(&path, data.clone()).unwrap();
        expected.insert(path, data);
    }
    let deep = "a/b/c/d/e/f/g/leaf";
    iso.add_file(deep, b"deep".to_vec()).unwrap();
    expected.insert(deep.to_string(), b"deep".to_vec());
    iso.add_file("empty", Vec::new()).unwrap();
    expected.insert("empty".to_string(), Vec::new());
    let path = write_iso(dir.path(), "many.iso", &iso.build().unwrap());
    assert_eq!(extract(&path, &dir.path().join("out")), expected);
    let (info, _) = run("isoinfo", &["-d", "-i", path.to_str().unwrap()]);
    assert!(info.contains("Volume id: many"), "{info}");
}
