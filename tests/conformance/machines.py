"""Simulated machines for end-to-end deploys on loopback, without a VM.

A `Machine` is what a rack server is to Ferric when its power is `fake`:
a NIC (its MAC), a disk (a sparse file) and the deploy ramdisk's agent,
`ferric-agent`, which it runs while it is "network booted". It watches its
node through the API: every power action Ferric takes shows as a new
`driver_internal_info.last_power_state_change`. A power-off cuts the agent
(SIGKILL, as pulling the plug would); a power-on or reboot while the node
expects an agent boots a fresh one, as PXE would boot the ramdisk. When the
deploy boots the instance (`boot_instance`), or the node is idle, the
machine boots no ramdisk.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

from conftest import REPO_ROOT, FerricServer, _die_with_parent, _resolve

# States in which a powered-on machine boots the deploy ramdisk.
RAMDISK_STATES = {
    "cleaning", "clean wait", "deploying", "wait call-back", "inspecting", "inspect wait",
    "servicing", "service wait", "rescuing", "rescue wait",
}


def agent_binary() -> Path:
    path = _resolve(os.environ.get("FERRIC_AGENT_BIN") or "target/debug/ferric-agent")
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"no ferric-agent binary at {path}: run `cargo build -p ferric-agent` or set FERRIC_AGENT_BIN")
    return path


class Machine:
    def __init__(self, server: FerricServer, workdir: Path, name: str, mac: str, disk_gib: int = 8):
        self.server = server
        self.name = name
        self.mac = mac
        self.dir = workdir / f"machine-{name}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.disk = self.dir / "disk.img"
        with open(self.disk, "wb") as f:
            f.truncate(disk_gib << 30)
        self.uuid: str | None = None
        self.agent: subprocess.Popen[bytes] | None = None
        self.boots = 0
        self.instance_boots = 0
        self.api_url = server.url
        self._last_event: object = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # -- life -------------------------------------------------------------

    def watch(self, uuid: str) -> "Machine":
        """Starts playing the machine of node `uuid`."""
        self.uuid = uuid
        node = self.server.node(uuid)
        self._last_event = node["driver_internal_info"].get("last_power_state_change")
        self._thread = threading.Thread(target=self._run, name=f"machine-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.cut_power()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._poll()
            except OSError:
                pass  # the server is down (a test killed it): try again
            except Exception as e:  # noqa: BLE001 - a malformed answer must not kill the machine
                print(f"machine {self.name}: {e!r}")
            self._stop.wait(0.2)

    def _poll(self) -> None:
        status, node = self.server.api("GET", f"/v1/nodes/{self.uuid}")
        if status != 200:
            return
        event = node["driver_internal_info"].get("last_power_state_change")
        if event == self._last_event:
            return
        self._last_event = event
        self.cut_power()
        if node["power_state"] != "power on":
            return
        step = (node.get("deploy_step") or {}).get("step")
        if node["provision_state"] in RAMDISK_STATES and step != "boot_instance":
            self.boot_ramdisk()
        else:
            self.instance_boots += 1

    # -- what a test can do to the machine -------------------------------------

    def boot_ramdisk(self) -> None:
        with self._lock:
            self.boots += 1
            log = open(self.dir / f"agent-{self.boots}.log", "wb")
            cmd = [
                str(agent_binary()),
                "--api-url", self.api_url,
                "--disk", str(self.disk),
                "--mac", self.mac,
                "--listen", "127.0.0.1:0",
                "--min-heartbeat-interval", "1",
                "--lookup-timeout", "600",
            ]
            self.agent = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                          preexec_fn=_die_with_parent)

    def cut_power(self) -> None:
        """The agent dies at once, as the machine does without power."""
        with self._lock:
            if self.agent is not None and self.agent.poll() is None:
                self.agent.send_signal(signal.SIGKILL)
                self.agent.wait()
            self.agent = None

    def agent_running(self) -> bool:
        return self.agent is not None and self.agent.poll() is None

    def agent_log(self) -> str:
        try:
            return (self.dir / f"agent-{self.boots}.log").read_text(errors="replace")[-4000:]
        except OSError:
            return "(no agent log)"

    def disk_bytes(self, length: int, offset: int = 0) -> bytes:
        with open(self.disk, "rb") as f:
            f.seek(offset)
            return f.read(length)


def wait_for(pred, what: str, timeout: float = 60.0, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


__all__ = ["Machine", "agent_binary", "wait_for", "REPO_ROOT"]
