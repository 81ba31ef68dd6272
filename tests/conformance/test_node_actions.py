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
