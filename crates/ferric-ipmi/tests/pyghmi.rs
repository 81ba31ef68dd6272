//! Interoperability with pyghmi, both ways: our `net::Client` against pyghmi's fake BMC
//! (cipher suite 3, the only one it speaks), and pyghmi's client (which asks for suite 17
//! first) against a BMC built on our `Server`. Ports 16230-16239.
//!
//! Python comes from `FERRIC_PYGHMI_PYTHON`, else `target/venv/bin/python`; a Python with
//! pyghmi installed is needed (`python -m venv V && V/bin/pip install pyghmi`). The tests
//! are skipped, saying so, only when that Python does not exist.
#![allow(clippy::unwrap_used)] // test helpers fail loudly

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::{config, TestUsers, UdpBmc};
use ferric_ipmi::commands::{BootDevice, BootFlags, ChassisControl};
use ferric_ipmi::net::{Client, Target};
use ferric_ipmi::{CipherSuite, Error, Privilege};
use tokio::io::{AsyncBufReadExt, BufReader};

fn python() -> Option<PathBuf> {
    let path = std::env::var_os("FERRIC_PYGHMI_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../target/venv/bin/python"
            ))
        });
    if path.exists() {
        Some(path)
    } else {
        assert!(
            std::env::var_os("FERRIC_REQUIRE_PEERS").is_none(),
            "a peer this test drives is missing (FERRIC_REQUIRE_PEERS is set)"
        );
        eprintln!(
            "skipping: no Python at {} (set FERRIC_PYGHMI_PYTHON to a python with pyghmi)",
            path.display()
        );
        None
    }
}

/// pyghmi's FakeBmc (as `fakebmc` runs it), bound to 127.0.0.1 only.
const FAKEBMC: &str = r#"
import os
import sys
import pyghmi.ipmi.bmc as bmc
from pyghmi.cmd.fakebmc import FakeBmc

class LoopbackBmc(FakeBmc):
    def __init__(self, authdata, port):
        bmc.Bmc.__init__(self, authdata, port, address='127.0.0.1')
        self.powerstate = 'off'
        self.bootdevice = 'default'

b = LoopbackBmc({'admin': 'password'}, int(sys.argv[1]))
print('ready', flush=True)
sys.stdout = open(os.devnull, 'w')  # FakeBmc prints each action; nobody reads them
b.listen()
"#;

/// Killed on drop.
struct FakeBmc(#[allow(dead_code)] tokio::process::Child);

impl FakeBmc {
    async fn start(python: &PathBuf, port: u16) -> Self {
        let mut child = tokio::process::Command::new(python)
            .args(["-c", FAKEBMC, &port.to_string()])
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("starting pyghmi's fake BMC");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        let mut reader = BufReader::new(stdout);
        tokio::time::timeout(Duration::from_secs(20), reader.read_line(&mut line))
            .await
            .expect("fake BMC did not start in 20 s")
            .unwrap();
        assert_eq!(line.trim(), "ready", "fake BMC said {line:?}");
        Self(child)
    }
}

fn target(port: u16, password: &str, suite: Option<CipherSuite>) -> Target {
    Target {
        port,
        cipher_suite: suite,
        timeout: Duration::from_millis(500),
        retries: 2,
        ..Target::new("127.0.0.1", "admin", password.into())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_drives_pyghmis_fake_bmc() {
    let Some(python) = python() else { return };
    let port = 16230;
    let _bmc = FakeBmc::start(&python, port).await;

    let mut c = Client::connect(&target(port, "password", Some(CipherSuite::Suite3)))
        .await
        .unwrap();
    assert_eq!(c.cipher_suite(), CipherSuite::Suite3);
    assert_eq!(c.privilege(), Some(Privilege::Administrator));
    assert!(!c.chassis_status().await.unwrap().power_on);
    c.chassis_control(ChassisControl::PowerUp).await.unwrap();
    assert!(c.chassis_status().await.unwrap().power_on);
    c.chassis_control(ChassisControl::PowerDown).await.unwrap();
    assert!(!c.chassis_status().await.unwrap().power_on);
    // The fake BMC cannot power cycle: it answers 0xcc.
    match c.chassis_control(ChassisControl::PowerCycle).await {
        Err(e @ Error::Completion { code: 0xcc, .. }) => {
            assert!(
                e.to_string().contains("invalid data field in request"),
                "{e}"
            )
        }
        other => panic!("{other:?}"),
    }

    assert_eq!(
        c.boot_device().await.unwrap().device,
        BootDevice::NoOverride
    );
    c.set_boot_device(BootDevice::Pxe, false, None)
        .await
        .unwrap();
    assert_eq!(
        c.boot_device().await.unwrap(),
        BootFlags::boot(BootDevice::Pxe, false, false)
    );
    c.set_boot_device(BootDevice::Disk, true, Some(true))
        .await
        .unwrap();
    // The fake BMC keeps only the device.
    assert_eq!(c.boot_device().await.unwrap().device, BootDevice::Disk);
    let id = c.device_id().await.unwrap();
    assert_eq!((id.firmware_major, id.ipmi_version), (1, 0x02));
    c.close().await.unwrap();

    // Probing: the fake BMC lists suite 3 only.
    let c = Client::connect(&target(port, "password", None))
        .await
        .unwrap();
    assert_eq!(c.cipher_suite(), CipherSuite::Suite3);
    c.close().await.unwrap();

    match Client::connect(&target(port, "Password", Some(CipherSuite::Suite3))).await {
        Err(e @ Error::WrongPassword { .. }) => {
            assert!(e.to_string().contains("wrong password"), "{e}");
        }
        other => panic!("{other:?}"),
    }
}

/// pyghmi's client: power on, status, persistent UEFI network boot, read back.
const PYGHMI_CLIENT: &str = r#"
import sys
from pyghmi.ipmi import command
c = command.Command(bmc='127.0.0.1', port=int(sys.argv[1]), userid='admin', password='password')
print('before', c.get_power()['powerstate'])
c.set_power('on')
print('after', c.get_power()['powerstate'])
c.set_bootdev('network', persist=True, uefiboot=True)
b = c.get_bootdev()
print('bootdev', b['bootdev'], b.get('persistent'), b.get('uefimode'))
print('suite', c.ipmi_session.currhashlib().name)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyghmis_client_drives_our_bmc() {
    let Some(python) = python() else { return };
    let port = 16231;
    let bmc = UdpBmc::start(port, config(&CipherSuite::PROBE_ORDER), TestUsers::admin()).await;
    let run = tokio::process::Command::new(&python)
        .args(["-c", PYGHMI_CLIENT, &port.to_string()])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("pyghmi client hung")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("before off"), "{stdout}");
    assert!(stdout.contains("after on"), "{stdout}");
    assert!(stdout.contains("bootdev network True True"), "{stdout}");
    assert!(
        stdout.contains("suite sha256"),
        "pyghmi got suite 17: {stdout}"
    );
    let chassis = bmc.chassis();
    assert!(chassis.power_on);
    assert_eq!(
        chassis.boot_flags,
        BootFlags::boot(BootDevice::Pxe, true, true)
    );
}
