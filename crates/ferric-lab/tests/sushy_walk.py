"""Drives the virtual BMC with Python sushy, as Ironic's redfish driver does.

Run by tests/sushy.rs: python sushy_walk.py BMC_URL ARGV_FILE
m1 (admin/password) has a blank disk; m2 (root/calvin) a signed one.
Prints one line per step; any failure raises (non-zero exit).
"""

import json
import sys
import time
import urllib.request

import sushy
from sushy import auth
from sushy import exceptions

URL, ARGV_FILE = sys.argv[1], sys.argv[2]


def step(text):
    print("step:", text, flush=True)


def lab(name):
    with urllib.request.urlopen(f"{URL}/lab/machines/{name}") as answer:
        return json.load(answer)


def set_faults(name, faults):
    request = urllib.request.Request(
        f"{URL}/lab/machines/{name}/faults", data=json.dumps(faults).encode(),
        method="PUT", headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request).close()


def agent_runs():
    try:
        with open(ARGV_FILE) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def wait_for(what, check, timeout=20):
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"never {what}")
        time.sleep(0.05)


def connect(user, password, kind=auth.SessionAuth):
    return sushy.Sushy(URL, auth=kind(username=user, password=password),
                       server_side_retries=1, server_side_retries_delay=0)


step("session login and system walk")
root = connect("admin", "password")
systems = root.get_system_collection().get_members()
assert [s.identity for s in systems] == ["m1"], [s.identity for s in systems]
m1 = root.get_system("/redfish/v1/Systems/m1")
assert m1.power_state == sushy.PowerState.OFF, m1.power_state
assert m1.uuid, m1.uuid
nics = m1.ethernet_interfaces.get_members()
assert [n.mac_address for n in nics] == ["52:54:00:00:00:01"], nics

step("power on: the agent starts")
m1.reset_system(sushy.ResetType.ON)
wait_for("the agent ran", lambda: len(agent_runs()) == 1)
assert "--mac 52:54:00:00:00:01" in agent_runs()[0], agent_runs()
m1.refresh()
assert m1.power_state == sushy.PowerState.ON
state = lab("m1")
assert state["last_boot"] == "pxe" and state["agent_pid"], state

step("boot override pxe once, power cycle: a pxe boot")
m1.set_system_boot_options(sushy.BootSource.PXE,
                           enabled=sushy.BootSourceOverrideEnabled.ONCE,
                           mode=sushy.BootSourceOverrideMode.UEFI)
m1.refresh()
assert m1.boot.target == sushy.BootSource.PXE, m1.boot.target
assert m1.boot.enabled == sushy.BootSourceOverrideEnabled.ONCE
assert m1.boot.mode == sushy.BootSourceOverrideMode.UEFI
first_pid = state["agent_pid"]
m1.reset_system(sushy.ResetType.POWER_CYCLE)
state = lab("m1")
assert state["last_boot"] == "pxe" and state["boot_count"] == 2, state
assert state["boot_override"]["device"] == "none", state
assert state["agent_pid"] and state["agent_pid"] != first_pid, state
wait_for("the agent ran again", lambda: len(agent_runs()) == 2)
m1.refresh()
assert m1.boot.enabled == sushy.BootSourceOverrideEnabled.DISABLED

step("power off")
m1.reset_system(sushy.ResetType.FORCE_OFF)
m1.refresh()
assert m1.power_state == sushy.PowerState.OFF
assert lab("m1")["agent_pid"] is None

step("m2 with basic auth: hdd persistent boots its signed disk, no agent")
basic = connect("root", "calvin", auth.BasicAuth)
m2 = basic.get_system("/redfish/v1/Systems/m2")
m2.set_system_boot_options(sushy.BootSource.HDD,
                           enabled=sushy.BootSourceOverrideEnabled.CONTINUOUS)
m2.reset_system(sushy.ResetType.ON)
state = lab("m2")
assert state["last_boot"] == "disk" and state["agent_pid"] is None, state
assert state["boot_override"] == {"device": "disk", "persistent": True}, state
assert len(agent_runs()) == 2, agent_runs()
try:
    m2.set_system_boot_options(sushy.BootSource.UEFI_HTTP)
    raise AssertionError("UefiHttp is not allowed")
except exceptions.InvalidParameterValueError:
    pass

step("virtual media insert and eject")
manager = basic.get_manager("/redfish/v1/Managers/m2")
media = manager.virtual_media.get_members()
assert [m.identity for m in media] == ["Cd"], media
cd = media[0]
cd.insert_media("http://images.test/boot.iso")
cd.refresh()
assert cd.inserted and cd.image == "http://images.test/boot.iso", cd.image
cd.eject_media()
cd.refresh()
assert not cd.inserted

step("sessions listed, limited and deleted")
service = root.get_session_service()
assert len(service.sessions.get_members()) == 1
more = [connect("admin", "password") for _ in range(3)]
assert lab("m1")["redfish_sessions"] == 4
set_faults("m1", {"max_sessions": 4})
try:
    connect("admin", "password")
    raise AssertionError("a 5th session was created")
except exceptions.HTTPError as e:
    assert e.status_code == 503, e
assert lab("m1")["redfish_sessions"] == 4
for client in more + [root]:
    client._auth.close()
assert lab("m1")["redfish_sessions"] == 0, lab("m1")

print("sushy walk: ok")
