#!/usr/bin/env python3
"""The conductor's periodic work at scale: the RSS of `ferric serve`
(release build) holding N idle manageable nodes while the power-state sync
runs every INTERVAL seconds, sampled over several sync cycles.

    benches/periodic.py --nodes 10000 --interval 60 --cycles 3 [--driver fake-hardware]

Nodes are enrolled and managed through the API (POST /v1/nodes, then
PUT .../states/provision manage), 8 requests at a time. Prints RSS after
enrolment, at the end of each cycle, and the peak (VmHWM), in MiB, and how
long each sync took when the server logs it (debug level for the sync).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HEADERS = {"Content-Type": "application/json", "X-OpenStack-Ironic-API-Version": "1.90"}


def rss(pid: int) -> tuple[float, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        fields[k] = v.strip()
    mib = lambda k: int(fields[k].split()[0]) / 1024  # noqa: E731
    return mib("VmRSS"), mib("VmHWM")


def request(conn: http.client.HTTPConnection, method: str, path: str, body: object | None = None) -> dict:
    conn.request(method, path, body=None if body is None else json.dumps(body), headers=HEADERS)
    resp = conn.getresponse()
    data = resp.read()
    if resp.status >= 300:
        raise RuntimeError(f"{method} {path}: {resp.status} {data[:300]!r}")
    return json.loads(data) if data else {}


def enrol(port: int, count: int, driver: str, driver_info: dict, worker: int, workers: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for i in range(worker, count, workers):
        node = request(conn, "POST", "/v1/nodes", {"driver": driver, "name": f"n{i}", "driver_info": driver_info})
        request(conn, "PUT", f"/v1/nodes/{node['uuid']}/states/provision", {"target": "manage"})


def wait_manageable(port: int, count: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    while True:
        done = 0
        marker = None
        while True:
            path = "/v1/nodes?fields=uuid,provision_state&limit=1000" + (f"&marker={marker}" if marker else "")
            nodes = request(conn, "GET", path)["nodes"]
            done += sum(1 for n in nodes if n["provision_state"] == "manageable")
            if len(nodes) < 1000:
                break
            marker = nodes[-1]["uuid"]
        if done >= count:
            return
        time.sleep(1)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=10000)
    ap.add_argument("--interval", type=int, default=60)
    ap.add_argument("--cycles", type=int, default=3)
    ap.add_argument("--port", type=int, default=16385)
    ap.add_argument("--driver", default="fake-hardware")
    ap.add_argument("--driver-info", default="{}", help="JSON driver_info for every node")
    ap.add_argument("--binary", default=str(REPO / "target/release/ferric"))
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="ferric-periodic-"))
    config = work / "ferric.toml"
    config.write_text(
        f'listen = "127.0.0.1:{args.port}"\n'
        f'data_dir = "{work / "data"}"\n'
        'log = "warn,ferric_conductor::periodic::power_sync=debug"\n'
        "[conductor]\n"
        f"sync_power_state_interval = {args.interval}\n"
        "power_failure_recovery_interval = 0\n"
    )
    log = open(work / "server.log", "w")
    server = subprocess.Popen([args.binary, "serve", "--config", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(100):
            try:
                http.client.HTTPConnection("127.0.0.1", args.port, timeout=1).request("GET", "/")
                break
            except OSError:
                time.sleep(0.1)
        started = time.time()
        info = json.loads(args.driver_info)
        threads = [threading.Thread(target=enrol, args=(args.port, args.nodes, args.driver, info, w, 8)) for w in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wait_manageable(args.port, args.nodes)
        enrolled = time.time()
        rss_enrolled, _ = rss(server.pid)
        print(f"enrolled and managed {args.nodes} nodes in {enrolled - started:.0f} s; RSS {rss_enrolled:.1f} MiB", flush=True)
        samples = []
        end = enrolled + args.cycles * args.interval + 2
        while time.time() < end:
            time.sleep(1)
            samples.append((time.time() - enrolled, *rss(server.pid)))
        for c in range(1, args.cycles + 1):
            at = [s for s in samples if s[0] <= c * args.interval + 1]
            if at:
                print(f"after cycle {c}: RSS {at[-1][1]:.1f} MiB", flush=True)
        final, peak = rss(server.pid)
        print(f"final RSS {final:.1f} MiB, peak (VmHWM) {peak:.1f} MiB")
        plain = re.sub(r"\x1b\[[0-9;]*m", "", (work / "server.log").read_text())
        secs = [float(s) for s in re.findall(r"power state sync done nodes=\d+ seconds=([0-9.]+)", plain)]
        if secs:
            print("sync runs took: " + ", ".join(f"{s:.2f} s" for s in secs))
        return 0
    finally:
        server.terminate()
        server.wait(10)
        log.close()
        if os.environ.get("KEEP") is None:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
