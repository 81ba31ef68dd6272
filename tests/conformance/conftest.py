"""Fixtures of the conformance suite: `ferric serve` processes and the stock
OpenStack CLI pointed at them.

Every test talks to Ferric the way an operator would, through
`openstack baremetal ...` (and openstacksdk in one place), and asserts on
the client's parsed `-f json` output. One shared server serves the tests that
need no special configuration; tests that need one (fake delays, short
timeouts, a crash) start their own with `spawn`.

Environment:
  FERRIC_BIN     the ferric binary (default: target/debug/ferric in the repo)
  OPENSTACK_BIN  the openstack CLI (default: `openstack` on PATH)
  FERRIC_CLI_FORK=0  start the CLI as a new process for every command,
                 instead of forking it from cli_zygote.py (the same client
                 code and arguments, without a second of start-up each)
"""

from __future__ import annotations

import atexit
import ctypes
import itertools
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

# The conductor name of the shared server; it shows in `reservation`,
# `conductor`, `driver list` and `conductor list`.
SHARED_HOST = "conformance-host"

# Client calls that wait for a state get this many seconds at most.
WAIT = "60"

_LIVE: list["FerricServer"] = []


def _resolve(value: str) -> Path:
    path = Path(value)
    if path.is_absolute() or path.exists():
        return path.resolve()
    return (REPO_ROOT / path).resolve()


def ferric_binary() -> Path:
    path = _resolve(os.environ.get("FERRIC_BIN") or "target/debug/ferric")
    if not os.access(path, os.X_OK):
        pytest.exit(f"no ferric binary at {path}: run `cargo build` or set FERRIC_BIN", returncode=2)
    return path


def openstack_binary() -> str:
    value = os.environ.get("OPENSTACK_BIN") or shutil.which("openstack")
    if not value or not (shutil.which(value) or os.access(value, os.X_OK)):
        pytest.exit("no `openstack` CLI: install requirements.txt or set OPENSTACK_BIN", returncode=2)
    return value


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(str(value))


def _die_with_parent() -> None:
    """Linux: the server gets SIGKILL if pytest itself dies (a CI timeout,
    say), so no ferric outlives the run."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class FerricServer:
    """One `ferric serve` process on a loopback port with its own data dir."""

    def __init__(self, root: Path, name: str, config: dict[str, dict[str, Any]], env: dict[str, str] | None = None):
        self.name = name
        self.dir = root / name
        self.dir.mkdir(parents=True, exist_ok=False)
        self.data_dir = self.dir / "data"
        self.config_path = self.dir / "ferric.toml"
        self.log_path = self.dir / "ferric.log"
        self.config = config
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.args: list[str] = []  # more `ferric serve` flags
        self.port: int | None = None
        self.url = ""

    def _write_config(self) -> None:
        lines = ['log = "info"']
        for section, options in self.config.items():
            lines.append(f"\n[{section}]")
            lines.extend(f"{key} = {_toml_value(value)}" for key, value in options.items())
        self.config_path.write_text("\n".join(lines) + "\n")

    def start(self, port: int | None = None, timeout: float = 30.0) -> None:
        """Starts the server (port 0: the kernel picks a free one) and waits
        until `GET /` answers."""
        assert self.proc is None, "already running"
        self._write_config()
        env = {k: v for k, v in os.environ.items() if not k.startswith("FERRIC_") and k != "RUST_LOG"}
        env["NO_COLOR"] = "1"
        env.update(self.env)
        cmd = [
            str(ferric_binary()),
            "serve",
            "--listen",
            f"127.0.0.1:{port or 0}",
            "--data-dir",
            str(self.data_dir),
            "--config",
            str(self.config_path),
            *self.args,
        ]
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== {shlex.join(cmd)}\n".encode())
            log.flush()
            offset = log.tell()
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, preexec_fn=_die_with_parent
            )
        _LIVE.append(self)
        deadline = time.monotonic() + timeout
        while not self.url:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ferric exited with {self.proc.returncode} on start:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"ferric did not say where it listens:\n{self.log_tail()}")
            with open(self.log_path, "rb") as log:
                log.seek(offset)
                found = re.search(rb"(?:ferric listening on http://|ferric is serving listen=)127\.0\.0\.1:(\d+)", log.read())
            if found:
                self.port = int(found.group(1))
                self.url = f"http://127.0.0.1:{self.port}"
            else:
                time.sleep(0.05)
        while True:
            try:
                with urllib.request.urlopen(self.url + "/", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ferric at {self.url} does not answer GET /:\n{self.log_tail()}")
            time.sleep(0.05)

    def _gone(self) -> None:
        self.proc = None
        self.url = ""
        if self in _LIVE:
            _LIVE.remove(self)

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM, then SIGKILL if the server has not drained in time."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._gone()

    def kill(self) -> int:
        """SIGKILL: the process gets no chance to clean up."""
        assert self.proc is not None and self.proc.poll() is None, "not running"
        self.proc.send_signal(signal.SIGKILL)
        code = self.proc.wait()
        self._gone()
        return code

    def restart(self) -> None:
        """Starts again on the same port and data directory."""
        self.start(port=self.port)

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def api(self, method: str, path: str, body: Any = None, version: str = "latest") -> tuple[int, Any]:
        """A raw API call, for what the CLI hides (exact status codes) and for
        cheap polling. Returns the status and the decoded body."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        req.add_header("X-OpenStack-Ironic-API-Version", version)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        if not raw:
            return status, None
        decoded = json.loads(raw)
        return status, decoded

    def node(self, ident: str) -> dict[str, Any]:
        status, body = self.api("GET", f"/v1/nodes/{ident}")
        assert status == 200, body
        return body

    def wait_for_node(self, ident: str, pred: Callable[[dict[str, Any]], bool], what: str, timeout: float = 30.0) -> dict[str, Any]:
        """Polls the node (over HTTP, cheaply) until `pred` holds."""
        deadline = time.monotonic() + timeout
        while True:
            node = self.node(ident)
            if pred(node):
                return node
            if time.monotonic() > deadline:
                raise AssertionError(f"node {ident} never became {what}; last seen: "
                                     f"{ {k: node.get(k) for k in ('provision_state', 'target_provision_state', 'power_state', 'target_power_state', 'reservation', 'last_error')} }")
            time.sleep(0.1)

    def wait_for_state(self, ident: str, state: str, timeout: float = 30.0) -> dict[str, Any]:
        return self.wait_for_node(ident, lambda n: n["provision_state"] == state, repr(state), timeout)


@atexit.register
def _kill_leftovers() -> None:
    for server in list(_LIVE):
        if server.proc is not None and server.proc.poll() is None:
            server.proc.kill()


@dataclass
class Result:
    cmd: list[str]
    rc: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


class CliZygote:
    """The `openstack` client forked per command from one warm process
    (cli_zygote.py), shared by every Cli of this pytest process."""

    _instance: "CliZygote | None" = None
    _failed = False

    def __init__(self, python: str):
        self.dir = Path(tempfile.mkdtemp(prefix="cli-zygote-"))
        self.socket = str(self.dir / "socket")
        self.proc = subprocess.Popen([python, str(Path(__file__).with_name("cli_zygote.py")), self.socket],
                                     stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                                     env={**os.environ, "PYTHONWARNINGS": "ignore"})
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            self.proc.kill()
            raise RuntimeError("cli_zygote.py did not start")
        atexit.register(self.proc.kill)

    @classmethod
    def get(cls, openstack_bin: str) -> "CliZygote | None":
        """The zygote, started on first use; None to run the CLI as a new
        process (asked for, or the CLI's Python cannot be found)."""
        if os.environ.get("FERRIC_CLI_FORK") == "0" or cls._failed:
            return None
        if cls._instance is None or cls._instance.proc.poll() is not None:
            python = _script_python(openstack_bin)
            if python is None:
                cls._failed = True
                return None
            cls._instance = CliZygote(python)
        return cls._instance

    def run(self, argv: list[str], env: dict[str, str], timeout: float) -> tuple[int, str, str]:
        out = tempfile.NamedTemporaryFile(dir=self.dir, delete=False)  # noqa: SIM115
        err = tempfile.NamedTemporaryFile(dir=self.dir, delete=False)  # noqa: SIM115
        out.close()
        err.close()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.connect(self.socket)
                conn.settimeout(timeout)
                request = {"argv": argv, "env": env, "cwd": os.getcwd(), "out": out.name, "err": err.name}
                conn.sendall((json.dumps(request) + "\n").encode())
                answers = conn.makefile("r")
                pid = json.loads(answers.readline())["pid"]
                try:
                    line = answers.readline()
                except TimeoutError:
                    os.kill(pid, signal.SIGKILL)
                    raise subprocess.TimeoutExpired(["openstack", *argv], timeout) from None
                # A child that died without answering counts as the CLI crashing.
                rc = json.loads(line)["rc"] if line else -1
            return rc, Path(out.name).read_text(errors="replace"), Path(err.name).read_text(errors="replace")
        finally:
            os.unlink(out.name)
            os.unlink(err.name)


def _script_python(script: str) -> str | None:
    """The interpreter on a console script's #! line."""
    path = shutil.which(script) or script
    try:
        with open(path, "rb") as f:
            first = f.readline().decode(errors="replace")
    except OSError:
        return None
    if not first.startswith("#!"):
        return None
    python = first[2:].strip().split()[0]
    return python if "python" in Path(python).name and os.access(python, os.X_OK) else None


class Cli:
    """`openstack baremetal ...` against one server, with noauth."""

    def __init__(self, server: FerricServer):
        self.server = server
        self.bin = openstack_binary()

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        env.update(OS_AUTH_TYPE="none", OS_ENDPOINT=self.server.url, PYTHONWARNINGS="ignore")
        return env

    def run(self, *args: str, timeout: float = 180) -> Result:
        cmd = [self.bin, "baremetal", *args]
        started = time.monotonic()
        zygote = CliZygote.get(self.bin)
        if zygote is not None:
            rc, stdout, stderr = zygote.run(["baremetal", *args], self._env(), timeout)
        else:
            proc = subprocess.run(cmd, capture_output=True, text=True, env=self._env(), timeout=timeout, stdin=subprocess.DEVNULL)
            rc, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
        print(f"$ {shlex.join(['openstack', 'baremetal', *args])}  # rc={rc}, {time.monotonic() - started:.1f}s")
        for stream in (stdout, stderr):
            if stream.strip():
                print(stream.rstrip())
        return Result(cmd, rc, stdout, stderr)

    def ok(self, *args: str) -> str:
        """Runs a command that must succeed; returns its stdout."""
        r = self.run(*args)
        assert r.rc == 0, f"`{shlex.join(args)}` failed ({r.rc}):\n{r.output}"
        return r.stdout

    def json(self, *args: str) -> Any:
        """Runs a command with `-f json` and returns the parsed output."""
        out = self.ok(*args, "-f", "json")
        return json.loads(out)

    def fails(self, *args: str) -> Result:
        """Runs a command that must fail; returns what it printed."""
        r = self.run(*args)
        assert r.rc != 0, f"`{shlex.join(args)}` succeeded but should have failed:\n{r.output}"
        return r

    def create_node(self, *args: str) -> dict[str, Any]:
        return self.json("node", "create", "--driver", "fake-hardware", *args)

    def move(self, node: str, verb: str, state: str, *args: str) -> dict[str, Any]:
        """`node <verb>` without the client's `--wait` (which polls long
        actions only every 10 s), then polls over HTTP until `state`."""
        self.ok("node", verb, node, *args)
        return self.server.wait_for_state(node, state)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):  # noqa: ARG001
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for server in _LIVE:
            report.sections.append((f"ferric log ({server.name}, last lines)", server.log_tail()))


@pytest.fixture(scope="session")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ferric")


_names = itertools.count(1)


@pytest.fixture(scope="session")
def ferric(workdir) -> FerricServer:
    """The shared server: Ferric's defaults, a fixed conductor name."""
    server = FerricServer(workdir, "shared", {"conductor": {"host": SHARED_HOST}})
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def cli(ferric) -> Cli:
    return Cli(ferric)


@pytest.fixture
def spawn(workdir):
    """Starts servers of the test's own configuration; stops them after it."""
    started: list[FerricServer] = []

    def _spawn(name: str, config: dict[str, dict[str, Any]], env: dict[str, str] | None = None, start: bool = True) -> FerricServer:
        server = FerricServer(workdir, f"{name}-{next(_names)}", config, env)
        started.append(server)
        if start:
            server.start()
        return server

    yield _spawn
    for server in started:
        server.stop(grace=2.0)


@pytest.fixture
def name(request) -> Callable[[], str]:
    """Unique node names for the shared server, readable in its log."""
    base = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower().removeprefix("test_"))[:40].strip("-")

    def _name() -> str:
        return f"{base}-{next(_names)}"

    return _name
