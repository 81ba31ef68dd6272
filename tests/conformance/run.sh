#!/usr/bin/env bash
# Runs the conformance suite: the stock OpenStack clients (openstack
# baremetal ..., openstacksdk) against freshly started `ferric serve`s.
#
#   tests/conformance/run.sh [VENV] [PYTEST_ARGS...]
#
# VENV is a virtualenv directory: created if it does not exist, and
# requirements.txt is installed into it whenever that file has changed since
# the last install. Without VENV, the current python3 must already have the
# requirements (an activated venv, say).
#
# FERRIC_BIN     the binary under test; default target/debug/ferric, which is
#                built first if it is missing
# OPENSTACK_BIN  the CLI; default the venv's `openstack`, else the one on PATH
# CONFORMANCE_PREPARE_ONLY=1  make the venv and stop (the Rust tests use its
#                pyghmi, sushy and sushy-emulator)
#
# Examples:
#   tests/conformance/run.sh target/venv
#   tests/conformance/run.sh target/venv -k sigkill -x
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

venv=""
if [[ $# -gt 0 && "$1" != -* ]]; then
    venv="$1"
    shift
fi

if [[ -n "$venv" ]]; then
    [[ "$venv" == /* ]] || venv="$PWD/$venv"
    if [[ ! -x "$venv/bin/python" ]]; then
        echo "conformance: creating the virtualenv $venv"
        python3 -m venv "$venv"
    fi
    stamp="$venv/.conformance-requirements.txt"
    if ! cmp -s "$here/requirements.txt" "$stamp"; then
        echo "conformance: installing $here/requirements.txt into $venv"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
        cp "$here/requirements.txt" "$stamp"
    fi
    python="$venv/bin/python"
    export OPENSTACK_BIN="${OPENSTACK_BIN:-$venv/bin/openstack}"
    [[ -z "${CONFORMANCE_PREPARE_ONLY:-}" ]] || exit 0
else
    python="$(command -v python3)"
    if ! "$python" -c 'import pytest, openstack, ironicclient, openstackclient' 2>/dev/null; then
        echo "conformance: $python lacks the requirements; pass a venv directory: $0 VENV" >&2
        exit 2
    fi
fi

if [[ -z "${FERRIC_BIN:-}" ]]; then
    export FERRIC_BIN="$repo/target/debug/ferric"
    if [[ ! -x "$FERRIC_BIN" ]]; then
        echo "conformance: building $FERRIC_BIN"
        (cd "$repo" && cargo build --bin ferric)
    fi
fi

echo "conformance: $FERRIC_BIN with $("${OPENSTACK_BIN:-openstack}" --version 2>&1 || echo "no openstack CLI")"
cd "$here"
exec "$python" -m pytest -v -ra --durations=8 "$@"
