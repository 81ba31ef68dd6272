"""Every walkthrough in the README, run verbatim against a fresh server.

A walkthrough is a fenced `sh` block right after a line
`<!-- walkthrough: NAME -->` (or `<!-- walkthrough: NAME; serve: FLAGS -->`
for a server started with more flags, as the text before it says). Each runs in bash with `-e -u -o pipefail`, in a
temporary HOME, against a fresh `ferric serve` on the README's default
address (127.0.0.1:6385), with the suite's own OpenStack client and the
built `ferric-agent` first on PATH. A command that fails fails the test, so the README cannot drift from
what Ferric and the stock client do.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO_ROOT, FerricServer, openstack_binary
from machines import agent_binary

MARKER = re.compile(
    r"^<!-- walkthrough: (?P<name>[^;>]+?)(?:; serve: (?P<args>[^>]+?))? -->\s*\n```(?:sh|bash)\n(?P<body>.*?)^```",
    re.M | re.S)


def walkthroughs() -> list[tuple[str, str, list[str]]]:
    text = (REPO_ROOT / "README.md").read_text()
    found = [(m.group("name"), m.group("body"), (m.group("args") or "").split()) for m in MARKER.finditer(text)]
    assert found, "the README has no walkthroughs"
    return found


def lab_demo_report(home: Path) -> None:
    """`ferric lab demo` also wrote its JSON report: every phase timed, the
    deploy's timeline complete and in order, and nothing of the lab left."""
    report = json.loads((home / "demo" / "report.json").read_text())
    assert report["ok"] is True, report
    for phase in ("build", "lab up", "serve", "enrol and manage", "cleaning", "deploy and boot"):
        assert isinstance(report["phases"].get(phase), (int, float)), (phase, report)
    order = ["ramdisk boot (power on)", "DHCP (first ACK)", "deploy ramdisk fetched", "agent lookup",
             "image write started", "image written", "rebooted into the instance", "active",
             "marker on the console"]
    times = [report["deploy_timeline"][m] for m in order]
    assert times == sorted(times), report
    assert not Path("/run/netns/ferric-demo-readme").exists(), "the lab's namespace is left"
    assert not (home / "demo" / "lab").exists(), "the lab's directory is left"


# Checks run after a walkthrough, on what it left.
AFTERWARDS = {"lab demo": lab_demo_report}


@pytest.mark.parametrize("name,body,args", walkthroughs(), ids=[n for n, _, _ in walkthroughs()])
def test_walkthrough_runs_verbatim(name: str, body: str, args: list[str], workdir: Path) -> None:
    server = FerricServer(workdir, "walkthrough-" + re.sub(r"\W+", "-", name), {})
    server.args = args
    server.start(port=6385)
    try:
        home = workdir / f"home-{server.name}"
        home.mkdir()
        script = home / "walkthrough.sh"
        script.write_text(body)
        client_bin = str(Path(openstack_binary()).resolve().parent)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "FERRIC_"))}
        agent_bin = str(agent_binary().parent)
        env.update(HOME=str(home), PATH=f"{client_bin}:{agent_bin}:{env.get('PATH', '')}", PYTHONWARNINGS="ignore")
        # The lab walkthroughs build from Debian packages: the user's package cache
        # stands in for the one a reader already has, instead of downloading again.
        if os.environ.get("FERRIC_CACHE_DIR"):
            env["FERRIC_CACHE_DIR"] = os.environ["FERRIC_CACHE_DIR"]
        else:
            env.setdefault("XDG_CACHE_HOME", str(Path.home() / ".cache"))
        # Its own session, so whatever it left running in the background (a
        # failed walkthrough never reaches its `kill`) is stopped with it.
        child = subprocess.Popen(
            ["bash", "-e", "-u", "-o", "pipefail", "-x", str(script)],
            cwd=home, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        try:
            out, err = child.communicate(timeout=600)
        finally:
            try:
                os.killpg(child.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            child.wait()
        proc = subprocess.CompletedProcess(child.args, child.returncode, out, err)
        sys.stdout.write(proc.stdout)
        sys.stdout.write(proc.stderr)
        assert proc.returncode == 0, f"walkthrough {name!r} failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
        if name in AFTERWARDS:
            AFTERWARDS[name](home)
    finally:
        server.stop()
