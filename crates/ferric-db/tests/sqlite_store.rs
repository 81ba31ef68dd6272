//! The SQLite store against a real database file.

#![allow(clippy::unwrap_used)] // test helpers fail loudly

use chrono::Utc;
use ferric_core::{
    Chassis, ChassisUuid, Ident, InterfaceKind, Interfaces, MacAddress, Node, NodeUuid, Port,
    PortUuid, Portgroup, PortgroupUuid, ProvisionState,
};
use ferric_db::{AfterSave, DbError, NodeFilter, Page, PortFilter, SortDir, SqliteStore, Store};

async fn open() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("ferric.sqlite"))
        .await
        .unwrap();
    (dir, store)
}

fn fake_node(name: Option<&str>) -> Node {
    let mut interfaces = Interfaces::default();
    for kind in InterfaceKind::ALL {
        interfaces.set(*kind, "fake");
    }
    let mut node = Node::enroll(
        NodeUuid::new_random(),
        "fake-hardware".into(),
        interfaces,
        Utc::now(),
    );
    node.name = name.map(str::to_owned);
    node
}

fn port_for(node: &Node, mac: &str) -> Port {
    Port {
        id: 0,
        uuid: PortUuid::new_random(),
        address: mac.parse::<MacAddress>().unwrap(),
        node_uuid: node.uuid,
        portgroup_uuid: None,
        name: None,
        description: None,
        extra: Default::default(),
        internal_info: Default::default(),
        local_link_connection: Default::default(),
        physical_network: None,
        pxe_enabled: true,
        is_smartnic: false,
        vendor: None,
        category: None,
        available_for_dynamic_portgroup: true,
        created_at: Utc::now(),
        updated_at: None,
    }
}

#[tokio::test]
async fn nodes_round_trip_by_uuid_and_name() {
    let (_dir, store) = open().await;
    let mut node = fake_node(Some("n1"));
    node.driver_info
        .insert("ipmi_password".into(), "secret".into());
    node.traits = vec!["CUSTOM_B".into(), "CUSTOM_A".into()];
    let created = store.create_node(&node).await.unwrap();
    assert!(created.id > 0);
    assert_eq!(created.traits, vec!["CUSTOM_A", "CUSTOM_B"]);
    let by_uuid = store.get_node(&Ident::Uuid(node.uuid)).await.unwrap();
    let by_name = store.get_node(&Ident::Name("n1".into())).await.unwrap();
    assert_eq!(by_uuid, created);
    assert_eq!(by_name, created);
    assert_eq!(by_uuid.driver_info["ipmi_password"], "secret");
    assert_eq!(by_uuid.interfaces.get(InterfaceKind::Vendor), "fake");
}

#[tokio::test]
async fn duplicates_and_missing_rows_are_named() {
    let (_dir, store) = open().await;
    store.create_node(&fake_node(Some("n1"))).await.unwrap();
    let err = store.create_node(&fake_node(Some("n1"))).await.unwrap_err();
    assert!(
        matches!(&err, DbError::Duplicate { field, value, .. } if field == "name" && value == "n1"),
        "{err:?}"
    );
    let err = store
        .get_node(&Ident::Name("nope".into()))
        .await
        .unwrap_err();
    assert!(matches!(err, DbError::NotFound { .. }));
}

#[tokio::test]
async fn only_the_lock_holder_writes_a_node() {
    let (_dir, store) = open().await;
    let node = store.create_node(&fake_node(None)).await.unwrap();
    let ident = Ident::Uuid(node.uuid);

    let mut locked = store.reserve_node(&ident, "c1").await.unwrap();
    assert_eq!(locked.reservation.as_deref(), Some("c1"));
    let err = store.reserve_node(&ident, "c2").await.unwrap_err();
    assert!(
        matches!(&err, DbError::NodeLocked { holder, .. } if holder == "c1"),
        "{err:?}"
    );

    locked.provision_state = ProvisionState::Verifying;
    let err = store
        .save_node(&locked, "c2", AfterSave::KeepLock)
        .await
        .unwrap_err();
    assert!(matches!(err, DbError::LockLost { .. }));

    let saved = store
        .save_node(&locked, "c1", AfterSave::Release)
        .await
        .unwrap();
    assert_eq!(saved.provision_state, ProvisionState::Verifying);
    assert_eq!(saved.reservation, None);
    assert!(saved.updated_at.is_some());

    store.reserve_node(&ident, "c2").await.unwrap();
    let freed = store.release_all_reservations("c2").await.unwrap();
    assert_eq!(freed, vec![node.uuid]);
    assert_eq!(store.get_node(&ident).await.unwrap().reservation, None);
}

#[tokio::test]
async fn pages_walk_every_sort_order_without_gaps_or_repeats() {
    let (_dir, store) = open().await;
    let groups = [
        Some("b"),
        None,
        Some("a"),
        Some("b"),
        None,
        Some("c"),
        Some("a"),
    ];
    for (i, rc) in groups.iter().enumerate() {
        let mut node = fake_node(Some(&format!("node-{i}")));
        node.resource_class = rc.map(str::to_owned);
        store.create_node(&node).await.unwrap();
    }
    for key in ["id", "resource_class", "name"] {
        for dir in [SortDir::Asc, SortDir::Desc] {
            let all_page = Page {
                sort_key: key.into(),
                sort_dir: dir,
                ..Page::default()
            };
            let all = store
                .list_nodes(&NodeFilter::default(), &all_page)
                .await
                .unwrap();
            assert_eq!(all.len(), groups.len());
            let mut walked = Vec::new();
            let mut marker = None;
            loop {
                let page = Page {
                    marker,
                    limit: Some(2),
                    ..all_page.clone()
                };
                let chunk = store
                    .list_nodes(&NodeFilter::default(), &page)
                    .await
                    .unwrap();
                let Some(last) = chunk.last() else { break };
                marker = Some(last.id);
                walked.extend(chunk.iter().map(|n| n.id));
            }
            let expected: Vec<i64> = all.iter().map(|n| n.id).collect();
            assert_eq!(walked, expected, "sort {key} {dir:?}");
        }
    }
}

#[tokio::test]
async fn node_filters_select_matching_nodes() {
    let (_dir, store) = open().await;
    let mut a = fake_node(Some("a"));
    a.maintenance = true;
    a.resource_class = Some("gold".into());
    store.create_node(&a).await.unwrap();
    store.create_node(&fake_node(Some("b"))).await.unwrap();
    let filter = NodeFilter {
        maintenance: Some(true),
        ..Default::default()
    };
    let found = store.list_nodes(&filter, &Page::default()).await.unwrap();
    assert_eq!(
        found.iter().map(|n| n.name.clone()).collect::<Vec<_>>(),
        vec![Some("a".into())]
    );
    let filter = NodeFilter {
        provision_states: Some(vec![ProvisionState::Enroll]),
        resource_class: Some("silver".into()),
        ..Default::default()
    };
    assert!(store
        .list_nodes(&filter, &Page::default())
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn ports_belong_to_nodes_and_go_with_them() {
    let (_dir, store) = open().await;
    let node = store.create_node(&fake_node(Some("n1"))).await.unwrap();
    let port = store
        .create_port(&port_for(&node, "52:54:00:00:00:01"))
        .await
        .unwrap();
    assert_eq!(port.node_uuid, node.uuid);
    let err = store
        .create_port(&port_for(&node, "52:54:00:00:00:01"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DbError::Duplicate { field, .. } if field == "address"),
        "{err:?}"
    );

    let ghost = fake_node(None);
    let err = store
        .create_port(&port_for(&ghost, "52:54:00:00:00:02"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, DbError::NotFound { kind: "Node", .. }),
        "{err:?}"
    );

    let group = Portgroup {
        id: 0,
        uuid: PortgroupUuid::new_random(),
        name: Some("bond0".into()),
        address: None,
        node_uuid: node.uuid,
        extra: Default::default(),
        internal_info: Default::default(),
        mode: None,
        properties: Default::default(),
        standalone_ports_supported: true,
        physical_network: None,
        category: None,
        dynamic_portgroup: false,
        created_at: Utc::now(),
        updated_at: None,
    };
    let group = store.create_portgroup(&group).await.unwrap();
    let mut member = port.clone();
    member.portgroup_uuid = Some(group.uuid);
    let member = store.save_port(&member).await.unwrap();
    assert_eq!(member.portgroup_uuid, Some(group.uuid));
    assert!(matches!(
        store.delete_portgroup(group.uuid).await.unwrap_err(),
        DbError::Reference(_)
    ));

    let filter = PortFilter {
        node_uuid: Some(node.uuid),
        ..Default::default()
    };
    assert_eq!(
        store
            .list_ports(&filter, &Page::default())
            .await
            .unwrap()
            .len(),
        1
    );

    store
        .reserve_node(&Ident::Uuid(node.uuid), "c1")
        .await
        .unwrap();
    store.delete_node(node.uuid, "c1").await.unwrap();
    assert!(store.get_port(port.uuid).await.is_err());
    assert!(store.get_portgroup(&Ident::Uuid(group.uuid)).await.is_err());
}

#[tokio::test]
async fn chassis_with_nodes_cannot_be_deleted() {
    let (_dir, store) = open().await;
    let chassis = Chassis {
        id: 0,
        uuid: ChassisUuid::new_random(),
        description: Some("rack 1".into()),
        extra: Default::default(),
        created_at: Utc::now(),
        updated_at: None,
    };
    let chassis = store.create_chassis(&chassis).await.unwrap();
    let mut node = fake_node(None);
    node.chassis_uuid = Some(chassis.uuid.to_string());
    let node = store.create_node(&node).await.unwrap();
    assert_eq!(node.chassis_uuid, Some(chassis.uuid.to_string()));
    assert!(matches!(
        store.delete_chassis(chassis.uuid).await.unwrap_err(),
        DbError::Reference(_)
    ));
    let filter = NodeFilter {
        chassis_uuid: Some(chassis.uuid.to_string()),
        ..Default::default()
    };
    assert_eq!(
        store
            .list_nodes(&filter, &Page::default())
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn conductors_register_again_after_restart() {
    let (_dir, store) = open().await;
    let now = Utc::now();
    let first = store
        .register_conductor("c1", "", &["fake-hardware".into()], now)
        .await
        .unwrap();
    store.unregister_conductor("c1").await.unwrap();
    assert!(!store.get_conductor("c1").await.unwrap().online);
    let again = store.register_conductor("c1", "g", &[], now).await.unwrap();
    assert_eq!(again.id, first.id);
    assert!(again.online);
    assert_eq!(again.conductor_group, "g");
}

#[tokio::test]
async fn data_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ferric.sqlite");
    let store = SqliteStore::open(&path).await.unwrap();
    let node = store.create_node(&fake_node(Some("keep"))).await.unwrap();
    drop(store);
    let store = SqliteStore::open(&path).await.unwrap();
    assert_eq!(store.get_node(&Ident::Uuid(node.uuid)).await.unwrap(), node);
}

#[tokio::test]
async fn history_keeps_the_newest_events_and_goes_with_its_node() {
    use ferric_core::{HistoryEvent, NodeInventory, Severity};
    let (_dir, store) = open().await;
    let node = store.create_node(&fake_node(Some("h1"))).await.unwrap();
    for i in 0..5 {
        let e = HistoryEvent::of(
            &node,
            Severity::Info,
            "deploying",
            format!("event {i}"),
            "c1",
            Utc::now(),
        );
        store.add_history(&e, 3).await.unwrap();
    }
    let all = store
        .list_history(node.uuid, &Page::default())
        .await
        .unwrap();
    let texts: Vec<&str> = all.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(texts, vec!["event 2", "event 3", "event 4"]);
    let one = store.get_history(node.uuid, all[1].uuid).await.unwrap();
    assert_eq!(one, all[1]);
    let page = Page {
        marker: Some(all[0].id),
        limit: Some(1),
        ..Page::default()
    };
    let next = store.list_history(node.uuid, &page).await.unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].event, "event 3");
    let missing = store.get_inventory(node.uuid).await.unwrap_err();
    assert!(matches!(missing, DbError::NotFound { .. }), "{missing:?}");
    let mut inventory = NodeInventory {
        node_uuid: node.uuid,
        inventory: serde_json::json!({"cpu": {"count": 4}})
            .as_object()
            .cloned()
            .unwrap(),
        plugin_data: Default::default(),
        created_at: Utc::now(),
    };
    store.save_inventory(&inventory).await.unwrap();
    inventory
        .inventory
        .insert("memory".into(), serde_json::json!({"physical_mb": 2048}));
    store.save_inventory(&inventory).await.unwrap();
    let stored = store.get_inventory(node.uuid).await.unwrap();
    assert_eq!(stored.inventory["memory"]["physical_mb"], 2048);
    let held = store
        .reserve_node(&Ident::Uuid(node.uuid), "c1")
        .await
        .unwrap();
    store.delete_node(held.uuid, "c1").await.unwrap();
    assert!(store
        .list_history(node.uuid, &Page::default())
        .await
        .is_err());
}

#[tokio::test]
async fn brief_nodes_leave_the_large_fields_out_and_sync_writes_only_power() {
    let (_dir, store) = open().await;
    let mut node = fake_node(Some("big"));
    node.instance_info
        .insert("configdrive".into(), "x".repeat(1 << 20).into());
    node.driver_info
        .insert("ipmi_address".into(), "10.0.0.9".into());
    node.traits = vec!["CUSTOM_GPU".into()];
    let node = store.create_node(&node).await.unwrap();

    let briefs = store
        .list_nodes_brief(&NodeFilter::default(), &Page::default())
        .await
        .unwrap();
    assert_eq!(briefs.len(), 1);
    let brief = &briefs[0];
    assert_eq!(brief.uuid, node.uuid);
    assert_eq!(brief.driver_info, node.driver_info);
    assert!(brief.instance_info.is_empty());
    assert!(brief.traits.is_empty());

    let held = store.reserve_node_brief(node.uuid, "me").await.unwrap();
    assert_eq!(held.reservation.as_deref(), Some("me"));
    assert!(held.instance_info.is_empty());
    assert!(matches!(
        store.reserve_node_brief(node.uuid, "other").await,
        Err(DbError::NodeLocked { .. })
    ));
    let record = ferric_db::PowerSyncRecord {
        power_state: Some(ferric_core::PowerState::On),
        maintenance: true,
        maintenance_reason: Some("why".into()),
        fault: Some("power failure".into()),
        last_error: Some("err".into()),
    };
    assert!(matches!(
        store.save_power_sync(node.uuid, "other", &record).await,
        Err(DbError::LockLost { .. })
    ));
    store
        .save_power_sync(node.uuid, "me", &record)
        .await
        .unwrap();
    let stored = store.get_node(&Ident::Uuid(node.uuid)).await.unwrap();
    assert_eq!(stored.reservation, None);
    assert_eq!(stored.power_state, Some(ferric_core::PowerState::On));
    assert_eq!(stored.fault.as_deref(), Some("power failure"));
    assert_eq!(stored.last_error.as_deref(), Some("err"));
    assert_eq!(stored.instance_info, node.instance_info);
    assert_eq!(stored.traits, vec!["CUSTOM_GPU".to_owned()]);
}
