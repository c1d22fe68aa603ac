"""Open a page in Debian's headless Chromium and watch it through the DevTools protocol.

No webdriver: Chromium speaks the DevTools protocol over a pipe
(``--remote-debugging-pipe``: it reads commands on fd 3 and writes on fd 4, each
message JSON ending in a NUL byte). The page's own requests are the
``Network.requestWillBeSent`` events of its session, so the browser's background
traffic (component updates...) is not mistaken for the page's.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def find_chromium() -> str | None:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass
class PageVisit:
    """What a page did while it was open."""

    requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    result: Any = None


class _Pipe:
    def __init__(self, write_fd: int, read_fd: int) -> None:
        self.write_fd, self.read_fd = write_fd, read_fd
        self.buffer = b""
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, params: dict[str, Any] | None = None, session: str = "") -> int:
        self.next_id += 1
        message: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.write_fd, json.dumps(message).encode() + b"\0")
        return self.next_id

    def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        session: str = "",
        timeout: float = 30,
    ) -> dict[str, Any]:
        wanted = self.send(method, params, session)
        deadline = time.monotonic() + timeout
        while True:
            for message in self._read(deadline):
                if message.get("id") == wanted:
                    if "error" in message:
                        raise RuntimeError(f"{method}: {message['error']}")
                    return dict(message.get("result", {}))
                self.events.append(message)

    def _read(self, deadline: float) -> list[dict[str, Any]]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("chromium did not answer in time")
        ready, _, _ = select.select([self.read_fd], [], [], remaining)
        if not ready:
            raise TimeoutError("chromium did not answer in time")
        chunk = os.read(self.read_fd, 1 << 20)
        if not chunk:
            raise RuntimeError("chromium closed the DevTools pipe")
        self.buffer += chunk
        *messages, self.buffer = self.buffer.split(b"\0")
        return [json.loads(m) for m in messages if m]


def _above_four(fd: int) -> int:
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return moved


def visit(page: Path, expression: str, *, until: str, timeout: float = 40.0) -> PageVisit:
    """Open ``page`` (a file) in headless Chromium, wait until the JavaScript ``until``
    is true, then evaluate ``expression`` (JSON-serialisable) and return it with every
    request the page made and every console error."""
    browser = find_chromium()
    if browser is None:
        raise RuntimeError("no chromium (scripts/setup.sh installs Debian's)")
    # The child's ends above 4, so that putting them on 3 and 4 overwrites neither.
    to_child_r, to_child_w = os.pipe()
    from_child_r, from_child_w = os.pipe()
    to_child_r, from_child_w = _above_four(to_child_r), _above_four(from_child_w)

    with tempfile.TemporaryDirectory(prefix="hil-chromium-") as profile:
        args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--remote-debugging-pipe",
            f"--user-data-dir={profile}",
            "about:blank",
        ]
        # bash (dash knows no fd above 9) puts the pipe ends on fd 3 (commands in)
        # and fd 4 (answers out).
        plumbed = f'exec "$0" "$@" 3<&{to_child_r} 4>&{from_child_w}'
        proc = subprocess.Popen(
            ["bash", "-c", plumbed, browser, *args],
            pass_fds=(to_child_r, from_child_w),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_child_r)
        os.close(from_child_w)
        pipe = _Pipe(to_child_w, from_child_r)
        try:
            return _drive(pipe, page, expression, until, timeout)
        finally:
            try:
                pipe.send("Browser.close")
                proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait()
            os.close(to_child_w)
            os.close(from_child_r)


def _drive(pipe: _Pipe, page: Path, expression: str, until: str, timeout: float) -> PageVisit:
    target = pipe.call("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = pipe.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    for domain in ("Network.enable", "Page.enable", "Runtime.enable", "Log.enable"):
        pipe.call(domain, session=session)
    pipe.events.clear()
    pipe.call("Page.navigate", {"url": page.resolve().as_uri()}, session=session)
    deadline = time.monotonic() + timeout
    ready = False
    while time.monotonic() < deadline:
        answer = pipe.call(
            "Runtime.evaluate", {"expression": until, "returnByValue": True}, session=session
        )
        if answer.get("result", {}).get("value") is True:
            ready = True
            break
        time.sleep(0.3)
    visit = PageVisit()
    if ready:
        answer = pipe.call(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=session
        )
        visit.result = answer.get("result", {}).get("value")
    for event in pipe.events:
        if event.get("sessionId") != session:
            continue
        params = event.get("params", {})
        if event.get("method") == "Network.requestWillBeSent":
            visit.requests.append(str(params.get("request", {}).get("url", "")))
        elif event.get("method") == "Runtime.consoleAPICalled" and params.get("type") == "error":
            visit.console_errors.append(json.dumps(params.get("args", []))[:300])
        elif (
            event.get("method") == "Log.entryAdded"
            and params.get("entry", {}).get("level") == "error"
        ):
            visit.console_errors.append(str(params["entry"].get("text", ""))[:300])
    if not ready:
        raise TimeoutError(f"{page}: {until} not true within {timeout:.0f} s")
    return visit
