"""Deploy templates and runbooks with the stock client, on the shared
server: their commands, and what they do to a deploy and a cleaning."""

import json


# `deploy template show -f json` with python-ironicclient 6.3.
TEMPLATE_FIELDS = {"created_at", "extra", "name", "steps", "updated_at", "uuid"}


def _trait(name: str) -> str:
    """A custom trait made from a test's unique name."""
    return "CUSTOM_" + "".join(c if c.isalnum() else "_" for c in name.upper())


def _steps(*steps: dict) -> str:
    return json.dumps(list(steps))


def test_deploy_template_commands(cli, name):
    trait = _trait(name())
    steps = [{"interface": "raid", "step": "create_configuration", "args": {"create_root_volume": True},
              "priority": 40}]
    made = cli.json("deploy", "template", "create", trait, "--steps", json.dumps(steps), "--extra", "team=ops")
    assert set(made) == TEMPLATE_FIELDS
    assert made["name"] == trait
    assert made["steps"] == steps
    assert made["extra"] == {"team": "ops"}
    uuid = made["uuid"]

    assert {"uuid": uuid, "name": trait} in cli.json("deploy", "template", "list")
    [long] = [t for t in cli.json("deploy", "template", "list", "--long") if t["uuid"] == uuid]
    assert long["steps"] == steps
    assert cli.json("deploy", "template", "show", trait)["uuid"] == uuid

    renamed = trait + "_2"
    new_steps = [{"interface": "raid", "step": "delete_configuration", "args": {}, "priority": 10}]
    cli.ok("deploy", "template", "set", uuid, "--name", renamed, "--steps", json.dumps(new_steps),
           "--extra", "rack=r1")
    shown = cli.json("deploy", "template", "show", uuid)
    assert shown["name"] == renamed
    assert shown["steps"] == new_steps
    assert shown["extra"] == {"team": "ops", "rack": "r1"}
    assert shown["updated_at"] is not None

    cli.ok("deploy", "template", "unset", renamed, "--extra", "team")
    assert cli.json("deploy", "template", "show", renamed)["extra"] == {"rack": "r1"}

    failed = cli.fails("deploy", "template", "create", "NOT_A_TRAIT", "--steps", json.dumps(steps))
    assert "Schema error for template: 'NOT_A_TRAIT' is not valid under any of the given schemas" in failed.output
    # (A taken name is a 409, which the client retries for ten seconds: the
    # Rust tests check it.)

    assert f"Deleted deploy template {renamed}" in cli.ok("deploy", "template", "delete", renamed)
    gone = cli.fails("deploy", "template", "show", uuid)
    assert f"Deploy template {uuid} could not be found." in gone.output


def test_deploy_with_a_matching_trait_runs_the_template(ferric, cli, name):
    trait = _trait(name())
    cli.ok("deploy", "template", "create", trait, "--steps", _steps(
        {"interface": "raid", "step": "create_configuration", "args": {}, "priority": 95},
        {"interface": "deploy", "step": "hold", "args": {}, "priority": 90},
    ))
    uuid = cli.create_node("--name", name())["uuid"]
    cli.ok("node", "add", "trait", uuid, trait)
    cli.ok("node", "set", uuid, "--instance-info", f'traits=["{trait}"]')
    cli.move(uuid, "manage", "manageable")
    cli.move(uuid, "provide", "available")

    cli.move(uuid, "deploy", "deploy hold")
    shown = cli.json("node", "show", uuid, "--fields", "provision_state", "deploy_step", "driver_internal_info")
    assert shown["provision_state"] == "deploy hold"
    assert shown["deploy_step"]["step"] == "hold"
    planned = [f"{s['interface']}.{s['step']}" for s in shown["driver_internal_info"]["deploy_steps"]]
    # The template's steps take their place by priority among the driver's.
    assert planned == ["deploy.deploy", "raid.create_configuration", "deploy.hold"]
    cli.ok("node", "unhold", uuid)
    ferric.wait_for_state(uuid, "active")
    cli.move(uuid, "undeploy", "available")
    cli.ok("deploy", "template", "delete", trait)


# `runbook show -f json` with python-ironicclient 6.3 (API 1.115).
RUNBOOK_FIELDS = {"created_at", "description", "disable_ramdisk", "extra", "name", "owner", "public", "steps",
                  "traits", "updated_at", "uuid"}


def test_runbook_commands(cli, name):
    rb = name()
    steps = [{"interface": "deploy", "step": "hold", "args": {}, "order": 1}]
    made = cli.json("runbook", "create", "--name", rb, "--steps", json.dumps(steps), "--description", "hold it",
                    "--extra", "team=ops")
    assert set(made) == RUNBOOK_FIELDS
    assert (made["name"], made["description"], made["steps"]) == (rb, "hold it", steps)
    assert (made["public"], made["owner"], made["disable_ramdisk"], made["traits"]) == (False, None, False, [])
    uuid = made["uuid"]

    assert {"uuid": uuid, "name": rb} in cli.json("runbook", "list")
    assert cli.json("runbook", "show", rb)["uuid"] == uuid

    new_steps = [{"interface": "vendor", "step": "log_passthrough", "args": {}, "order": 1}]
    cli.ok("runbook", "set", uuid, "--steps", json.dumps(new_steps), "--owner", "proj-1", "--extra", "rack=r1")
    shown = cli.json("runbook", "show", uuid)
    assert (shown["steps"], shown["owner"], shown["extra"]) == (new_steps, "proj-1", {"team": "ops", "rack": "r1"})
    cli.ok("runbook", "unset", uuid, "--owner", "--extra", "team")
    shown = cli.json("runbook", "show", uuid)
    assert (shown["owner"], shown["extra"]) == (None, {"rack": "r1"})

    trait = _trait(rb)
    cli.ok("runbook", "trait", "add", rb, trait, "CUSTOM_OTHER")
    listed = cli.json("runbook", "trait", "list", rb)
    assert sorted(value for row in listed for value in row.values()) == sorted(["CUSTOM_OTHER", trait])
    cli.ok("runbook", "trait", "remove", rb, "CUSTOM_OTHER")
    assert cli.json("runbook", "show", rb)["traits"] == [trait]

    failed = cli.fails("runbook", "create", "--name", "a b", "--steps", json.dumps(steps))
    assert "Schema error for runbook: 'a b' does not match" in failed.output

    assert f"Deleted runbook {rb}" in cli.ok("runbook", "delete", rb)
    assert f"Runbook {uuid} could not be found." in cli.fails("runbook", "show", uuid).output


def test_clean_with_a_runbook(ferric, cli, name):
    rb = name()
    trait = _trait(rb)
    cli.ok("runbook", "create", "--name", rb, "--steps", _steps(
        {"interface": "deploy", "step": "hold", "args": {}, "order": 1},
        {"interface": "vendor", "step": "log_passthrough", "args": {}, "order": 2},
    ))
    uuid = cli.create_node("--name", name())["uuid"]
    cli.move(uuid, "manage", "manageable")

    refused = cli.fails("node", "clean", uuid, "--runbook", rb)
    assert "has no traits configured" in refused.output
    cli.ok("runbook", "trait", "add", rb, trait)
    refused = cli.fails("node", "clean", uuid, "--runbook", rb)
    assert f"This runbook has not been approved for use on this node {uuid}." in refused.output

    cli.ok("node", "add", "trait", uuid, trait)
    cli.move(uuid, "clean", "clean hold", "--runbook", rb)
    shown = cli.json("node", "show", uuid, "--fields", "clean_step", "driver_internal_info")
    assert shown["clean_step"]["step"] == "hold"
    planned = [f"{s['interface']}.{s['step']}" for s in shown["driver_internal_info"]["clean_steps"]]
    assert planned == ["deploy.hold", "vendor.log_passthrough"]
    cli.ok("node", "unhold", uuid)
    ferric.wait_for_state(uuid, "manageable")
    cli.ok("runbook", "delete", rb)
