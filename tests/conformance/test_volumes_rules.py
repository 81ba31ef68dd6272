"""Volume connectors and targets (API 1.32) and inspection rules (1.96)
with the stock client, on the shared server."""

import uuid as uuidlib

CONNECTOR_FIELDS = {"uuid", "node_uuid", "type", "connector_id", "extra", "created_at", "updated_at"}
TARGET_FIELDS = {
    "uuid", "node_uuid", "volume_type", "properties", "boot_index", "extra", "volume_id", "created_at", "updated_at",
}


def _power(cli, node, state):
    cli.ok("node", "power", state, node)
    cli.server.wait_for_node(node, lambda n: n["power_state"] == f"power {state}" and not n["target_power_state"],
                             f"power {state}")


def test_volume_connectors(cli, name):
    node = cli.create_node("--name", name())["uuid"]
    iqn = f"iqn.2017-07.org.openstack:01:{uuidlib.uuid4().hex[:12]}"
    c = cli.json("volume", "connector", "create", "--node", node, "--type", "iqn", "--connector-id", iqn,
                 "--extra", "rack=r1")
    uuid = c["uuid"]
    assert set(c) == CONNECTOR_FIELDS
    assert (c["node_uuid"], c["type"], c["connector_id"], c["extra"]) == (node, "iqn", iqn, {"rack": "r1"})

    r = cli.fails("volume", "connector", "create", "--node", node, "--type", "iqn", "--connector-id", iqn)
    assert f"A volume connector with type iqn and connector ID {iqn} already exists. (HTTP 409)" in r.stderr
    missing = str(uuidlib.uuid4())
    r = cli.fails("volume", "connector", "create", "--node", missing, "--type", "ip", "--connector-id", "10.0.0.9")
    assert f"Invalid input for field/attribute node_uuid. Value: '{missing}'." in r.stderr

    row = {"uuid": uuid, "node_uuid": node, "type": "iqn", "connector_id": iqn}
    assert cli.json("volume", "connector", "list", "--node", node) == [row]
    assert row in cli.json("volume", "connector", "list")
    [long] = cli.json("volume", "connector", "list", "--node", node, "--long")
    assert long["extra"] == {"rack": "r1"}
    assert cli.json("volume", "connector", "list", "--node", node, "--fields", "uuid", "type") == [
        {"uuid": uuid, "type": "iqn"}
    ]
    assert cli.json("volume", "connector", "show", uuid, "--fields", "connector_id") == {"connector_id": iqn}

    # A node of unknown power state: Ironic changes volumes only when off.
    r = cli.fails("volume", "connector", "set", uuid, "--extra", "slot=3")
    assert (f'The requested action "volume connector update" can not be performed on node "{node}" while it is '
            'in state "None". (HTTP 400)') in r.stderr
    _power(cli, node, "off")
    cli.ok("volume", "connector", "set", uuid, "--extra", "slot=3", "--type", "iqn")
    cli.ok("volume", "connector", "unset", uuid, "--extra", "rack")
    shown = cli.json("volume", "connector", "show", uuid)
    assert shown["extra"] == {"slot": 3}
    assert shown["updated_at"] is not None

    cli.move(node, "manage", "manageable")
    cli.move(node, "provide", "available")
    _power(cli, node, "on")
    r = cli.fails("volume", "connector", "delete", uuid)
    assert (f'The requested action "volume connector deletion" can not be performed on node "{node}" while it is '
            'in state "power on". (HTTP 400)') in r.stderr
    _power(cli, node, "off")
    assert f"Deleted volume connector {uuid}" in cli.ok("volume", "connector", "delete", uuid)
    r = cli.fails("volume", "connector", "show", uuid)
    assert f"Volume connector {uuid} could not be found. (HTTP 404)" in r.stderr


def test_volume_targets(cli, name):
    node = cli.create_node("--name", name())["uuid"]
    volume = str(uuidlib.uuid4())
    t = cli.json("volume", "target", "create", "--node", node, "--type", "iscsi", "--boot-index", "0",
                 "--volume-id", volume, "--property", "target_iqn=iqn.x", "--property", "auth_password=hunter2")
    uuid = t["uuid"]
    assert set(t) == TARGET_FIELDS
    assert t["properties"] == {"target_iqn": "iqn.x", "auth_password": "******"}
    assert (t["boot_index"], t["volume_type"], t["volume_id"]) == (0, "iscsi", volume)

    r = cli.fails("volume", "target", "create", "--node", node, "--type", "iscsi", "--boot-index", "0",
                  "--volume-id", "other")
    assert "A volume target with boot index '0' for the same node already exists. (HTTP 409)" in r.stderr

    assert cli.json("volume", "target", "list", "--node", node) == [
        {"uuid": uuid, "node_uuid": node, "volume_type": "iscsi", "boot_index": 0, "volume_id": volume}
    ]
    [long] = cli.json("volume", "target", "list", "--node", node, "--long")
    assert long["properties"] == {"target_iqn": "iqn.x", "auth_password": "******"}

    _power(cli, node, "on")
    r = cli.fails("volume", "target", "set", uuid, "--boot-index", "1")
    assert (f'The requested action "volume target update" can not be performed on node "{node}" while it is '
            'in state "power on". (HTTP 400)') in r.stderr
    _power(cli, node, "off")
    cli.ok("volume", "target", "set", uuid, "--boot-index", "1", "--property", "lun=2")
    cli.ok("volume", "target", "unset", uuid, "--property", "target_iqn")
    shown = cli.json("volume", "target", "show", uuid)
    assert shown["boot_index"] == 1
    assert shown["properties"] == {"auth_password": "******", "lun": 2}

    # An enrolled node's volumes may go even while it is powered on.
    _power(cli, node, "on")
    assert f"Deleted volume target {uuid}" in cli.ok("volume", "target", "delete", uuid)
    r = cli.fails("volume", "target", "show", uuid)
    assert f"Volume target {uuid} could not be found. (HTTP 404)" in r.stderr


def test_volumes_go_with_their_node(cli, name):
    node = cli.create_node("--name", name())["uuid"]
    c = cli.json("volume", "connector", "create", "--node", node, "--type", "wwpn",
                 "--connector-id", uuidlib.uuid4().hex[:16])
    t = cli.json("volume", "target", "create", "--node", node, "--type", "fibre_channel", "--boot-index", "0",
                 "--volume-id", "vol-1")
    cli.ok("node", "delete", node)
    assert f"Volume connector {c['uuid']} could not be found." in cli.fails("volume", "connector", "show",
                                                                            c["uuid"]).stderr
    assert f"Volume target {t['uuid']} could not be found." in cli.fails("volume", "target", "show",
                                                                         t["uuid"]).stderr


def test_volume_gate(cli):
    status, body = cli.server.api("GET", "/v1/volume", version="1.31")
    assert status == 404
    status, body = cli.server.api("GET", "/v1/volume/connectors", version="1.31")
    assert status == 404
    status, body = cli.server.api("GET", "/v1/volume", version="1.32")
    assert status == 200
    assert set(body) == {"links", "connectors", "targets"}
    r = cli.fails("--os-baremetal-api-version", "1.31", "volume", "connector", "list")
    assert "404" in r.stderr
