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
