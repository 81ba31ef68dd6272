"""Tests that need a server of their own: fake delays, short timeouts, a
crash. Each starts its ferric with `spawn` and stops it afterwards."""

import json
import signal

import pytest

from conftest import Cli

HOST = "conformance-special"


def test_sigkill_mid_deploy_then_restart(spawn):
    server = spawn("sigkill", {"conductor": {"host": HOST}, "fake": {"deploy_delay": "5"}})
    cli = Cli(server)
    uuid = cli.create_node("--name", "crash-1")["uuid"]
    cli.move(uuid, "manage", "manageable")
    cli.move(uuid, "provide", "available")

    cli.ok("node", "deploy", uuid)
    shown = cli.json("node", "show", uuid)
    assert shown["provision_state"] == "deploying", "the deploy must still run when ferric is killed"
    assert shown["target_provision_state"] == "active"
    assert shown["reservation"] == HOST
    assert server.kill() == -signal.SIGKILL

    server.restart()
    shown = cli.json("node", "show", uuid)
    assert shown["provision_state"] == "deploy failed"
    assert shown["target_provision_state"] == "active"
    assert shown["reservation"] is None
    assert shown["last_error"] == f"The deploying state can't be resumed by conductor {HOST}. Moving to fail state."

    cli.move(uuid, "deploy", "active")
    shown = cli.json("node", "show", uuid)
    assert shown["provision_state"] == "active"
    assert shown["target_provision_state"] is None
    assert shown["last_error"] is None
    assert shown["reservation"] is None


def test_busy_node_is_locked(spawn):
    # The conductor name comes from the environment, which beats the file.
    server = spawn(
        "locked",
        {"conductor": {"host": "from-the-file", "node_locked_retry_attempts": 1}, "fake": {"deploy_delay": "60"}},
        env={"FERRIC_CONDUCTOR__HOST": HOST},
    )
    cli = Cli(server)
    uuid = cli.create_node("--name", "busy-1")["uuid"]
    cli.move(uuid, "manage", "manageable")
    cli.move(uuid, "provide", "available")
    cli.ok("node", "deploy", uuid)
    server.wait_for_node(uuid, lambda n: n["provision_state"] == "deploying" and n["reservation"] == HOST, "deploying")

    locked = f"Node {uuid} is locked by host {HOST}, please retry after the current operation is completed."
    status, body = server.api("PUT", f"/v1/nodes/{uuid}/states/power", {"target": "power on"})
    assert status == 409
    assert json.loads(body["error_message"])["faultstring"] == locked

    # The client retries a 409 five times, two seconds apart, then gives up
    # with Ironic's message.
    r = cli.fails("node", "power", "on", uuid)
    assert f"{locked} (HTTP 409)" in r.stderr

    # An update (`node set`) is refused before any lock is tried, with
    # Ironic's other 409. Over HTTP: the client would retry it for 10 s too.
    status, body = server.api("PATCH", f"/v1/nodes/{uuid}", [{"op": "add", "path": "/description", "value": "busy"}])
    assert status == 409
    assert json.loads(body["error_message"])["faultstring"] == (
        f"Node {uuid} can not be updated while a state transition is in progress."
    )

    node = server.node(uuid)
    assert node["provision_state"] == "deploying"
    assert node["description"] is None
    assert node["power_state"] != "power on"
    server.kill()


def test_clean_wait_step_times_out(spawn):
    server = spawn("timeouts", {"conductor": {"host": HOST, "clean_callback_timeout": 4, "check_provision_state_interval": 1}})
    cli = Cli(server)
    uuid = cli.create_node("--name", "waiting-1")["uuid"]
    cli.move(uuid, "manage", "manageable")

    cli.ok("node", "clean", uuid, "--clean-steps", json.dumps([{"interface": "deploy", "step": "wait"}]))
    shown = cli.json("node", "show", uuid)
    assert shown["provision_state"] == "clean wait"
    assert shown["target_provision_state"] == "manageable"
    assert shown["clean_step"]["step"] == "wait"

    server.wait_for_state(uuid, "clean failed", timeout=30)
    shown = cli.json("node", "show", uuid)
    assert shown["provision_state"] == "clean failed"
    assert shown["target_provision_state"] == "manageable"
    assert shown["last_error"].startswith(
        "Timeout reached while cleaning the node. Please check if the ramdisk responsible for the cleaning "
        "is running on the node. Failed on step "
    )
    assert shown["clean_step"] == {}
    # A step was running: the node goes to maintenance with a fault.
    assert shown["maintenance"] is True
    assert shown["fault"] == "clean failure"
    assert shown["reservation"] is None


def test_fake_delay_from_the_environment(spawn):
    server = spawn("env-delay", {"conductor": {"host": HOST}}, env={"FERRIC_FAKE__DEPLOY_DELAY": "5"}, start=False)
    server.start()
