"""Raw HTTP/1.1 over a socket, for requests no HTTP client would frame (malformed on purpose)."""

from __future__ import annotations

import socket


def raw_http(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send `request` as raw bytes (no client would frame it so) and read the whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (x.split(":", 1) for x in lines)}
    return int(status_line.split()[1]), headers, body


MALFORMED_HTTP = {
    "chunk size not hex": (
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"
    ),
    "content-length not a number": (
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: twelve\r\n\r\n{}"
    ),
    "request line": b"POST /invocations HTTP/9.x\r\nHost: x\r\n\r\n",
    "header without a colon": b"GET /ping HTTP/1.1\r\nHost x\r\n\r\n",
}
