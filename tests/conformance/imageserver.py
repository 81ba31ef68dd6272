"""An HTTP server for deploy images, with the faults a real image server
and network can have: a connection cut midway (once), answers slowed down.
It serves files of one directory with HEAD, Range and If-Range, as nginx
or Swift would, so the agent's resume and checksum paths are exercised
against a server nobody in Ferric wrote the client for.
"""

from __future__ import annotations

import email.utils
import os
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class Faults:
    """What the server does wrong, set by a test."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        # file name -> byte offset after which the next GET of it is cut
        self.cut_after: dict[str, int] = {}
        # seconds to sleep per MiB sent (0: full speed)
        self.seconds_per_mib = 0.0
        self.requests: list[tuple[str, str, str | None]] = []

    def take_cut(self, name: str) -> int | None:
        with self.lock:
            return self.cut_after.pop(name, None)


def _handler(root: Path, faults: Faults):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet
            pass

        def _file(self) -> Path | None:
            name = self.path.split("?", 1)[0].lstrip("/")
            path = (root / name).resolve()
            if root.resolve() not in path.parents or not path.is_file():
                return None
            return path

        def _headers(self, path: Path) -> tuple[str, str]:
            st = path.stat()
            etag = f'"{st.st_size:x}-{int(st.st_mtime_ns):x}"'
            modified = email.utils.formatdate(st.st_mtime, usegmt=True)
            return etag, modified

        def do_HEAD(self) -> None:
            self._serve(body=False)

        def do_GET(self) -> None:
            self._serve(body=True)

        def _serve(self, body: bool) -> None:
            path = self._file()
            faults.requests.append((self.command, self.path, self.headers.get("Range")))
            if path is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            size = path.stat().st_size
            etag, modified = self._headers(path)
            start, end = 0, size - 1
            partial = False
            wanted = self.headers.get("Range")
            if_range = self.headers.get("If-Range")
            if wanted and (if_range is None or if_range in (etag, modified)):
                m = re.fullmatch(r"bytes=(\d*)-(\d*)", wanted.strip())
                if m and (m.group(1) or m.group(2)):
                    if m.group(1):
                        start = int(m.group(1))
                        end = int(m.group(2)) if m.group(2) else size - 1
                    else:
                        start = max(0, size - int(m.group(2)))
                    end = min(end, size - 1)
                    if start > end:
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{size}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    partial = True
            length = end - start + 1
            self.send_response(206 if partial else 200)
            self.send_header("Content-Length", str(length))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", modified)
            if partial:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.end_headers()
            if not body:
                return
            cut = faults.take_cut(path.name) if not partial else None
            with open(path, "rb") as f:
                f.seek(start)
                sent = 0
                while sent < length:
                    chunk = f.read(min(1 << 20, length - sent))
                    if not chunk:
                        break
                    if cut is not None and start + sent + len(chunk) > cut:
                        chunk = chunk[: max(0, cut - start - sent)]
                        self.wfile.write(chunk)
                        self.wfile.flush()
                        self.close_connection = True
                        try:
                            self.connection.shutdown(2)
                        except OSError:
                            pass
                        return
                    try:
                        self.wfile.write(chunk)
                    except (BrokenPipeError, ConnectionResetError):
                        return
                    sent += len(chunk)
                    if faults.seconds_per_mib:
                        time.sleep(faults.seconds_per_mib * len(chunk) / (1 << 20))

    return Handler


class ImageServer:
    """Serves `root` on 127.0.0.1 (a free port) until stopped."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.faults = Faults()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(root, self.faults))
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def sha256_of(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def make_disk_image(path: Path, mib: int, seed: int) -> None:
    """A whole-disk image: an MBR with one Linux partition, the rest
    pseudo-random (so every block differs and nothing is mistaken for
    zeros), made with sfdisk as a real image would be."""
    import random
    import subprocess

    rng = random.Random(seed)
    with open(path, "wb") as f:
        for _ in range(mib):
            f.write(rng.randbytes(1 << 20))
    subprocess.run(["sfdisk", "-q", str(path)], input=b"start=2048, type=83\n", check=True)
    os.sync()
