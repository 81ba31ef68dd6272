//! docs/ARCHITECTURE.md stays a true map: every workspace crate is
//! described there, and crate dependencies point only the way it says.

#![allow(clippy::unwrap_used)] // a malformed manifest should fail the test loudly

use std::collections::BTreeSet;
use std::path::Path;

/// Which Ferric crates each crate may depend on.
const ALLOWED: &[(&str, &[&str])] = &[
    ("ferric-core", &[]),
    ("ferric-db", &["ferric-core"]),
    (
        "ferric-drivers",
        &[
            "ferric-core",
            "ferric-ipa",
            "ferric-image",
            "ferric-ipmi",
            "ferric-redfish",
            "ferric-iscsi",
        ],
    ),
    (
        "ferric-conductor",
        &["ferric-core", "ferric-db", "ferric-drivers", "ferric-image"],
    ),
    (
        "ferric-api",
        &[
            "ferric-core",
            "ferric-db",
            "ferric-drivers",
            "ferric-conductor",
        ],
    ),
    ("ferric-ipa", &[]),
    ("ferric-image", &[]),
    (
        "ferric-agent",
        &["ferric-ipa", "ferric-image", "ferric-iscsi"],
    ),
    ("ferric-ipmi", &[]),
    ("ferric-redfish", &[]),
    ("ferric-lab", &["ferric-ipmi"]),
    ("ferric-netboot", &[]),
    ("ferric-iscsi", &[]),
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn manifest(path: &Path) -> toml::Table {
    std::fs::read_to_string(path).unwrap().parse().unwrap()
}

fn workspace_crates() -> Vec<String> {
    let top = manifest(&root().join("Cargo.toml"));
    top["workspace"]["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().rsplit('/').next().unwrap().to_owned())
        .collect()
}

#[test]
fn every_crate_is_on_the_map() {
    let doc = std::fs::read_to_string(root().join("docs/ARCHITECTURE.md")).unwrap();
    for name in workspace_crates() {
        assert!(
            doc.contains(&format!("### `{name}`")),
            "docs/ARCHITECTURE.md has no section for {name}"
        );
    }
    let rules: BTreeSet<&str> = ALLOWED.iter().map(|(c, _)| *c).collect();
    let members: BTreeSet<String> = workspace_crates().into_iter().collect();
    assert_eq!(
        members.iter().map(String::as_str).collect::<BTreeSet<_>>(),
        rules
    );
}

#[test]
fn dependencies_point_down() {
    for (name, allowed) in ALLOWED {
        let m = manifest(&root().join("crates").join(name).join("Cargo.toml"));
        let mut used = BTreeSet::new();
        for section in ["dependencies", "dev-dependencies"] {
            if let Some(deps) = m.get(section).and_then(|d| d.as_table()) {
                used.extend(deps.keys().filter(|k| k.starts_with("ferric")).cloned());
            }
        }
        for dep in &used {
            assert!(
                allowed.contains(&dep.as_str()),
                "{name} must not depend on {dep}"
            );
        }
    }
}
