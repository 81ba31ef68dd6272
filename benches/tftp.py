#!/usr/bin/env python3
"""TFTP throughput: Ferric's server against tftpd-hpa, both serving a 64 MiB
file on the loopback of a network namespace this script creates and always
removes.

    cargo build --release -p ferric-netboot --examples
    sudo benches/tftp.py [--size-mib 64] [--runs 3] [--blksizes 1468,512] [--pin CPU]

For each block size (both servers get the same one), the file is fetched
by Ferric's client (`tftp_get`) with windowsize 16 and by curl (lock-step).
tftpd-hpa does not implement windowsize, so Ferric's client runs lock-step
against it. Prints MiB/s per case (median of --runs, wall time of the
client process, every download checked byte for byte) and the ratio of
Ferric with windowsize 16 to tftpd-hpa with the same client.

On a VM, each exchange of a lock-step transfer (and each window of a
windowed one) costs a wake-up of an idle vCPU, which varies from a few to
tens of microseconds with what else the machine runs, so unpinned figures
swing widely from run to run. --pin CPU runs servers and clients on that
one CPU (taskset): wake-ups become plain context switches and the figures
steady; cases also take turns so that outside load spreads over all.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "target" / "release" / "examples"
FERRIC_PORT = 6969
HPA_PORT = 6970
ADDR = "127.0.0.1"
CLIENT_TIMEOUT_S = 300


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


class Netns:
    """A namespace with only `lo` up; deleted on exit, even on failure."""

    def __init__(self, pin: int | None) -> None:
        self.name = f"ferric-tftp-bench-{os.getpid()}"
        self.pin = [] if pin is None else ["taskset", "-c", str(pin)]

    def __enter__(self) -> "Netns":
        run(["ip", "netns", "add", self.name])
        try:
            self.run(["ip", "link", "set", "lo", "up"])
            # tftpd-hpa resolves its -a address with AI_ADDRCONFIG, which
            # ignores 127.0.0.1 itself: with no other address it exits 66.
            self.run(["ip", "addr", "add", "127.0.0.2/8", "dev", "lo"])
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        subprocess.run(["ip", "netns", "delete", self.name], check=False)

    def prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.name] + self.pin

    def run(self, cmd: list[str], **kw) -> subprocess.CompletedProcess:
        return run(self.prefix() + cmd, **kw)

    def spawn(self, cmd: list[str], log: Path) -> subprocess.Popen:
        # `ip netns exec` (and taskset) exec the command: the child's pid
        # is the server's.
        return subprocess.Popen(self.prefix() + cmd, stdout=log.open("w"), stderr=subprocess.STDOUT)


def wait_udp_port(ns: Netns, port: int, deadline_s: float = 10.0) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        out = ns.run(["ss", "-uln"]).stdout
        if f"{ADDR}:{port} " in out:
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listening on {ADDR}:{port} in {ns.name}")


def digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def fetch_once(ns: Netns, client: str, port: int, blksize: int, out: Path) -> float:
    if client == "ferric-ws16":
        cmd = [str(EXAMPLES / "tftp_get"), "--blksize", str(blksize), "--windowsize", "16",
               f"{ADDR}:{port}", "big.img", str(out)]
    elif client == "curl":
        cmd = ["curl", "-s", "-S", f"tftp://{ADDR}:{port}/big.img", "--tftp-blksize", str(blksize), "-o", str(out)]
    else:
        raise ValueError(client)
    if out.exists():
        out.unlink()
    start = time.perf_counter()
    ns.run(cmd, timeout=CLIENT_TIMEOUT_S)
    return time.perf_counter() - start


def measure_round(ns: Netns, cases: list[tuple[str, int, str]], blksize: int, size: int,
                  expected: str, out: Path) -> dict[tuple[str, str], float]:
    """One download per case, checked; MiB/s by (server, client)."""
    rates = {}
    for server, port, client in cases:
        seconds = fetch_once(ns, client, port, blksize, out)
        if out.stat().st_size != size or digest(out) != expected:
            raise RuntimeError(f"{client} from {server} at blksize {blksize}: wrong content")
        rates[(server, client)] = size / (1024 * 1024) / seconds
    return rates


def start_servers(ns: Netns, root: Path, blksize: int, logs: Path) -> list[subprocess.Popen]:
    ferric = ns.spawn([str(EXAMPLES / "tftp_server"), "--root", str(root), "--listen", f"{ADDR}:{FERRIC_PORT}",
                       "--max-blksize", str(blksize), "--max-windowsize", "16"], logs / f"ferric-{blksize}.log")
    # -L: stay in the foreground; -s: chroot into the root; -B: block size cap.
    hpa = ns.spawn(["in.tftpd", "-L", "-s", str(root), "-a", f"{ADDR}:{HPA_PORT}", "-u", "root",
                    "-B", str(blksize)], logs / f"hpa-{blksize}.log")
    procs = [ferric, hpa]
    try:
        wait_udp_port(ns, FERRIC_PORT)
        wait_udp_port(ns, HPA_PORT)
    except BaseException:
        stop_servers(procs)
        raise
    return procs


def stop_servers(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=64)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--blksizes", default="1468,512")
    parser.add_argument("--pin", type=int, default=None, help="run everything on this CPU")
    args = parser.parse_args()

    missing = [t for t in ("ip", "ss", "curl", "in.tftpd", "taskset") if shutil.which(t) is None]
    missing += [str(p) for p in (EXAMPLES / "tftp_server", EXAMPLES / "tftp_get") if not p.exists()]
    if missing:
        print(f"missing: {', '.join(missing)} (build with: cargo build --release -p ferric-netboot --examples)")
        return 2
    if os.geteuid() != 0:
        print("needs root (network namespace, tftpd-hpa's chroot)")
        return 2

    size = args.size_mib * 1024 * 1024
    blksizes = [int(b) for b in args.blksizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="ferric-tftp-bench-") as tmp:
        tmp_path = Path(tmp)
        root = tmp_path / "root"
        root.mkdir()
        big = root / "big.img"
        with big.open("wb") as f:
            for _ in range(args.size_mib):
                f.write(os.urandom(1024 * 1024))
        expected = digest(big)
        logs = tmp_path / "logs"
        logs.mkdir()
        out = tmp_path / "out.img"
        results: dict[tuple[str, str, int], float] = {}
        with Netns(args.pin) as ns:
            for blksize in blksizes:
                procs = start_servers(ns, root, blksize, logs)
                cases = [(server, port, client)
                         for server, port in (("ferric", FERRIC_PORT), ("tftpd-hpa", HPA_PORT))
                         for client in ("ferric-ws16", "curl")]
                samples: dict[tuple[str, str], list[float]] = {}
                try:
                    # Cases take turns, so that load from elsewhere on the
                    # machine spreads over all of them.
                    for _ in range(args.runs):
                        for key, rate in measure_round(ns, cases, blksize, size, expected, out).items():
                            samples.setdefault(key, []).append(rate)
                finally:
                    stop_servers(procs)
                for (server, client), rates in samples.items():
                    results[(server, client, blksize)] = statistics.median(rates)
                    runs = " ".join(f"{r:.0f}" for r in rates)
                    print(f"  {server:10} {client:12} blksize {blksize:5}: runs {runs} MiB/s", flush=True)

    pinned = "unpinned" if args.pin is None else f"all on CPU {args.pin}"
    print(f"\n{args.size_mib} MiB, loopback in a network namespace, {pinned}, median of {args.runs} (MiB/s)")
    print(f"{'server':10} {'client':12} {'windowsize':>10} {'blksize':>7} {'MiB/s':>8}")
    for (server, client, blksize), rate in results.items():
        window = "16" if server == "ferric" and client == "ferric-ws16" else "1"
        print(f"{server:10} {client:12} {window:>10} {blksize:>7} {rate:8.1f}")
    print()
    goal_met = True
    for blksize in blksizes:
        ours = results[("ferric", "ferric-ws16", blksize)]
        for client in ("ferric-ws16", "curl"):
            theirs = results[("tftpd-hpa", client, blksize)]
            ratio = ours / theirs
            goal_met &= ratio >= 3.0
            print(f"blksize {blksize}: Ferric windowsize 16 / tftpd-hpa with {client} (lock-step) = {ratio:.1f}x")
    print("goal (>= 3x):", "met" if goal_met else "NOT met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
