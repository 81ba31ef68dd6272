//! Debian's `ipmitool -I lanplus` (cipher suites 3 and 17) against a small BMC built on our
//! `Server`, answering chassis commands from memory. Skipped, saying so, when ipmitool is
//! not installed. Ports 16210-16219.
#![allow(clippy::unwrap_used)] // test helpers fail loudly

mod common;

use common::{config, TestUsers, UdpBmc};
use ferric_ipmi::commands::{BootDevice, BootFlags, ChassisControl, SetInProgress};
use ferric_ipmi::CipherSuite;

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

async fn ipmitool(suite: u8, port: u16, password: &str, command: &str) -> Run {
    let mut args: Vec<String> = [
        "-I",
        "lanplus",
        "-C",
        &suite.to_string(),
        "-H",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-U",
        "admin",
        "-P",
        password,
        "-R",
        "2",
        "-N",
        "1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(command.split_whitespace().map(str::to_string));
    let out = tokio::process::Command::new("ipmitool")
        .args(&args)
        .kill_on_drop(true)
        .output()
        .await
        .expect("running ipmitool");
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn have_ipmitool() -> bool {
    std::process::Command::new("ipmitool")
        .arg("-V")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Runs `command` and checks it succeeded and printed `expect`.
async fn expect_ok(suite: u8, bmc: &UdpBmc, command: &str, expect: &str) -> String {
    let run = ipmitool(suite, bmc.addr.port(), "password", command).await;
    assert!(
        run.ok,
        "-C {suite} {command} failed:\n{}\n{}",
        run.stdout, run.stderr
    );
    assert!(
        run.stdout.contains(expect),
        "-C {suite} {command}: no {expect:?} in:\n{}",
        run.stdout
    );
    assert_eq!(
        bmc.session_count(),
        0,
        "-C {suite} {command}: session left open"
    );
    run.stdout
}

async fn drive(suite: u8, port: u16) {
    let offered = [CipherSuite::Suite17, CipherSuite::Suite3];
    let bmc = UdpBmc::start(port, config(&offered), TestUsers::admin()).await;

    expect_ok(suite, &bmc, "power status", "Chassis Power is off").await;
    expect_ok(suite, &bmc, "power on", "Chassis Power Control: Up/On").await;
    assert!(bmc.chassis().power_on);
    expect_ok(suite, &bmc, "power status", "Chassis Power is on").await;
    expect_ok(suite, &bmc, "power cycle", "Chassis Power Control: Cycle").await;
    expect_ok(suite, &bmc, "power reset", "Chassis Power Control: Reset").await;
    expect_ok(suite, &bmc, "power diag", "Chassis Power Control: Diag").await;
    expect_ok(suite, &bmc, "power off", "Chassis Power Control: Down/Off").await;
    let chassis = bmc.chassis();
    assert!(!chassis.power_on);
    assert_eq!(
        chassis.controls,
        vec![
            ChassisControl::PowerUp,
            ChassisControl::PowerCycle,
            ChassisControl::HardReset,
            ChassisControl::PulseDiagnosticInterrupt,
            ChassisControl::PowerDown,
        ]
    );

    expect_ok(suite, &bmc, "chassis bootdev pxe", "Set Boot Device to pxe").await;
    let chassis = bmc.chassis();
    assert_eq!(
        chassis.boot_flags,
        BootFlags::boot(BootDevice::Pxe, false, false)
    );
    assert_eq!(chassis.set_in_progress, SetInProgress::Complete);
    let out = expect_ok(suite, &bmc, "chassis bootparam get 5", "Force PXE").await;
    assert!(out.contains("Options apply to only next boot"), "{out}");

    expect_ok(
        suite,
        &bmc,
        "chassis bootdev disk options=persistent,efiboot",
        "Set Boot Device to disk",
    )
    .await;
    assert_eq!(
        bmc.chassis().boot_flags,
        BootFlags::boot(BootDevice::Disk, true, true)
    );
    let out = expect_ok(
        suite,
        &bmc,
        "chassis bootparam get 5",
        "Boot Device Selector : Force Boot from default Hard-Drive",
    )
    .await;
    assert!(out.contains("Options apply to all future boots"), "{out}");
    assert!(out.contains("BIOS EFI boot"), "{out}");
    assert!(out.contains("Boot parameter 5 is valid/unlocked"), "{out}");

    let out = expect_ok(suite, &bmc, "mc info", "IPMI Version              : 2.0").await;
    assert!(out.contains("Firmware Revision         : 1.02"), "{out}");
    assert!(out.contains("Manufacturer ID           : 41651"), "{out}");
    assert!(
        out.contains("Product ID                : 258 (0x0102)"),
        "{out}"
    );

    let run = ipmitool(suite, port, "wrong-password", "power on").await;
    assert!(
        !run.ok,
        "-C {suite}: a wrong password worked:\n{}",
        run.stdout
    );
    assert!(
        run.stderr.contains("RAKP 2 HMAC is invalid")
            || run
                .stderr
                .contains("Unable to establish IPMI v2 / RMCP+ session"),
        "-C {suite}: {}",
        run.stderr
    );
    assert!(
        !bmc.chassis().power_on,
        "the wrong password changed nothing"
    );
    // ipmitool abandons the handshake without a word: the half-open session idles out.
    assert!(bmc.session_count() <= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipmitool_lanplus_suite_3_drives_our_bmc() {
    if !have_ipmitool() {
        assert!(
            std::env::var_os("FERRIC_REQUIRE_PEERS").is_none(),
            "a peer this test drives is missing (FERRIC_REQUIRE_PEERS is set)"
        );
        eprintln!("skipping: ipmitool is not installed (apt-get install ipmitool)");
        return;
    }
    drive(3, 16210).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipmitool_lanplus_suite_17_drives_our_bmc() {
    if !have_ipmitool() {
        assert!(
            std::env::var_os("FERRIC_REQUIRE_PEERS").is_none(),
            "a peer this test drives is missing (FERRIC_REQUIRE_PEERS is set)"
        );
        eprintln!("skipping: ipmitool is not installed (apt-get install ipmitool)");
        return;
    }
    drive(17, 16211).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipmitool_without_a_suite_picks_one_we_offer() {
    if !have_ipmitool() {
        assert!(
            std::env::var_os("FERRIC_REQUIRE_PEERS").is_none(),
            "a peer this test drives is missing (FERRIC_REQUIRE_PEERS is set)"
        );
        eprintln!("skipping: ipmitool is not installed (apt-get install ipmitool)");
        return;
    }
    let _bmc = UdpBmc::start(16212, config(&CipherSuite::PROBE_ORDER), TestUsers::admin()).await;
    let mut args = vec![
        "-I",
        "lanplus",
        "-H",
        "127.0.0.1",
        "-p",
        "16212",
        "-U",
        "admin",
    ];
    args.extend(["-P", "password", "-R", "2", "-N", "1", "power", "status"]);
    let out = tokio::process::Command::new("ipmitool")
        .args(&args)
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("Chassis Power is off"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
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
    let run = ipmitool(3, port, "password", "-b 7 -t 0x72 power on").await;
    assert!(run.ok, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("Chassis Power Control: Up/On"),
        "{}",
        run.stdout
    );
    let run = ipmitool(17, port, "password", "-b 7 -t 0x72 power status").await;
    assert!(
        run.stdout.contains("Chassis Power is on"),
        "{}\n{}",
        run.stdout,
        run.stderr
    );
    assert!(
        bmc.satellite().power_on,
        "ipmitool's bridged request reached the controller"
    );
    assert!(!bmc.chassis().power_on);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipmitool_single_bridging_reaches_the_controller() {
    if !have_ipmitool() {
        assert!(
            std::env::var_os("FERRIC_REQUIRE_PEERS").is_none(),
            "a peer this test drives is missing (FERRIC_REQUIRE_PEERS is set)"
        );
        eprintln!("skipping: ipmitool is not installed (apt-get install ipmitool)");
        return;
    }
    bridged(16213, true).await;
    bridged(16214, false).await;
}
