"""The /metrics HTTP endpoint: the standard library's threading HTTP server, on a daemon
thread, answering every scrape with a freshly rendered document."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from gotrace.errors import GotraceError
from gotrace.metrics.exposition import CONTENT_TYPE

METRICS_PATH = "/metrics"
# How often the serving loop checks for shutdown: bounds how long close() waits.
_POLL_INTERVAL_S = 0.1


class _Server(ThreadingHTTPServer):
    def __init__(self, host: str, port: int, render: Callable[[], bytes]) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.render = render
        super().__init__((host, port), _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind also resolves the host's FQDN, which can stall on DNS.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] != METRICS_PATH:
            self.send_error(404, f"only {METRICS_PATH} is served")
            return
        body = self.server.render()
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Silent: a scrape every few seconds is not worth a line on stderr."""


class MetricsServer:
    """Serves render() at http://host:port/metrics until close()."""

    def __init__(self, host: str, port: int, render: Callable[[], bytes]) -> None:
        try:
            self._server = _Server(host, port, render)
        except OSError as e:  # in use, not permitted, no such address or host name
            raise GotraceError(f"cannot serve metrics on {_hostport(host, port)}: "
                               f"{e.strerror or e}") from None
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        args=(_POLL_INTERVAL_S,), name="gotrace-metrics",
                                        daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{_hostport(str(host), int(port))}{METRICS_PATH}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
