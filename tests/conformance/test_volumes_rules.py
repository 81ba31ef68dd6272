"""Volume connectors and targets (API 1.32) and inspection rules (1.96)
with the stock client, on the shared server."""

import json
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


RULE_FIELDS = {"uuid", "description", "priority", "sensitive", "phase", "actions", "conditions", "created_at",
               "updated_at"}
ACTIONS = '[{"op": "set-attribute", "args": {"path": "properties/vendor", "value": "{inventory[system_vendor][manufacturer]}"}}]'
CONDITIONS = '[{"op": "!is-empty", "args": {"value": "{inventory[system_vendor][manufacturer]}"}}]'


def test_inspection_rules(cli, name):
    description = name()
    rule = cli.json("inspection", "rule", "create", "--description", description, "--conditions", CONDITIONS,
                    "--actions", ACTIONS)
    uuid = rule["uuid"]
    assert set(rule) == RULE_FIELDS
    assert (rule["description"], rule["priority"], rule["phase"], rule["sensitive"]) == (description, 0, "main", False)
    assert rule["conditions"] == [{"op": "!is-empty", "args": {"value": "{inventory[system_vendor][manufacturer]}"}}]

    # The client sends --priority and --sensitive as strings, --conditions
    # as null when not given; Ironic's schema refuses all three.
    r = cli.fails("inspection", "rule", "create", "--priority", "10", "--conditions", "[]", "--actions", ACTIONS)
    assert "Schema error: '10' is not of type 'integer' (HTTP 400)" in r.stderr
    r = cli.fails("inspection", "rule", "create", "--sensitive", "true", "--conditions", "[]", "--actions", ACTIONS)
    assert "Schema error: 'true' is not of type 'boolean', 'null' (HTTP 400)" in r.stderr
    r = cli.fails("inspection", "rule", "create", "--actions", ACTIONS)
    assert "Schema error: None is not of type 'array' (HTTP 400)" in r.stderr
    r = cli.fails("inspection", "rule", "create", "--conditions", "[]", "--actions", '[{"op": "log", "args": {}}]')
    assert "missing required argument(s): msg (HTTP 400)" in r.stderr
    r = cli.fails("inspection", "rule", "create", "--phase", "late", "--conditions", "[]", "--actions", ACTIONS)
    assert "Invalid phase: late. Valid phases are: main (HTTP 400)" in r.stderr

    assert {"uuid": uuid, "description": description} in cli.json("inspection", "rule", "list")
    [long] = [x for x in cli.json("inspection", "rule", "list", "--long") if x["uuid"] == uuid]
    assert long["actions"] == json.loads(ACTIONS)
    assert cli.json("inspection", "rule", "show", uuid, "--fields", "uuid", "priority") == {"uuid": uuid, "priority": 0}

    cli.ok("inspection", "rule", "set", uuid, "--priority", "50", "--description", description + "-x")
    shown = cli.json("inspection", "rule", "show", uuid)
    assert (shown["priority"], shown["description"]) == (50, description + "-x")
    assert shown["updated_at"] is not None
    r = cli.fails("inspection", "rule", "set", uuid, "--priority", "10000")
    assert "Priority must be between 0 and 9999 for user-defined rules. (HTTP 400)" in r.stderr
    cli.ok("inspection", "rule", "unset", uuid, "--description")
    assert cli.json("inspection", "rule", "show", uuid)["description"] is None

    assert f"Deleted rule {uuid}" in cli.ok("inspection", "rule", "delete", uuid)
    r = cli.fails("inspection", "rule", "show", uuid)
    assert f"Rule {uuid} could not be found. (HTTP 404)" in r.stderr


def test_sensitive_inspection_rules(cli):
    status, body = cli.server.api("POST", "/v1/inspection_rules", {
        "sensitive": True, "conditions": [],
        "actions": [{"op": "set-attribute", "args": {"path": "driver_info/ipmi_password", "value": "s3cret"}}],
    })
    assert status == 201, body
    uuid = body["uuid"]
    shown = cli.json("inspection", "rule", "show", uuid)
    assert (shown["sensitive"], shown["actions"], shown["conditions"]) == (True, None, None)
    assert "s3cret" not in cli.ok("inspection", "rule", "list", "--long")
    status, body = cli.server.api("PATCH", f"/v1/inspection_rules/{uuid}",
                                  [{"op": "replace", "path": "/sensitive", "value": False}])
    assert status == 400
    assert "Inspection rules cannot have the sensitive flag unset." in body["error_message"]
    cli.ok("inspection", "rule", "delete", uuid)


def test_inspection_rules_gate(cli):
    status, _ = cli.server.api("GET", "/v1/inspection_rules", version="1.95")
    assert status == 404
    status, _ = cli.server.api("POST", "/v1/inspection_rules", {"actions": []}, version="1.95")
    assert status == 405
    status, body = cli.server.api("GET", "/v1/inspection_rules", version="1.96")
    assert status == 200 and "inspection_rules" in body
    r = cli.fails("--os-baremetal-api-version", "1.95", "inspection", "rule", "list")
    assert "The API version does not allow inspection rules" in r.stderr
