//! Sessions, retries, timeouts and entity tags against a fake BMC that counts them (the
//! sushy-tools emulator has no session service). Ports 16340-16369.
#![allow(clippy::unwrap_used)] // test helpers fail loudly

mod common;

use common::fake_bmc::{Auth, FakeBmc, Knobs, PASSWORD, USER};
use ferric_redfish::{
    AuthType, BootEnabled, BootMode, BootSource, Client, Endpoint, Error, ResetType, RetryPolicy,
    SessionCache,
};
use std::time::{Duration, Instant};

fn knobs() -> Knobs {
    Knobs {
        session_service: true,
        unavailable: 0,
        slow: Duration::ZERO,
    }
}

fn endpoint(bmc: &FakeBmc, auth: AuthType) -> Endpoint {
    let mut endpoint = Endpoint::new(&bmc.address).with_credentials(USER, PASSWORD);
    endpoint.auth = auth;
    endpoint.timeout = Duration::from_secs(5);
    endpoint
}

fn quick_retries(attempts: u32) -> RetryPolicy {
    RetryPolicy {
        attempts,
        delay: Duration::from_millis(20),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_session_serves_many_calls_and_clones_and_logout_deletes_it() {
    let bmc = FakeBmc::start(16340, knobs()).await;
    let client = Client::new(endpoint(&bmc, AuthType::Session)).unwrap();
    for _ in 0..5 {
        let system = client.system(None).await.unwrap();
        assert_eq!(system.id.as_deref(), Some("1"));
    }
    let system = client.system(None).await.unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let clone = client.clone();
            let system = system.clone();
            tokio::spawn(async move { clone.reset(&system, ResetType::On).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(bmc.opened(), 1, "every call and clone shares one session");
    assert_eq!(bmc.live_sessions(), 1);
    let authenticated: Vec<_> = bmc
        .seen()
        .into_iter()
        .filter(|s| s.path != "/redfish/v1/" && !s.path.ends_with("/Sessions"))
        .collect();
    assert!(
        authenticated.iter().all(|s| s.auth == Auth::Token),
        "{authenticated:?}"
    );

    client.logout().await.unwrap();
    assert_eq!(bmc.live_sessions(), 0);
    assert_eq!(bmc.deleted(), 1);
    // Logging out twice is harmless; the client stays usable with a new session.
    client.logout().await.unwrap();
    client.system(None).await.unwrap();
    assert_eq!((bmc.opened(), bmc.live_sessions()), (2, 1));
    client.logout().await.unwrap();
    assert_eq!(bmc.live_sessions(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_session_is_opened_again_once_and_the_call_retried() {
    let bmc = FakeBmc::start(16341, knobs()).await;
    let client = Client::new(endpoint(&bmc, AuthType::Auto)).unwrap();
    client.system(None).await.unwrap();
    bmc.expire_sessions();
    let system = client.system(None).await.unwrap();
    assert_eq!(system.power_state, Some(ferric_redfish::PowerState::On));
    assert_eq!(bmc.opened(), 2);
    let refused = bmc.seen().iter().filter(|s| s.auth == Auth::Bad).count();
    assert_eq!(refused, 1, "one refused request, then the retry");
    client.logout().await.unwrap();
    assert_eq!(bmc.live_sessions(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_last_clone_deletes_the_session() {
    let bmc = FakeBmc::start(16342, knobs()).await;
    let client = Client::new(endpoint(&bmc, AuthType::Session)).unwrap();
    let clone = client.clone();
    client.system(None).await.unwrap();
    drop(client);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(bmc.live_sessions(), 1, "a clone still holds it");
    drop(clone);
    assert_eq!(bmc.wait_for_sessions(0).await, 0);
    assert_eq!(bmc.deleted(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_a_clear_auth_error_with_no_secret_in_it() {
    let bmc = FakeBmc::start(16343, knobs()).await;
    for auth in [AuthType::Session, AuthType::Auto, AuthType::Basic] {
        let mut wrong = endpoint(&bmc, auth);
        wrong.password = Some("not-the-password".into());
        let client = Client::new(wrong).unwrap();
        let err = client.system(None).await.unwrap_err();
        assert!(matches!(err, Error::AuthFailed { .. }), "{auth:?}: {err}");
        assert_eq!(
            err.to_string(),
            format!(
                "401 from BMC at {}: check redfish_username and redfish_password",
                bmc.address
            )
        );
        let shown = format!("{err} {err:?} {client:?}");
        assert!(!shown.contains("not-the-password"), "{shown}");
    }
    assert_eq!(bmc.opened(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_falls_back_to_basic_without_a_session_service_and_session_does_not() {
    let bmc = FakeBmc::start(
        16344,
        Knobs {
            session_service: false,
            ..knobs()
        },
    )
    .await;
    let auto = Client::new(endpoint(&bmc, AuthType::Auto)).unwrap();
    auto.system(None).await.unwrap();
    auto.system(None).await.unwrap();
    let systems_requests: Vec<_> = bmc
        .seen()
        .into_iter()
        .filter(|s| s.path.starts_with("/redfish/v1/Systems"))
        .collect();
    assert!(!systems_requests.is_empty());
    assert!(systems_requests.iter().all(|s| s.auth == Auth::Basic));
    let session_posts = bmc.seen().iter().filter(|s| s.method == "POST").count();
    assert_eq!(
        session_posts, 1,
        "the session is tried once, not on every call"
    );

    let strict = Client::new(endpoint(&bmc, AuthType::Session)).unwrap();
    let err = strict.system(None).await.unwrap_err();
    assert_eq!(err.status(), Some(404), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unavailable_answers_are_retried_a_bounded_number_of_times() {
    let bmc = FakeBmc::start(
        16345,
        Knobs {
            unavailable: 2,
            ..knobs()
        },
    )
    .await;
    let client =
        Client::with_retry_policy(endpoint(&bmc, AuthType::Basic), quick_retries(3)).unwrap();
    assert_eq!(
        client.system_paths().await.unwrap(),
        ["/redfish/v1/Systems/1"]
    );
    let tries = |bmc: &FakeBmc| {
        bmc.seen()
            .iter()
            .filter(|s| s.path == "/redfish/v1/Systems")
            .count()
    };
    assert_eq!(tries(&bmc), 3);

    let busy = FakeBmc::start(
        16346,
        Knobs {
            unavailable: 10,
            ..knobs()
        },
    )
    .await;
    let client =
        Client::with_retry_policy(endpoint(&busy, AuthType::Basic), quick_retries(3)).unwrap();
    let err = client.system_paths().await.unwrap_err();
    assert_eq!(err.status(), Some(503), "{err}");
    assert!(err.is_transient());
    assert_eq!(tries(&busy), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_bmc_is_a_connection_error_after_the_retries() {
    // Nothing listens on this port.
    let endpoint = Endpoint::new("http://127.0.0.1:16369").with_credentials(USER, PASSWORD);
    let client = Client::with_retry_policy(endpoint, quick_retries(3)).unwrap();
    let started = Instant::now();
    let err = client.system(None).await.unwrap_err();
    assert!(
        matches!(&err, Error::Connection { address, .. } if address == "http://127.0.0.1:16369"),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with("cannot reach the BMC at http://127.0.0.1:16369: "),
        "{err}"
    );
    // Two pauses: 20 ms, then 40 ms.
    assert!(started.elapsed() >= Duration::from_millis(60));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_bmc_times_out_with_the_endpoint_timeout() {
    let bmc = FakeBmc::start(
        16347,
        Knobs {
            slow: Duration::from_secs(3),
            ..knobs()
        },
    )
    .await;
    let mut endpoint = endpoint(&bmc, AuthType::Basic);
    endpoint.timeout = Duration::from_millis(300);
    let client = Client::with_retry_policy(endpoint, quick_retries(2)).unwrap();
    let started = Instant::now();
    let err = client.system_paths().await.unwrap_err();
    assert!(
        matches!(&err, Error::Timeout { path, after, .. } if path == "/redfish/v1/Systems" && *after == Duration::from_millis(300)),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_entity_tag_is_retried_strong_then_without() {
    let bmc = FakeBmc::start(16348, knobs()).await;
    let client = Client::new(endpoint(&bmc, AuthType::Session)).unwrap();
    let system = client.system(None).await.unwrap();
    assert_eq!(system.etag(), Some("W/\"1\""));

    client
        .set_boot_override(&system, BootSource::Pxe, BootEnabled::Once, None)
        .await
        .unwrap();
    assert_eq!(bmc.boot()["BootSourceOverrideTarget"], "Pxe");
    assert_eq!(bmc.boot()["BootSourceOverrideEnabled"], "Once");

    // The tag read before the change above is stale now, and moves on once more.
    bmc.touch_system();
    client
        .set_boot_override(
            &system,
            BootSource::Cd,
            BootEnabled::Once,
            Some(BootMode::Legacy),
        )
        .await
        .unwrap();
    let patches: Vec<_> = bmc
        .seen()
        .into_iter()
        .filter(|s| s.method == "PATCH")
        .map(|s| s.if_match)
        .collect();
    assert_eq!(
        patches,
        [
            Some("W/\"1\"".to_owned()),
            Some("W/\"1\"".to_owned()),
            Some("\"1\"".to_owned()),
            None
        ]
    );
    assert_eq!(bmc.boot()["BootSourceOverrideTarget"], "Cd");
    assert_eq!(bmc.boot()["BootSourceOverrideMode"], "Legacy");
    client.logout().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_type_not_allowed_is_refused_before_any_request() {
    let bmc = FakeBmc::start(16349, knobs()).await;
    let client = Client::new(endpoint(&bmc, AuthType::Basic)).unwrap();
    let system = client.system(None).await.unwrap();
    let before = bmc.seen().len();
    let err = client.reset(&system, ResetType::Nmi).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "reset type Nmi is not allowed by /redfish/v1/Systems/1; allowed: On, ForceOff, ForceRestart"
    );
    assert_eq!(bmc.seen().len(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_shares_clients_and_an_evicted_one_logs_out() {
    let first = FakeBmc::start(16350, knobs()).await;
    let second = FakeBmc::start(16351, knobs()).await;
    let cache = SessionCache::new(1);
    let a = cache.get(&endpoint(&first, AuthType::Session)).unwrap();
    a.system(None).await.unwrap();
    let again = cache.get(&endpoint(&first, AuthType::Session)).unwrap();
    again.system(None).await.unwrap();
    assert_eq!(first.opened(), 1, "the cached client reuses its session");

    let b = cache.get(&endpoint(&second, AuthType::Session)).unwrap();
    b.system(None).await.unwrap();
    assert_eq!(cache.len(), 1);
    // `a` and `again` are still held here: eviction logs out all the same.
    assert_eq!(first.wait_for_sessions(0).await, 0);
    assert_eq!(second.live_sessions(), 1);
    assert!(cache.forget(&endpoint(&second, AuthType::Session)));
    assert_eq!(second.wait_for_sessions(0).await, 0);
    drop((a, again, b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_stay_out_of_debug_output() {
    let bmc = FakeBmc::start(16352, knobs()).await;
    let endpoint = endpoint(&bmc, AuthType::Session);
    let client = Client::new(endpoint.clone()).unwrap();
    client.system(None).await.unwrap();
    let shown = format!("{endpoint:?} {client:?}");
    assert!(!shown.contains(PASSWORD), "{shown}");
    assert!(shown.contains("***"), "{shown}");
    assert!(!shown.contains("token-"), "{shown}");
    client.logout().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_to_another_host_is_not_followed() {
    use axum::http::{header, StatusCode};
    use axum::routing::get;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    let stolen = Arc::new(AtomicUsize::new(0));
    let counter = stolen.clone();
    let thief = axum::Router::new().fallback(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        async { "{}" }
    });
    let redirector = axum::Router::new()
        .route(
            "/redfish/v1/",
            get(|| async { r#"{"Systems": {"@odata.id": "/redfish/v1/Systems"}}"# }),
        )
        .route(
            "/redfish/v1/Systems",
            get(|| async {
                (
                    StatusCode::TEMPORARY_REDIRECT,
                    [(
                        header::LOCATION,
                        "http://127.0.0.1:16354/redfish/v1/Systems",
                    )],
                )
            }),
        );
    for (port, app) in [(16353, redirector), (16354, thief)] {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.ok() });
    }
    let mut endpoint = Endpoint::new("http://127.0.0.1:16353").with_credentials(USER, PASSWORD);
    endpoint.auth = AuthType::Basic;
    let client = Client::with_retry_policy(endpoint, quick_retries(1)).unwrap();
    let err = client.system_paths().await.unwrap_err();
    assert_eq!(err.status(), Some(307), "{err}");
    assert_eq!(stolen.load(Ordering::SeqCst), 0);
}
