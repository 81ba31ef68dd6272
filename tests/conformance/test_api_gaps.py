"""Gaps the stock clients found, as the CLI shows them: ports named by MAC
address, the `.json` suffix of API versions up to 1.90, and a port group's
physical network."""

import subprocess

from conftest import Result


def at_version(cli, version, *args):
    """`openstack --os-baremetal-api-version VERSION baremetal ARGS`."""
    cmd = [cli.bin, "--os-baremetal-api-version", version, "baremetal", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=cli._env(), timeout=120, stdin=subprocess.DEVNULL)
    print(f"$ openstack --os-baremetal-api-version {version} baremetal {' '.join(args)}  # rc={proc.returncode}")
    print(proc.stdout.rstrip(), proc.stderr.rstrip(), sep="\n")
    return Result(cmd, proc.returncode, proc.stdout, proc.stderr)


def test_a_port_is_not_shown_by_its_mac(cli, name):
    node = cli.create_node("--name", name())["uuid"]
    mac = "52:54:00:9a:00:01"
    cli.json("port", "create", mac, "--node", node)
    r = cli.fails("port", "show", mac)
    assert f"Expected UUID or name for port_ident: {mac} (HTTP 400)" in r.stderr
    r = cli.fails("port", "set", mac, "--extra", "a=b")
    assert f"Expected UUID or name for port_ident: {mac} (HTTP 400)" in r.stderr
    # The client's own way to find a port by MAC.
    assert cli.json("port", "show", "--address", mac, "-c", "node_uuid") == {"node_uuid": node}


def test_dot_json_suffix_up_to_1_90(cli, name):
    node = cli.create_node("--name", name())["uuid"]
    shown = at_version(cli, "1.90", "node", "show", f"{node}.json", "-f", "json", "-c", "uuid")
    assert shown.rc == 0, shown.output
    assert shown.stdout.strip().startswith("{") and node in shown.stdout
    r = at_version(cli, "1.91", "node", "show", f"{node}.json")
    assert r.rc != 0
    assert f"Node {node}.json could not be found. (HTTP 404)" in r.stderr


def test_a_port_joins_a_group_only_on_its_physical_network(cli, name):
    node = cli.create_node("--name", name())["uuid"]
    group = cli.json("port", "group", "create", "--node", node, "--name", name())["uuid"]
    cli.json("port", "create", "52:54:00:9a:01:01", "--node", node, "--port-group", group,
             "--physical-network", "physnet1")
    r = cli.fails("port", "create", "52:54:00:9a:01:02", "--node", node, "--port-group", group,
                  "--physical-network", "physnet2")
    assert (f"Port with physical network physnet2 cannot become a member of port group {group} which has ports "
            "in physical network physnet1. (HTTP 409)") in r.stderr
    loner = cli.json("port", "create", "52:54:00:9a:01:03", "--node", node, "--physical-network", "physnet2")
    r = cli.fails("port", "set", loner["uuid"], "--port-group", group)
    assert "cannot become a member of port group" in r.stderr and "(HTTP 409)" in r.stderr
    assert cli.json("port", "show", loner["uuid"], "-c", "portgroup_uuid") == {"portgroup_uuid": None}
