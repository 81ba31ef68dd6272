"""The direct deploy end to end on loopback, no VM: Ferric's conductor, the
real `ferric-agent` on a simulated machine (machines.py: fake power, a disk
file, an agent booted whenever Ferric powers the machine into the
ramdisk), images served over HTTP by a server with faults
(imageserver.py), all driven through the stock `openstack baremetal` CLI.

After each deploy the disk file holds exactly the image's bytes.
"""

from __future__ import annotations

import concurrent.futures
import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import Cli
from imageserver import ImageServer, make_disk_image, sha256_of
from machines import Machine, wait_for

HOST = "conformance-deploy"
MIB = 1 << 20


def config(**sections):
    base = {
        "conductor": {
            "host": HOST,
            "check_provision_state_interval": 1,
            "deploy_callback_timeout": 120,
            "clean_callback_timeout": 120,
        },
        "agent": {
            "post_deploy_get_power_state_retries": 1,
            "post_deploy_get_power_state_retry_interval": 1,
            "ramdisk_heartbeat_timeout": 10,
        },
    }
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    return base


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Images made here with sfdisk and qemu-img, served over loopback."""
    root = tmp_path_factory.mktemp("images")
    make_disk_image(root / "disk.raw", 24, seed=1)
    make_disk_image(root / "slow.raw", 48, seed=2)
    # Half zeros: qemu-img leaves those clusters unallocated in the qcow2.
    make_disk_image(root / "holes.raw", 32, seed=3)
    with open(root / "holes.raw", "r+b") as f:
        f.seek(16 * MIB)
        f.write(bytes(16 * MIB))
    for raw, compat in (("disk", "1.1"), ("holes", "0.10")):
        subprocess.run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", "-o", f"compat={compat}",
                        str(root / f"{raw}.raw"), str(root / f"{raw}.qcow2")], check=True)
    subprocess.run(["qemu-img", "convert", "-q", "-c", "-f", "raw", "-O", "qcow2",
                    str(root / "disk.raw"), str(root / "compressed.qcow2")], check=True)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(root / "huge.qcow2"), "20G"], check=True)
    with open(root / "huge.raw", "wb") as f:
        f.truncate(9 << 30)
    server = ImageServer(root)
    yield root, server
    server.stop()


class Rig:
    """A server, its CLI, and the machines of one test."""

    def __init__(self, spawn, workdir: Path, images, name: str, **sections):
        self.root, self.images = images
        self.images.faults.cut_after.clear()
        self.images.faults.seconds_per_mib = 0.0
        self.images.faults.requests.clear()
        self.server = spawn(name, config(**sections))
        self.cli = Cli(self.server)
        self.workdir = workdir / f"rig-{self.server.name}"
        self.machines: list[Machine] = []

    def machine(self, index: int = 1) -> Machine:
        m = Machine(self.server, self.workdir, f"m{index}", f"52:54:00:aa:{index // 256:02x}:{index % 256:02x}")
        self.machines.append(m)
        return m

    def stop(self) -> None:
        for m in self.machines:
            m.stop()

    def enroll(self, machine: Machine, name: str) -> str:
        node = self.cli.create_node(
            "--name", name, "--deploy-interface", "direct", "--management-interface", "noop",
            "--property", "capabilities=boot_mode:bios",
        )
        uuid = node["uuid"]
        self.cli.ok("port", "create", machine.mac, "--node", uuid)
        machine.watch(uuid)
        return uuid

    def available(self, machine: Machine, name: str) -> str:
        """Enrolled, verified, and cleaned through its agent."""
        uuid = self.enroll(machine, name)
        self.cli.move(uuid, "manage", "manageable")
        self.cli.move(uuid, "provide", "available")
        return uuid

    def set_image(self, uuid: str, image: str, **extra) -> None:
        args = ["node", "set", uuid,
                "--instance-info", f"image_source={self.images.url(image)}",
                "--instance-info", "image_os_hash_algo=sha256",
                "--instance-info", f"image_os_hash_value={extra.pop('sha', sha256_of(self.root / image))}"]
        for key, value in extra.items():
            args += ["--instance-info", f"{key}={value}"]
        self.cli.ok(*args)

    def deploy(self, uuid: str, *args: str, state: str = "active", timeout: float = 120) -> dict:
        self.cli.ok("node", "deploy", uuid, *args)
        return self.server.wait_for_node(
            uuid, lambda n: n["provision_state"] == state and n["reservation"] is None, state, timeout)


@pytest.fixture
def rig(spawn, workdir, images, request):
    made: list[Rig] = []

    def _rig(**sections) -> Rig:
        r = Rig(spawn, workdir, images, request.node.name[5:40], **sections)
        made.append(r)
        return r

    yield _rig
    for r in made:
        r.stop()


def assert_disk_holds(machine: Machine, image: Path, zeros_after: int = MIB) -> None:
    data = image.read_bytes()
    written = machine.disk_bytes(len(data))
    assert written == data, f"the disk of {machine.name} does not hold {image.name}"
    assert machine.disk_bytes(zeros_after, len(data)) == bytes(zeros_after)


def history(server, uuid: str) -> list[str]:
    status, body = server.api("GET", f"/v1/nodes/{uuid}/history?detail=true")
    assert status == 200, body
    return [e["event"] for e in body["history"]]


def test_raw_image_deploys_byte_for_byte_and_undeploys(rig):
    r = rig()
    m = r.machine()
    uuid = r.available(m, "raw-1")
    assert m.boots == 1, "cleaning booted the ramdisk once"
    r.set_image(uuid, "disk.raw")
    node = r.deploy(uuid)
    assert node["power_state"] == "power on"
    assert node["last_error"] is None
    assert_disk_holds(m, r.root / "disk.raw")
    wait_for(lambda: m.instance_boots >= 1, "the machine booting the instance", timeout=5)
    events = history(r.server, uuid)
    for phase in ("The agent looked its node up", "Image write started from", "Image written to the disk",
                  "Boot device set to disk", "Powered off by the agent", "Powered on into the instance",
                  "Deploy done: the node is active"):
        assert any(e.startswith(phase) for e in events), (phase, events)
    # Undeploy cleans through the agent: the partition table is gone.
    r.cli.move(uuid, "undeploy", "available")
    assert m.disk_bytes(MIB) == bytes(MIB)
    shown = r.cli.json("node", "show", uuid)
    assert shown["instance_info"] == {}


@pytest.mark.parametrize("image,raw,fmt", [
    ("disk.qcow2", "disk.raw", "qcow2"),
    ("holes.qcow2", "holes.raw", "qcow2"),
    ("compressed.qcow2", "disk.raw", "qcow2"),
])
def test_qcow2_is_converted_while_it_streams(rig, image, raw, fmt):
    r = rig()
    m = r.machine()
    uuid = r.available(m, "qcow2-1")
    r.set_image(uuid, image, image_disk_format=fmt)
    r.deploy(uuid)
    assert_disk_holds(m, r.root / raw)


def test_config_drive_gets_a_partition_of_its_own(rig):
    r = rig()
    m = r.machine()
    uuid = r.available(m, "cd-1")
    r.set_image(uuid, "disk.raw")
    r.deploy(uuid, "--config-drive", json.dumps({"meta_data": {"hostname": "cd-1"}, "user_data": "#cloud-config\n"}))
    table = json.loads(subprocess.run(["sfdisk", "--json", str(m.disk)], check=True, capture_output=True).stdout)
    parts = table["partitiontable"]["partitions"]
    assert len(parts) == 2, parts
    offset = parts[1]["start"] * 512
    probe = subprocess.run(["blkid", "-p", "-O", str(offset), str(m.disk)], capture_output=True, text=True)
    assert 'LABEL="config-2"' in probe.stdout and 'TYPE="iso9660"' in probe.stdout, probe.stdout
    # The image's own partition is untouched.
    image = (r.root / "disk.raw").read_bytes()
    assert m.disk_bytes(len(image) - MIB, MIB) == image[MIB:]


def test_a_checksum_mismatch_fails_the_deploy(rig):
    r = rig()
    m = r.machine()
    uuid = r.available(m, "sum-1")
    r.set_image(uuid, "disk.raw", sha="0" * 64)
    node = r.deploy(uuid, state="deploy failed")
    assert "Image failed to verify against checksum" in node["last_error"], node["last_error"]
    assert "0" * 64 in node["last_error"]


@pytest.mark.parametrize("image", ["huge.qcow2", "huge.raw"])
def test_an_image_larger_than_the_disk_is_refused_before_writing(rig, image):
    r = rig()
    m = r.machine()
    uuid = r.available(m, f"big-{image.split('.')[1]}")
    r.set_image(uuid, image, sha="a" * 64, image_disk_format=image.split(".")[1])
    node = r.deploy(uuid, state="deploy failed")
    assert "larger than" in node["last_error"] or "too large" in node["last_error"].lower(), node["last_error"]
    assert m.disk_bytes(4 * MIB) == bytes(4 * MIB), "nothing was written"


def test_a_download_cut_off_midway_is_resumed(rig):
    r = rig()
    m = r.machine()
    uuid = r.available(m, "cut-1")
    r.set_image(uuid, "slow.raw")
    r.images.faults.cut_after["slow.raw"] = 20 * MIB + 12345
    r.deploy(uuid)
    assert_disk_holds(m, r.root / "slow.raw")
    ranges = [rng for (method, path, rng) in r.images.faults.requests if method == "GET" and rng]
    assert ranges and ranges[0].startswith(f"bytes={20 * MIB + 12345}-") or any(
        rg.startswith("bytes=") for rg in ranges), r.images.faults.requests


def test_an_agent_killed_mid_write_fails_the_deploy_in_time_then_the_node_recovers(rig):
    r = rig(conductor={"deploy_callback_timeout": 15})
    m = r.machine()
    uuid = r.available(m, "kill-1")
    r.set_image(uuid, "slow.raw")
    r.images.faults.seconds_per_mib = 1.0
    r.cli.ok("node", "deploy", uuid)
    wait_for(lambda: any(e.startswith("Image write started") for e in history(r.server, uuid)), "the write")
    killed = time.monotonic()
    m.cut_power()  # the machine hangs: its agent is gone, no power event
    node = r.server.wait_for_state(uuid, "deploy failed", timeout=60)
    assert time.monotonic() - killed < 15 + 10, "the callback timeout ended it"
    assert node["last_error"] == f"Timeout reached while waiting for callback for node {uuid}"
    r.images.faults.seconds_per_mib = 0.0
    r.cli.move(uuid, "undeploy", "available")
    r.set_image(uuid, "slow.raw")  # undeploy forgets the instance
    node = r.deploy(uuid)
    assert node["last_error"] is None
    assert_disk_holds(m, r.root / "slow.raw")


def test_a_conductor_killed_mid_deploy_picks_it_up_at_the_next_heartbeat(rig):
    r = rig()
    m = r.machine()
    uuid = r.available(m, "crash-1")
    r.set_image(uuid, "slow.raw")
    r.images.faults.seconds_per_mib = 0.25
    r.cli.ok("node", "deploy", uuid)
    wait_for(lambda: any(e.startswith("Image write started") for e in history(r.server, uuid)), "the write")
    assert r.server.kill() == -signal.SIGKILL
    time.sleep(2)
    r.server.restart()
    node = r.server.wait_for_node(uuid, lambda n: n["provision_state"] in ("active", "deploy failed")
                                  and n["reservation"] is None, "the deploy's end", timeout=120)
    assert node["provision_state"] == "active", node["last_error"]
    assert node["last_error"] is None
    assert_disk_holds(m, r.root / "slow.raw")


def test_twenty_nodes_deploy_at_once(rig):
    r = rig()
    machines = [r.machine(i) for i in range(1, 21)]
    uuids = []
    for i, m in enumerate(machines, 1):
        uuids.append(r.enroll(m, f"many-{i}"))
    for verb, state in (("manage", "manageable"), ("provide", "available")):
        for uuid in uuids:
            status, body = r.server.api("PUT", f"/v1/nodes/{uuid}/states/provision", {"target": verb})
            assert status == 202, body
        for uuid in uuids:
            r.server.wait_for_state(uuid, state, timeout=180)
    for uuid in uuids:
        r.set_image(uuid, "disk.raw")
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda u: r.cli.ok("node", "deploy", u), uuids))
    for uuid in uuids:
        node = r.server.wait_for_node(uuid, lambda n: n["provision_state"] in ("active", "deploy failed")
                                      and n["reservation"] is None, "the deploy's end", timeout=300)
        assert node["provision_state"] == "active", node["last_error"]
    for m in machines:
        assert_disk_holds(m, r.root / "disk.raw")


def test_fast_track_keeps_the_agent_from_cleaning_to_deploy(rig):
    r = rig(deploy={"fast_track": True})
    m = r.machine()
    uuid = r.available(m, "fast-1")
    assert m.agent_running(), "the agent stays up after cleaning"
    boots = m.boots
    r.set_image(uuid, "disk.raw")
    r.deploy(uuid)
    assert m.boots == boots, "no reboot into the ramdisk"
    assert_disk_holds(m, r.root / "disk.raw")


def test_manual_cleaning_runs_the_agents_step(rig):
    r = rig(conductor={"automated_clean": False})
    m = r.machine()
    uuid = r.enroll(m, "clean-1")
    r.cli.move(uuid, "manage", "manageable")
    with open(m.disk, "r+b") as f:
        f.write(b"\x55" * MIB)
    r.cli.move(uuid, "clean", "manageable", "--clean-steps",
               json.dumps([{"interface": "deploy", "step": "erase_devices_metadata"}]))
    assert m.disk_bytes(MIB) == bytes(MIB)
    assert r.cli.json("node", "show", uuid)["last_error"] is None


def test_inspection_through_the_agent(rig):
    r = rig()
    m = r.machine()
    node = r.cli.create_node("--name", "inspect-1", "--inspect-interface", "agent",
                             "--deploy-interface", "direct", "--management-interface", "noop")
    uuid = node["uuid"]
    m.watch(uuid)
    r.cli.move(uuid, "manage", "manageable")
    # No port yet: the agent posts its inventory, and the node is found
    # by... its UUID? No: inspection by MAC needs a port; Ferric, as
    # Ironic, looks the node up by the inventory's MACs or BMC address.
    r.cli.ok("port", "create", m.mac, "--node", uuid)
    r.cli.move(uuid, "inspect", "manageable")
    shown = r.cli.json("node", "show", uuid)
    props = shown["properties"]
    assert props["local_gb"] == 7, props
    assert props["cpus"] >= 1 and props["memory_mb"] > 0 and props["cpu_arch"], props
    status, inventory = r.server.api("GET", f"/v1/nodes/{uuid}/inventory")
    assert status == 200
    assert inventory["inventory"]["interfaces"][0]["mac_address"] == m.mac
    assert inventory["inventory"]["disks"][0]["size"] == 8 << 30
    # The stock client's `node inventory save`, to stdout and to a file.
    assert json.loads(r.cli.ok("node", "inventory", "save", uuid)) == inventory
    saved = r.root / "inventory.json"
    r.cli.ok("node", "inventory", "save", uuid, "--file", str(saved))
    assert json.loads(saved.read_text()) == inventory
