"""The iSCSI deploy end to end on loopback, no VM: the simulated machines of
test_direct_deploy (machines.py), but `--deploy-interface iscsi`: the agent
exports its disk file as an iSCSI target (Ferric's own, in ferric-agent),
and Ferric's conductor logs in with CHAP and writes the image itself,
driven through the stock `openstack baremetal` CLI.

Each simulated agent listens on 127.0.0.1; when several run on one host the
portal port 3260 is taken, and each agent's target takes a free port and
reports it in the command's result.

Config drives and partition images are written by the conductor too: a
whole-disk image's config drive gets a partition of its own, and a partition
image is partitioned over iSCSI (table, swap, the image in the root
partition), then network-booted with root= the UUID the conductor found.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from machines import wait_for
from test_direct_deploy import MIB, Rig, assert_disk_holds, history, images, rig  # noqa: F401

ROOT_FS_UUID = "3f0c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b"


def enroll_iscsi(r: Rig, machine, name: str, *args: str) -> str:
    node = r.cli.create_node(
        "--name", name, "--deploy-interface", "iscsi", "--management-interface", "noop",
        "--property", "capabilities=boot_mode:bios", *args,
    )
    uuid = node["uuid"]
    r.cli.ok("port", "create", machine.mac, "--node", uuid)
    machine.watch(uuid)
    return uuid


def available_iscsi(r: Rig, machine, name: str, *args: str) -> str:
    uuid = enroll_iscsi(r, machine, name, *args)
    r.cli.move(uuid, "manage", "manageable")
    r.cli.move(uuid, "provide", "available")
    return uuid


def test_raw_image_is_written_by_the_conductor_over_iscsi(rig):
    r = rig()
    m = r.machine()
    uuid = available_iscsi(r, m, "iscsi-raw")
    assert r.cli.json("node", "show", uuid)["deploy_interface"] == "iscsi"
    r.set_image(uuid, "disk.raw")
    node = r.deploy(uuid)
    assert node["last_error"] is None
    assert_disk_holds(m, r.root / "disk.raw")
    events = history(r.server, uuid)
    for phase in ("iSCSI target started on the agent", "Image written over iSCSI (raw image",
                  "Boot device set to disk", "Powered on into the instance", "Deploy done: the node is active"):
        assert any(e.startswith(phase) for e in events), (phase, events)
    assert not any("Image write started from" in e for e in events), "the agent did not download it"
    log = m.agent_log()
    assert "iSCSI target started" in log and "chap=true" in log, log
    r.cli.move(uuid, "undeploy", "available")
    assert m.disk_bytes(MIB) == bytes(MIB)


@pytest.mark.parametrize("image,raw", [("holes.qcow2", "holes.raw")])
def test_qcow2_is_converted_by_the_conductor(rig, image, raw):
    r = rig()
    m = r.machine()
    uuid = available_iscsi(r, m, "iscsi-qcow2")
    r.set_image(uuid, image, image_disk_format="qcow2")
    r.deploy(uuid)
    assert_disk_holds(m, r.root / raw)


def test_a_checksum_mismatch_says_the_iscsi_write_failed(rig):
    r = rig()
    m = r.machine()
    uuid = available_iscsi(r, m, "iscsi-sum")
    r.set_image(uuid, "disk.raw", sha="0" * 64)
    node = r.deploy(uuid, state="deploy failed")
    assert "iSCSI deploy failed" in node["last_error"], node["last_error"]
    assert "Image failed to verify against checksum" in node["last_error"], node["last_error"]
    assert "0" * 64 in node["last_error"]


def sfdisk_partitions(disk: Path) -> list[dict]:
    out = subprocess.run(["sfdisk", "--json", str(disk)], check=True, capture_output=True).stdout
    return json.loads(out)["partitiontable"]["partitions"]


def blkid_at(disk: Path, offset: int) -> str:
    return subprocess.run(["blkid", "-p", "-O", str(offset), str(disk)], capture_output=True, text=True).stdout


def test_config_drive_gets_a_partition_of_its_own_over_iscsi(rig):
    r = rig()
    m = r.machine()
    uuid = available_iscsi(r, m, "iscsi-cd")
    r.set_image(uuid, "disk.raw")
    node = r.deploy(uuid, "--config-drive", json.dumps({"meta_data": {"hostname": "iscsi-cd"},
                                                         "user_data": "#cloud-config\n"}))
    assert node["last_error"] is None
    parts = sfdisk_partitions(m.disk)
    assert len(parts) == 2, parts
    probe = blkid_at(m.disk, parts[1]["start"] * 512)
    assert 'LABEL="config-2"' in probe and 'TYPE="iso9660"' in probe, probe
    # The image's own partition is untouched.
    image = (r.root / "disk.raw").read_bytes()
    assert m.disk_bytes(len(image) - MIB, MIB) == image[MIB:]
    events = history(r.server, uuid)
    assert any(e.startswith("Image written over iSCSI (raw image") and e.endswith("; config drive written)")
               for e in events), events
    assert not any("Image write started from" in e for e in events), "the agent did not write it"
    # The disk identifier the conductor read, as the agent reports it for whole disks.
    signature = int.from_bytes(image[440:444], "little")
    assert node["driver_internal_info"]["root_uuid_or_disk_id"] == f"0x{signature:08x}"


def partition_image(root: Path) -> Path:
    """A 16 MiB ext4 file system with a known UUID, and the kernel and
    ramdisk it is network-booted with."""
    path = root / "part.ext4"
    if not path.exists():
        with open(path, "wb") as f:
            f.truncate(16 * MIB)
        subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "root", "-U", ROOT_FS_UUID, str(path)], check=True)
        (root / "part.kernel").write_bytes(os.urandom(5000))
        (root / "part.initramfs").write_bytes(os.urandom(7000))
    return path


def test_a_partition_image_is_partitioned_by_the_conductor_and_netboots(rig, tmp_path):
    r = rig(deploy={"http_url": "http://127.0.0.1:9/httpboot"})
    m = r.machine()
    (tmp_path / "deploy.kernel").write_bytes(os.urandom(1000))
    (tmp_path / "deploy.initramfs").write_bytes(os.urandom(1000))
    uuid = available_iscsi(
        r, m, "iscsi-part", "--boot-interface", "ipxe",
        "--driver-info", f"deploy_kernel=file://{tmp_path / 'deploy.kernel'}",
        "--driver-info", f"deploy_ramdisk={tmp_path / 'deploy.initramfs'}",
    )
    image = partition_image(r.root)
    r.set_image(uuid, image.name, kernel=r.images.url("part.kernel"), ramdisk=r.images.url("part.initramfs"),
                root_gb=1, swap_mb=64, capabilities='{"boot_option": "netboot"}')
    node = r.deploy(uuid)
    assert node["last_error"] is None

    # IPA's layout for BIOS on MBR: swap, then root; the image in the root partition.
    parts = sfdisk_partitions(m.disk)
    assert [p["size"] * 512 for p in parts] == [64 * MIB, 1024 * MIB], parts
    swap, root = (p["start"] * 512 for p in parts)
    assert m.disk_bytes(16 * MIB, root) == image.read_bytes(), "the root partition holds the image"
    probe = blkid_at(m.disk, root)
    assert f'UUID="{ROOT_FS_UUID}"' in probe and 'TYPE="ext4"' in probe, probe
    probe = blkid_at(m.disk, swap)
    assert 'TYPE="swap"' in probe and 'LABEL="swap1"' in probe, probe

    # The conductor recorded the root itself, and the netboot config boots it.
    assert node["driver_internal_info"]["root_uuid_or_disk_id"] == ROOT_FS_UUID
    node_dir = r.server.data_dir / "httpboot" / uuid
    script = (node_dir / "config").read_text()
    assert "\ngoto boot_partition\n" in script, script
    assert f"root=UUID={ROOT_FS_UUID} ro text" in script, script
    assert (node_dir / "kernel").read_bytes() == (r.root / "part.kernel").read_bytes()
    assert (node_dir / "ramdisk").read_bytes() == (r.root / "part.initramfs").read_bytes()
    events = history(r.server, uuid)
    for phase in ("iSCSI target started on the agent",
                  "Image written over iSCSI (raw image",
                  "Boot prepared to netboot the instance", "Deploy done: the node is active"):
        assert any(e.startswith(phase) for e in events), (phase, events)
    assert any(f"into the root partition, UUID {ROOT_FS_UUID}" in e for e in events), events
    assert not any("Image write started from" in e for e in events), "the agent did not write it"

    r.cli.move(uuid, "undeploy", "available")
    assert m.disk_bytes(MIB) == bytes(MIB)
    assert not (node_dir / "kernel").exists()


def test_local_boot_of_a_partition_image_is_refused_up_front(rig):
    r = rig()
    m = r.machine()
    uuid = available_iscsi(r, m, "iscsi-refuse")
    r.set_image(uuid, "disk.raw", kernel="http://x/k", ramdisk="http://x/r", root_gb=1)
    result = r.cli.fails("node", "deploy", uuid)
    assert "boots partition images from the network only" in result.output, result.output
    assert "boot_option to netboot" in result.output, result.output
    assert r.cli.json("node", "show", uuid)["provision_state"] == "available"
    # Netboot, but no root size: refused too, naming what is missing.
    r.cli.ok("node", "unset", uuid, "--instance-info", "root_gb")
    r.cli.ok("node", "set", uuid, "--instance-info", 'capabilities={"boot_option": "netboot"}')
    result = r.cli.fails("node", "deploy", uuid)
    assert "instance_info.root_gb" in result.output, result.output
    assert r.cli.json("node", "show", uuid)["provision_state"] == "available"


def test_deploys_beyond_the_limit_wait_their_turn(rig):
    r = rig(iscsi={"max_concurrent_deploys": 2})
    machines = [r.machine(i) for i in range(1, 5)]
    uuids = [enroll_iscsi(r, m, f"iscsi-many-{i}") for i, m in enumerate(machines, 1)]
    for verb, state in (("manage", "manageable"), ("provide", "available")):
        for uuid in uuids:
            status, body = r.server.api("PUT", f"/v1/nodes/{uuid}/states/provision", {"target": verb})
            assert status == 202, body
        for uuid in uuids:
            r.server.wait_for_state(uuid, state, timeout=180)
    for uuid in uuids:
        r.set_image(uuid, "disk.raw")
    with concurrent.futures.ThreadPoolExecutor(5) as pool:
        list(pool.map(lambda u: r.cli.ok("node", "deploy", u), uuids))
    for uuid in uuids:
        node = r.server.wait_for_node(uuid, lambda n: n["provision_state"] in ("active", "deploy failed")
                                      and n["reservation"] is None, "the deploy's end", timeout=300)
        assert node["provision_state"] == "active", node["last_error"]
    for m in machines:
        assert_disk_holds(m, r.root / "disk.raw")


def test_a_conductor_killed_mid_write_writes_again_at_the_next_heartbeat(rig):
    r = rig()
    m = r.machine()
    uuid = available_iscsi(r, m, "iscsi-crash")
    r.set_image(uuid, "slow.raw")
    r.images.faults.seconds_per_mib = 0.25
    r.cli.ok("node", "deploy", uuid)
    wait_for(lambda: any(e.startswith("iSCSI target started") for e in history(r.server, uuid)), "the write")
    time.sleep(1)
    assert r.server.kill() == -signal.SIGKILL
    time.sleep(2)
    r.images.faults.seconds_per_mib = 0.0
    r.server.restart()
    node = r.server.wait_for_node(uuid, lambda n: n["provision_state"] in ("active", "deploy failed")
                                  and n["reservation"] is None, "the deploy's end", timeout=120)
    assert node["provision_state"] == "active", node["last_error"]
    assert_disk_holds(m, r.root / "slow.raw")
