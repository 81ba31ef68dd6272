"""A node's BIOS settings, firmware components, boot mode and secure boot,
virtual media and indicators with the stock clients: `openstack
baremetal node bios setting list|show`, `node firmware list`, `node boot
mode set`, `node secure boot on|off` (python-ironicclient 6.3 has no vmedia
or indicator commands: virtual media goes through openstacksdk, indicators
through the raw API), on fake-hardware and, for virtual media, on the
redfish management interface against `ferric lab bmc`."""

from __future__ import annotations

import openstack

from conftest import Cli
from test_lab_bmc import Lab, wait_until


def connect(url):
    return openstack.connect(auth_type="none", auth={"endpoint": url}, load_yaml_config=False, load_envvars=False)


def clean(cli: Cli, node: str, steps: str) -> None:
    cli.move(node, "clean", "manageable", "--clean-steps", steps)
    assert cli.server.node(node)["last_error"] is None


def test_bios_settings_after_the_fake_bios_steps(cli, name):
    node = cli.create_node("--name", name())["uuid"]
    cli.move(node, "manage", "manageable")
    assert cli.json("node", "bios", "setting", "list", node) == []

    clean(cli, node, '[{"interface": "bios", "step": "apply_configuration", "args": {"settings": '
                     '[{"name": "ProcVirtualization", "value": "Enabled"}, {"name": "BootMode", "value": "Uefi"}]}}]')
    listed = cli.json("node", "bios", "setting", "list", node)
    assert listed == [{"name": "BootMode", "value": "Uefi"}, {"name": "ProcVirtualization", "value": "Enabled"}]
    shown = cli.json("node", "bios", "setting", "show", node, "ProcVirtualization")
    assert shown["name"] == "ProcVirtualization"
    assert shown["value"] == "Enabled"
    assert shown["created_at"] and shown["updated_at"] is None
    assert "links" not in shown
    assert shown["allowable_values"] == [] and shown["read_only"] is None

    long = cli.json("node", "bios", "setting", "list", node, "--long")
    assert long[0] == {"name": "BootMode", "value": "Uefi", "attribute_type": None, "allowable_values": [],
                       "lower_bound": None, "min_length": None, "max_length": None, "read_only": None,
                       "reset_required": None, "unique": None, "upper_bound": None}
    only = cli.json("node", "bios", "setting", "list", node, "--fields", "value")
    assert only == [{"value": "Uefi"}, {"value": "Enabled"}]

    missing = cli.fails("node", "bios", "setting", "show", node, "Nope")
    assert f"Node {node} doesn't have a BIOS setting 'Nope'" in missing.output

    clean(cli, node, '[{"interface": "bios", "step": "factory_reset"}]')
    assert cli.json("node", "bios", "setting", "list", node) == []


def test_firmware_components_of_a_fake_node(cli, name):
    node = cli.create_node("--name", name())["uuid"]
    cli.move(node, "manage", "manageable")
    clean(cli, node, '[{"interface": "firmware", "step": "update", "args": {"settings": '
                     '[{"component": "bmc", "url": "http://example.com/bmc.bin"}]}}]')
    # As with Ironic's fake firmware interface, nothing is flashed or recorded.
    assert cli.json("node", "firmware", "list", node) == []
    status, body = cli.server.api("GET", f"/v1/nodes/{node}/firmware", version="1.85")
    assert status == 404
    status, body = cli.server.api("GET", f"/v1/nodes/{node}/firmware", version="1.86")
    assert (status, body) == (200, {"firmware": []})


def test_boot_mode_and_secure_boot(cli, name):
    node = cli.create_node("--name", name())["uuid"]
    cli.ok("node", "boot", "mode", "set", node, "uefi")
    shown = cli.server.wait_for_node(node, lambda n: n["boot_mode"] == "uefi" and n["reservation"] is None, "uefi")
    assert shown["last_error"] is None
    assert cli.json("node", "show", node, "--fields", "boot_mode")["boot_mode"] == "uefi"
    cli.ok("node", "boot", "mode", "set", node, "bios")
    cli.server.wait_for_node(node, lambda n: n["boot_mode"] == "bios" and n["reservation"] is None, "bios")

    cli.ok("node", "secure", "boot", "on", node)
    cli.server.wait_for_node(node, lambda n: n["secure_boot"] is True and n["reservation"] is None, "secure boot on")
    cli.ok("node", "secure", "boot", "off", node)
    cli.server.wait_for_node(node, lambda n: n["secure_boot"] is False and n["reservation"] is None, "secure boot off")

    status, body = cli.server.api("PUT", f"/v1/nodes/{node}/states/boot_mode", {"target": "uefi"}, version="1.75")
    assert status == 404
    assert "This endpoint is supported starting with the API version 1.76" in body["error_message"]
    status, _ = cli.server.api("PUT", f"/v1/nodes/{node}/states/secure_boot", {"target": True}, version="1.76")
    assert status == 202


def test_indicators_through_the_raw_api(ferric, cli, name):
    node = cli.create_node("--name", name())["uuid"]
    status, body = ferric.api("GET", f"/v1/nodes/{node}/management/indicators")
    assert status == 200
    assert [(i["name"], i["component"], i["readonly"], i["states"]) for i in body["indicators"]] == [
        ("led-0@chassis", "chassis", True, ["off", "on"]),
        ("led@system", "system", False, ["blinking", "off", "on"]),
    ]
    path = f"/v1/nodes/{node}/management/indicators/led@system"
    assert ferric.api("GET", path) == (200, {"state": "on"})
    assert ferric.api("PUT", path, {"state": "off"})[0] == 204
    assert ferric.api("GET", path) == (200, {"state": "off"})
    status, body = ferric.api("PUT", path, {"state": "PURPLE"})
    assert status == 400


def vmedia(ferric, node: str):
    status, body = ferric.api("GET", f"/v1/nodes/{node}/vmedia")
    assert status == 200, body
    return body


def test_virtual_media_on_fake_hardware_with_openstacksdk(ferric, cli, name):
    node = cli.create_node("--name", name())["uuid"]
    conn = connect(ferric.url)
    conn.baremetal.attach_vmedia_to_node(node, "cdrom", "http://images.example.com/boot.iso")
    media = wait_until(lambda: (m := vmedia(ferric, node))[1]["inserted"] and m, "the cdrom inserted", 20)
    assert media[1] == {"media_types": ["CD"], "inserted": True, "image": "http://images.example.com/boot.iso"}
    conn.baremetal.detach_vmedia_from_node(node, ["cdrom"])
    wait_until(lambda: not vmedia(ferric, node)[1]["inserted"], "the cdrom ejected", 20)

    status, _ = ferric.api("POST", f"/v1/nodes/{node}/vmedia", {"device_type": "cdrom", "image_url": "http://x/a.iso"},
                           version="1.88")
    assert status == 404
    status, _ = ferric.api("GET", f"/v1/nodes/{node}/vmedia", version="1.92")
    assert status == 404


def test_virtual_media_through_the_redfish_management_interface(spawn, workdir):
    server = spawn("vmedia", {})
    cli = Cli(server)
    lab = Lab(workdir, server.url, 1)
    try:
        node = cli.create_node(
            "--name", "vm-redfish", "--power-interface", "redfish", "--management-interface", "redfish",
            "--driver-info", f"redfish_address={lab.url}", "--driver-info", "redfish_system_id=/redfish/v1/Systems/m1",
            "--driver-info", "redfish_username=admin", "--driver-info", "redfish_password=password")["uuid"]
        conn = connect(server.url)
        conn.baremetal.attach_vmedia_to_node(node, "cdrom", "http://images.example.com/rescue.iso")
        media = wait_until(lambda: (m := vmedia(server, node)) and m[0]["inserted"] and m, "the BMC's cd inserted", 20)
        assert media[0]["image"] == "http://images.example.com/rescue.iso"
        assert "CD" in media[0]["media_types"]
        assert server.node(node)["last_error"] is None
        conn.baremetal.detach_vmedia_from_node(node)
        wait_until(lambda: not vmedia(server, node)[0]["inserted"], "the BMC's cd ejected", 20)
    finally:
        lab.stop()
