//! Power actions, boot devices, NMI and validation on fake hardware.

mod common;

use common::*;
use ferric_conductor::{ConductorError, PowerRequest, ValidationResult};
use ferric_core::{naive_timestamp, BootDevice, InterfaceKind, NodeUuid, PowerState};
use ferric_drivers::BootDeviceSetting;
use serde_json::json;

fn to(target: PowerState) -> PowerRequest {
    PowerRequest {
        target,
        timeout: None,
    }
}

impl Harness {
    async fn power(&self, uuid: NodeUuid, target: PowerState) -> ferric_core::Node {
        self.conductor
            .change_power_state(&ident(uuid), to(target))
            .await
            .unwrap_or_else(|e| panic!("{target} was refused: {e}"));
        self.wait_for_power_settled(uuid).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_actions_on_fake_hardware() {
    let h = Harness::start_manual(config(), Default::default()).await;
    let uuid = h.manageable().await.uuid;
    let stamp = |h: &Harness| json!(naive_timestamp(ferric_conductor::Clock::now(h.clock())));
    let changed_at = |n: &ferric_core::Node| {
        n.driver_internal_info
            .get("last_power_state_change")
            .cloned()
    };

    let node = h.power(uuid, PowerState::On).await;
    assert_eq!(node.power_state, Some(PowerState::On));
    assert_eq!(node.target_power_state, None);
    assert_eq!(node.last_error, None);
    assert_eq!(changed_at(&node), Some(stamp(&h)));

    for (target, reached) in [
        (PowerState::Rebooting, PowerState::On),
        (PowerState::SoftPowerOff, PowerState::Off),
        (PowerState::SoftRebooting, PowerState::On),
        (PowerState::Off, PowerState::Off),
    ] {
        h.clock().advance(chrono::Duration::seconds(10));
        let node = h.power(uuid, target).await;
        assert_eq!(node.power_state, Some(reached), "{target}");
        assert_eq!(node.target_power_state, None, "{target}");
        assert_eq!(node.last_error, None, "{target}");
        assert_eq!(changed_at(&node), Some(stamp(&h)), "{target}");
    }

    // Asking for the state the node is already in changes nothing but
    // last_error, which it clears.
    let before = changed_at(&h.node(uuid).await);
    h.update(uuid, |n| n.last_error = Some("stale".into()))
        .await;
    h.clock().advance(chrono::Duration::seconds(10));
    let node = h.power(uuid, PowerState::Off).await;
    assert_eq!(node.power_state, Some(PowerState::Off));
    assert_eq!(node.last_error, None);
    assert_eq!(changed_at(&node), before);
    assert_ne!(changed_at(&node), Some(stamp(&h)));

    // Power actions ignore the provision state: they work on an enrolled
    // node with no recorded power state, too.
    let fresh = h.enroll().await.uuid;
    let node = h.power(fresh, PowerState::On).await;
    assert_eq!(node.power_state, Some(PowerState::On));
    assert_eq!(node.provision_state, ferric_core::ProvisionState::Enroll);

    h.conductor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_power_change_in_flight_shows_its_target() {
    let h = Harness::start_with(config(), delays(&[("power", "1")])).await;
    let uuid = h.enroll().await.uuid;
    h.conductor
        .change_power_state(&ident(uuid), to(PowerState::Rebooting))
        .await
        .expect("reboot accepted");
    let node = h.node(uuid).await;
    assert_eq!(node.target_power_state, Some(PowerState::On));
    assert_eq!(node.reservation.as_deref(), Some(HOST));
    assert_eq!(node.last_error, None);
    let node = h.wait_for_power_settled(uuid).await;
    assert_eq!(node.power_state, Some(PowerState::On));
    assert_eq!(node.target_power_state, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disable_power_off_refuses_powering_off() {
    let h = Harness::start().await;
    let uuid = h.manageable().await.uuid;
    h.power(uuid, PowerState::On).await;
    h.update(uuid, |n| n.disable_power_off = true).await;
    for target in [PowerState::Off, PowerState::SoftPowerOff] {
        let e = match h
            .conductor
            .change_power_state(&ident(uuid), to(target))
            .await
        {
            Ok(()) => panic!("{target} was accepted"),
            Err(e) => e,
        };
        assert!(matches!(e, ConductorError::PowerStateFailure(_)), "{e:?}");
        assert_eq!(
            e.to_string(),
            format!("Failed to set node power state to {target}.")
        );
        let node = h.node(uuid).await;
        assert_eq!(node.power_state, Some(PowerState::On));
        assert_eq!(node.target_power_state, None);
        assert_eq!(node.reservation, None);
    }
    // Rebooting ends powered on, so it is allowed.
    let node = h.power(uuid, PowerState::Rebooting).await;
    assert_eq!(node.power_state, Some(PowerState::On));
    assert_eq!(node.last_error, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boot_devices_nmi_and_validation() {
    let h = Harness::start().await;
    let uuid = h.enroll().await.uuid;
    let id = ident(uuid);

    h.conductor
        .set_boot_device(&id, BootDevice::Pxe, true)
        .await
        .expect("pxe is supported");
    let e = match h
        .conductor
        .set_boot_device(&id, BootDevice::Disk, false)
        .await
    {
        Ok(()) => panic!("disk was accepted"),
        Err(e) => e,
    };
    assert!(matches!(e, ConductorError::Invalid(_)), "{e:?}");
    assert_eq!(e.to_string(), "Invalid boot device disk specified.");
    assert_eq!(
        h.conductor
            .get_boot_device(&id)
            .await
            .expect("a boot device"),
        BootDeviceSetting {
            boot_device: Some(BootDevice::Pxe),
            persistent: Some(false),
        }
    );
    assert_eq!(
        h.conductor
            .supported_boot_devices(&id)
            .await
            .expect("the supported devices"),
        vec![BootDevice::Pxe]
    );
    h.conductor
        .inject_nmi(&id)
        .await
        .expect("the fake NMI succeeds");
    assert_eq!(h.node(uuid).await.reservation, None);

    let results = h.conductor.validate(&id).await.expect("validation runs");
    let kinds: Vec<InterfaceKind> = results.iter().map(|r| r.kind).collect();
    use InterfaceKind as K;
    assert_eq!(
        kinds,
        vec![
            K::Boot,
            K::Deploy,
            K::Management,
            K::Network,
            K::Power,
            K::Bios,
            K::Console,
            K::Firmware,
            K::Inspect,
            K::Raid,
            K::Rescue,
            K::Storage
        ]
    );
    assert!(
        results.iter().all(|r| r.result == ValidationResult::Valid),
        "{results:?}"
    );

    let mut node = fake_node();
    node.interfaces.set(K::Firmware, "no-firmware");
    let uuid = h.enroll_node(node).await.uuid;
    let results = h
        .conductor
        .validate(&ident(uuid))
        .await
        .expect("validation runs");
    for r in &results {
        let expected = if r.kind == K::Firmware {
            ValidationResult::Invalid(
                "Driver fake-hardware does not support firmware (disabled or not implemented)."
                    .into(),
            )
        } else {
            ValidationResult::Valid
        };
        assert_eq!(r.result, expected, "{}", r.kind);
    }
}
