//! Node records: traits, ports, and deleting a node with its ports.

mod common;

use chrono::Utc;
use common::*;
use ferric_conductor::ConductorError;
use ferric_core::{JsonObject, NodeUuid, Port, PortUuid, ProvisionState as S};
use ferric_db::{DbError, PortFilter};

fn refused<T: std::fmt::Debug>(result: Result<T, ConductorError>) -> ConductorError {
    match result {
        Ok(v) => panic!("expected a refusal, got {v:?}"),
        Err(e) => e,
    }
}

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

fn port(node: NodeUuid, mac: &str) -> Port {
    Port {
        id: 0,
        uuid: PortUuid::new_random(),
        address: mac.parse().expect("a MAC address"),
        node_uuid: node,
        portgroup_uuid: None,
        name: None,
        description: None,
        extra: JsonObject::new(),
        internal_info: JsonObject::new(),
        local_link_connection: JsonObject::new(),
        physical_network: None,
        pxe_enabled: true,
        is_smartnic: false,
        vendor: None,
        category: None,
        available_for_dynamic_portgroup: false,
        created_at: Utc::now(),
        updated_at: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traits_are_added_replaced_and_removed() {
    let h = Harness::start().await;
    let node = h.enroll().await;
    let (uuid, id) = (node.uuid, ident(node.uuid));

    // Replace all; duplicates collapse.
    let node = h
        .conductor
        .set_traits(&id, strings(&["CUSTOM_A", "HW_CPU_X86_AVX2", "CUSTOM_A"]))
        .await
        .expect("traits set");
    assert_eq!(node.traits, strings(&["CUSTOM_A", "HW_CPU_X86_AVX2"]));

    // Add one; adding one the node has is accepted and changes nothing.
    let node = h
        .conductor
        .add_trait(&id, "CUSTOM_B".into())
        .await
        .expect("trait added");
    assert_eq!(
        node.traits,
        strings(&["CUSTOM_A", "CUSTOM_B", "HW_CPU_X86_AVX2"])
    );
    let node = h
        .conductor
        .add_trait(&id, "CUSTOM_B".into())
        .await
        .expect("trait re-added");
    assert_eq!(
        node.traits,
        strings(&["CUSTOM_A", "CUSTOM_B", "HW_CPU_X86_AVX2"])
    );

    // Remove one; removing one the node lacks is TraitNotFound.
    let node = h
        .conductor
        .remove_trait(&id, "CUSTOM_A".into())
        .await
        .expect("trait removed");
    assert_eq!(node.traits, strings(&["CUSTOM_B", "HW_CPU_X86_AVX2"]));
    let e = refused(h.conductor.remove_trait(&id, "CUSTOM_A".into()).await);
    assert!(matches!(e, ConductorError::TraitNotFound { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!("Node {uuid} doesn't have a trait 'CUSTOM_A'")
    );

    // Names must be CUSTOM_ traits or standard ones.
    for bad in ["bad_trait", "CUSTOM_lower", ""] {
        let e = refused(h.conductor.add_trait(&id, bad.into()).await);
        assert!(matches!(e, ConductorError::Invalid(_)), "{e:?}");
        assert_eq!(
            e.to_string(),
            format!("Schema error for trait: '{bad}' is not valid under any of the given schemas")
        );
    }
    let e = refused(
        h.conductor
            .set_traits(&id, strings(&["CUSTOM_OK", "bad_trait"]))
            .await,
    );
    assert!(matches!(e, ConductorError::Invalid(_)), "{e:?}");
    let long = format!("CUSTOM_{}", "X".repeat(249));
    let e = refused(h.conductor.add_trait(&id, long).await);
    assert!(matches!(e, ConductorError::Invalid(_)), "{e:?}");

    // At most 50; the count reported includes the one that would not fit.
    let fifty: Vec<String> = (0..50).map(|i| format!("CUSTOM_T{i:02}")).collect();
    let node = h
        .conductor
        .set_traits(&id, fifty.clone())
        .await
        .expect("fifty traits fit");
    assert_eq!(node.traits, fifty);
    let e = refused(
        h.conductor
            .add_trait(&id, "CUSTOM_ONE_TOO_MANY".into())
            .await,
    );
    assert!(matches!(e, ConductorError::Invalid(_)), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!(
            "Could not modify traits for node {} as it would exceed the maximum number of traits \
             per node (51 vs. 50)",
            node.id
        )
    );
    let mut fifty_one = fifty.clone();
    fifty_one.push("CUSTOM_EXTRA".into());
    let e = refused(h.conductor.set_traits(&id, fifty_one).await);
    assert!(e.to_string().ends_with("(51 vs. 50)"), "{e}");

    // Refusals change nothing and leave the node unlocked.
    let node = h.node(uuid).await;
    assert_eq!(node.traits, fifty);
    assert_eq!(node.reservation, None);

    // An empty list removes them all.
    let node = h
        .conductor
        .set_traits(&id, Vec::new())
        .await
        .expect("traits cleared");
    assert!(node.traits.is_empty());
    assert!(h.node(uuid).await.traits.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_node_deletes_its_ports() {
    let h = Harness::start().await;
    let doomed = h.manageable().await.uuid;
    let kept = h.enroll().await.uuid;
    let p1 = h
        .conductor
        .create_port(port(doomed, "52:54:00:aa:bb:01"))
        .await
        .expect("port created");
    let p2 = h
        .conductor
        .create_port(port(doomed, "52:54:00:AA:BB:02"))
        .await
        .expect("port created");
    assert_eq!(p2.address.as_str(), "52:54:00:aa:bb:02");
    let other = h
        .conductor
        .create_port(port(kept, "52:54:00:aa:bb:03"))
        .await
        .expect("port created");
    let of = |node| PortFilter {
        node_uuid: Some(node),
        ..PortFilter::default()
    };
    let listed = h
        .store
        .list_ports(&of(doomed), &Default::default())
        .await
        .expect("ports listed");
    assert_eq!(listed.len(), 2);

    h.conductor
        .destroy_node(&ident(doomed))
        .await
        .expect("a manageable node can be deleted");
    assert!(matches!(
        h.store.get_node(&ident(doomed)).await,
        Err(DbError::NotFound { kind: "Node", .. })
    ));
    for gone in [p1.uuid, p2.uuid] {
        let found = h.store.get_port(gone).await;
        assert!(matches!(found, Err(DbError::NotFound { .. })), "{found:?}");
    }
    assert!(h
        .store
        .list_ports(&of(doomed), &Default::default())
        .await
        .expect("ports listed")
        .is_empty());

    // The other node and its port are untouched.
    let node = h.node(kept).await;
    assert_eq!(node.provision_state, S::Enroll);
    assert_eq!(
        h.store
            .get_port(other.uuid)
            .await
            .expect("port kept")
            .node_uuid,
        kept
    );

    // Deleting again: the node is gone.
    let e = refused(h.conductor.destroy_node(&ident(doomed)).await);
    assert!(
        matches!(e, ConductorError::NotFound { kind: "Node", .. }),
        "{e:?}"
    );
    assert_eq!(e.to_string(), format!("Node {doomed} could not be found."));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ports_move_and_go_under_their_node_lock() {
    let h = Harness::start().await;
    let a = h.enroll().await.uuid;
    let b = h.enroll().await.uuid;
    let p = h
        .conductor
        .create_port(port(a, "52:54:00:aa:bb:10"))
        .await
        .expect("port created");
    let moved = h
        .conductor
        .update_port(
            p.uuid,
            Box::new(move |port: &mut Port, _node| {
                port.node_uuid = b;
                port.pxe_enabled = false;
                Ok(())
            }),
        )
        .await
        .expect("port moved");
    assert_eq!(moved.node_uuid, b);
    assert!(!moved.pxe_enabled);
    assert_eq!(h.node(a).await.reservation, None);

    // A port cannot move to a node that does not exist.
    let nowhere = NodeUuid::new_random();
    let e = refused(
        h.conductor
            .update_port(
                p.uuid,
                Box::new(move |port: &mut Port, _node| {
                    port.node_uuid = nowhere;
                    Ok(())
                }),
            )
            .await,
    );
    assert!(
        matches!(e, ConductorError::NotFound { kind: "Node", .. }),
        "{e:?}"
    );
    assert_eq!(h.node(b).await.reservation, None);

    h.conductor
        .destroy_port(p.uuid)
        .await
        .expect("port deleted");
    assert!(matches!(
        h.store.get_port(p.uuid).await,
        Err(DbError::NotFound { .. })
    ));
}
