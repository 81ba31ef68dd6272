//! BIOS settings and firmware components in the SQLite store.

#![allow(clippy::unwrap_used)] // test helpers fail loudly

use chrono::{Duration, Utc};
use ferric_core::{BiosSetting, FirmwareComponent, InterfaceKind, Interfaces, Node, NodeUuid};
use ferric_db::{AfterSave, SqliteStore, Store};

async fn store_with_node() -> (tempfile::TempDir, SqliteStore, Node) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("ferric.sqlite"))
        .await
        .unwrap();
    let mut interfaces = Interfaces::default();
    for kind in InterfaceKind::ALL {
        interfaces.set(*kind, "fake");
    }
    let node = Node::enroll(
        NodeUuid::new_random(),
        "fake-hardware".into(),
        interfaces,
        Utc::now(),
    );
    let node = store.create_node(&node).await.unwrap();
    (dir, store, node)
}

fn setting(name: &str, value: &str) -> BiosSetting {
    BiosSetting::new(name, Some(value.to_owned()))
}

#[tokio::test]
async fn bios_settings_are_replaced_keeping_unchanged_times() {
    let (_dir, store, node) = store_with_node().await;
    let t0 = Utc::now();
    let mut registry = setting("ProcVirtualization", "Enabled");
    registry.allowable_values = Some(vec!["Enabled".into(), "Disabled".into()]);
    registry.read_only = Some(false);
    registry.upper_bound = Some(7);
    store
        .replace_bios_settings(node.uuid, &[registry, setting("Boot", "Uefi")], t0)
        .await
        .unwrap();
    let t1 = t0 + Duration::seconds(5);
    store
        .replace_bios_settings(
            node.uuid,
            &[
                setting("Boot", "Bios"),
                setting("ProcVirtualization", "Enabled"),
                setting("New", "1"),
            ],
            t1,
        )
        .await
        .unwrap();
    let listed = store.list_bios_settings(node.uuid).await.unwrap();
    let names: Vec<&str> = listed.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["Boot", "New", "ProcVirtualization"]);
    assert_eq!(listed[0].value.as_deref(), Some("Bios"));
    assert!(listed[0].updated_at.is_some());
    assert_eq!(listed[1].updated_at, None);
    // Unchanged: neither its registry nor its times were rewritten.
    let proc = &listed[2];
    assert_eq!(proc.updated_at, None);
    assert_eq!(proc.upper_bound, Some(7));
    assert_eq!(proc.allowable_values.as_ref().unwrap().len(), 2);

    store
        .replace_bios_settings(node.uuid, &[setting("Boot", "Bios")], t1)
        .await
        .unwrap();
    assert_eq!(store.list_bios_settings(node.uuid).await.unwrap().len(), 1);
    assert!(store.get_bios_setting(node.uuid, "New").await.is_err());
    assert_eq!(
        store
            .get_bios_setting(node.uuid, "Boot")
            .await
            .unwrap()
            .value
            .as_deref(),
        Some("Bios")
    );
    store
        .replace_bios_settings(node.uuid, &[], t1)
        .await
        .unwrap();
    assert!(store
        .list_bios_settings(node.uuid)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn firmware_versions_move_and_count_as_flashed() {
    let (_dir, store, node) = store_with_node().await;
    let seen = |version: &str| FirmwareComponent {
        component: "bios".into(),
        current_version: Some(version.into()),
        ..FirmwareComponent::default()
    };
    let now = Utc::now();
    store
        .sync_firmware_components(node.uuid, &[seen("1.0")], now)
        .await
        .unwrap();
    store
        .sync_firmware_components(node.uuid, &[seen("1.0")], now)
        .await
        .unwrap();
    let first = store.list_firmware_components(node.uuid).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].initial_version, "1.0");
    assert_eq!(first[0].last_version_flashed, None);
    assert_eq!(first[0].updated_at, None);

    store
        .sync_firmware_components(node.uuid, &[seen("1.1")], now)
        .await
        .unwrap();
    let after = store.list_firmware_components(node.uuid).await.unwrap();
    assert_eq!(after[0].initial_version, "1.0");
    assert_eq!(after[0].current_version.as_deref(), Some("1.1"));
    assert_eq!(after[0].last_version_flashed.as_deref(), Some("1.1"));
    assert!(after[0].updated_at.is_some());
}

#[tokio::test]
async fn rows_go_with_their_node() {
    let (_dir, store, node) = store_with_node().await;
    let now = Utc::now();
    store
        .replace_bios_settings(node.uuid, &[setting("a", "b")], now)
        .await
        .unwrap();
    let held = store
        .reserve_node(&ferric_core::Ident::Uuid(node.uuid), "me")
        .await
        .unwrap();
    let _ = store
        .save_node(&held, "me", AfterSave::KeepLock)
        .await
        .unwrap();
    store.delete_node(node.uuid, "me").await.unwrap();
    assert!(store.list_bios_settings(node.uuid).await.is_err());
}
