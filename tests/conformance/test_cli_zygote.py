"""cli_zygote.py: a forked command ends with the status the CLI started as
a process of its own would have."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cli_zygote  # noqa: E402


@pytest.mark.parametrize(
    ("exit_with", "rc", "stderr"),
    [(None, 0, ""), (0, 0, ""), (3, 3, ""), ("bye", 1, "bye\n")],
)
def test_a_command_exits_as_the_real_cli_would(tmp_path, monkeypatch, exit_with, rc, stderr):
    def main(argv):
        raise SystemExit(exit_with)

    monkeypatch.setattr(cli_zygote.shell, "main", main)
    request = {"argv": ["baremetal", "node", "list"], "env": {}, "cwd": str(tmp_path),
               "out": str(tmp_path / "out"), "err": str(tmp_path / "err")}
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            code = cli_zygote.run_command(request)
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == rc
    assert (tmp_path / "err").read_text() == stderr
