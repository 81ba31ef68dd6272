"""Ports, port groups, chassis, drivers and conductors with the stock
client, on the shared server."""

import pytest

from conftest import SHARED_HOST

# Field sets of `show -f json` with Ironic 39 and python-ironicclient 6.3.
PORT_FIELDS = {
    "address", "available_for_dynamic_portgroup", "category", "created_at", "description", "extra",
    "internal_info", "is_smartnic", "local_link_connection", "name", "node_uuid", "physical_network",
    "portgroup_uuid", "pxe_enabled", "updated_at", "uuid", "vendor",
}
PORTGROUP_FIELDS = {
    "address", "category", "created_at", "dynamic_portgroup", "extra", "internal_info", "mode", "name",
    "node_uuid", "physical_network", "properties", "standalone_ports_supported", "updated_at", "uuid",
}
CHASSIS_FIELDS = {"created_at", "description", "extra", "updated_at", "uuid"}
KINDS = ["bios", "boot", "console", "deploy", "firmware", "inspect", "management", "network", "power", "raid",
         "rescue", "storage", "vendor"]


def test_ports(cli, name):
    node = cli.create_node("--name", name())["uuid"]
    address = "52:54:00:c0:ff:01"
    port = cli.json(
        "port", "create", address,
        "--node", node,
        "--extra", "rack=r1",
        "--physical-network", "physnet1",
        "--local-link-connection", "switch_id=0a:1b:2c:3d:4e:5f",
        "--local-link-connection", "port_id=Ethernet3/1",
    )
    uuid = port["uuid"]
    assert port["address"] == address
    assert port["node_uuid"] == node
    assert port["extra"] == {"rack": "r1"}
    assert port["physical_network"] == "physnet1"
    assert port["local_link_connection"] == {"switch_id": "0a:1b:2c:3d:4e:5f", "port_id": "Ethernet3/1"}
    assert port["pxe_enabled"] is True

    assert {"uuid": uuid, "address": address} in cli.json("port", "list")
    assert cli.json("port", "list", "--address", address) == [{"uuid": uuid, "address": address}]
    assert cli.json("port", "list", "--address", "52:54:00:c0:ff:99") == []
    assert [p["uuid"] for p in cli.json("port", "list", "--node", node)] == [uuid]
    [long] = [p for p in cli.json("port", "list", "--long") if p["uuid"] == uuid]
    assert long["node_uuid"] == node

    cli.ok("port", "set", uuid, "--extra", "slot=7", "--pxe-disabled", "--name", "eth0-" + name())
    shown = cli.json("port", "show", uuid)
    assert set(shown) == PORT_FIELDS
    assert shown["extra"] == {"rack": "r1", "slot": 7}
    assert shown["pxe_enabled"] is False
    assert shown["name"].startswith("eth0-")
    assert shown["updated_at"] is not None

    cli.ok("port", "unset", uuid, "--extra", "rack")
    assert cli.json("port", "show", uuid)["extra"] == {"slot": 7}

    assert f"Deleted port {uuid}" in cli.ok("port", "delete", uuid)
    r = cli.fails("port", "show", uuid)
    assert f"Port {uuid} could not be found. (HTTP 404)" in r.stderr


def test_port_groups(cli, name):
    node = cli.create_node("--name", name())["uuid"]
    group_name = name()
    group = cli.json(
        "port", "group", "create",
        "--node", node,
        "--name", group_name,
        "--address", "52:54:00:c0:ff:a0",
        "--mode", "active-backup",
        "--property", "miimon=100",
        "--support-standalone-ports",
    )
    uuid = group["uuid"]
    assert group["node_uuid"] == node
    assert group["name"] == group_name
    assert group["mode"] == "active-backup"
    assert group["properties"] == {"miimon": 100}
    assert group["standalone_ports_supported"] is True

    assert {"uuid": uuid, "address": "52:54:00:c0:ff:a0", "name": group_name} in cli.json("port", "group", "list")
    assert [g["uuid"] for g in cli.json("port", "group", "list", "--node", node)] == [uuid]

    renamed = name()
    cli.ok("port", "group", "set", group_name, "--name", renamed, "--extra", "bond=yes", "--mode", "802.3ad")
    shown = cli.json("port", "group", "show", renamed)
    assert set(shown) == PORTGROUP_FIELDS
    assert shown["uuid"] == uuid
    assert shown["mode"] == "802.3ad"
    assert shown["extra"] == {"bond": "yes"}

    # A port in the group.
    port = cli.json("port", "create", "52:54:00:c0:ff:a1", "--node", node, "--port-group", uuid)
    assert port["portgroup_uuid"] == uuid
    assert [p["uuid"] for p in cli.json("port", "list", "--port-group", uuid)] == [port["uuid"]]
    cli.ok("port", "delete", port["uuid"])

    assert f"Deleted port group {renamed}" in cli.ok("port", "group", "delete", renamed)
    r = cli.fails("port", "group", "show", uuid)
    assert f"Portgroup {uuid} could not be found. (HTTP 404)" in r.stderr


def test_chassis(cli, name):
    chassis = cli.json("chassis", "create", "--description", "rack 1", "--extra", "row=a")
    uuid = chassis["uuid"]
    assert set(chassis) == CHASSIS_FIELDS
    assert chassis["description"] == "rack 1"
    assert chassis["extra"] == {"row": "a"}

    assert {"uuid": uuid, "description": "rack 1"} in cli.json("chassis", "list")

    cli.ok("chassis", "set", uuid, "--description", "rack 2", "--extra", "slot=3")
    shown = cli.json("chassis", "show", uuid)
    assert shown["description"] == "rack 2"
    # The client sends values that parse as JSON as such, like Ironic's.
    assert shown["extra"] == {"row": "a", "slot": 3}
    assert shown["updated_at"] is not None

    node = cli.create_node("--name", name(), "--chassis-uuid", uuid)
    assert node["chassis_uuid"] == uuid
    assert [n["uuid"] for n in cli.json("node", "list", "--chassis", uuid)] == [node["uuid"]]
    cli.ok("node", "delete", node["uuid"])

    assert f"Deleted chassis {uuid}" in cli.ok("chassis", "delete", uuid)
    r = cli.fails("chassis", "show", uuid)
    assert f"Chassis {uuid} could not be found. (HTTP 404)" in r.stderr


def test_drivers(cli):
    drivers = cli.json("driver", "list")
    assert {"name": "fake-hardware", "hosts": SHARED_HOST} in drivers

    shown = cli.json("driver", "show", "fake-hardware")
    assert shown["name"] == "fake-hardware"
    assert shown["type"] == "dynamic"
    assert shown["hosts"] == SHARED_HOST
    assert {f"default_{k}_interface" for k in KINDS} | {f"enabled_{k}_interfaces" for k in KINDS} <= set(shown)
    assert shown["default_deploy_interface"] == "fake"
    assert shown["default_network_interface"] == "noop"
    assert "fake" in shown["enabled_deploy_interfaces"].split(", ")

    r = cli.fails("driver", "show", "nosuch")
    assert "Could not find the following driver(s) or hardware type(s): nosuch. (HTTP 404)" in r.stderr
    r = cli.fails("driver", "property", "list", "nosuch")
    assert "The driver 'nosuch' is unknown. (HTTP 404)" in r.stderr


def test_driver_properties(cli):
    props = cli.json("driver", "property", "list", "fake-hardware")
    assert props == [
        {"property": "B1", "description": "B1 description. Required."},
        {"property": "B2", "description": "B2 description. Required."},
    ]


def test_conductors(cli):
    assert {"hostname": SHARED_HOST, "conductor_group": "", "alive": True} in cli.json("conductor", "list")
    shown = cli.json("conductor", "show", SHARED_HOST)
    assert set(shown) == {"created_at", "updated_at", "hostname", "conductor_group", "drivers", "alive"}
    assert shown["hostname"] == SHARED_HOST
    assert shown["alive"] is True
    assert shown["drivers"] == ["fake-hardware", "ipmi", "redfish", "manual-management"]
    r = cli.fails("conductor", "show", "nosuch")
    assert "Conductor nosuch could not be found. (HTTP 404)" in r.stderr


def test_mac_addresses_take_colons(cli):
    r = cli.fails("port", "list", "--address", "52-54-00-c0-ff-01")
    assert "Expected valid MAC address for address: 52-54-00-c0-ff-01 (HTTP 400)" in r.stderr
