//! The request rules against Ironic's and sushy's behaviour, with their vendors' bodies.

use super::*;
use crate::model::{Boot, Resource};
use std::path::Path;

fn sample(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus/models")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn system(manufacturer: &str, enabled: BootEnabled, mode: BootMode) -> ComputerSystem {
    ComputerSystem {
        url: "/redfish/v1/Systems/1".into(),
        manufacturer: Some(manufacturer.into()),
        boot: Some(Boot {
            target: Some(BootSource::Hdd),
            enabled: Some(enabled),
            mode: Some(mode),
            allowed_targets: Some(vec![
                BootSource::Pxe,
                BootSource::Hdd,
                BootSource::Cd,
                BootSource::UsbCd,
                BootSource::UefiHttp,
            ]),
            http_boot_uri: None,
        }),
        ..ComputerSystem::default()
    }
}

#[test]
fn boot_override_sends_enabled_and_mode_only_when_they_change() {
    let current = system("Contoso", BootEnabled::Continuous, BootMode::Uefi);
    let same = boot_override_body(
        &current,
        BootSource::Pxe,
        BootEnabled::Continuous,
        Some(BootMode::Uefi),
    )
    .unwrap();
    assert_eq!(same, json!({"Boot": {"BootSourceOverrideTarget": "Pxe"}}));

    let changed = boot_override_body(
        &current,
        BootSource::Pxe,
        BootEnabled::Once,
        Some(BootMode::Legacy),
    )
    .unwrap();
    assert_eq!(
        changed,
        json!({"Boot": {
            "BootSourceOverrideTarget": "Pxe",
            "BootSourceOverrideEnabled": "Once",
            "BootSourceOverrideMode": "Legacy"
        }})
    );
    let no_mode = boot_override_body(&current, BootSource::Hdd, BootEnabled::Once, None).unwrap();
    assert_eq!(
        no_mode,
        json!({"Boot": {"BootSourceOverrideTarget": "Hdd", "BootSourceOverrideEnabled": "Once"}})
    );
}

#[test]
fn unknown_current_values_are_sent() {
    let mut unknown = system("Contoso", BootEnabled::Once, BootMode::Uefi);
    unknown.boot = None;
    let body = boot_override_body(
        &unknown,
        BootSource::Cd,
        BootEnabled::Once,
        Some(BootMode::Uefi),
    )
    .unwrap();
    assert_eq!(
        body,
        json!({"Boot": {
            "BootSourceOverrideTarget": "Cd",
            "BootSourceOverrideEnabled": "Once",
            "BootSourceOverrideMode": "UEFI"
        }})
    );
}

#[test]
fn vendors_that_want_a_full_request_get_all_three() {
    for vendor in ["American Megatrends International", "AMI", "ASRockRack"] {
        let current = system(vendor, BootEnabled::Once, BootMode::Legacy);
        let body = boot_override_body(&current, BootSource::Pxe, BootEnabled::Once, None).unwrap();
        assert_eq!(
            body,
            json!({"Boot": {
                "BootSourceOverrideTarget": "Pxe",
                "BootSourceOverrideEnabled": "Once",
                "BootSourceOverrideMode": "Legacy"
            }}),
            "{vendor}"
        );
    }
    // A word, not a substring: "Dynamics" is not AMI.
    let current = system("Dynamics Corp", BootEnabled::Once, BootMode::Legacy);
    let body = boot_override_body(&current, BootSource::Pxe, BootEnabled::Once, None).unwrap();
    assert_eq!(body, json!({"Boot": {"BootSourceOverrideTarget": "Pxe"}}));
}

#[test]
fn supermicro_always_gets_enabled_and_boots_virtual_cd_as_usb_cd() {
    let current = system("Supermicro", BootEnabled::Once, BootMode::Uefi);
    let body = boot_override_body(&current, BootSource::Cd, BootEnabled::Once, None).unwrap();
    assert_eq!(
        body,
        json!({"Boot": {"BootSourceOverrideTarget": "UsbCd", "BootSourceOverrideEnabled": "Once"}})
    );
    let mut ars = current.clone();
    ars.model = Some("ARS-111GL-NHR".into());
    let body = boot_override_body(&ars, BootSource::Cd, BootEnabled::Once, None).unwrap();
    assert_eq!(body["Boot"]["BootSourceOverrideTarget"], "Cd");
}

#[test]
fn uefi_http_clears_any_boot_uri() {
    let current = system("Contoso", BootEnabled::Once, BootMode::Uefi);
    let body = boot_override_body(&current, BootSource::UefiHttp, BootEnabled::Once, None).unwrap();
    assert_eq!(body["Boot"]["HttpBootUri"], Value::Null);
    assert!(body["Boot"]
        .as_object()
        .unwrap()
        .contains_key("HttpBootUri"));
}

#[test]
fn a_target_not_allowed_is_refused_naming_the_allowed_ones() {
    let current = system("Contoso", BootEnabled::Once, BootMode::Uefi);
    let err =
        boot_override_body(&current, BootSource::BiosSetup, BootEnabled::Once, None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "boot target BiosSetup is not allowed by /redfish/v1/Systems/1; allowed: Pxe, Hdd, Cd, UsbCd, UefiHttp"
    );
}

#[test]
fn the_dmtf_system_takes_a_pxe_override_with_the_enabled_unchanged() {
    let system = ComputerSystem::parse(
        "/redfish/v1/Systems/437XR1138R2",
        &sample("sushy-system.json"),
    )
    .unwrap();
    let body = boot_override_body(
        &system,
        BootSource::Hdd,
        BootEnabled::Once,
        Some(BootMode::Uefi),
    )
    .unwrap();
    assert_eq!(body, json!({"Boot": {"BootSourceOverrideTarget": "Hdd"}}));
}

#[test]
fn if_match_falls_back_like_sushy() {
    assert_eq!(if_match_sequence(None), [None]);
    assert_eq!(if_match_sequence(Some("")), [None]);
    assert_eq!(
        if_match_sequence(Some("\"abc\"")),
        [Some("\"abc\"".to_owned()), None]
    );
    assert_eq!(
        if_match_sequence(Some("W/\"7dc5e2b9\"")),
        [
            Some("W/\"7dc5e2b9\"".to_owned()),
            Some("\"7dc5e2b9\"".to_owned()),
            None
        ]
    );
    // Not sushy's weak pattern (a dash): no strong form to try.
    assert_eq!(
        if_match_sequence(Some("W/\"7dc5-e2b9\"")),
        [Some("W/\"7dc5-e2b9\"".to_owned()), None]
    );
}

#[test]
fn power_actions_choose_ironics_reset_types() {
    let all = ResetType::KNOWN;
    let choose = |action, current| choose_reset(action, current, Some(all), "/s").unwrap();
    assert_eq!(
        choose(PowerAction::On, None),
        ResetPlan::Single(ResetType::On)
    );
    assert_eq!(
        choose(PowerAction::Off, None),
        ResetPlan::Single(ResetType::ForceOff)
    );
    assert_eq!(
        choose(PowerAction::Reboot, Some(&PowerState::On)),
        ResetPlan::Single(ResetType::ForceRestart)
    );
    assert_eq!(
        choose(PowerAction::SoftReboot, None),
        ResetPlan::Single(ResetType::GracefulRestart)
    );
    assert_eq!(
        choose(PowerAction::SoftOff, None),
        ResetPlan::Single(ResetType::GracefulShutdown)
    );
    // Ironic's reboot of a system that is off powers it on.
    assert_eq!(
        choose(PowerAction::Reboot, Some(&PowerState::Off)),
        ResetPlan::Single(ResetType::On)
    );
    // No list from the BMC: anything may be tried.
    assert_eq!(
        choose_reset(PowerAction::Reboot, None, None, "/s").unwrap(),
        ResetPlan::Single(ResetType::ForceRestart)
    );
}

#[test]
fn reboot_without_force_restart_is_off_then_on_and_on_falls_back_to_force_on() {
    let allowed = [ResetType::ForceOff, ResetType::ForceOn];
    assert_eq!(
        choose_reset(
            PowerAction::Reboot,
            Some(&PowerState::On),
            Some(&allowed),
            "/s"
        )
        .unwrap(),
        ResetPlan::OffThenOn {
            off: ResetType::ForceOff,
            on: ResetType::ForceOn
        }
    );
    assert_eq!(
        choose_reset(PowerAction::On, None, Some(&allowed), "/s").unwrap(),
        ResetPlan::Single(ResetType::ForceOn)
    );
}

#[test]
fn a_power_action_nothing_allows_is_refused_naming_what_is() {
    let allowed = [ResetType::On, ResetType::GracefulShutdown];
    let err = choose_reset(
        PowerAction::Off,
        None,
        Some(&allowed),
        "/redfish/v1/Systems/1",
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "reset type ForceOff is not allowed by /redfish/v1/Systems/1; allowed: On, GracefulShutdown"
    );
    let err = choose_reset(
        PowerAction::Reboot,
        Some(&PowerState::On),
        Some(&allowed),
        "/s",
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("reset type ForceRestart is not allowed"),
        "{err}"
    );
}

#[test]
fn check_reset_names_the_allowed_values() {
    let allowed = [ResetType::On, ResetType::ForceOff];
    assert!(check_reset_allowed(&ResetType::On, Some(&allowed), "/s").is_ok());
    assert!(check_reset_allowed(&ResetType::Nmi, None, "/s").is_ok());
    assert!(check_reset_allowed(&ResetType::Nmi, Some(&[]), "/s").is_ok());
    let err = check_reset_allowed(&ResetType::PowerCycle, Some(&allowed), "/s").unwrap_err();
    assert_eq!(
        err,
        RequestError::NotAllowed {
            what: "reset type",
            value: "PowerCycle".into(),
            allowed: vec!["On".into(), "ForceOff".into()],
            resource: "/s".into()
        }
    );
    assert_eq!(
        reset_body(&ResetType::ForceRestart),
        json!({"ResetType": "ForceRestart"})
    );
}

#[test]
fn insert_bodies_leave_out_default_flags_and_patch_bodies_carry_them() {
    assert_eq!(
        insert_media_body("http://h/a.iso", true, true),
        json!({"Image": "http://h/a.iso"})
    );
    assert_eq!(
        insert_media_body("http://h/a.iso", false, false),
        json!({"Image": "http://h/a.iso", "Inserted": false, "WriteProtected": false})
    );
    assert_eq!(
        insert_media_patch_body("http://h/a.iso", true, true),
        json!({"Image": "http://h/a.iso", "Inserted": true, "WriteProtected": true})
    );
    assert_eq!(
        eject_media_patch_body(),
        json!({"Image": null, "Inserted": false})
    );
}

#[test]
fn refused_inserts_are_amended_as_their_errors_ask() {
    let body = insert_media_body("https://h/a.iso", true, true);
    for name in [
        "sushy-transfer_proto_required_error.json",
        "sushy-transfer_proto_required_error2.json",
        "sushy-transfer_proto_required_error3.json",
    ] {
        let error = RedfishError::parse(&sample(name)).unwrap();
        let amended = amend_insert_body(&body, &error).unwrap();
        assert_eq!(amended["TransferProtocolType"], "HTTPS", "{name}");
        assert_eq!(
            amend_insert_body(&amended, &error),
            None,
            "{name}: asked once"
        );
    }
    let http = insert_media_body("http://h/a.iso", true, true);
    let error = RedfishError::parse(&sample("sushy-transfer_proto_required_error.json")).unwrap();
    assert_eq!(
        amend_insert_body(&http, &error).unwrap()["TransferProtocolType"],
        "HTTP"
    );

    let error = RedfishError::parse(&sample("sushy-transfer_method_required_error.json")).unwrap();
    let amended = amend_insert_body(&body, &error).unwrap();
    assert_eq!(amended["TransferMethod"], "Stream");
    assert_eq!(amend_insert_body(&amended, &error), None);

    let error = RedfishError::parse(&sample("sushy-credentials_required_error.json")).unwrap();
    let amended = amend_insert_body(&body, &error).unwrap();
    assert_eq!(amended["UserName"], "none");
    assert_eq!(amended["Password"], "none");
    assert_eq!(amend_insert_body(&amended, &error), None);
}

#[test]
fn an_unrelated_refusal_is_not_amended() {
    let body = insert_media_body("https://h/a.iso", true, true);
    let error = RedfishError::parse(&sample("sushy-error.json")).unwrap();
    assert_eq!(amend_insert_body(&body, &error), None);
    let error = RedfishError::parse(&sample("emulator-error_404.json")).unwrap();
    assert_eq!(amend_insert_body(&body, &error), None);
}
