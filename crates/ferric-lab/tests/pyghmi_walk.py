"""Drives one machine of the virtual BMC with pyghmi's IPMI client.

Run by tests/ipmi.rs: python pyghmi_walk.py PORT USER PASSWORD
Prints one line per step; any failure raises (non-zero exit).
"""

import sys

from pyghmi.ipmi import command

PORT, USER, PASSWORD = int(sys.argv[1]), sys.argv[2], sys.argv[3]

ipmi = command.Command(bmc="127.0.0.1", userid=USER, password=PASSWORD,
                       port=PORT)
assert ipmi.get_power()["powerstate"] == "off", ipmi.get_power()
print("step: power on", flush=True)
ipmi.set_power("on", wait=False)
assert ipmi.get_power()["powerstate"] == "on", ipmi.get_power()
print("step: boot device", flush=True)
ipmi.set_bootdev("network", persist=True, uefiboot=True)
boot = ipmi.get_bootdev()
assert boot["bootdev"] == "network" and boot["persistent"], boot
assert boot.get("uefimode") is True, boot
print("step: power off", flush=True)
ipmi.set_power("off", wait=False)
assert ipmi.get_power()["powerstate"] == "off", ipmi.get_power()
ipmi.ipmi_session.logout()
print("pyghmi walk: ok")
