"""A stand-in for a Toxiproxy server, speaking the subset of its documented HTTP API
that hil's ``toxiproxy`` driver uses, with hil's own fault proxy doing the traffic.

This is NOT Toxiproxy: no Toxiproxy server is installable on this machine (FACTS.md),
so the driver is tested against this stand-in, written from Toxiproxy's README
(endpoints, JSON bodies, toxic types and their attributes). It checks the driver
sends well-formed calls and that the faults they name really happen on the wire.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from hil.faultproxy import Fault, FaultProxy


class _Proxy:
    def __init__(self, name: str, listen: str, upstream: str) -> None:
        host, _, port = upstream.rpartition(":")
        lhost, _, lport = listen.rpartition(":")
        self.name = name
        self.engine = FaultProxy((host, int(port)), listen=(lhost, int(lport)))
        address = self.engine.start()
        self.listen = f"{address[0]}:{address[1]}"
        self.upstream = upstream
        self.enabled = True
        self.toxics: dict[str, dict[str, Any]] = {}

    def view(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.enabled,
            "toxics": list(self.toxics.values()),
        }

    def apply(self) -> None:
        """Re-derive the engine's faults from the toxics and the enabled flag."""
        self.engine.clear()
        if not self.enabled:
            self.engine.add(Fault("refuse"))
        for toxic in self.toxics.values():
            attrs, stream = toxic["attributes"], toxic["stream"]
            kind = toxic["type"]
            if kind == "timeout" and attrs.get("timeout", 0) == 0:
                self.engine.add(Fault("blackhole", stream))
            elif kind == "reset_peer":
                self.engine.add(Fault("reset", stream, {"after_bytes": 0}))
            elif kind == "latency":
                params = {"ms": float(attrs["latency"]), "jitter_ms": float(attrs.get("jitter", 0))}
                self.engine.add(Fault("latency", stream, params))
            elif kind == "bandwidth":
                self.engine.add(Fault("bandwidth", stream, {"bytes_per_s": attrs["rate"] * 1000}))
            elif kind == "slicer":
                params = {"segment_bytes": attrs["average_size"], "delay_ms": attrs["delay"] / 1000}
                self.engine.add(Fault("slicer", stream, params))
            elif kind == "limit_data":
                self.engine.add(Fault("limit_data", stream, {"after_bytes": attrs["bytes"]}))
            else:
                raise ValueError(f"stand-in does not model toxic type {kind}")


class ToxiproxyStandIn:
    """``start()`` returns the API base URL; ``calls`` lists (method, path, body)."""

    def __init__(self) -> None:
        self.proxies: dict[str, _Proxy] = {}
        self.calls: list[tuple[str, str, Any]] = []
        self._lock = threading.Lock()
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _body(self) -> Any:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                return json.loads(raw) if raw else None

            def _answer(self, status: int, value: Any = None) -> None:
                data = b"" if value is None else json.dumps(value).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method: str) -> None:
                body = self._body() if method == "POST" else None
                with standin._lock:
                    standin.calls.append((method, self.path, body))
                    status, value = standin.route(method, self.path.strip("/").split("/"), body)
                self._answer(status, value)

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

            def do_DELETE(self) -> None:
                self._handle("DELETE")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> str:
        self.thread.start()
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        for proxy in self.proxies.values():
            proxy.engine.stop()

    def route(self, method: str, parts: list[str], body: Any) -> tuple[int, Any]:
        if parts == ["version"] and method == "GET":
            return 200, "2.x-standin"
        if parts == ["proxies"]:
            if method == "GET":
                return 200, {name: p.view() for name, p in self.proxies.items()}
            if body["name"] in self.proxies:
                return 409, {"error": "proxy already exists", "status": 409}
            proxy = _Proxy(body["name"], body["listen"], body["upstream"])
            proxy.enabled = bool(body.get("enabled", True))
            proxy.apply()
            self.proxies[proxy.name] = proxy
            return 201, proxy.view()
        proxy = self.proxies.get(parts[1]) if len(parts) > 1 else None
        if proxy is None:
            return 404, {"error": "proxy not found", "status": 404}
        if len(parts) == 2:
            if method == "DELETE":
                proxy.engine.stop()
                del self.proxies[proxy.name]
                return 204, None
            if method == "POST":
                proxy.enabled = bool(body.get("enabled", proxy.enabled))
                proxy.apply()
            return 200, proxy.view()
        if parts[2] == "toxics" and len(parts) == 3 and method == "POST":
            if body["name"] in proxy.toxics:
                return 409, {"error": "toxic already exists", "status": 409}
            proxy.toxics[body["name"]] = body
            proxy.apply()
            return 200, body
        if parts[2] == "toxics" and len(parts) == 4 and method == "DELETE":
            if parts[3] not in proxy.toxics:
                return 404, {"error": "toxic not found", "status": 404}
            del proxy.toxics[parts[3]]
            proxy.apply()
            return 204, None
        return 405, {"error": "not modelled by the stand-in", "status": 405}
