"""A scripted HTTP server on 127.0.0.1 (stdlib, in a thread) for the download-guard tests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Route:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    chunked: bool = False
    hang: bool = False


@dataclass
class ScriptedHTTP:
    port: int
    routes: dict[str, Route]
    release: threading.Event
    seen_hosts: list[str]

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


@contextmanager
def scripted_http() -> Iterator[ScriptedHTTP]:
    routes: dict[str, Route] = {}
    release = threading.Event()
    seen_hosts: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            seen_hosts.append(self.headers.get("Host", ""))
            route = routes.get(self.path.split("?")[0])
            if route is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if route.hang:
                release.wait(timeout=30)
                return
            self.send_response(route.status)
            for k, v in route.headers.items():
                self.send_header(k, v)
            if route.chunked:
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for i in range(0, len(route.body), 4096):
                    part = route.body[i : i + 4096]
                    self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
                self.wfile.write(b"0\r\n\r\n")
            else:
                self.send_header("Content-Length", str(len(route.body)))
                self.end_headers()
                self.wfile.write(route.body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield ScriptedHTTP(server.server_address[1], routes, release, seen_hosts)
    finally:
        release.set()
        server.shutdown()
        server.server_close()
