#!/usr/bin/env python3
"""Sends the same API requests to Ferric and to a real Ironic and prints
where the answers differ: status, the keys of each object in order, values,
error texts. A developer's tool for matching Ironic, not part of CI (it
needs an Ironic running: see docs/benchmarks.md "Side by side with Ironic"
for the standalone configuration).

    scripts/ironic-diff.py --ferric URL --ironic URL [--only NAME ...] [SCENARIOS.json]

A scenario is a list of steps, each
    {"method": "POST", "path": "/v1/...", "body": {...}, "version": "1.55",
     "save": {"name": "json.path.to.value"}}
`{name}` in a path or body string is replaced by a value saved earlier on
the same server. UUIDs, timestamps and hosts in links are replaced by
placeholders before comparing. Without SCENARIOS.json the built-in ones run.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import urllib.error
import urllib.request
import uuid as uuidlib
from typing import Any

UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
TS_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(\+00:00|Z)?")
HOST_RE = re.compile(r"https?://[^/\"]+")


def call(base: str, method: str, path: str, body: Any, version: str) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    req.add_header("X-OpenStack-Ironic-API-Version", version)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    if not raw:
        return status, None
    try:
        return status, json.loads(raw, object_pairs_hook=lambda pairs: {"__pairs__": pairs})
    except ValueError:
        return status, raw.decode(errors="replace")


def plain(value: Any) -> Any:
    """A decoded body with its objects as dicts again."""
    if isinstance(value, dict) and "__pairs__" in value:
        return {k: plain(v) for k, v in value["__pairs__"]}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def pick(value: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


class Normalizer:
    def __init__(self) -> None:
        self.uuids: dict[str, str] = {}

    def text(self, s: str) -> str:
        s = UUID_RE.sub(lambda m: self.uuids.setdefault(m.group(0), f"<uuid{len(self.uuids)}>"), s)
        s = TS_RE.sub("<ts>", s)
        return HOST_RE.sub("<host>", s)

    def value(self, v: Any) -> Any:
        if isinstance(v, dict) and "__pairs__" in v:
            return [(k, self.value(x)) for k, x in v["__pairs__"]]
        if isinstance(v, list):
            return [self.value(x) for x in v]
        if isinstance(v, str):
            inner = v.strip()
            # Ironic's error bodies carry JSON inside a string.
            if inner.startswith("{") and ("faultstring" in inner or '"code"' in inner):
                try:
                    return self.value(json.loads(inner, object_pairs_hook=lambda p: {"__pairs__": p}))
                except ValueError:
                    pass
            return self.text(v)
        return v


def substitute(value: Any, saved: dict[str, Any]) -> Any:
    if isinstance(value, str):
        for name, got in saved.items():
            value = value.replace("{" + name + "}", str(got))
        return value
    if isinstance(value, list):
        return [substitute(v, saved) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, saved) for k, v in value.items()}
    return value


def differences(a: Any, b: Any, where: str = "") -> list[str]:
    if type(a) is not type(b):
        return [f"{where or '.'}: ferric {json.dumps(a)[:300]} / ironic {json.dumps(b)[:300]}"]
    if isinstance(a, list) and a and isinstance(a[0], tuple):
        out = []
        ka, kb = [k for k, _ in a], [k for k, _ in b]
        if ka != kb:
            out.append(f"{where or '.'} keys: ferric {ka} / ironic {kb}")
        da, db = dict(a), dict(b)
        for k in ka:
            if k in db:
                out += differences(da[k], db[k], f"{where}.{k}")
        return out
    if isinstance(a, list):
        if len(a) != len(b):
            return [f"{where or '.'}: ferric has {len(a)} items, ironic {len(b)}"]
        out = []
        for i, (x, y) in enumerate(zip(a, b)):
            out += differences(x, y, f"{where}[{i}]")
        return out
    return [] if a == b else [f"{where or '.'}: ferric {json.dumps(a)[:300]} / ironic {json.dumps(b)[:300]}"]


def run_scenario(name: str, steps: list[dict], ferric: str, ironic: str) -> int:
    tag = uuidlib.uuid4().hex[:8].upper()
    saved = {"f": {"tag": tag}, "i": {"tag": tag}}
    norms = {"f": Normalizer(), "i": Normalizer()}
    bad = 0
    for n, step in enumerate(steps):
        answers = {}
        for who, base in (("f", ferric), ("i", ironic)):
            path = substitute(step["path"], saved[who])
            body = substitute(step.get("body"), saved[who])
            status, got = call(base, step.get("method", "GET"), path, body, step.get("version", "latest"))
            for var, dotted in step.get("save", {}).items():
                try:
                    saved[who][var] = pick(plain(got), dotted)
                except (KeyError, IndexError, TypeError):
                    saved[who][var] = "<missing>"
            answers[who] = (status, norms[who].value(got))
        label = f"{name} #{n} {step.get('method', 'GET')} {step['path']} @{step.get('version', 'latest')}"
        found = []
        if answers["f"][0] != answers["i"][0]:
            found.append(f"status: ferric {answers['f'][0]} / ironic {answers['i'][0]}")
        if not step.get("status_only"):
            found += differences(answers["f"][1], answers["i"][1])
        if found:
            bad += 1
            print(f"DIFF {label}")
            for line in found:
                print(f"    {line}")
        else:
            print(f"same {label}")
    return bad


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ferric", required=True)
    ap.add_argument("--ironic", required=True)
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("scenarios", nargs="?")
    args = ap.parse_args()
    with open(args.scenarios or __file__.replace("ironic-diff.py", "ironic-diff-scenarios.json")) as f:
        scenarios = json.load(f)
    total = 0
    for name, steps in scenarios.items():
        if args.only and name not in args.only:
            continue
        total += run_scenario(name, steps, args.ferric.rstrip("/"), args.ironic.rstrip("/"))
    print(f"{total} steps differ")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
