//! The models against real bodies: DMTF mockups from sushy's tests, sushy-tools' emulator,
//! and vendor quirks written from sushy's and Ironic's workarounds.

use super::*;
use std::path::Path;

fn sample(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus/models")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_dmtf_service_root_names_systems_managers_and_sessions() {
    let root = ServiceRoot::parse("/redfish/v1/", &sample("sushy-root.json")).unwrap();
    assert_eq!(root.redfish_version.as_deref(), Some("1.0.2"));
    assert_eq!(
        root.systems.as_ref().unwrap().odata_id.as_deref(),
        Some("/redfish/v1/Systems")
    );
    assert_eq!(
        root.session_service.as_ref().unwrap().odata_id.as_deref(),
        Some("/redfish/v1/SessionService")
    );
    assert_eq!(
        root.sessions_path(),
        Some("/redfish/v1/SessionService/Sessions")
    );
}

#[test]
fn a_bare_root_has_no_links_and_the_emulator_has_no_sessions() {
    let bare = ServiceRoot::parse("/redfish/v1/", &sample("sushy-bare_minimum_root.json")).unwrap();
    assert!(bare.systems.is_none() && bare.sessions_path().is_none());
    let emulator = ServiceRoot::parse("/redfish/v1/", &sample("emulator-root.json")).unwrap();
    assert!(emulator.systems.is_some());
    assert!(emulator.session_service.is_none() && emulator.sessions_path().is_none());
}

#[test]
fn the_dmtf_system_reads_power_boot_reset_and_managers() {
    let system = ComputerSystem::parse(
        "/redfish/v1/Systems/437XR1138R2",
        &sample("sushy-system.json"),
    )
    .unwrap();
    assert_eq!(system.id.as_deref(), Some("437XR1138R2"));
    assert_eq!(system.power_state, Some(PowerState::On));
    let boot = system.boot.as_ref().unwrap();
    assert_eq!(boot.target, Some(BootSource::Pxe));
    assert_eq!(boot.enabled, Some(BootEnabled::Once));
    assert_eq!(boot.mode, Some(BootMode::Uefi));
    let allowed = boot.allowed_targets.as_ref().unwrap();
    assert!(allowed.contains(&BootSource::SdCard) && allowed.contains(&BootSource::UefiHttp));
    assert_eq!(allowed.len(), 11);
    let reset = system.reset_action().unwrap();
    assert_eq!(
        reset.target.as_deref(),
        Some("/redfish/v1/Systems/437XR1138R2/Actions/ComputerSystem.Reset")
    );
    assert_eq!(reset.allowed.as_ref().unwrap().len(), 8);
    assert!(reset
        .allowed
        .as_ref()
        .unwrap()
        .contains(&ResetType::PushPowerButton));
    assert_eq!(
        system.manager_paths().unwrap(),
        ["/redfish/v1/Managers/BMC"]
    );
    assert!(system.virtual_media.is_none());
    assert_eq!(system.path(), "/redfish/v1/Systems/437XR1138R2");
}

#[test]
fn a_newer_system_links_its_own_virtual_media() {
    let system = ComputerSystem::parse(
        "/redfish/v1/Systems/437XR1138R2",
        &sample("sushy-systemv1_20.json"),
    )
    .unwrap();
    assert_eq!(
        system.virtual_media.unwrap().odata_id.as_deref(),
        Some("/redfish/v1/Systems/437XR1138R2/VirtualMedia")
    );
}

#[test]
fn managers_are_found_under_links_managers_when_managed_by_is_missing() {
    let system = ComputerSystem::parse(
        "/redfish/v1/Systems/437XR1138R2",
        &sample("sushy-system_managedby_missing_manager_present.json"),
    )
    .unwrap();
    assert_eq!(
        system.manager_paths().unwrap(),
        ["/redfish/v1/Managers/BMC"]
    );
}

#[test]
fn the_emulator_system_parses_with_its_allowed_values() {
    let system = ComputerSystem::parse("/x", &sample("emulator-system.json")).unwrap();
    assert_eq!(system.manufacturer.as_deref(), Some("Sushy Emulator"));
    assert_eq!(system.power_state, Some(PowerState::Off));
    let boot = system.boot.unwrap();
    assert_eq!(
        boot.allowed_targets.unwrap(),
        [
            BootSource::Pxe,
            BootSource::Cd,
            BootSource::Hdd,
            BootSource::UefiHttp
        ]
    );
    assert_eq!(boot.enabled, Some(BootEnabled::Continuous));
}

#[test]
fn supermicro_points_to_an_action_info_for_reset_types() {
    let system = ComputerSystem::parse(
        "/redfish/v1/Systems/1",
        &sample("ferric-supermicro-system.json"),
    )
    .unwrap();
    let reset = system.reset_action().unwrap();
    assert!(reset.allowed.is_none());
    assert_eq!(
        reset.action_info.as_deref(),
        Some("/redfish/v1/Systems/1/ResetActionInfo")
    );
    assert_eq!(system.etag(), Some("\"8a1fc0a2b3\""));
    let info = ActionInfo::parse(
        "/redfish/v1/Systems/1/ResetActionInfo",
        &sample("ferric-supermicro-reset-actioninfo.json"),
    )
    .unwrap();
    let values = info.allowable("ResetType").unwrap();
    assert_eq!(values.len(), 7);
    assert!(values.iter().any(|v| v == "ForceRestart"));
    assert!(info.allowable("Other").is_none());
}

#[test]
fn odd_values_are_kept_lenient_case_is_forgiven_and_unknowns_are_other() {
    let system = ComputerSystem::parse("/odd", &sample("ferric-odd-system.json")).unwrap();
    assert_eq!(system.id, None, "a numeric Id is not a string");
    assert_eq!(system.name, None);
    assert_eq!(system.power_state, Some(PowerState::On), "\"on\"");
    let boot = system.boot.as_ref().unwrap();
    assert_eq!(boot.enabled, Some(BootEnabled::Once));
    assert_eq!(boot.mode, Some(BootMode::Uefi), "\"Uefi\"");
    assert_eq!(boot.target, Some(BootSource::Other("FancyNetBoot".into())));
    assert_eq!(boot.allowed_targets, None, "a string is not a list");
    let allowed = system.reset_action().unwrap().allowed.as_ref().unwrap();
    assert_eq!(
        allowed,
        &[
            ResetType::On,
            ResetType::ForceOff,
            ResetType::Other("3".into()),
            ResetType::Other("Suspend".into())
        ]
    );
    assert_eq!(BootMode::Uefi.to_string(), "UEFI");
    assert_eq!(ResetType::Other("Suspend".into()).as_str(), "Suspend");
}

#[test]
fn a_manager_link_without_id_is_an_error_naming_the_system() {
    let system = ComputerSystem::parse("/odd", &sample("ferric-odd-system.json")).unwrap();
    let err = system.manager_paths().unwrap_err();
    assert_eq!(
        err,
        ParseError::MissingId {
            url: "/redfish/v1/Systems/odd".into(),
            what: "Links.ManagedBy[1]".into()
        }
    );
}

#[test]
fn collections_list_their_members() {
    let systems = Collection::parse(
        "/redfish/v1/Systems",
        &sample("sushy-system_collection.json"),
    )
    .unwrap();
    assert_eq!(systems.member_paths(), ["/redfish/v1/Systems/437XR1138R2"]);
    let emulator =
        Collection::parse("/redfish/v1/Systems", &sample("emulator-systems.json")).unwrap();
    assert_eq!(
        emulator.member_paths(),
        ["/redfish/v1/Systems/27946b59-9e44-4fa7-8e91-f3527a1ef094"]
    );
    let sessions = Collection::parse("/s", &sample("sushy-session_collection.json")).unwrap();
    assert_eq!(sessions.members_count, Some(1));
    let empty = Collection::parse("/e", br#"{"Name": "nothing"}"#).unwrap();
    assert!(empty.member_paths().is_empty());
}

#[test]
fn a_member_without_id_is_an_error_naming_the_collection() {
    let err = Collection::parse(
        "/redfish/v1/Systems",
        &sample("ferric-members-without-id.json"),
    )
    .unwrap_err();
    assert_eq!(
        err,
        ParseError::MissingId {
            url: "/redfish/v1/Systems".into(),
            what: "Members[1]".into()
        }
    );
    let err = Collection::parse("/c", br#"{"Members": ["/redfish/v1/Systems/1"]}"#).unwrap_err();
    assert!(matches!(err, ParseError::MissingId { .. }), "{err}");
}

#[test]
fn a_body_that_is_not_a_json_object_is_an_error_naming_the_url() {
    let err = ComputerSystem::parse("/redfish/v1/Systems/1", &sample("ferric-html-login.html"))
        .unwrap_err();
    assert!(matches!(&err, ParseError::NotJson { url, .. } if url == "/redfish/v1/Systems/1"));
    assert!(err
        .to_string()
        .starts_with("/redfish/v1/Systems/1: the body is not JSON"));
    let err = ServiceRoot::parse("/redfish/v1/", &sample("ferric-array.json")).unwrap_err();
    assert_eq!(
        err,
        ParseError::NotObject {
            url: "/redfish/v1/".into(),
            got: "an array"
        }
    );
    assert!(matches!(
        Manager::parse("/m", b"").unwrap_err(),
        ParseError::NotJson { .. }
    ));
}

#[test]
fn managers_link_their_virtual_media_or_not() {
    let manager =
        Manager::parse("/redfish/v1/Managers/BMC", &sample("sushy-manager.json")).unwrap();
    assert_eq!(manager.manager_type.as_deref(), Some("BMC"));
    assert_eq!(
        manager.virtual_media.unwrap().odata_id.as_deref(),
        Some("/redfish/v1/Managers/BMC/VirtualMedia")
    );
    let newer = Manager::parse(
        "/redfish/v1/Managers/BMC",
        &sample("sushy-managerv1_18.json"),
    )
    .unwrap();
    assert!(newer.virtual_media.is_none());
    let emulator = Manager::parse("/m", &sample("emulator-manager.json")).unwrap();
    assert!(emulator
        .virtual_media
        .unwrap()
        .odata_id
        .unwrap()
        .ends_with("/VirtualMedia"));
}

#[test]
fn virtual_media_reads_types_state_and_actions() {
    let floppy = VirtualMedia::parse("/f", &sample("sushy-virtual_media.json")).unwrap();
    assert_eq!(
        floppy.media_types(),
        [MediaType::Floppy, MediaType::UsbStick]
    );
    assert!(floppy.is_inserted());
    assert_eq!(floppy.write_protected, Some(false));
    assert_eq!(floppy.connected_via, Some(ConnectedVia::Uri));
    assert_eq!(
        floppy.insert_target(),
        Some("/redfish/v1/Managers/BMC/VirtualMedia/Floppy1/Actions/VirtualMedia.InsertMedia")
    );
    assert!(floppy.eject_target().is_some());
    assert!(!floppy.accepts(&MediaType::Cd));

    let cd = VirtualMedia::parse("/c", &sample("sushy-virtual_mediav1_6.json")).unwrap();
    assert!(cd.accepts(&MediaType::Cd) && cd.accepts(&MediaType::Dvd));
    assert!(cd.insert_target().is_none(), "v1.6 sample has no actions");
    assert_eq!(cd.connected_via, Some(ConnectedVia::Applet));

    let emulator = VirtualMedia::parse("/e", &sample("emulator-vmedia_cd.json")).unwrap();
    assert!(!emulator.is_inserted());
    assert_eq!(emulator.image.as_deref(), Some(""));
}

#[test]
fn a_dvd_only_drive_takes_cd_images() {
    let dvd = VirtualMedia::parse("/d", br#"{"MediaTypes": ["DVD"]}"#).unwrap();
    assert!(dvd.accepts(&MediaType::Cd));
    assert!(!dvd.accepts(&MediaType::UsbStick));
    let unknown =
        VirtualMedia::parse("/u", br#"{"MediaTypes": "CD", "Image": "http://x/a.iso"}"#).unwrap();
    assert!(unknown.media_types().is_empty());
    assert!(
        unknown.is_inserted(),
        "no Inserted: an image counts as inserted"
    );
}

#[test]
fn session_service_and_sessions_parse() {
    let service = SessionService::parse(
        "/redfish/v1/SessionService",
        &sample("sushy-session_service.json"),
    )
    .unwrap();
    assert_eq!(service.session_timeout, Some(30));
    assert_eq!(service.service_enabled, Some(true));
    assert_eq!(
        service.sessions.unwrap().odata_id.as_deref(),
        Some("/redfish/v1/SessionService/Sessions")
    );
    let session = Session::parse("/s", &sample("sushy-session.json")).unwrap();
    assert_eq!(session.user_name.as_deref(), Some("Administrator"));
    assert_eq!(
        session.odata_id.as_deref(),
        Some("/redfish/v1/SessionService/Sessions/1234567890ABCDEF")
    );
}

#[test]
fn error_bodies_give_every_extended_message_and_the_most_severe() {
    let error = RedfishError::parse(&sample("sushy-error.json")).unwrap();
    assert_eq!(error.code(), Some("Base.1.0.GeneralError"));
    let messages = error.messages();
    assert_eq!(messages.len(), 3);
    assert!(messages[0].starts_with("The value Red for the property IndicatorLED"));
    assert_eq!(
        error.detail(),
        Some("The request body submitted was malformed JSON and could not be parsed by the receiving service.")
    );
    assert!(error.related_properties().any(|p| p == "#/SKU"));
}

#[test]
fn a_single_extended_info_object_is_read_as_a_list_of_one() {
    let error = RedfishError::parse(&sample("sushy-error_single_ext_info.json")).unwrap();
    assert_eq!(error.extended().count(), 1);
    assert_eq!(
        error.detail(),
        Some("A general error has occurred. See Resolution for information on how to resolve the error.")
    );
}

#[test]
fn the_emulator_error_has_only_a_message_id_and_a_message() {
    let error = RedfishError::parse(&sample("emulator-error_404.json")).unwrap();
    assert_eq!(error.messages(), ["Fake system nope was not found"]);
    assert_eq!(error.detail(), Some("Fake system nope was not found"));
    let ids_only = RedfishError::parse(
        br#"{"error": {"@Message.ExtendedInfo": {"MessageId": "Base.1.0.X"}}}"#,
    )
    .unwrap();
    assert_eq!(ids_only.messages(), ["Base.1.0.X"]);
    let bare = RedfishError::parse(br#"{"error": {"message": "no"}}"#).unwrap();
    assert_eq!(bare.messages(), ["no"]);
    let top =
        RedfishError::parse(br#"{"@Message.ExtendedInfo": [{"Message": "at the top"}]}"#).unwrap();
    assert_eq!(top.messages(), ["at the top"]);
    assert!(RedfishError::parse(b"<html>").is_none());
}

#[test]
fn enums_round_trip_their_wire_names() {
    for value in ResetType::KNOWN {
        assert_eq!(&ResetType::from_wire(value.as_str()), value);
    }
    for value in BootSource::KNOWN {
        let json = serde_json::to_string(value).unwrap();
        let back: BootSource = serde_json::from_str(&json).unwrap();
        assert_eq!(&back, value);
    }
    assert_eq!(BootSource::SdCard.as_str(), "SDCard");
    assert_eq!(MediaType::UsbStick.as_str(), "USBStick");
    assert_eq!(PowerState::PoweringOff.is_on(), Some(false));
    assert_eq!(PowerState::PoweringOn.is_on(), Some(true));
    assert_eq!(PowerState::Paused.is_on(), None);
}

#[test]
fn the_fuzz_corpus_runs_clean_and_every_sample_parses_as_something() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/models");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        fuzz_entry(&bytes);
        for cut in [0, 1, bytes.len() / 2, bytes.len().saturating_sub(1)] {
            fuzz_entry(&bytes[..cut.min(bytes.len())]);
        }
        count += 1;
    }
    assert!(count >= 30, "corpus has {count} files");
}
