#!/usr/bin/env python3
"""The floor benchmark's HTTP server (scripts/bench-lab-floor).

Python's http.server serving a directory, as `python3 -m http.server`
does, except for its log: one line per GET once the guest has acknowledged
the whole response, stamped with the host clock, so the benchmark can tell
when the kernel, the initramfs and the image were fetched:

    <epoch ms done> GET <path> <status> <bytes> <epoch ms started>

The stock log line is written before the body is sent, and a send returns
once the bytes are in the socket's buffer (megabytes, for a slow guest),
so the end is taken when the socket's send queue is empty.
"""

import argparse
import fcntl
import functools
import http.server
import struct
import sys
import termios
import time

# How long to wait for the guest to acknowledge the last bytes.
DRAIN_LIMIT_S = 10.0


def now_ms():
    return int(time.time() * 1000)


def wait_for_acks(sock):
    """Waits until the socket's send queue (SIOCOUTQ: sent but not yet
    acknowledged, plus not yet sent) is empty, or the limit passes."""
    deadline = time.monotonic() + DRAIN_LIMIT_S
    while time.monotonic() < deadline:
        # TIOCOUTQ is SIOCOUTQ on Linux.
        raw = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, struct.pack("i", 0))
        if struct.unpack("i", raw)[0] == 0:
            return
        time.sleep(0.001)


class Handler(http.server.SimpleHTTPRequestHandler):
    """Serves files; logs each GET when its response is through."""

    status = 0
    sent = 0

    def do_GET(self):
        started = now_ms()
        self.status, self.sent = 0, 0
        super().do_GET()
        try:
            wait_for_acks(self.connection)
        except OSError:
            pass
        print(f"{now_ms()} GET {self.path} {self.status} {self.sent} {started}", flush=True)

    def copyfile(self, source, outputfile):
        super().copyfile(source, outputfile)
        self.sent = source.tell()

    def log_request(self, code="-", size="-"):
        self.status = int(getattr(code, "value", code)) if code != "-" else 0

    def log_message(self, format, *args):
        print(f"{now_ms()} note {format % args}", file=sys.stderr, flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bind", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--directory", required=True)
    args = parser.parse_args()
    handler = functools.partial(Handler, directory=args.directory)
    server = http.server.ThreadingHTTPServer((args.bind, args.port), handler)
    print(f"{now_ms()} serving {args.directory} on {args.bind}:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
