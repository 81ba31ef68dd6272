"""Node actions with the stock client: the console, vendor passthru, driver
RAID properties and target RAID configs, children, shards and events."""


def test_console_show_enable_disable(cli, ferric, name):
    node = cli.create_node("--name", name())["uuid"]
    assert cli.json("node", "console", "show", node) == {"console_enabled": False, "console_info": None}

    cli.ok("node", "console", "enable", node)
    ferric.wait_for_node(node, lambda n: n["console_enabled"] and n["reservation"] is None, "console enabled")
    assert cli.json("node", "console", "show", node) == {"console_enabled": True, "console_info": {}}

    cli.ok("node", "console", "disable", node)
    ferric.wait_for_node(node, lambda n: not n["console_enabled"] and n["reservation"] is None, "console disabled")
    assert cli.json("node", "console", "show", node)["console_enabled"] is False


def test_console_refused_without_a_console_interface(cli, name):
    node = cli.create_node("--name", name(), "--console-interface", "no-console")["uuid"]
    r = cli.fails("node", "console", "enable", node)
    assert "Driver fake-hardware does not support console (disabled or not implemented)." in r.output


PASSTHRU_METHODS = ["fourth_method_shared_lock", "log_passthrough", "second_method", "third_method_sync"]


def test_node_passthru_list_and_call(cli, ferric, name):
    node = cli.create_node("--name", name())["uuid"]
    methods = cli.json("node", "passthru", "list", node)
    assert [m["Name"] for m in methods] == PASSTHRU_METHODS
    [sync] = [m for m in methods if m["Name"] == "third_method_sync"]
    assert sync == {"Name": "third_method_sync", "Supported HTTP methods": "POST", "Async": False,
                    "Description": "Test if the value of bar is meow", "Response is attachment": False}

    # An asynchronous method: accepted, nothing printed.
    assert cli.ok("node", "passthru", "call", node, "second_method", "--arg", "bar=kazoo") == ""
    ferric.wait_for_node(node, lambda n: n["reservation"] is None, "unlocked")
    r = cli.fails("node", "passthru", "call", node, "second_method")
    assert "Parameter 'bar' not passed to method 'second_method'." in r.output
    r = cli.fails("node", "passthru", "call", node, "no_such_method")
    assert "No handler for method no_such_method" in r.output
    r = cli.fails("node", "passthru", "call", node, "second_method", "--arg", "bar=x", "--http-method", "PUT")
    assert "The method second_method does not support HTTP PUT" in r.output

    # The synchronous one answers in the body (the client cannot print a bare boolean).
    assert ferric.api("POST", f"/v1/nodes/{node}/vendor_passthru/third_method_sync", {"bar": "meow"}) == (200, True)


def test_driver_passthru_list_and_call(cli):
    assert cli.json("driver", "passthru", "list", "fake-hardware") == []
    r = cli.fails("driver", "passthru", "call", "fake-hardware", "lookup")
    assert "No handler for method lookup" in r.output


def test_driver_raid_property_list(cli):
    props = cli.json("driver", "raid", "property", "list", "fake-hardware")
    names = [p["property"] for p in props]
    assert names == sorted(names) and len(names) == 10
    assert "raid_level" in names and "physical_disks" in names
    [size] = [p for p in props if p["property"] == "size_gb"]
    assert size["description"].startswith("Size in GiB (Integer) for the logical disk.")


def test_node_set_target_raid_config(cli, name):
    node = cli.create_node("--name", name())["uuid"]
    config = '{"logical_disks": [{"raid_level": "1", "size_gb": 100, "is_root_volume": true}]}'
    cli.ok("node", "set", node, "--target-raid-config", config)
    shown = cli.json("node", "show", node, "--fields", "target_raid_config")
    assert shown["target_raid_config"] == {"logical_disks": [{"raid_level": "1", "size_gb": 100, "is_root_volume": True}]}
    r = cli.fails("node", "set", node, "--target-raid-config", '{"logical_disks": [{"raid_level": "7", "size_gb": 1}]}')
    assert "RAID config validation error: '7' is not one of" in r.output


def test_shard_list(cli, ferric, name):
    shard = "shard-" + name()
    for _ in range(2):
        cli.create_node("--name", name(), "--shard", shard)
    shards = cli.json("shard", "list")
    assert {"name": shard, "count": 2} in shards
    assert all(set(s) == {"name", "count"} for s in shards)
    assert ferric.api("GET", "/v1/shards", version="1.81")[0] == 404


def test_children(cli, ferric, name):
    parent = cli.create_node("--name", name())["uuid"]
    child = cli.create_node("--name", name(), "--parent-node", parent)["uuid"]
    assert cli.json("node", "children", "list", parent) == {"children": [child]}
    status, body = ferric.api("GET", f"/v1/nodes/{parent}/children")
    assert status == 200 and body["children"] == [child]
    assert body["links"]["href"].endswith(f"/v1/nodes?parent_node={parent}")
    assert ferric.api("GET", f"/v1/nodes/{parent}/children", version="1.82")[0] == 404
    listed = [n["uuid"] for n in cli.json("node", "list", "--include-children")]
    assert child in listed
    assert child not in [n["uuid"] for n in cli.json("node", "list")]


def test_events(ferric):
    event = {"event": "network.bind_port", "port_id": "11111111-2222-3333-4444-555555555555",
             "mac_address": "52:54:00:12:34:56", "status": "ACTIVE"}
    assert ferric.api("POST", "/v1/events", {"events": [event]}) == (204, None)
    status, body = ferric.api("POST", "/v1/events", {"events": []})
    assert status == 400 and "Schema error: [] should be non-empty" in body["error_message"]
    assert ferric.api("POST", "/v1/events", {"events": [event]}, version="1.53")[0] == 404
