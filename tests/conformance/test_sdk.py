"""openstacksdk on its own, without clouds.yaml or OS_* variables: the
`none` auth plugin takes the endpoint, as for a standalone Ironic."""

import openstack

from conftest import SHARED_HOST


def connect(url):
    return openstack.connect(
        auth_type="none",
        auth={"endpoint": url},
        load_yaml_config=False,
        load_envvars=False,
    )


def test_sdk_lists_and_shows_nodes(ferric, cli, name):
    node_name = name()
    created = cli.create_node("--name", node_name, "--driver-info", "ipmi_password=topsecret", "--resource-class", "sdk")
    conn = connect(ferric.url)

    listed = {n.id: n for n in conn.baremetal.nodes()}
    assert created["uuid"] in listed
    assert listed[created["uuid"]].name == node_name
    assert listed[created["uuid"]].provision_state == "enroll"

    detailed = {n.id: n for n in conn.baremetal.nodes(details=True, resource_class="sdk")}
    assert list(detailed) == [created["uuid"]]

    node = conn.baremetal.get_node(node_name)
    assert node.id == created["uuid"]
    assert node.driver == "fake-hardware"
    assert node.driver_info == {"ipmi_password": "******"}
    assert node.resource_class == "sdk"
    assert node.conductor == SHARED_HOST
    assert node.provision_state == "enroll"
    assert node.is_maintenance is False
    assert node.traits == []

    node = conn.baremetal.set_node_provision_state(node, "manage", wait=True, timeout=60)
    assert node.provision_state == "manageable"
    assert cli.json("node", "show", node_name, "-c", "provision_state") == {"provision_state": "manageable"}
