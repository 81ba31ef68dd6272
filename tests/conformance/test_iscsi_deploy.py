"""The iSCSI deploy end to end on loopback, no VM: the simulated machines of
test_direct_deploy (machines.py), but `--deploy-interface iscsi`: the agent
exports its disk file as an iSCSI target (Ferric's own, in ferric-agent),
and Ferric's conductor logs in with CHAP and writes the image itself,
driven through the stock `openstack baremetal` CLI.

Each simulated agent listens on 127.0.0.1; when several run on one host the
portal port 3260 is taken, and each agent's target takes a free port and
reports it in the command's result.
"""

from __future__ import annotations

import concurrent.futures
import signal
import time

import pytest

from machines import wait_for
from test_direct_deploy import MIB, Rig, assert_disk_holds, history, images, rig  # noqa: F401


def enroll_iscsi(r: Rig, machine, name: str) -> str:
    node = r.cli.create_node(
        "--name", name, "--deploy-interface", "iscsi", "--management-interface", "noop",
        "--property", "capabilities=boot_mode:bios",
    )
    uuid = node["uuid"]
    r.cli.ok("port", "create", machine.mac, "--node", uuid)
    machine.watch(uuid)
    return uuid


def available_iscsi(r: Rig, machine, name: str) -> str:
    uuid = enroll_iscsi(r, machine, name)
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


@pytest.mark.parametrize("image,raw", [("holes.qcow2", "holes.raw"), ("compressed.qcow2", "disk.raw")])
def test_qcow2_is_converted_by_the_conductor(rig, image, raw):
    r = rig()
    m = r.machine()
    uuid = available_iscsi(r, m, "iscsi-qcow2")
    r.set_image(uuid, image, image_disk_format="qcow2")
    r.deploy(uuid)
    assert_disk_holds(m, r.root / raw)


def test_an_existing_node_is_switched_to_iscsi_with_node_set(rig):
    r = rig()
    m = r.machine()
    uuid = r.available(m, "switch-1")
    r.cli.ok("node", "set", uuid, "--deploy-interface", "iscsi")
    r.set_image(uuid, "disk.raw")
    r.deploy(uuid)
    assert_disk_holds(m, r.root / "disk.raw")
    assert any(e.startswith("Image written over iSCSI") for e in history(r.server, uuid))


def test_a_checksum_mismatch_says_the_iscsi_write_failed(rig):
    r = rig()
    m = r.machine()
    uuid = available_iscsi(r, m, "iscsi-sum")
    r.set_image(uuid, "disk.raw", sha="0" * 64)
    node = r.deploy(uuid, state="deploy failed")
    assert "iSCSI deploy failed" in node["last_error"], node["last_error"]
    assert "Image failed to verify against checksum" in node["last_error"], node["last_error"]
    assert "0" * 64 in node["last_error"]


def test_partition_images_and_config_drives_are_refused_up_front(rig):
    r = rig()
    m = r.machine()
    uuid = available_iscsi(r, m, "iscsi-refuse")
    r.set_image(uuid, "disk.raw", kernel="http://x/k", ramdisk="http://x/r")
    result = r.cli.fails("node", "deploy", uuid)
    assert "whole-disk images only" in result.output, result.output
    assert r.cli.json("node", "show", uuid)["provision_state"] == "available"


def test_ten_deploys_at_once_wait_their_turn(rig):
    r = rig(iscsi={"max_concurrent_deploys": 3})
    machines = [r.machine(i) for i in range(1, 11)]
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
