#!/usr/bin/env python3
"""BMC work measured through Ferric's virtual BMC (`ferric lab bmc`,
release build), in one sitting:

1. IPMI power-status round trips against one virtual BMC: Ferric's native
   client (crates/ferric-ipmi/examples/power_status.rs) beside Debian's
   `ipmitool -I lanplus power status`, cipher suites 3 and 17.
2. The power-state sync of N nodes (default 1000), each with a BMC of its
   own, by `ferric serve` with its defaults (8 workers): how long each run
   takes, then again with 5 % packet loss at every BMC.

    benches/bmc.py [--nodes 1000] [--interval 20] [--runs 3] [--count 50]

Prints Markdown rows. Needs ipmitool; builds what it runs.
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RELEASE = REPO / "target/release"
HEADERS = {"Content-Type": "application/json", "X-OpenStack-Ironic-API-Version": "1.90"}


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def distinct_udp_ports(count: int) -> list[int]:
    """Free UDP ports, all different: held open together, then let go."""
    held = []
    for _ in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        held.append(s)
    ports = [s.getsockname()[1] for s in held]
    for s in held:
        s.close()
    return ports


def request(conn: http.client.HTTPConnection, method: str, path: str, body: object | None = None) -> dict:
    conn.request(method, path, body=None if body is None else json.dumps(body), headers=HEADERS)
    resp = conn.getresponse()
    data = resp.read()
    if resp.status >= 300:
        raise RuntimeError(f"{method} {path}: {resp.status} {data[:300]!r}")
    return json.loads(data) if data else {}


def wait_http(port: int, path: str = "/", timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", path)
            conn.getresponse().read()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing answers on port {port}")


def rss_mib(pid: int) -> tuple[float, float]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


class Lab:
    def __init__(self, work: Path, api_url: str, count: int):
        self.redfish = free_port()
        self.ports = distinct_udp_ports(count)
        lines = [f'api_url = "{api_url}"']
        for i, port in enumerate(self.ports):
            lines += ["[[machine]]", f'name = "m{i}"', f'mac = "52:54:01:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}"',
                      f'disk = "{work}/m{i}.disk"', 'disk_size = "1G"', f'ipmi_listen = "127.0.0.1:{port}"',
                      'username = "admin"', 'password = "password"']
        (work / "machines.toml").write_text("\n".join(lines) + "\n")
        self.log = open(work / "bmc.log", "w")
        self.proc = subprocess.Popen([str(RELEASE / "ferric"), "lab", "bmc", "--machines", str(work / "machines.toml"),
                                      "--redfish-listen", f"127.0.0.1:{self.redfish}"],
                                     stdout=self.log, stderr=subprocess.STDOUT, env={"RUST_LOG": "warn"})
        try:
            wait_http(self.redfish, "/lab/machines/m0", 60)
        except RuntimeError:
            self.log.flush()
            raise RuntimeError("ferric lab bmc did not start:\n" + (work / "bmc.log").read_text()[-2000:])

    def faults(self, count: int, **faults) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.redfish, timeout=10)
        for i in range(count):
            request(conn, "PUT", f"/lab/machines/m{i}/faults", faults)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)
        self.log.close()


def round_trips(lab: Lab, count: int) -> list[str]:
    rows = []
    port = lab.ports[0]
    for suite in (3, 17):
        times = []
        for _ in range(count):
            started = time.perf_counter()
            subprocess.run(["ipmitool", "-I", "lanplus", "-C", str(suite), "-H", "127.0.0.1", "-p", str(port),
                            "-U", "admin", "-P", "password", "power", "status"], check=True, capture_output=True)
            times.append((time.perf_counter() - started) * 1000)
        out = subprocess.run([str(RELEASE / "examples/power_status"), "127.0.0.1", str(port), "admin", "password",
                              str(suite), str(count)], check=True, capture_output=True, text=True).stdout
        whole, in_session = (float(m) for m in re.findall(r": ([0-9.]+) ms", out))
        rows.append(f"| power status, cipher suite {suite} | {whole:.2f} ms per operation (session, status, close); "
                    f"{in_session:.3f} ms per status in an open session | `ipmitool -I lanplus power status`: "
                    f"{statistics.median(times):.2f} ms median of {count} runs |")
    return rows


def sync_runs(log: Path) -> list[float]:
    plain = re.sub(r"\x1b\[[0-9;]*m", "", log.read_text())
    return [float(s) for s in re.findall(r"power state sync (?:done|cut short)[^\n]*?nodes=\d+ seconds=([0-9.]+)", plain)]


def enrol(api: int, lab: Lab, count: int) -> None:
    def worker(start: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", api, timeout=60)
        for i in range(start, count, 8):
            node = request(conn, "POST", "/v1/nodes", {
                "driver": "fake-hardware", "name": f"n{i}", "power_interface": "ipmitool",
                "management_interface": "fake",
                "driver_info": {"ipmi_address": "127.0.0.1", "ipmi_port": lab.ports[i], "ipmi_username": "admin",
                                "ipmi_password": "password"}})
            request(conn, "PUT", f"/v1/nodes/{node['uuid']}/states/provision", {"target": "manage"})

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    conn = http.client.HTTPConnection("127.0.0.1", api, timeout=60)
    while True:
        nodes = request(conn, "GET", "/v1/nodes?fields=provision_state&limit=1000")["nodes"]
        states = [n["provision_state"] for n in nodes]
        if states.count("manageable") == count:
            return
        if "enroll" in states and "verifying" not in states:
            raise RuntimeError(f"verification failed for {states.count('enroll')} nodes")
        time.sleep(1)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--interval", type=int, default=20)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--count", type=int, default=50)
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "-q", "--release", "-p", "ferric-ipmi", "--example", "power_status"],
                   cwd=REPO, check=True)
    subprocess.run(["cargo", "build", "-q", "--release", "--bin", "ferric"], cwd=REPO, check=True)
    work = Path(tempfile.mkdtemp(prefix="ferric-bmc-bench-"))
    api = free_port()
    (work / "ferric.toml").write_text(
        f'listen = "127.0.0.1:{api}"\ndata_dir = "{work / "data"}"\n'
        'log = "warn,ferric_conductor::periodic::power_sync=debug"\n'
        f"[conductor]\nsync_power_state_interval = {args.interval}\npower_failure_recovery_interval = 0\n")
    lab = Lab(work, f"http://127.0.0.1:{api}", args.nodes)
    server_log = open(work / "server.log", "w")
    server = subprocess.Popen([str(RELEASE / "ferric"), "serve", "--config", str(work / "ferric.toml")],
                              stdout=server_log, stderr=subprocess.STDOUT)
    try:
        wait_http(api)
        print("| case | Ferric | instead |\n|---|---|---|")
        for row in round_trips(lab, args.count):
            print(row, flush=True)
        started = time.time()
        enrol(api, lab, args.nodes)
        print(f"<!-- enrolled and verified {args.nodes} nodes through IPMI in {time.time() - started:.1f} s -->", flush=True)
        before = len(sync_runs(work / "server.log"))
        while len(sync_runs(work / "server.log")) < before + args.runs:
            time.sleep(1)
        clean = sync_runs(work / "server.log")[before:]
        rss, peak = rss_mib(server.pid)
        print(f"| power-state sync of {args.nodes} nodes, one BMC each | runs of "
              + ", ".join(f"{s:.2f}" for s in clean) + f" s (RSS {rss:.1f} MiB, peak {peak:.1f} MiB) | "
              "Ironic's defaults: one run every 120 s, 8 workers |", flush=True)
        lab.faults(args.nodes, packet_loss=0.05)
        before = len(sync_runs(work / "server.log"))
        while len(sync_runs(work / "server.log")) < before + args.runs:
            time.sleep(1)
        lossy = sync_runs(work / "server.log")[before:]
        conn = http.client.HTTPConnection("127.0.0.1", api, timeout=60)
        nodes = request(conn, "GET", "/v1/nodes?fields=maintenance&limit=1000")["nodes"]
        maint = sum(1 for n in nodes if n["maintenance"])
        print(f"| the same with 5 % packet loss at every BMC | runs of " + ", ".join(f"{s:.2f}" for s in lossy)
              + f" s; {maint} nodes put in maintenance | |")
        return 0
    finally:
        server.terminate()
        server.wait(20)
        server_log.close()
        lab.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
