//! Against sushy-tools' emulator (`--fake`, no libvirt): power, boot override, virtual
//! media, several systems and basic authentication. The fake driver applies power changes
//! 1-11 s late on purpose, so power is polled for up to 15 s. Ports 16300-16329.
#![allow(clippy::unwrap_used)] // test helpers fail loudly

mod common;

use axum::routing::get;
use common::emulator::{Emulator, Setup};
use ferric_redfish::request::{choose_reset, PowerAction, ResetPlan};
use ferric_redfish::{
    AuthType, BootEnabled, BootMode, BootSource, Client, ComputerSystem, Endpoint, Error,
    MediaType, PowerState, ResetType,
};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const DEFAULT_SYSTEM: &str = "27946b59-9e44-4fa7-8e91-f3527a1ef094";
const POWER_WAIT: Duration = Duration::from_secs(15);
/// bcrypt of "ferric-test-password".
const HTPASSWD: &str = "admin:$2b$04$CgHw87U5Zw/7yzjUSTOkXeHEmuLDp3UOKHq36aNC/wtVjoc2LhpuW";

fn client(emulator: &Emulator) -> Client {
    let mut endpoint = Endpoint::new(&emulator.address);
    endpoint.timeout = Duration::from_secs(10);
    Client::new(endpoint).unwrap()
}

/// Polls until the system reports `state`, returning how it looked then.
async fn wait_for_power(client: &Client, state: PowerState) -> ComputerSystem {
    let started = Instant::now();
    loop {
        let system = client.system(None).await.unwrap();
        if system.power_state.as_ref() == Some(&state) {
            return system;
        }
        assert!(
            started.elapsed() < POWER_WAIT,
            "still {:?} after {POWER_WAIT:?}, waiting for {state:?}",
            system.power_state
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn power(client: &Client, system: &ComputerSystem, action: PowerAction) {
    let allowed = client.allowed_reset_types(system).await.unwrap();
    let plan = choose_reset(
        action,
        system.power_state.as_ref(),
        allowed.as_deref(),
        system.path(),
    )
    .unwrap();
    let ResetPlan::Single(reset) = plan else {
        panic!("the emulator allows single resets, got {plan:?}");
    };
    client.reset(system, reset).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_on_off_and_reboot() {
    let Some(emulator) = Emulator::start(16300, Setup::default()).await else {
        return;
    };
    let client = client(&emulator);
    let system = client.system(None).await.unwrap();
    assert_eq!(system.id.as_deref(), Some(DEFAULT_SYSTEM));
    assert_eq!(system.power_state, Some(PowerState::Off));

    power(&client, &system, PowerAction::On).await;
    let on = wait_for_power(&client, PowerState::On).await;

    // ForceRestart: the fake driver reports Off at once, then On again.
    power(&client, &on, PowerAction::Reboot).await;
    let during = client.system(None).await.unwrap();
    assert_eq!(
        during.power_state,
        Some(PowerState::Off),
        "a restart goes through off"
    );
    let after = wait_for_power(&client, PowerState::On).await;

    power(&client, &after, PowerAction::Off).await;
    wait_for_power(&client, PowerState::Off).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_type_the_emulator_does_not_list_is_refused() {
    let Some(emulator) = Emulator::start(16301, Setup::default()).await else {
        return;
    };
    let client = client(&emulator);
    let system = client.system(None).await.unwrap();
    let err = client
        .reset(&system, ResetType::PowerCycle)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "reset type PowerCycle is not allowed by /redfish/v1/Systems/{DEFAULT_SYSTEM}; \
             allowed: On, ForceOff, GracefulShutdown, GracefulRestart, ForceRestart, Nmi, ForceOn"
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boot_override_is_set_and_read_back() {
    let Some(emulator) = Emulator::start(16302, Setup::default()).await else {
        return;
    };
    let client = client(&emulator);
    let set = |target, enabled, mode| {
        let client = client.clone();
        async move {
            let system = client.system(None).await.unwrap();
            client
                .set_boot_override(&system, target, enabled, mode)
                .await
                .unwrap();
            client.system(None).await.unwrap().boot.unwrap()
        }
    };

    let boot = set(BootSource::Pxe, BootEnabled::Once, None).await;
    assert_eq!(boot.target, Some(BootSource::Pxe));
    // The emulator keeps every override continuous, whatever is asked.
    assert_eq!(boot.enabled, Some(BootEnabled::Continuous));

    let boot = set(
        BootSource::Hdd,
        BootEnabled::Continuous,
        Some(BootMode::Uefi),
    )
    .await;
    assert_eq!(boot.target, Some(BootSource::Hdd));
    assert_eq!(boot.mode, Some(BootMode::Uefi));

    let boot = set(BootSource::Pxe, BootEnabled::Once, Some(BootMode::Legacy)).await;
    assert_eq!(
        (boot.target, boot.mode),
        (Some(BootSource::Pxe), Some(BootMode::Legacy))
    );
    assert!(!boot
        .allowed_targets
        .unwrap()
        .contains(&BootSource::UefiHttp));

    let boot = set(BootSource::Cd, BootEnabled::Once, Some(BootMode::Uefi)).await;
    assert_eq!(
        (boot.target, boot.mode),
        (Some(BootSource::Cd), Some(BootMode::Uefi))
    );

    let system = client.system(None).await.unwrap();
    let err = client
        .set_boot_override(&system, BootSource::BiosSetup, BootEnabled::Once, None)
        .await
        .unwrap_err();
    assert!(
        err.to_string().ends_with("allowed: Pxe, Cd, Hdd, UefiHttp"),
        "{err}"
    );
}

/// Serves a small "ISO" for the emulator to download, counting the downloads.
async fn serve_image(port: u16) -> (String, Arc<AtomicUsize>) {
    let downloads = Arc::new(AtomicUsize::new(0));
    let counter = downloads.clone();
    let app = axum::Router::new().route(
        "/boot.iso",
        get(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async { vec![0u8; 64 * 1024] }
        }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.ok();
    });
    (format!("http://127.0.0.1:{port}/boot.iso"), downloads)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_media_is_inserted_and_ejected() {
    let Some(emulator) = Emulator::start(16303, Setup::default()).await else {
        return;
    };
    let (image, downloads) = serve_image(16320).await;
    let client = client(&emulator);
    let system = client.system(None).await.unwrap();
    let devices = client.virtual_media(&system).await.unwrap();
    let mut ids: Vec<_> = devices.iter().filter_map(|d| d.id.clone()).collect();
    ids.sort();
    assert_eq!(ids, ["Cd", "Floppy"]);
    let cd = devices.iter().find(|d| d.accepts(&MediaType::Cd)).unwrap();
    assert!(!cd.is_inserted());

    client.insert_media(cd, &image, true, true).await.unwrap();
    let inserted = client.refresh_media(cd).await.unwrap();
    assert!(inserted.is_inserted());
    assert_eq!(inserted.image.as_deref(), Some(image.as_str()));
    assert_eq!(inserted.write_protected, Some(true));
    assert_eq!(
        downloads.load(Ordering::SeqCst),
        1,
        "the emulator fetched the image"
    );

    client.eject_media(&inserted).await.unwrap();
    let ejected = client.refresh_media(cd).await.unwrap();
    assert!(!ejected.is_inserted());
    assert!(ejected.image.as_deref().unwrap_or_default().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_systems_must_be_chosen_by_path_or_id() {
    let systems = "[{'uuid': 'aaaaaaaa-0000-0000-0000-000000000001', 'name': 'one', \
                   'power_state': 'Off', 'nics': []}, \
                   {'uuid': 'aaaaaaaa-0000-0000-0000-000000000002', 'name': 'two', \
                   'power_state': 'On', 'nics': []}]";
    let setup = Setup {
        fake_systems: Some(systems.into()),
        ..Setup::default()
    };
    let Some(emulator) = Emulator::start(16304, setup).await else {
        return;
    };
    let client = client(&emulator);
    let err = client.system(None).await.unwrap_err();
    let Error::AmbiguousSystem { systems, .. } = &err else {
        panic!("{err}");
    };
    assert_eq!(systems.len(), 2);
    let text = err.to_string();
    assert!(
        text.contains("manages 2 systems; set redfish_system_id to one of: "),
        "{text}"
    );
    assert!(
        text.contains("/redfish/v1/Systems/aaaaaaaa-0000-0000-0000-000000000001"),
        "{text}"
    );
    assert!(
        text.contains("/redfish/v1/Systems/aaaaaaaa-0000-0000-0000-000000000002"),
        "{text}"
    );

    let by_path = client
        .system(Some(
            "/redfish/v1/Systems/aaaaaaaa-0000-0000-0000-000000000002",
        ))
        .await
        .unwrap();
    assert_eq!(by_path.name.as_deref(), Some("two"));
    assert_eq!(by_path.power_state, Some(PowerState::On));
    let by_id = client
        .system(Some("aaaaaaaa-0000-0000-0000-000000000001"))
        .await
        .unwrap();
    assert_eq!(by_id.name.as_deref(), Some("one"));
    // A system's name redirects to its UUID.
    let by_name = client
        .system(Some("/redfish/v1/Systems/two"))
        .await
        .unwrap();
    assert_eq!(
        by_name.path(),
        "/redfish/v1/Systems/aaaaaaaa-0000-0000-0000-000000000002"
    );
    let missing = client.system(Some("nope")).await.unwrap_err();
    assert_eq!(missing.status(), Some(404), "{missing}");
    assert!(
        missing
            .to_string()
            .contains("Fake system nope was not found"),
        "{missing}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_authentication_works_and_a_wrong_password_is_a_clear_error() {
    let setup = Setup {
        htpasswd: Some(HTPASSWD.into()),
        ..Setup::default()
    };
    let Some(emulator) = Emulator::start(16305, setup).await else {
        return;
    };
    let endpoint = |auth, password: &str| {
        let mut endpoint = Endpoint::new(&emulator.address).with_credentials("admin", password);
        endpoint.auth = auth;
        endpoint.timeout = Duration::from_secs(10);
        endpoint
    };
    // The emulator has no session service: Auto falls back to basic.
    for auth in [AuthType::Basic, AuthType::Auto] {
        let client = Client::new(endpoint(auth, "ferric-test-password")).unwrap();
        let system = client.system(None).await.unwrap();
        assert_eq!(system.id.as_deref(), Some(DEFAULT_SYSTEM), "{auth:?}");
        client.logout().await.unwrap();
    }
    for auth in [AuthType::Basic, AuthType::Auto, AuthType::Session] {
        let client = Client::new(endpoint(auth, "wrong-password")).unwrap();
        let err = client.system(None).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "401 from BMC at {}: check redfish_username and redfish_password",
                emulator.address
            ),
            "{auth:?}"
        );
        assert!(!format!("{err:?}").contains("wrong-password"));
    }
    let anonymous = client(&emulator);
    let err = anonymous.system(None).await.unwrap_err();
    assert!(matches!(err, Error::AuthFailed { .. }), "{err}");
}
