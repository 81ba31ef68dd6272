//! `net::Client` over real UDP against a BMC built on our `Server`. Ports 16250-16259.
#![allow(clippy::unwrap_used)] // test helpers fail loudly

mod common;

use std::time::Duration;

use common::{config, TestUsers, UdpBmc};
use ferric_ipmi::commands::{BootDevice, BootFlags, ChassisControl};
use ferric_ipmi::net::{Bridge, Client, Target};
use ferric_ipmi::{CipherSuite, Error, Privilege};

fn target(port: u16, user: &str, password: &str, suite: Option<CipherSuite>) -> Target {
    Target {
        port,
        cipher_suite: suite,
        timeout: Duration::from_millis(300),
        retries: 2,
        ..Target::new("127.0.0.1", user, password.into())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_suite_over_udp() {
    let bmc = UdpBmc::start(16250, config(&CipherSuite::PROBE_ORDER), TestUsers::admin()).await;
    for suite in CipherSuite::PROBE_ORDER {
        let mut c = Client::connect(&target(16250, "admin", "password", Some(suite)))
            .await
            .unwrap();
        assert_eq!(c.cipher_suite(), suite);
        c.chassis_control(ChassisControl::PowerUp).await.unwrap();
        assert!(c.chassis_status().await.unwrap().power_on);
        c.set_boot_device(BootDevice::Pxe, true, Some(true))
            .await
            .unwrap();
        assert_eq!(
            c.boot_device().await.unwrap(),
            BootFlags::boot(BootDevice::Pxe, true, true)
        );
        c.set_boot_device(BootDevice::Disk, false, None)
            .await
            .unwrap();
        assert_eq!(
            c.boot_device().await.unwrap(),
            BootFlags::boot(BootDevice::Disk, false, false)
        );
        c.disable_boot_flag_timeout().await.unwrap();
        assert_eq!(c.device_id().await.unwrap(), common::device_id());
        c.chassis_control(ChassisControl::PowerDown).await.unwrap();
        assert!(!bmc.chassis().power_on);
        c.close().await.unwrap();
        assert_eq!(bmc.session_count(), 0, "{suite}: closed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probing_and_listing_suites() {
    let offered = [
        CipherSuite::Suite3,
        CipherSuite::Suite2,
        CipherSuite::Suite1,
    ];
    let _bmc = UdpBmc::start(16251, config(&offered), TestUsers::admin()).await;
    let mut c = Client::connect(&target(16251, "admin", "password", None))
        .await
        .unwrap();
    assert_eq!(c.cipher_suite(), CipherSuite::Suite3);
    assert_eq!(c.cipher_suites().await.unwrap(), offered.to_vec());
    let raw = c.request(0x2c, 0x00, &[0]).await.unwrap();
    assert_eq!(
        raw.completion_code, 0xc1,
        "a completion code is data for raw requests"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_told_apart() {
    let _bmc = UdpBmc::start(16252, config(&CipherSuite::PROBE_ORDER), TestUsers::admin()).await;
    match Client::connect(&target(16252, "admin", "hunter2", None)).await {
        Err(e @ Error::WrongPassword { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains("wrong password") && !text.contains("hunter2"),
                "{text}"
            );
        }
        other => panic!("{other:?}"),
    }
    match Client::connect(&target(16252, "root", "password", None)).await {
        Err(e @ Error::Refused { status: 0x0d, .. }) => {
            assert!(e.to_string().contains("unauthorized name"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    let mut viewer = target(16252, "viewer", "viewpass", None);
    viewer.privilege = Privilege::User;
    let mut c = Client::connect(&viewer).await.unwrap();
    match c.chassis_control(ChassisControl::PowerUp).await {
        Err(e @ Error::Completion { code: 0xd4, .. }) => {
            assert!(
                e.to_string().contains("insufficient privilege level"),
                "{e}"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_is_a_timeout_naming_the_bmc() {
    // Nothing listens on 16259.
    let started = std::time::Instant::now();
    match Client::connect(&target(16259, "admin", "password", None)).await {
        Err(e @ Error::NoAnswer { .. }) => {
            assert_eq!(
                e.to_string(),
                "no answer from BMC at 127.0.0.1:16259 after 2 attempts"
            )
        }
        other => panic!("{other:?}"),
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(600) && took < Duration::from_secs(5),
        "{took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_stay_hidden() {
    let t = target(16258, "admin", "s3cret", None);
    let shown = format!("{t:?}");
    assert!(
        !shown.contains("s3cret") && shown.contains("***"),
        "{shown}"
    );
}

async fn bridged(port: u16, embedded: bool) {
    let bmc = UdpBmc::start_bridging(
        port,
        config(&CipherSuite::PROBE_ORDER),
        TestUsers::admin(),
        embedded,
    )
    .await;
    let mut t = target(port, "admin", "password", None);
    t.bridge = Some(Bridge {
        channel: common::SATELLITE.0,
        target_address: common::SATELLITE.1,
    });
    let mut c = Client::connect(&t).await.unwrap();
    c.chassis_control(ChassisControl::PowerUp).await.unwrap();
    assert!(c.chassis_status().await.unwrap().power_on);
    c.set_boot_device(BootDevice::Pxe, true, None)
        .await
        .unwrap();
    assert_eq!(c.device_id().await.unwrap(), common::device_id());
    let (bmc_side, satellite) = (bmc.chassis(), bmc.satellite());
    assert!(satellite.power_on, "the bridged controller was powered on");
    assert_eq!(
        satellite.boot_flags,
        BootFlags::boot(BootDevice::Pxe, true, false)
    );
    assert!(
        !bmc_side.power_on && bmc_side.requests == 0,
        "the BMC's own chassis untouched"
    );
    // A controller nobody bridges to: Send Message's completion code comes back.
    t.bridge = Some(Bridge {
        channel: 7,
        target_address: 0x74,
    });
    let mut c = Client::connect(&t).await.unwrap();
    match c.chassis_status().await {
        Err(Error::Completion { code: 0xd3, .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridging_with_the_answer_embedded() {
    bridged(16253, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridging_with_the_answer_separate() {
    bridged(16254, false).await;
}
