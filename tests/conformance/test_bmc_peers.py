"""Ferric's native BMC drivers against BMCs nobody here wrote, through the
stock `openstack baremetal` CLI:

- the `ipmi` hardware type (its `ipmitool` interfaces, speaking RMCP+
  natively) against pyghmi's fake BMC, which speaks cipher suite 3 only;
- the `redfish` hardware type against sushy-tools' emulator with its
  libvirt-free `--fake` driver, which applies power changes 1-11 s late.

`manage` runs `verifying`, which reads the power state through the BMC: a
wrong password leaves the node in `enroll` with a clear `last_error`.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import Cli, _die_with_parent

HOST = "conformance-bmc"

# pyghmi's FakeBmc bound to loopback only (fakebmc binds every address),
# writing its state to a file after every change so the test can read it.
PYGHMI_BMC = r"""
import json, os, sys
import pyghmi.ipmi.bmc as bmc
from pyghmi.cmd.fakebmc import FakeBmc

class LoopbackBmc(FakeBmc):
    def __init__(self, authdata, port, state):
        bmc.Bmc.__init__(self, authdata, port, address='127.0.0.1')
        self.state_path = state
        self.powerstate = 'off'
        self.bootdevice = 'default'
        self.save()

    def save(self):
        tmp = self.state_path + '.tmp'
        with open(tmp, 'w') as f:
            json.dump({'power': self.powerstate, 'bootdevice': self.bootdevice}, f)
        os.replace(tmp, self.state_path)

    def set_boot_device(self, bootdevice):
        FakeBmc.set_boot_device(self, bootdevice)
        self.save()

    def power_off(self):
        FakeBmc.power_off(self)
        self.save()

    def power_on(self):
        FakeBmc.power_on(self)
        self.save()

    def power_shutdown(self):
        FakeBmc.power_shutdown(self)
        self.save()

b = LoopbackBmc({'admin': 'password'}, int(sys.argv[1]), sys.argv[2])
sys.stdout = open(os.devnull, 'w')
b.listen()
"""


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peer_python() -> str:
    """The Python with pyghmi and sushy-tools: the suite's own venv."""
    return sys.executable


def wait_until(pred, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@pytest.fixture(scope="module")
def server(workdir):
    from conftest import FerricServer

    s = FerricServer(workdir, "bmc-peers", {"conductor": {"host": HOST, "sync_power_state_interval": 0}})
    s.start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def bmc_cli(server) -> Cli:
    return Cli(server)


class PyghmiBmc:
    def __init__(self, workdir: Path):
        self.port = free_port(socket.SOCK_DGRAM)
        self.state = workdir / f"pyghmi-{self.port}.json"
        self.proc = subprocess.Popen(
            [peer_python(), "-c", PYGHMI_BMC, str(self.port), str(self.state)],
            preexec_fn=_die_with_parent,
        )
        wait_until(self.state.exists, "pyghmi's fake BMC to start", 20)

    def read(self) -> dict:
        return json.loads(self.state.read_text())

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(5)


@pytest.fixture
def pyghmi(workdir):
    bmc = PyghmiBmc(workdir)
    yield bmc
    bmc.stop()


def test_ipmi_driver_drives_pyghmis_fake_bmc(bmc_cli, server, pyghmi, name):
    node = bmc_cli.json(
        "node", "create", "--driver", "ipmi", "--name", name(),
        "--driver-info", "ipmi_address=127.0.0.1",
        "--driver-info", f"ipmi_port={pyghmi.port}",
        "--driver-info", "ipmi_username=admin",
        "--driver-info", "ipmi_password=password",
    )
    assert node["power_interface"] == "ipmitool"
    assert node["management_interface"] == "ipmitool"
    assert node["driver_info"]["ipmi_password"] == "******"
    uuid = node["uuid"]

    # verifying reads the power state through the BMC.
    bmc_cli.move(uuid, "manage", "manageable")
    assert server.node(uuid)["power_state"] == "power off"

    bmc_cli.ok("node", "power", "on", uuid)
    server.wait_for_node(uuid, lambda n: n["power_state"] == "power on", "power on", 30)
    assert pyghmi.read()["power"] == "on"

    bmc_cli.ok("node", "boot", "device", "set", uuid, "pxe")
    assert pyghmi.read()["bootdevice"] == "network"
    shown = bmc_cli.json("node", "boot", "device", "show", uuid)
    assert shown["boot_device"] == "pxe"
    supported = bmc_cli.json("node", "boot", "device", "show", "--supported", uuid)
    assert "disk" in supported["supported_boot_devices"]

    bmc_cli.ok("node", "boot", "device", "set", uuid, "disk", "--persistent")
    assert pyghmi.read()["bootdevice"] == "hd"

    bmc_cli.ok("node", "power", "off", uuid)
    server.wait_for_node(uuid, lambda n: n["power_state"] == "power off", "power off", 30)
    assert pyghmi.read()["power"] == "off"
    assert "password" not in server.log_tail(400)


def test_a_wrong_ipmi_password_leaves_the_node_in_enroll(bmc_cli, server, pyghmi, name):
    node = bmc_cli.json(
        "node", "create", "--driver", "ipmi", "--name", name(),
        "--driver-info", "ipmi_address=127.0.0.1",
        "--driver-info", f"ipmi_port={pyghmi.port}",
        "--driver-info", "ipmi_username=admin",
        "--driver-info", "ipmi_password=not-the-password",
        "--driver-info", "ipmi_cipher_suite=3",
    )
    bmc_cli.ok("node", "manage", node["uuid"])
    failed = server.wait_for_node(node["uuid"], lambda n: n["provision_state"] == "enroll" and n["last_error"], "verify to fail", 60)
    assert "Failed to get power state" in failed["last_error"]
    assert "wrong password" in failed["last_error"] or "unauthorized" in failed["last_error"].lower(), failed["last_error"]
    assert "not-the-password" not in failed["last_error"]
    assert "not-the-password" not in server.log_tail(400)


def test_ipmi_driver_says_when_no_bmc_answers(bmc_cli, server, name):
    silent = free_port(socket.SOCK_DGRAM)
    node = bmc_cli.json(
        "node", "create", "--driver", "ipmi", "--name", name(),
        "--driver-info", "ipmi_address=127.0.0.1",
        "--driver-info", f"ipmi_port={silent}",
        "--driver-info", "ipmi_password=password",
    )
    started = time.monotonic()
    bmc_cli.ok("node", "manage", node["uuid"])
    failed = server.wait_for_node(node["uuid"], lambda n: n["provision_state"] == "enroll" and n["last_error"], "verify to fail", 120)
    assert "no answer" in failed["last_error"] or "no result" in failed["last_error"], failed["last_error"]
    # Bounded by [ipmi] command_retry_timeout (60 s) and the call timeout.
    assert time.monotonic() - started < 100


class SushyEmulator:
    def __init__(self, workdir: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        log = open(workdir / f"sushy-{self.port}.log", "w")
        emulator = Path(sys.executable).parent / "sushy-emulator"
        self.proc = subprocess.Popen(
            [str(emulator), "--fake", "-i", "127.0.0.1", "-p", str(self.port)],
            stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,
        )
        wait_until(self._up, "sushy-emulator to start", 30)
        systems = self.get("/redfish/v1/Systems")["Members"]
        self.system = systems[0]["@odata.id"]

    def _up(self) -> bool:
        try:
            self.get("/redfish/v1/")
            return True
        except OSError:
            return False

    def get(self, path: str) -> dict:
        import urllib.request

        with urllib.request.urlopen(self.url + path, timeout=5) as r:
            return json.loads(r.read())

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(5)


@pytest.fixture(scope="module")
def sushy(workdir):
    emulator = SushyEmulator(workdir)
    yield emulator
    emulator.stop()


def test_redfish_driver_drives_sushy_tools_emulator(bmc_cli, server, sushy, name):
    node = bmc_cli.json(
        "node", "create", "--driver", "redfish", "--name", name(),
        "--driver-info", f"redfish_address={sushy.url}",
        "--driver-info", f"redfish_system_id={sushy.system}",
        "--driver-info", "redfish_username=admin",
        "--driver-info", "redfish_password=password",
    )
    assert node["power_interface"] == "redfish"
    assert node["driver_info"]["redfish_password"] == "******"
    uuid = node["uuid"]
    bmc_cli.move(uuid, "manage", "manageable")
    assert server.node(uuid)["power_state"] in ("power on", "power off")

    # The emulator applies power changes late on purpose: wait long enough.
    for verb, state, redfish in (("off", "power off", "Off"), ("on", "power on", "On")):
        bmc_cli.ok("node", "power", verb, "--power-timeout", "30", uuid)
        server.wait_for_node(uuid, lambda n, s=state: n["power_state"] == s, state, 60)
        wait_until(lambda r=redfish: sushy.get(sushy.system)["PowerState"] == r, f"the emulator to say {redfish}", 30)

    # The emulator keeps the target and always reports the override as
    # Continuous (one-time overrides are checked against Ferric's own
    # virtual BMC in test_lab_bmc.py).
    bmc_cli.ok("node", "boot", "device", "set", uuid, "pxe")
    assert sushy.get(sushy.system)["Boot"]["BootSourceOverrideTarget"] == "Pxe"
    bmc_cli.ok("node", "boot", "device", "set", uuid, "disk", "--persistent")
    assert sushy.get(sushy.system)["Boot"]["BootSourceOverrideTarget"] == "Hdd"
    shown = bmc_cli.json("node", "boot", "device", "show", uuid)
    assert shown == {"boot_device": "disk", "persistent": True}

    bmc_cli.ok("node", "reboot", uuid)
    server.wait_for_node(uuid, lambda n: n["power_state"] == "power on" and n["target_power_state"] is None, "reboot", 90)


def test_a_bad_redfish_address_leaves_the_node_in_enroll(bmc_cli, server, name):
    closed = free_port()
    node = bmc_cli.json(
        "node", "create", "--driver", "redfish", "--name", name(),
        "--driver-info", f"redfish_address=http://127.0.0.1:{closed}",
    )
    bmc_cli.ok("node", "manage", node["uuid"])
    failed = server.wait_for_node(node["uuid"], lambda n: n["provision_state"] == "enroll" and n["last_error"], "verify to fail", 120)
    assert f"127.0.0.1:{closed}" in failed["last_error"], failed["last_error"]
