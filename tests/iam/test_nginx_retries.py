"""The nginx retry settings the README recommends (deploy/nginx/iam-retries.conf), checked with a
real nginx: a POST that reached a node is never replayed on another (a repeated code or refresh
token would revoke the tokens it issued); a connection that failed is tried elsewhere."""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import need

SNIPPET = Path(__file__).resolve().parents[2] / "deploy" / "nginx" / "iam-retries.conf"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Answering(ThreadingHTTPServer):
    """A healthy node: answers 200 and counts what it was sent."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                server.seen.append(f"{self.command} {self.path}")
                body = b'{"ok": true}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = _answer  # noqa: N815
            do_POST = _answer  # noqa: N815

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)


class _Dying:
    """A node that dies mid-request: it reads the whole request, then closes the connection
    without answering (kill -9 after the work was done)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = int(self.sock.getsockname()[1])
        self.received: list[str] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                while len(body) < length:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    body += chunk
                self.received.append(head.split(b"\r\n")[0].decode())

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def nodes() -> Iterator[tuple[_Dying, _Answering]]:
    dying, answering = _Dying(), _Answering()
    threading.Thread(target=answering.serve_forever, daemon=True).start()
    yield dying, answering
    answering.shutdown()
    answering.server_close()
    dying.close()


@contextmanager
def _nginx(tmp: Path, first: int, other: int) -> Iterator[int]:
    binary = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if binary is None:
        need("nginx is not installed")
    port = _free_port()
    for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp / name).mkdir(exist_ok=True)
    conf = tmp / "nginx.conf"
    conf.write_text(
        f"""
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    upstream iam_nodes {{
        server 127.0.0.1:{first} max_fails=0;   # always tried first
        server 127.0.0.1:{other} backup;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://iam_nodes;
            include {SNIPPET};
        }}
    }}
}}
"""
    )
    proc = subprocess.Popen(
        [str(binary), "-p", str(tmp), "-e", str(tmp / "error.log"), "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(
                    f"nginx did not start: {proc.stderr.read().decode() if proc.stderr else ''}"
                )
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _request(port: int, method: str, path: str, body: bytes | None = None) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        headers = {"Content-Type": "application/x-www-form-urlencoded"} if body else {}
        conn.request(method, path, body=body, headers=headers)
        return conn.getresponse().status
    finally:
        conn.close()


def test_a_post_that_reached_a_dying_node_is_not_replayed(
    tmp_path: Path, nodes: tuple[_Dying, _Answering]
) -> None:
    dying, answering = nodes
    with _nginx(tmp_path, dying.port, answering.server_address[1]) as port:
        form = b"grant_type=refresh_token&refresh_token=abc"
        assert _request(port, "POST", "/token", form) == 502
        assert dying.received == ["POST /token HTTP/1.0"]
        assert answering.seen == []  # not replayed: the client retries (and knows it does)
        # an idempotent request is handed to the other node
        assert _request(port, "GET", "/jwks") == 200
        assert answering.seen == ["GET /jwks"]


def test_a_post_whose_connection_failed_goes_to_another_node(
    tmp_path: Path, nodes: tuple[_Dying, _Answering]
) -> None:
    _, answering = nodes
    dead = _free_port()  # nothing listens: the node is down
    with _nginx(tmp_path, dead, answering.server_address[1]) as port:
        assert _request(port, "POST", "/token", b"grant_type=client_credentials") == 200
        assert answering.seen == ["POST /token"]
