#!/usr/bin/env python3
"""The lab's pod: a tiny HTTP + UDP server that says who answered and whom it saw.

Server (run inside a pod's network namespace):
    podserver.py serve --name web-1a --node node1 [--http-port 8080] [--udp-port 5353]

  TCP  GET /           -> "pod=<name> node=<node> client=<ip>:<port>"
       GET /bytes?n=N  -> N bytes of the lab's deterministic pattern, with
                          X-Content-SHA256 (hex) so a client can check integrity
       GET /healthz    -> "ok"
  UDP  any datagram    -> "pod=<name> client=<ip>:<port>"

The client address is what the pod's socket sees: the whole point of the lab
is to show when a dataplane preserves it (Local policy) and when it
masquerades (Cluster policy, hairpin).

Client helpers (so scripts need no extra tools):
    podserver.py sha256 N                      expected SHA-256 of /bytes?n=N,
                                               computed here, not trusted from the server
    podserver.py udp-query HOST PORT [--timeout S]   one datagram, print the answer
                                               (exit 1 on timeout)

Standard library only; works with any python3 >= 3.7.
"""

import argparse
import hashlib
import http.server
import socket
import socketserver
import sys
import threading
from urllib.parse import parse_qs, urlparse

CHUNK = 1 << 20


def _base_block():
    # 1 MiB of SHA-256 output in counter mode: no short period, so a dropped,
    # duplicated or reordered segment anywhere changes the digest.
    out = bytearray()
    i = 0
    while len(out) < CHUNK:
        out += hashlib.sha256(b"ferry-lab-pattern:%d" % i).digest()
        i += 1
    return bytes(out[:CHUNK])


_BASE = None


def pattern_chunks(n):
    """Yield the pattern's first n bytes in chunks of at most 1 MiB. Chunk k is
    the base block rotated by a k-dependent offset with k written in its first
    8 bytes, so equal chunks never repeat within 2**64 MiB."""
    global _BASE
    if _BASE is None:
        _BASE = _base_block()
    k = 0
    while n > 0:
        rot = (k * 7919) % CHUNK
        rotated = _BASE[rot:] + _BASE[:rot]
        chunk = k.to_bytes(8, "big") + rotated[8:]
        take = min(n, CHUNK)
        yield chunk[:take] if take < CHUNK else chunk
        n -= take
        k += 1


def pattern_sha256(n):
    h = hashlib.sha256()
    for c in pattern_chunks(n):
        h.update(c)
    return h.hexdigest()


class PodHTTPHandler(http.server.BaseHTTPRequestHandler):
    server_version = "ferry-lab-pod/1"
    # HTTP/1.0: one request per connection, so every request is a new flow through
    # the dataplane (a new backend choice), which is what the spread checks need.
    protocol_version = "HTTP/1.0"
    digests = {}
    digests_lock = threading.Lock()

    def log_message(self, fmt, *args):  # keep pod logs to startup and errors
        pass

    def _text(self, status, body):
        data = (body + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urlparse(self.path)
        ident = self.server.identity
        if url.path == "/":
            ip, port = self.client_address[:2]
            self._text(200, "pod=%s node=%s client=%s:%d" % (ident["name"], ident["node"], ip, port))
        elif url.path == "/healthz":
            self._text(200, "ok")
        elif url.path == "/bytes":
            try:
                n = int(parse_qs(url.query).get("n", ["0"])[0])
                if n < 0 or n > (1 << 34):
                    raise ValueError
            except ValueError:
                self._text(400, "n must be an integer between 0 and 2^34")
                return
            with self.digests_lock:
                digest = self.digests.get(n)
            if digest is None:
                digest = pattern_sha256(n)
                with self.digests_lock:
                    self.digests[n] = digest
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(n))
            self.send_header("X-Content-SHA256", digest)
            self.send_header("X-Pod", ident["name"])
            self.end_headers()
            try:
                for c in pattern_chunks(n):
                    self.wfile.write(c)
            except (BrokenPipeError, ConnectionResetError):
                pass
        else:
            self._text(404, "not found")


class ThreadingHTTPServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def serve_udp(sock, ident):
    while True:
        data, addr = sock.recvfrom(65535)
        reply = "pod=%s client=%s:%d\n" % (ident["name"], addr[0], addr[1])
        try:
            sock.sendto(reply.encode(), addr)
        except OSError:
            pass


def cmd_serve(a):
    ident = {"name": a.name, "node": a.node}
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("0.0.0.0", a.udp_port))
    threading.Thread(target=serve_udp, args=(udp, ident), daemon=True).start()
    httpd = ThreadingHTTPServer(("0.0.0.0", a.http_port), PodHTTPHandler)
    httpd.identity = ident
    print("pod %s on %s: http :%d udp :%d" % (a.name, a.node, a.http_port, a.udp_port), flush=True)
    httpd.serve_forever()


def cmd_udp_query(a):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(a.timeout)
    s.sendto(a.payload.encode(), (a.host, a.port))
    try:
        data, _ = s.recvfrom(65535)
    except socket.timeout:
        print("timeout", file=sys.stderr)
        return 1
    except ConnectionRefusedError:  # ICMP port unreachable came back
        print("refused", file=sys.stderr)
        return 2
    sys.stdout.write(data.decode(errors="replace"))
    return 0


def main(argv):
    ap = argparse.ArgumentParser(description="the lab's pod server and its client helpers")
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--name", required=True)
    s.add_argument("--node", required=True)
    s.add_argument("--http-port", type=int, default=8080)
    s.add_argument("--udp-port", type=int, default=5353)
    h = sub.add_parser("sha256")
    h.add_argument("n", type=int)
    q = sub.add_parser("udp-query")
    q.add_argument("host")
    q.add_argument("port", type=int)
    q.add_argument("--timeout", type=float, default=2.0)
    q.add_argument("--payload", default="hello")
    a = ap.parse_args(argv)
    if a.cmd == "serve":
        cmd_serve(a)
    elif a.cmd == "sha256":
        print(pattern_sha256(a.n))
    elif a.cmd == "udp-query":
        return cmd_udp_query(a)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
