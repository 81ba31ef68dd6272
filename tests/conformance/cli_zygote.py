"""Runs `openstack` commands in forked children of one process that has
already imported the client and its command plugins.

The stock CLI spends about a second of CPU starting Python and importing
its plugins before it sends a request; the suite runs it hundreds of times.
Here that is paid once: each command runs `openstackclient.shell.main` in a
fresh child forked from this process, with its own environment, argv,
stdin (/dev/null), stdout and stderr files. Nothing a command does reaches
the next one: every child starts from the state this process had before
serving the first.

    python cli_zygote.py SOCKET

One connection per command, one JSON line each way:
    request   {"argv": [...], "env": {...}, "cwd": path, "out": path, "err": path}
    answers   {"pid": int}   as soon as the command starts
              {"rc": int}    when it ends
"""

import json
import os
import socketserver
import sys
from importlib.metadata import entry_points

from openstackclient import shell

PLUGIN_GROUPS = ("openstack.", "cliff.", "keystoneauth1.", "oslo.")


def preload_plugins() -> None:
    """Imports every module the client's plugins live in: the client would
    import them at each start, and they are most of its start-up."""
    eps = entry_points()
    for group in sorted(eps.groups):
        if not group.startswith(PLUGIN_GROUPS):
            continue
        for ep in eps.select(group=group):
            try:
                ep.load()
            except Exception:  # noqa: BLE001  (the client skips a plugin that cannot load, too)
                pass


def redirect(fd: int, path: str, flags: int) -> None:
    new = os.open(path, flags, 0o600)
    os.dup2(new, fd)
    os.close(new)


def run_command(req: dict) -> int:
    os.environ.clear()
    os.environ.update(req["env"])
    os.chdir(req["cwd"])
    redirect(0, os.devnull, os.O_RDONLY)
    redirect(1, req["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    redirect(2, req["err"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    sys.stdin = open(0, closefd=False)  # noqa: SIM115
    sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
    sys.argv = ["openstack", *req["argv"]]
    try:
        rc = shell.main(req["argv"])
    except SystemExit as e:
        rc = exit_status(e.code)
    except BaseException:  # noqa: BLE001  (the real CLI would die with a traceback and 1)
        import traceback

        traceback.print_exc()
        rc = 1
    sys.stdout.flush()
    sys.stderr.flush()
    return rc or 0


def exit_status(code: object) -> int:
    """What a process exiting with SystemExit(code) returns: None is 0, a
    number itself, anything else is printed to stderr and is 1."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


class Handler(socketserver.StreamRequestHandler):
    """Runs in the forked child: one command, then the child exits."""

    def handle(self) -> None:
        req = json.loads(self.rfile.readline())
        self.wfile.write((json.dumps({"pid": os.getpid()}) + "\n").encode())
        self.wfile.flush()
        rc = run_command(req)
        self.wfile.write((json.dumps({"rc": rc}) + "\n").encode())
        self.wfile.flush()


class Server(socketserver.ForkingMixIn, socketserver.UnixStreamServer):
    max_children = 64


def main() -> None:
    path = sys.argv[1]
    preload_plugins()
    with Server(path, Handler) as server:
        print("ready", flush=True)
        server.serve_forever()


if __name__ == "__main__":
    main()
