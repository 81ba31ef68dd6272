"""Enrolling, changing, listing and deleting nodes with `openstack baremetal
node ...` on the shared server."""

from conftest import SHARED_HOST, WAIT

# `node show -f json` of Ironic 39 with python-ironicclient 6.3 (the
# reference's field set, whatever the order).
NODE_FIELDS = {
    "uuid", "created_at", "updated_at", "automated_clean", "bios_interface", "boot_interface", "boot_mode",
    "clean_step", "conductor_group", "console_enabled", "console_interface", "disable_power_off",
    "deploy_interface", "deploy_step", "description", "driver", "driver_info", "driver_internal_info", "extra",
    "fault", "firmware_interface", "health", "inspection_finished_at", "inspection_started_at",
    "inspect_interface", "instance_info", "instance_name", "instance_uuid", "last_error", "lessee",
    "maintenance", "maintenance_reason", "management_interface", "name", "network_data", "network_interface",
    "owner", "parent_node", "power_interface", "power_state", "properties", "protected", "protected_reason",
    "provision_state", "provision_updated_at", "raid_config", "raid_interface", "rescue_interface",
    "reservation", "resource_class", "retired", "retired_reason", "secure_boot", "service_step", "shard",
    "storage_interface", "target_power_state", "target_provision_state", "target_raid_config", "traits",
    "vendor_interface", "conductor", "allocation_uuid", "chassis_uuid",
}

LIST_FIELDS = {"uuid", "name", "instance_uuid", "power_state", "provision_state", "maintenance"}

FAKE_INTERFACES = {
    "bios_interface": "fake", "boot_interface": "fake", "console_interface": "fake", "deploy_interface": "fake",
    "firmware_interface": "fake", "inspect_interface": "fake", "management_interface": "fake",
    "network_interface": "noop", "power_interface": "fake", "raid_interface": "fake", "rescue_interface": "fake",
    "storage_interface": "noop", "vendor_interface": "fake",
}


def test_create_fake_hardware_node(cli):
    node = cli.json("node", "create", "--driver", "fake-hardware", "--name", "n1")
    assert set(node) == NODE_FIELDS
    assert node["name"] == "n1"
    assert node["driver"] == "fake-hardware"
    assert node["provision_state"] == "enroll"
    assert node["target_provision_state"] is None
    assert node["power_state"] is None
    assert node["maintenance"] is False
    assert node["reservation"] is None
    assert node["last_error"] is None
    assert node["conductor"] == SHARED_HOST
    assert node["traits"] == []
    assert node["driver_info"] == {} and node["properties"] == {} and node["instance_info"] == {}
    assert {k: node[k] for k in FAKE_INTERFACES} == FAKE_INTERFACES

    shown = cli.json("node", "show", "n1")
    assert set(shown) == NODE_FIELDS
    assert shown["uuid"] == node["uuid"]
    assert shown["created_at"] == node["created_at"]


def test_show_unknown_node(cli):
    r = cli.fails("node", "show", "no-such-node")
    assert "Node no-such-node could not be found. (HTTP 404)" in r.stderr


def test_an_ipmi_node_without_a_bmc_address_fails_verifying_saying_so(cli):
    node = cli.json("node", "create", "--driver", "ipmi", "--deploy-interface", "direct")
    uuid = node["uuid"]
    assert node["driver"] == "ipmi"
    assert node["provision_state"] == "enroll"
    assert node["deploy_interface"] == "direct"
    assert node["power_interface"] == "ipmitool"
    assert node["management_interface"] == "ipmitool"
    assert node["boot_interface"] == "ipxe"
    drivers = [d["name"] for d in cli.json("driver", "list")]
    assert {"fake-hardware", "ipmi", "redfish", "manual-management"} <= set(drivers)

    r = cli.fails("node", "manage", uuid, "--wait", WAIT)
    assert f"Node {uuid} failed to reach state manageable" in r.stderr
    shown = cli.json("node", "show", uuid)
    assert shown["provision_state"] == "enroll"
    assert shown["target_provision_state"] is None
    assert shown["reservation"] is None
    assert shown["last_error"] == (
        f"Failed to validate power driver interface for node {uuid}. "
        "Error: Missing the following IPMI credentials in node's driver_info: ['ipmi_address']."
    )


def test_set_unset_and_secrets(cli, name):
    uuid = cli.create_node("--name", name())["uuid"]
    new_name = name()
    cli.ok(
        "node", "set", uuid,
        "--deploy-interface", "fake",
        "--driver-info", "ipmi_password=s3cr3t",
        "--driver-info", "ipmi_address=192.0.2.10",
        "--property", "cpus=8",
        "--property", "memory_mb=16384",
        "--instance-info", "image_source=http://192.0.2.1/image.qcow2",
        "--resource-class", "baremetal-gold",
        "--name", new_name,
    )
    shown = cli.json("node", "show", new_name)
    assert shown["uuid"] == uuid
    assert shown["name"] == new_name
    assert shown["deploy_interface"] == "fake"
    assert shown["driver_info"] == {"ipmi_password": "******", "ipmi_address": "192.0.2.10"}
    assert shown["properties"] == {"cpus": 8, "memory_mb": 16384}
    assert shown["instance_info"] == {"image_source": "http://192.0.2.1/image.qcow2"}
    assert shown["resource_class"] == "baremetal-gold"
    assert shown["updated_at"] is not None

    # Secrets stay masked in listings too.
    [listed] = [n for n in cli.json("node", "list", "--long") if n["uuid"] == uuid]
    assert listed["driver_info"]["ipmi_password"] == "******"

    cli.ok(
        "node", "unset", uuid,
        "--driver-info", "ipmi_address",
        "--property", "cpus",
        "--instance-info", "image_source",
        "--resource-class",
    )
    shown = cli.json("node", "show", uuid)
    assert shown["driver_info"] == {"ipmi_password": "******"}
    assert shown["properties"] == {"memory_mb": 16384}
    assert shown["instance_info"] == {}
    assert shown["resource_class"] is None
    assert shown["name"] == new_name


def test_list_filters_fields_sorting_and_paging(ferric, cli, name):
    enrolled = cli.create_node("--name", name())["uuid"]
    managed = cli.create_node("--name", name())["uuid"]
    in_maintenance = cli.create_node("--name", name())["uuid"]
    cli.ok("node", "manage", managed, "--wait", WAIT)
    cli.ok("node", "maintenance", "set", in_maintenance, "--reason", "listing test")

    nodes = cli.json("node", "list")
    uuids = [n["uuid"] for n in nodes]
    assert {enrolled, managed, in_maintenance} <= set(uuids)
    assert all(set(n) == LIST_FIELDS for n in nodes)
    [row] = [n for n in nodes if n["uuid"] == managed]
    assert row["provision_state"] == "manageable"
    assert row["maintenance"] is False

    long = cli.json("node", "list", "--long")
    assert [n["uuid"] for n in long] == uuids
    assert {"driver", "driver_info", "properties", "resource_class", "deploy_interface"} <= set(long[0])

    enroll = cli.json("node", "list", "--provision-state", "enroll")
    assert enrolled in {n["uuid"] for n in enroll}
    assert managed not in {n["uuid"] for n in enroll}
    assert all(n["provision_state"] == "enroll" for n in enroll)

    manageable = cli.json("node", "list", "--provision-state", "manageable")
    assert managed in {n["uuid"] for n in manageable}
    assert all(n["provision_state"] == "manageable" for n in manageable)

    maintenance = cli.json("node", "list", "--maintenance")
    assert in_maintenance in {n["uuid"] for n in maintenance}
    assert enrolled not in {n["uuid"] for n in maintenance}
    assert all(n["maintenance"] is True for n in maintenance)

    fields = cli.json("node", "list", "--fields", "uuid", "name", "driver")
    assert all(set(n) == {"uuid", "name", "driver"} for n in fields)
    assert {n["uuid"]: n["driver"] for n in fields}[enrolled] == "fake-hardware"

    by_uuid = cli.json("node", "list", "--sort", "uuid:desc")
    assert [n["uuid"] for n in by_uuid] == sorted(uuids, reverse=True)

    assert [n["uuid"] for n in cli.json("node", "list", "--limit", "1")] == uuids[:1]
    assert [n["uuid"] for n in cli.json("node", "list", "--marker", uuids[0])] == uuids[1:]
    assert [n["uuid"] for n in cli.json("node", "list", "--limit", "1", "--marker", uuids[0])] == uuids[1:2]

    cli.ok("node", "maintenance", "unset", in_maintenance)


def test_traits(cli, name):
    uuid = cli.create_node("--name", name())["uuid"]
    out = cli.ok("node", "add", "trait", uuid, "CUSTOM_GPU", "CUSTOM_FAST_DISK")
    assert "Added trait CUSTOM_GPU" in out and "Added trait CUSTOM_FAST_DISK" in out
    assert {t["traits"] for t in cli.json("node", "trait", "list", uuid)} == {"CUSTOM_GPU", "CUSTOM_FAST_DISK"}
    assert sorted(cli.json("node", "show", uuid)["traits"]) == ["CUSTOM_FAST_DISK", "CUSTOM_GPU"]

    cli.ok("node", "remove", "trait", uuid, "CUSTOM_GPU")
    assert [t["traits"] for t in cli.json("node", "trait", "list", uuid)] == ["CUSTOM_FAST_DISK"]


def test_delete(cli, name):
    node_name = name()
    uuid = cli.create_node("--name", node_name)["uuid"]
    assert f"Deleted node {node_name}" in cli.ok("node", "delete", node_name)
    r = cli.fails("node", "show", uuid)
    assert f"Node {uuid} could not be found. (HTTP 404)" in r.stderr
    assert uuid not in {n["uuid"] for n in cli.json("node", "list")}
