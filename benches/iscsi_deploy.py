#!/usr/bin/env python3
"""The iSCSI deploy against the direct deploy, on simulated machines over
loopback (release `ferric serve` and `ferric-agent`), in one sitting:

1. The same raw whole-disk image (an MBR, the rest random bytes, so no
   block is skipped as zeros) deployed RUNS times by each deploy interface,
   alternating: seconds from `deploy` to `active`, the write itself (from
   the node's history events, and from the processes' logs to the
   microsecond), its MiB/s, the CPU time (user + system, and system) of
   `ferric serve` and of the machine's `ferric-agent` during the deploy,
   and their peak RSS. Beside them, what a user would run instead: `dd oflag=direct` of the
   image onto a fresh disk file (the floor of the disk), and `curl -o` from
   the same HTTP server followed by an fsync (the floor of a download and
   write).
2. PARALLEL iSCSI deploys at once, with `[iscsi] max_concurrent_deploys`
   = PARALLEL, then with the default (4), then with a larger `queue_depth`:
   the conductor's RSS before (baseline) and its peak during.

    benches/iscsi_deploy.py [--size-mib 2048] [--runs 3] [--parallel 10] [--keep]
                            [--workdir DIR] [--ferric-bin target/release/ferric]
                            [--agent-bin target/release/ferric-agent]

A simulated machine is a sparse disk file and the agent `ferric-agent
--disk FILE` that the script starts when Ferric powers the machine on into
the ramdisk (the `fake` power interface) and kills when Ferric powers it
off, as tests/conformance/machines.py does. Images are served by a small
threaded HTTP server in this process (sendfile from the page cache).
Automated cleaning is off, so `provide` and `undeploy` boot no ramdisk.
The spans read from history events and logs use the wall clock: the script
warns if it stepped during a run. Prints Markdown (the raw figures of each
run as HTML comments); builds the binaries with cargo only when the default
ones are missing. Needs sfdisk and curl; disk space for the image plus PARALLEL
disks written (falls back to a 1 GiB image for the parallel runs if not).
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HEADERS = {"Content-Type": "application/json", "X-OpenStack-Ironic-API-Version": "latest"}
MIB = 1 << 20
CLK_TCK = os.sysconf("SC_CLK_TCK")
RAMDISK_STATES = {"cleaning", "clean wait", "deploying", "wait call-back", "inspecting", "inspect wait",
                  "servicing", "service wait", "rescuing", "rescue wait"}
WRITE_EVENTS = {
    "direct": ("Image write started from", "Image written to the disk"),
    "iscsi": ("iSCSI target started on the agent", "Image written over iSCSI"),
}
DISK_BYTES = 4 << 30  # each simulated disk (sparse); main() makes it larger than the image
DEPLOY_TIMEOUT = 900
STATE_TIMEOUT = 300


# -- processes and /proc ---------------------------------------------------------------


def die_with_parent() -> None:
    """The child gets SIGKILL if this script dies, so nothing outlives it."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def cpu_times(pid: int) -> tuple[float, float]:
    """(utime + stime, stime) of a live process, from /proc/PID/stat, in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK, int(fields[12]) / CLK_TCK


def cpu_seconds(pid: int) -> float:
    return cpu_times(pid)[0]


def status_mib(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {key} in /proc/{pid}/status")


def reset_peak_rss(pid: int) -> bool:
    """Resets VmHWM to the current RSS (Linux's clear_refs 5)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def try_reap(proc: subprocess.Popen) -> tuple[int, float, float, float] | None:
    """Reaps `proc` if it ended, with wait4: (exit code, CPU seconds, peak RSS MiB,
    of which system CPU seconds).
    Never Popen.poll()/kill() on these: they reap the child and lose its rusage."""
    pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
    if not pid:
        return None
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, usage.ru_stime


def wait_rusage(proc: subprocess.Popen, timeout: float) -> tuple[int, float, float, float]:
    """Waits for `proc` (SIGKILL after `timeout`) and reaps it with wait4."""
    deadline = time.monotonic() + timeout
    while (reaped := try_reap(proc)) is None:
        if time.monotonic() > deadline:
            os.kill(proc.pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
        time.sleep(0.02)
    return reaped


class RssSampler:
    """VmRSS of a process every 0.1 s, in a thread, until stopped."""

    def __init__(self, pid: int):
        self.pid = pid
        self.peak = status_mib(pid, "VmRSS")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            try:
                self.peak = max(self.peak, status_mib(self.pid, "VmRSS"))
            except (OSError, RuntimeError):
                return

    def stop(self) -> float:
        self._stop.set()
        self._thread.join(5)
        return self.peak


def wall_offset() -> float:
    """Wall clock minus monotonic clock: it changes only if the wall clock is stepped,
    which would skew the spans read from history events and logs (wall clock)."""
    return time.time() - time.monotonic()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the image and its server ----------------------------------------------------------


def make_image(path: Path, mib: int) -> str:
    """An MBR with one Linux partition (sfdisk), the rest random bytes; its sha256."""
    with open(path, "wb") as f:
        for _ in range(mib):
            f.write(os.urandom(MIB))
    subprocess.run(["sfdisk", "-q", str(path)], input=b"start=2048, type=83\n", check=True,
                   capture_output=True, timeout=60)
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(8 * MIB):
            digest.update(block)
    return digest.hexdigest()


class ImageServer:
    """Serves the files of one directory (GET and HEAD, no ranges) on loopback."""

    def __init__(self, root: Path):
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_HEAD(self) -> None:
                self._serve(False)

            def do_GET(self) -> None:
                self._serve(True)

            def _serve(self, body: bool) -> None:
                path = root / self.path.split("?", 1)[0].lstrip("/")
                if "/" in self.path.lstrip("/") or not path.is_file():
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(path.stat().st_size))
                self.end_headers()
                if body:
                    with open(path, "rb") as f:
                        try:
                            self.wfile.flush()
                            self.connection.sendfile(f)
                        except (BrokenPipeError, ConnectionResetError):
                            self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# -- ferric serve and its API -------------------------------------------------------------


def toml(sections: dict[str, dict[str, object]]) -> str:
    def value(v: object) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        return str(v) if isinstance(v, int) else json.dumps(str(v))

    return "".join(f"[{name}]\n" + "".join(f"{k} = {value(v)}\n" for k, v in opts.items())
                   for name, opts in sections.items())


class Server:
    """`ferric serve` on a loopback port with a data dir of its own."""

    def __init__(self, binary: Path, work: Path, name: str, iscsi: dict[str, object]):
        self.dir = work / name
        self.dir.mkdir()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        sections = {
            "conductor": {"host": "bench", "automated_clean": False, "check_provision_state_interval": 1,
                          "deploy_callback_timeout": 1800, "clean_callback_timeout": 600},
            # The agent heartbeats every 0.3-0.6 of ramdisk_heartbeat_timeout (at least
            # --min-heartbeat-interval 1 s): the conductor learns an iSCSI write is done at
            # the next one, so keep it short to time the write, not the heartbeat.
            "agent": {"post_deploy_get_power_state_retries": 1, "post_deploy_get_power_state_retry_interval": 1,
                      "ramdisk_heartbeat_timeout": 2},
            "iscsi": iscsi,
        }
        config = self.dir / "ferric.toml"
        config.write_text(f'listen = "127.0.0.1:{self.port}"\ndata_dir = "{self.dir / "data"}"\nlog = "info"\n'
                          + toml(sections))
        self.log = open(self.dir / "ferric.log", "wb")
        env = {k: v for k, v in os.environ.items() if not k.startswith("FERRIC_") and k != "RUST_LOG"}
        env["NO_COLOR"] = "1"
        self.proc = subprocess.Popen([str(binary), "serve", "--config", str(config)], stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT, env=env, preexec_fn=die_with_parent)
        self.pid = self.proc.pid
        deadline = time.monotonic() + 60
        while True:
            try:
                self.api("GET", "/")
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("ferric serve did not start:\n" + self.log_tail())
                time.sleep(0.1)

    def api(self, method: str, path: str, body: object | None = None) -> dict:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=None if body is None else json.dumps(body), headers=HEADERS)
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        if resp.status >= 300:
            raise RuntimeError(f"{method} {path}: {resp.status} {data[:300]!r}")
        return json.loads(data) if data else {}

    def node(self, uuid: str) -> dict:
        return self.api("GET", f"/v1/nodes/{uuid}")

    def move(self, uuid: str, target: str) -> None:
        self.api("PUT", f"/v1/nodes/{uuid}/states/provision", {"target": target})

    def wait_state(self, uuid: str, state: str, timeout: float = STATE_TIMEOUT, interval: float = 0.1) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            node = self.node(uuid)
            if node["provision_state"] == state and node["reservation"] is None:
                return node
            if node["provision_state"] in ("deploy failed", "clean failed", "error"):
                raise RuntimeError(f"node {uuid} is {node['provision_state']}: {node['last_error']}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"node {uuid} never became {state} (is {node['provision_state']})")
            time.sleep(interval)

    def events(self, uuid: str) -> list[tuple[datetime, str]]:
        history = self.api("GET", f"/v1/nodes/{uuid}/history?detail=true")["history"]
        return [(datetime.fromisoformat(e["created_at"]), e["event"]) for e in history]

    def log_tail(self) -> str:
        self.log.flush()
        return (self.dir / "ferric.log").read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()


# -- simulated machines -------------------------------------------------------------------


class Machine:
    """A disk file and the agent Ferric's fake power boots on it (machines.py's rules)."""

    def __init__(self, server: Server, agent_bin: Path, work: Path, index: int):
        self.server = server
        self.agent_bin = agent_bin
        self.dir = work / f"machine-{index}"
        self.dir.mkdir()
        self.disk = self.dir / "disk.img"
        self.mac = f"52:54:00:bb:{index >> 8 & 255:02x}:{index & 255:02x}"
        self.uuid = ""
        self.agent: subprocess.Popen | None = None
        self.boots = 0
        self.agent_cpu = 0.0  # all agents so far, reaped
        self.agent_sys = 0.0  # of which in the kernel
        self.agent_peak_rss = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._last_event: object = None
        self._thread: threading.Thread | None = None
        self.fresh_disk()

    def fresh_disk(self) -> None:
        """An empty sparse disk, as a new machine's."""
        self.disk.unlink(missing_ok=True)
        with open(self.disk, "wb") as f:
            f.truncate(DISK_BYTES)

    def enrol(self, interface: str, name: str) -> str:
        node = self.server.api("POST", "/v1/nodes", {
            "driver": "fake-hardware", "name": name, "deploy_interface": interface,
            "management_interface": "noop", "properties": {"capabilities": "boot_mode:bios"}})
        self.uuid = node["uuid"]
        self.server.api("POST", "/v1/ports", {"address": self.mac, "node_uuid": self.uuid})
        self._last_event = self.server.node(self.uuid)["driver_internal_info"].get("last_power_state_change")
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self.uuid

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            try:
                self._reap()
                self._poll()
            except (OSError, RuntimeError) as e:
                print(f"<!-- machine {self.mac}: {e} -->", file=sys.stderr)

    def _poll(self) -> None:
        node = self.server.node(self.uuid)
        event = node["driver_internal_info"].get("last_power_state_change")
        if event == self._last_event:
            return
        self._last_event = event
        self.cut_power()
        step = (node.get("deploy_step") or {}).get("step")
        if node["power_state"] == "power on" and node["provision_state"] in RAMDISK_STATES and step != "boot_instance":
            self._boot_ramdisk()

    def _boot_ramdisk(self) -> None:
        with self._lock:
            self.boots += 1
            log = open(self.dir / f"agent-{self.boots}.log", "wb")
            self.agent = subprocess.Popen(
                [str(self.agent_bin), "--api-url", self.server.url, "--disk", str(self.disk), "--mac", self.mac,
                 "--listen", "127.0.0.1:0", "--min-heartbeat-interval", "1", "--lookup-timeout", "600"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
            log.close()

    def _account(self, reaped: tuple[int, float, float, float]) -> None:
        self.agent_cpu += reaped[1]
        self.agent_sys += reaped[3]
        self.agent_peak_rss = max(self.agent_peak_rss, reaped[2])
        self.agent = None

    def _reap(self) -> None:
        """Accounts for an agent that ended by itself (its own power-off)."""
        with self._lock:
            if self.agent is not None and (reaped := try_reap(self.agent)) is not None:
                self._account(reaped)

    def cut_power(self) -> None:
        """The agent dies at once (SIGKILL), as the machine does without power."""
        with self._lock:
            if self.agent is None:
                return
            if (reaped := try_reap(self.agent)) is None:
                os.kill(self.agent.pid, signal.SIGKILL)
                reaped = wait_rusage(self.agent, 10)
            self._account(reaped)

    def wait_agent_gone(self, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while self.agent is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.agent is not None:
            self.cut_power()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self.cut_power()


# -- the measurements ---------------------------------------------------------------------


def set_image(server: Server, uuid: str, url: str, sha: str) -> None:
    server.api("PATCH", f"/v1/nodes/{uuid}", [
        {"op": "add", "path": "/instance_info/image_source", "value": url},
        {"op": "add", "path": "/instance_info/image_os_hash_algo", "value": "sha256"},
        {"op": "add", "path": "/instance_info/image_os_hash_value", "value": sha}])


def write_span(server: Server, uuid: str, interface: str, since: datetime) -> tuple[datetime, datetime]:
    """When this deploy's write started and ended, by the node's history."""
    start_text, end_text = WRITE_EVENTS[interface]
    events = [(t, e) for t, e in server.events(uuid) if t >= since]
    starts = [t for t, e in events if e.startswith(start_text)]
    ends = [t for t, e in events if e.startswith(end_text)]
    if not starts or not ends:
        raise RuntimeError(f"no write events for {uuid}: {[e for _, e in events]}")
    return max(starts), max(ends)


LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT[\d:.]+Z)\s+(.*)$")
# The write by the logs, to the microsecond: (process, text) of its start and its end.
# direct: the agent takes the write_image step, its pipeline says the image is written
# (after the fsync); iscsi: the agent's target is up, the conductor's pipeline says the
# image is written (after SYNCHRONIZE CACHE).
LOG_EVENTS = {
    "direct": (("agent", 'command="deploy.execute_deploy_step"'), ("agent", "ferric_image::pipeline: image written")),
    "iscsi": (("agent", "iSCSI target started"), ("server", " image written format=")),
}


def log_time(path: Path, text: str, after: datetime) -> datetime:
    """The time of the first line of log `path` holding `text`, at or after `after`."""
    for line in re.sub(r"\x1b\[[0-9;]*m", "", path.read_text(errors="replace")).splitlines():
        m = LOG_LINE.match(line)
        if m and text in m.group(2):
            at = datetime.fromisoformat(m.group(1).replace("Z", "+00:00"))
            if at >= after:
                return at
    raise RuntimeError(f"no {text!r} in {path} after {after}")


def log_write_seconds(server: Server, machine: Machine, interface: str, since: datetime) -> float:
    logs = {"agent": machine.dir / f"agent-{machine.boots}.log", "server": server.dir / "ferric.log"}
    (start_log, start_text), (end_log, end_text) = LOG_EVENTS[interface]
    server.log.flush()
    start = log_time(logs[start_log], start_text, since)
    return (log_time(logs[end_log], end_text, start) - start).total_seconds()


def deploy_once(server: Server, machine: Machine, interface: str, url: str, sha: str, size_mib: int) -> dict:
    machine.fresh_disk()
    os.sync()
    set_image(server, machine.uuid, url, sha)
    time.sleep(1)
    baseline = status_mib(server.pid, "VmRSS")
    hwm_reset = reset_peak_rss(server.pid)
    sampler = RssSampler(server.pid)
    (cpu0, sys0), agent_cpu0, agent_sys0 = cpu_times(server.pid), machine.agent_cpu, machine.agent_sys
    offset = wall_offset()
    since = datetime.now().astimezone()
    started = time.monotonic()
    server.move(machine.uuid, "active")
    server.wait_state(machine.uuid, "active", DEPLOY_TIMEOUT)
    elapsed = time.monotonic() - started
    cpu, sys_cpu = (now - then for now, then in zip(cpu_times(server.pid), (cpu0, sys0)))
    peak = sampler.stop()
    clock_step = wall_offset() - offset
    if hwm_reset:
        peak = max(peak, status_mib(server.pid, "VmHWM"))
    machine.wait_agent_gone()
    start, end = write_span(server, machine.uuid, interface, since.replace(microsecond=0))
    write = (end - start).total_seconds()
    log_write = log_write_seconds(server, machine, interface, since)
    server.move(machine.uuid, "deleted")
    server.wait_state(machine.uuid, "available")
    machine.wait_agent_gone()
    return {"active": elapsed, "write": write, "mibs": size_mib / write, "log_write": log_write,
            "log_mibs": size_mib / log_write, "clock_step": clock_step, "cpu": cpu, "sys": sys_cpu,
            "baseline": baseline, "peak": peak, "agent_cpu": machine.agent_cpu - agent_cpu0,
            "agent_sys": machine.agent_sys - agent_sys0, "agent_rss": machine.agent_peak_rss}


def timed(cmd: list[str], fsync: Path | None = None) -> tuple[float, float, float]:
    """Wall seconds (with an fsync of `fsync` after), CPU seconds and of them system
    CPU seconds of one command."""
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    code, cpu, _, sys_cpu = wait_rusage(proc, 600)
    if code != 0:
        raise RuntimeError(f"{cmd[0]} failed ({code}): {proc.stderr.read()[:300]!r}")
    proc.stderr.close()
    if fsync is not None:
        fd = os.open(fsync, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return time.monotonic() - started, cpu, sys_cpu


def instead_runs(work: Path, image: Path, url: str, runs: int) -> dict[str, list[tuple[float, float, float]]]:
    disk = work / "instead.img"
    results: dict[str, list[tuple[float, float, float]]] = {"dd": [], "curl": []}
    for _ in range(runs):
        for name in ("dd", "curl"):
            disk.unlink(missing_ok=True)
            with open(disk, "wb") as f:
                f.truncate(DISK_BYTES)
            os.sync()
            if name == "dd":
                cmd = ["dd", f"if={image}", f"of={disk}", "bs=1M", "oflag=direct", "conv=notrunc", "status=none"]
                results[name].append(timed(cmd))
            else:
                results[name].append(timed(["curl", "-sS", "-o", str(disk), url], fsync=disk))
    disk.unlink(missing_ok=True)
    return results


def parallel_run(args, work: Path, name: str, url: str, sha: str, size_mib: int, iscsi: dict) -> dict:
    server = Server(args.ferric_bin, work, name, iscsi)
    machines: list[Machine] = []
    try:
        machines = [Machine(server, args.agent_bin, work / name, i) for i in range(args.parallel)]
        uuids = [m.enrol("iscsi", f"{name}-{i}") for i, m in enumerate(machines)]
        for target, state in (("manage", "manageable"), ("provide", "available")):
            for uuid in uuids:
                server.move(uuid, target)
            for uuid in uuids:
                server.wait_state(uuid, state)
        for uuid in uuids:
            set_image(server, uuid, url, sha)
        os.sync()
        time.sleep(2)
        baseline = status_mib(server.pid, "VmRSS")
        hwm_reset = reset_peak_rss(server.pid)
        sampler = RssSampler(server.pid)
        cpu0, sys0 = cpu_times(server.pid)
        offset = wall_offset()
        since = datetime.now().astimezone().replace(microsecond=0)
        started = time.monotonic()
        for uuid in uuids:
            server.move(uuid, "active")
        for uuid in uuids:
            server.wait_state(uuid, "active", DEPLOY_TIMEOUT, interval=0.5)
        elapsed = time.monotonic() - started
        cpu, sys_cpu = (now - then for now, then in zip(cpu_times(server.pid), (cpu0, sys0)))
        peak = sampler.stop()
        if hwm_reset:
            peak = max(peak, status_mib(server.pid, "VmHWM"))
        spans = [write_span(server, uuid, "iscsi", since) for uuid in uuids]
        writes = [(end - start).total_seconds() for start, end in spans]
        first = min(start for start, _ in spans)
        last = max(end for _, end in spans)
        return {"active": elapsed, "writes": writes, "span": (last - first).total_seconds(),
                "clock_step": wall_offset() - offset, "cpu": cpu, "sys": sys_cpu,
                "baseline": baseline, "peak": peak}
    finally:
        for m in machines:
            m.stop()
        server.stop()
        if not args.keep:
            shutil.rmtree(work / name, ignore_errors=True)


# -- output ---------------------------------------------------------------------------------


def warn_clock(r: dict) -> None:
    if abs(r["clock_step"]) > 0.2:
        print(f"<!-- WARNING: the wall clock stepped by {r['clock_step']:+.2f} s during that run: "
              "its write times (history events, logs) are off by up to that -->", flush=True)


def cells(values: list[float], fmt: str = "{:.1f}") -> str:
    return ", ".join(fmt.format(v) for v in values)


def cpu_cells(pairs: list[tuple[float, float]]) -> str:
    """CPU seconds, each with its system share."""
    return ", ".join(f"{cpu:.2f} (sys {sys_cpu:.2f})" for cpu, sys_cpu in pairs)


def print_single(results: dict[str, list[dict]], instead: dict[str, list[tuple[float, float, float]]],
                 size_mib: int) -> None:
    d, i = results["direct"], results["iscsi"]
    dd, curl = instead["dd"], instead["curl"]

    def col(rs: list[dict], key: str, fmt: str = "{:.1f}") -> str:
        return cells([r[key] for r in rs], fmt)

    rss = lambda rs: ", ".join(f"{r['baseline']:.1f} → {r['peak']:.1f}" for r in rs)  # noqa: E731
    print(f"| {size_mib} MiB raw image, {len(d)} runs each | direct | iscsi | instead |")
    print("|---|---|---|---|")
    print(f"| `deploy` → `active`, s | {col(d, 'active')} | {col(i, 'active')} | |")
    print(f"| the write (history events), s | {col(d, 'write')} | {col(i, 'write')} | "
          f"`dd oflag=direct`: {cells([t for t, _, _ in dd])}; `curl -o` + fsync: {cells([t for t, _, _ in curl])} |")
    print(f"| the write, MiB/s | {col(d, 'mibs', '{:.0f}')} | {col(i, 'mibs', '{:.0f}')} | "
          f"dd: {cells([size_mib / t for t, _, _ in dd], '{:.0f}')}; curl: {cells([size_mib / t for t, _, _ in curl], '{:.0f}')} |")
    print(f"| the write (the processes' logs), s | {col(d, 'log_write', '{:.2f}')} | {col(i, 'log_write', '{:.2f}')} | |")
    print(f"| the write (the processes' logs), MiB/s | {col(d, 'log_mibs', '{:.0f}')} | {col(i, 'log_mibs', '{:.0f}')} | |")
    cpu = lambda rs, k="": cpu_cells([(r[k + "cpu"], r[k + "sys"]) for r in rs])  # noqa: E731
    print(f"| `ferric serve` CPU during the deploy, s | {cpu(d)} | {cpu(i)} | |")
    print(f"| `ferric serve` RSS before → peak, MiB | {rss(d)} | {rss(i)} | |")
    print(f"| `ferric-agent` CPU, s | {cpu(d, 'agent_')} | {cpu(i, 'agent_')} | "
          f"dd: {cpu_cells([(c, k) for _, c, k in dd])}; curl: {cpu_cells([(c, k) for _, c, k in curl])} |")
    print(f"| `ferric-agent` peak RSS (all runs), MiB | {d[-1]['agent_rss']:.1f} | {i[-1]['agent_rss']:.1f} | |")
    print(flush=True)


def print_parallel(one: list[dict], rows: list[tuple[str, dict, int]], count: int, size_mib: int) -> None:
    print(f"| iSCSI deploys of {size_mib} MiB | all `active`, s | writes (queueing included), s | aggregate MiB/s | "
          "`ferric serve` CPU, s | RSS baseline → peak, MiB | (peak − baseline) / deploys, MiB | "
          "(peak − baseline) / writes at once, MiB |")
    print("|---|---|---|---|---|---|---|---|")
    for r in one:
        grown = r["peak"] - r["baseline"]
        print(f"| 1 deploy (above) | {r['active']:.1f} | {r['write']:.1f} | {r['mibs']:.0f} | {cpu_cells([(r['cpu'], r['sys'])])} | "
              f"{r['baseline']:.1f} → {r['peak']:.1f} | {grown:.1f} | {grown:.1f} |")
    for label, r, at_once in rows:
        grown = r["peak"] - r["baseline"]
        print(f"| {count} at once, {label} | {r['active']:.1f} | {min(r['writes']):.1f}–{max(r['writes']):.1f} | "
              f"{count * size_mib / r['span']:.0f} | {cpu_cells([(r['cpu'], r['sys'])])} | {r['baseline']:.1f} → {r['peak']:.1f} | "
              f"{grown / count:.1f} | {grown / at_once:.1f} |")
    print(flush=True)


# -- main --------------------------------------------------------------------------------------


def binaries(args) -> None:
    defaults = (REPO / "target/release/ferric", REPO / "target/release/ferric-agent")
    missing = [p for p in (args.ferric_bin, args.agent_bin) if not os.access(p, os.X_OK)]
    if not missing:
        return
    if all(p in defaults for p in missing):
        print("<!-- building the release binaries -->", file=sys.stderr)
        subprocess.run(["cargo", "build", "--release", "-p", "ferric", "--bin", "ferric",
                        "-p", "ferric-agent", "--bin", "ferric-agent"], cwd=REPO, check=True, timeout=3600)
        return
    sys.exit(f"missing {', '.join(map(str, missing))}: build them with "
             "`cargo build --release -p ferric --bin ferric -p ferric-agent --bin ferric-agent`")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-mib", type=int, default=2048)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--parallel", type=int, default=10)
    ap.add_argument("--keep", action="store_true", help="keep the work directory (images, disks, logs)")
    ap.add_argument("--workdir", type=Path, default=None, help="where the temp dir goes (default: $TMPDIR)")
    ap.add_argument("--ferric-bin", type=Path, default=REPO / "target/release/ferric")
    ap.add_argument("--agent-bin", type=Path, default=REPO / "target/release/ferric-agent")
    args = ap.parse_args()
    args.ferric_bin, args.agent_bin = args.ferric_bin.resolve(), args.agent_bin.resolve()
    global DISK_BYTES
    DISK_BYTES = max(DISK_BYTES, (args.size_mib + 1024) * MIB)
    binaries(args)
    work = Path(tempfile.mkdtemp(prefix="ferric-iscsi-bench-", dir=args.workdir))
    images: ImageServer | None = None
    server: Server | None = None
    machines: list[Machine] = []
    try:
        free_mib = shutil.disk_usage(work).free // MIB
        parallel_mib = args.size_mib
        need = args.size_mib * (2 + args.parallel) + 2048
        if free_mib < need:
            parallel_mib = 1024
        print(f"<!-- {work}: {free_mib} MiB free; image {args.size_mib} MiB (MBR + random bytes); "
              f"parallel runs with {parallel_mib} MiB; load average {os.getloadavg()} -->", flush=True)
        image = work / "image.raw"
        sha = make_image(image, args.size_mib)
        images = ImageServer(work)
        url = images.url(image.name)
        if parallel_mib != args.size_mib:
            small_sha = make_image(work / "small.raw", parallel_mib)
        else:
            small_sha = sha

        server = Server(args.ferric_bin, work, "single", {"max_concurrent_deploys": args.parallel})
        machines = [Machine(server, args.agent_bin, work, i) for i in (1, 2)]
        uuids = {"direct": machines[0].enrol("direct", "direct-1"), "iscsi": machines[1].enrol("iscsi", "iscsi-1")}
        for uuid in uuids.values():
            server.move(uuid, "manage")
            server.wait_state(uuid, "manageable")
            server.move(uuid, "provide")
            server.wait_state(uuid, "available")
        idle0, idle_at = cpu_seconds(server.pid), time.monotonic()
        time.sleep(5)
        idle = (cpu_seconds(server.pid) - idle0) / (time.monotonic() - idle_at)
        print(f"<!-- ferric serve idle with the two machines polling it: {idle * 1000:.0f} ms CPU per s -->", flush=True)
        results: dict[str, list[dict]] = {"direct": [], "iscsi": []}
        for run in range(args.runs):
            for interface, machine in (("direct", machines[0]), ("iscsi", machines[1])):
                r = deploy_once(server, machine, interface, url, sha, args.size_mib)
                results[interface].append(r)
                print(f"<!-- run {run + 1} {interface}: {json.dumps({k: round(v, 3) for k, v in r.items()})} -->",
                      flush=True)
                warn_clock(r)
        for m in machines:
            m.stop()
            m.disk.unlink(missing_ok=True)
        machines = []
        server.stop()
        server = None
        instead = instead_runs(work, image, url, args.runs)
        print_single(results, instead, args.size_mib)

        small_url = images.url("small.raw" if parallel_mib != args.size_mib else image.name)
        rows = []
        for label, iscsi, at_once in ((f"max_concurrent_deploys {args.parallel}, queue_depth 8",
                                       {"max_concurrent_deploys": args.parallel}, args.parallel),
                                      ("max_concurrent_deploys 4 (default), queue_depth 8", {}, min(4, args.parallel)),
                                      (f"max_concurrent_deploys {args.parallel}, queue_depth 32",
                                       {"max_concurrent_deploys": args.parallel, "queue_depth": 32}, args.parallel)):
            name = f"parallel-{len(rows) + 1}"
            r = parallel_run(args, work, name, small_url, small_sha, parallel_mib, iscsi)
            rows.append((label, r, at_once))
            print(f"<!-- {label}: {json.dumps({k: v if isinstance(v, list) else round(v, 3) for k, v in r.items()})} -->",
                  flush=True)
            warn_clock(r)
        one = results["iscsi"] if parallel_mib == args.size_mib else []
        print_parallel(one, rows, args.parallel, parallel_mib)
        print(f"<!-- load average at the end {os.getloadavg()} -->")
        return 0
    finally:
        for m in machines:
            m.stop()
        if server is not None:
            server.stop()
        if images is not None:
            images.stop()
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
