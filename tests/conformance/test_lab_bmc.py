"""Whole deploys through real BMC protocols: `ferric lab bmc` serves IPMI
and Redfish for simulated machines, and Ferric drives them with its native
`ipmitool` and `redfish` interfaces, through the stock openstack CLI.

The machine is not played by the test: powering it on with boot device PXE
makes the virtual BMC start `ferric-agent` on the machine's disk file; the
agent powering off ends it; boot device disk "boots the OS". Also: the
power-state sync notices power changes made outside Ferric (Debian's
ipmitool) and puts a node whose BMC stops answering into maintenance, and
takes it out again once the BMC is back.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO_ROOT, Cli, _die_with_parent, _resolve
from imageserver import ImageServer, make_disk_image, sha256_of

HOST = "conformance-lab"
MIB = 1 << 20


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def agent_binary() -> Path:
    path = _resolve(os.environ.get("FERRIC_AGENT_BIN") or "target/debug/ferric-agent")
    assert os.access(path, os.X_OK), f"no ferric-agent at {path}: cargo build -p ferric-agent"
    return path


def ferric_binary() -> Path:
    return _resolve(os.environ.get("FERRIC_BIN") or "target/debug/ferric")


class Lab:
    """`ferric lab bmc` with machines m1..mN, each on its own IPMI port."""

    def __init__(self, workdir: Path, api_url: str, count: int, boot_url: str | None = None):
        self.dir = workdir / f"lab-{free_port()}"
        self.dir.mkdir()
        self.redfish_port = free_port()
        self.url = f"http://127.0.0.1:{self.redfish_port}"
        self.machines = {}
        lines = [f'api_url = "{api_url}"']
        if boot_url:
            lines.append(f'boot_url = "{boot_url}"')
        for i in range(1, count + 1):
            name = f"m{i}"
            port = free_port(socket.SOCK_DGRAM)
            mac = f"52:54:00:1a:00:{i:02x}"
            disk = self.dir / f"{name}.disk"
            self.machines[name] = {"ipmi_port": port, "mac": mac, "disk": disk}
            lines += ["[[machine]]", f'name = "{name}"', f'mac = "{mac}"', f'disk = "{disk}"', 'disk_size = "8G"',
                      f'ipmi_listen = "127.0.0.1:{port}"', 'username = "admin"', 'password = "password"']
        (self.dir / "machines.toml").write_text("\n".join(lines) + "\n")
        self.log = open(self.dir / "bmc.log", "w")
        self.proc = subprocess.Popen(
            [str(ferric_binary()), "lab", "bmc", "--machines", str(self.dir / "machines.toml"),
             "--redfish-listen", f"127.0.0.1:{self.redfish_port}", "--state-dir", str(self.dir / "state"),
             "--agent-bin", str(agent_binary())],
            stdout=self.log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                self.machine("m1")
                return
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"ferric lab bmc did not start:\n{(self.dir / 'bmc.log').read_text()}")

    def _request(self, method: str, path: str, body: object | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as r:
            text = r.read()
        return json.loads(text) if text else {}

    def machine(self, name: str) -> dict:
        return self._request("GET", f"/lab/machines/{name}")

    def faults(self, name: str, **faults) -> None:
        self._request("PUT", f"/lab/machines/{name}/faults", faults)

    def ipmitool(self, name: str, *args: str) -> str:
        port = self.machines[name]["ipmi_port"]
        out = subprocess.run(["ipmitool", "-I", "lanplus", "-C", "17", "-H", "127.0.0.1", "-p", str(port),
                              "-U", "admin", "-P", "password", *args],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, f"ipmitool {' '.join(args)} failed: {out.stderr}"
        return out.stdout

    def log_text(self) -> str:
        return (self.dir / "bmc.log").read_text()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def wait_until(pred, what: str, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    root = tmp_path_factory.mktemp("lab-images")
    make_disk_image(root / "disk.raw", 24, seed=7)
    server = ImageServer(root)
    yield root / "disk.raw", server
    server.stop()


def config(extra: dict | None = None, **conductor):
    return {**(extra or {}),
        "conductor": {"host": HOST, "check_provision_state_interval": 1, "deploy_callback_timeout": 180,
                      "clean_callback_timeout": 180, **conductor},
        "agent": {"post_deploy_get_power_state_retries": 10, "post_deploy_get_power_state_retry_interval": 1,
                  "ramdisk_heartbeat_timeout": 10},
        "ipmi": {"command_retry_timeout": 10},
    }


@pytest.fixture
def rig(spawn, workdir):
    made = []

    def _rig(count: int = 1, http_boot: bool = False, **conductor):
        extra, boot_url = None, None
        if http_boot:
            boot_url = f"http://127.0.0.1:{free_port()}"
            extra = {"http_server": {"enabled": True, "listen": boot_url.removeprefix("http://")}}
        server = spawn("lab", config(extra, **conductor))
        lab = Lab(workdir, server.url, count, boot_url)
        made.append(lab)
        return server, Cli(server), lab

    yield _rig
    for lab in made:
        lab.stop()


def enroll(cli: Cli, lab: Lab, name: str, protocol: str, node_name: str) -> str:
    m = lab.machines[name]
    if protocol == "ipmi":
        info = ["--driver-info", "ipmi_address=127.0.0.1", "--driver-info", f"ipmi_port={m['ipmi_port']}",
                "--driver-info", "ipmi_username=admin", "--driver-info", "ipmi_password=password"]
        interfaces = ["--power-interface", "ipmitool", "--management-interface", "ipmitool"]
    else:
        info = ["--driver-info", f"redfish_address={lab.url}", "--driver-info", f"redfish_system_id=/redfish/v1/Systems/{name}",
                "--driver-info", "redfish_username=admin", "--driver-info", "redfish_password=password"]
        interfaces = ["--power-interface", "redfish", "--management-interface", "redfish"]
    node = cli.json("node", "create", "--driver", "fake-hardware", "--name", node_name, *interfaces,
                    "--boot-interface", "fake", "--deploy-interface", "direct",
                    "--property", "capabilities=boot_mode:bios", *info)
    cli.ok("port", "create", m["mac"], "--node", node["uuid"])
    return node["uuid"]


@pytest.mark.parametrize("protocol", ["ipmi", "redfish"])
def test_a_whole_deploy_through_the_virtual_bmc(rig, image, protocol):
    server, cli, lab = rig()
    raw, images = image
    uuid = enroll(cli, lab, "m1", protocol, f"lab-{protocol}")

    cli.move(uuid, "manage", "manageable")
    assert server.node(uuid)["power_state"] == "power off"

    # Cleaning boots the machine; its BMC starts the agent (blank disk:
    # the boot order falls through to PXE).
    cli.move(uuid, "provide", "available")
    assert lab.machine("m1")["power"] == "off", lab.machine("m1")
    booted = lab.machine("m1")["boot_count"]
    assert booted >= 1

    cli.ok("node", "set", uuid, "--instance-info", f"image_source={images.url('disk.raw')}",
           "--instance-info", "image_os_hash_algo=sha256", "--instance-info", f"image_os_hash_value={sha256_of(raw)}")
    cli.ok("node", "deploy", uuid)
    node = server.wait_for_node(uuid, lambda n: n["provision_state"] == "active" and n["reservation"] is None, "active", 240)
    assert node["power_state"] == "power on"

    m = lab.machine("m1")
    assert m["power"] == "on", m
    assert m["last_boot"] == "disk", m
    with open(lab.machines["m1"]["disk"], "rb") as disk:
        assert disk.read(raw.stat().st_size) == raw.read_bytes()

    # Undeploy: cleaning boots the agent again over PXE (the boot device
    # was set to disk persistently) and erases the disk's metadata.
    cli.move(uuid, "undeploy", "available")
    m = lab.machine("m1")
    assert m["boot_count"] > booted + 1, m
    with open(lab.machines["m1"]["disk"], "rb") as disk:
        assert disk.read(512)[510:512] != b"\x55\xaa"
    history = server.api("GET", f"/v1/nodes/{uuid}/history")[1]["history"]
    assert not [h for h in history if h["severity"] == "ERROR"], history
    assert "password" not in server.log_tail(2000).replace("redfish_password", "").replace("ipmi_password", "")


def enroll_real_driver(cli: Cli, lab: Lab, name: str, protocol: str, ramdisk: Path, deploy: str | None = None) -> str:
    """A node of the `ipmi` or `redfish` hardware type on its defaults: the
    `ipxe` boot interface and the `direct` deploy, or the deploy named (the
    seed flow's `node create --driver ipmi --deploy-interface iscsi`)."""
    m = lab.machines[name]
    if protocol == "ipmi":
        info = {"ipmi_address": "127.0.0.1", "ipmi_port": m["ipmi_port"], "ipmi_username": "admin",
                "ipmi_password": "password"}
    else:
        info = {"redfish_address": lab.url, "redfish_system_id": f"/redfish/v1/Systems/{name}",
                "redfish_username": "admin", "redfish_password": "password"}
    info |= {"deploy_kernel": f"file://{ramdisk / 'deploy.kernel'}", "deploy_ramdisk": str(ramdisk / "deploy.initramfs")}
    args = [arg for key, value in info.items() for arg in ("--driver-info", f"{key}={value}")]
    if deploy:
        args += ["--deploy-interface", deploy]
    node = cli.json("node", "create", "--driver", protocol, "--name", f"ipxe-{protocol}",
                    "--property", "capabilities=boot_mode:bios", *args)
    assert node["boot_interface"] == "ipxe" and node["deploy_interface"] == (deploy or "direct"), node
    cli.ok("port", "create", m["mac"], "--node", node["uuid"])
    return node["uuid"]


@pytest.mark.parametrize("protocol,deploy", [("ipmi", None), ("redfish", None), ("ipmi", "iscsi")])
def test_a_deploy_network_boots_through_ferric_s_own_boot_config(rig, image, protocol, deploy, tmp_path):
    """The machine's firmware (the lab's) reads the iPXE script Ferric's
    `ipxe` interface wrote and Ferric's HTTP boot server serves, loads the
    kernel and ramdisk it names, and runs the agent with the script's
    kernel command line: nothing but the boot config tells it the API."""
    server, cli, lab = rig(http_boot=True)
    raw, images = image
    (tmp_path / "deploy.kernel").write_bytes(os.urandom(300_000))
    (tmp_path / "deploy.initramfs").write_bytes(os.urandom(1_200_000))
    uuid = enroll_real_driver(cli, lab, "m1", protocol, tmp_path, deploy)
    validation = cli.json("node", "validate", uuid)
    assert {v["Interface"]: v["Result"] for v in validation}["boot"] is True, validation

    cli.move(uuid, "manage", "manageable")
    cli.move(uuid, "provide", "available")
    loaded = lab.machine("m1")["last_boot_config"]
    assert loaded["loaded"] == "agent", loaded
    assert loaded["kernel"].endswith(f"/{uuid}/deploy_kernel"), loaded
    assert (loaded["kernel_bytes"], loaded["initrd_bytes"]) == (300_000, 1_200_000), loaded
    assert f"ipa-api-url={server.url}" in loaded["cmdline"], loaded
    assert "BOOTIF=52:54:00:1a:00:01" in loaded["cmdline"], loaded
    script_url = loaded["config_url"]

    cli.ok("node", "set", uuid, "--instance-info", f"image_source={images.url('disk.raw')}",
           "--instance-info", "image_os_hash_algo=sha256", "--instance-info", f"image_os_hash_value={sha256_of(raw)}")
    cli.ok("node", "deploy", uuid)
    node = server.wait_for_node(uuid, lambda n: n["provision_state"] == "active" and n["reservation"] is None, "active", 240)
    assert node["power_state"] == "power on"
    m = lab.machine("m1")
    assert m["last_boot"] == "disk", m
    with open(lab.machines["m1"]["disk"], "rb") as disk:
        assert disk.read(raw.stat().st_size) == raw.read_bytes()
    # Local boot: the deploy's boot config and DHCP options are gone.
    with pytest.raises(urllib.error.HTTPError) as gone:
        urllib.request.urlopen(script_url, timeout=5)
    assert gone.value.code == 404
    host_file = server.data_dir / "dhcp" / "hostsdir" / "ironic-52:54:00:1a:00:01.conf"
    assert host_file.read_text() == "52:54:00:1a:00:01,ignore\n"

    cli.move(uuid, "undeploy", "available")
    assert lab.machine("m1")["last_boot_config"]["loaded"] == "agent"
    history = server.api("GET", f"/v1/nodes/{uuid}/history")[1]["history"]
    assert not [h for h in history if h["severity"] == "ERROR"], history
    written_over_iscsi = any(h["event"].startswith("Image written over iSCSI") for h in history)
    assert written_over_iscsi == (deploy == "iscsi"), history


@pytest.mark.parametrize("deploy", ["direct", "iscsi"])
def test_netboot_keeps_booting_the_instance_through_ferric_s_config(rig, image, tmp_path, deploy):
    """`boot_option: netboot`: the node keeps network-booting; with a
    whole-disk image its script boots the local disk (iPXE `sanboot`), and
    the BMC's boot device stays PXE."""
    server, cli, lab = rig(http_boot=True)
    raw, images = image
    (tmp_path / "deploy.kernel").write_bytes(os.urandom(1000))
    (tmp_path / "deploy.initramfs").write_bytes(os.urandom(1000))
    uuid = enroll_real_driver(cli, lab, "m1", "ipmi", tmp_path)
    cli.move(uuid, "manage", "manageable")
    cli.move(uuid, "provide", "available")
    cli.ok("node", "set", uuid, "--deploy-interface", deploy)
    cli.ok("node", "set", uuid, "--instance-info", f"image_source={images.url('disk.raw')}",
           "--instance-info", "image_os_hash_algo=sha256", "--instance-info", f"image_os_hash_value={sha256_of(raw)}",
           "--instance-info", "capabilities={\"boot_option\": \"netboot\"}")
    cli.ok("node", "deploy", uuid)
    server.wait_for_node(uuid, lambda n: n["provision_state"] == "active" and n["reservation"] is None, "active", 240)
    with open(lab.machines["m1"]["disk"], "rb") as disk:
        assert disk.read(raw.stat().st_size) == raw.read_bytes()
    m = lab.machine("m1")
    assert m["last_boot"] == "disk" and m["last_boot_config"]["loaded"] == "disk", m
    with urllib.request.urlopen(m["last_boot_config"]["config_url"], timeout=5) as r:
        script = r.read().decode()
    assert "\ngoto boot_whole_disk\n" in script, script
    assert "Boot Device Selector : Force PXE" in lab.ipmitool("m1", "chassis", "bootparam", "get", "5")
    cli.move(uuid, "undeploy", "available")
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(m["last_boot_config"]["config_url"], timeout=5)


def test_the_power_sync_restores_power_changed_outside_ferric(rig):
    server, cli, lab = rig(sync_power_state_interval=2, power_failure_recovery_interval=2)
    uuid = enroll(cli, lab, "m1", "ipmi", "lab-sync")
    cli.move(uuid, "manage", "manageable")
    cli.ok("node", "power", "on", uuid)
    server.wait_for_node(uuid, lambda n: n["power_state"] == "power on", "power on", 30)

    # Someone powers the machine off at the BMC: the sync turns it back on.
    assert "Chassis Power is on" in lab.ipmitool("m1", "power", "status")
    lab.ipmitool("m1", "power", "off")
    wait_until(lambda: "Chassis Power is on" in lab.ipmitool("m1", "power", "status"), "the sync to power it back on", 30)
    node = server.node(uuid)
    assert node["power_state"] == "power on" and not node["maintenance"]

    # The BMC stops answering: after power_state_sync_max_retries (3) the
    # node goes to maintenance with Ironic's reason.
    lab.faults("m1", packet_loss=1.0)
    node = server.wait_for_node(uuid, lambda n: n["maintenance"], "maintenance", 120)
    assert node["fault"] == "power failure"
    assert node["maintenance_reason"].startswith(
        f"During sync_power_state, max retries exceeded for node {uuid}, node state None does not match expected "
        "state 'power on'.")

    # It answers again: power-failure recovery takes the node out.
    lab.faults("m1", packet_loss=0.0)
    node = server.wait_for_node(uuid, lambda n: not n["maintenance"], "recovery", 60)
    assert node["fault"] is None and node["power_state"] == "power on"
