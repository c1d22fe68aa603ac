"""The payment application and the software watchdog that supervises it.

The payment application runs beside the terminal's OS (the test port, the self-check)
and kicks the watchdog every ``KICK_INTERVAL_S``. The watchdog looks every
``CHECK_INTERVAL_S`` (a look that comes more than half a timeout late means the whole
terminal was starved, the application included: the silence so far is forgiven);
when no kick came for ``WATCHDOG_TIMEOUT_S`` it fires: the
application is ``E_APP_CRASH`` if it has ended (an uncaught error, like a process that
died) or ``E_APP_HANG`` if it still runs but stopped kicking. It logs the code, shows
the ``app_fault`` screen, emits ``app.fault``, abandons the dead or hung application,
starts a new one (``APP_START_S``), logs ``I_APP_RESTARTED``, emits ``app.restarted``
and shows the idle screen again. While the application is down, payments are refused
with ``E_APP_DOWN``. Every delay is nominal, multiplied by ``HIL_TIME_SCALE``.

The rig provokes the faults with the fault lines ``app_crash`` and ``app_hang``: each
*rising edge* (the line going from released to asserted) makes the running application
crash, or hang, once. Holding the line does nothing more; release it before the next.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

WATCHDOG_TIMEOUT_S = 3.0
KICK_INTERVAL_S = 0.5
CHECK_INTERVAL_S = 0.25
APP_START_S = 1.0

FAULT_LINE_CRASH = "app_crash"
FAULT_LINE_HANG = "app_hang"

APP_FAULT_LINES = ["应用故障", "Application fault"]


class _PaymentApp:
    """One run of the payment application: a thread that kicks while it is healthy."""

    def __init__(self, kick: Callable[[], None], interval_s: float, generation: int) -> None:
        self._kick = kick
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._crash = threading.Event()
        self._hang = threading.Event()
        self.thread = threading.Thread(
            target=self._main, name=f"payment-app-{generation}", daemon=True
        )

    def start(self) -> None:
        self.thread.start()

    def _main(self) -> None:
        while not self._stop.is_set():
            if self._crash.is_set():
                return  # an uncaught error ends the application: no more kicks
            if self._hang.is_set():
                self._stop.wait()  # stuck (a deadlock, an endless loop): no more kicks
                return
            self._kick()
            self._stop.wait(self._interval_s)

    def crash(self) -> None:
        self._crash.set()

    def hang(self) -> None:
        self._hang.set()

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()

    def abandon(self) -> None:
        self._stop.set()


class AppWatchdog:
    """Runs and supervises the payment application; restarts it when it stops kicking."""

    def __init__(
        self,
        *,
        log: Callable[[str, str, str], object],
        emit: Callable[[str, dict[str, Any]], object],
        show: Callable[[str, list[str]], object],
        show_idle: Callable[[], None],
        time_scale: float,
    ) -> None:
        self._log = log
        self._emit = emit
        self._show = show
        self._show_idle = show_idle
        self.timeout_s = WATCHDOG_TIMEOUT_S * time_scale
        self.kick_interval_s = KICK_INTERVAL_S * time_scale
        self.check_interval_s = CHECK_INTERVAL_S * time_scale
        self.start_s = APP_START_S * time_scale
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._app: _PaymentApp | None = None
        self._last_kick = time.monotonic()
        self._up = False
        self._restarts = 0
        self._last_fault: str | None = None
        self._generation = 0
        self._lines: dict[str, bool] = {FAULT_LINE_CRASH: False, FAULT_LINE_HANG: False}
        self._pending: list[str] = []  # faults provoked before the application started
        self._thread: threading.Thread | None = None

    # --- life cycle -----------------------------------------------------------------

    def start(self) -> None:
        """Start the application and its watchdog (the terminal is ready)."""
        self._launch()
        self._thread = threading.Thread(target=self._watch, name="app-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            app, self._app, self._up = self._app, None, False
        if app is not None:
            app.abandon()
        if self._thread is not None:
            self._thread.join(self.timeout_s + 1.0)

    def _kick(self) -> None:
        with self._lock:
            self._last_kick = time.monotonic()

    def _launch(self) -> None:
        with self._lock:
            self._generation += 1
            app = _PaymentApp(self._kick, self.kick_interval_s, self._generation)
            self._app = app
            self._last_kick = time.monotonic()
            self._up = True
            pending, self._pending = self._pending, []
        app.start()
        for fault in pending:
            self._inject(fault)

    # --- faults the rig provokes --------------------------------------------------------

    def on_fault_lines(self, levels: dict[str, bool]) -> None:
        """Fault-line listener: a rising edge of app_crash or app_hang provokes it once."""
        edges = []
        with self._lock:
            for line in (FAULT_LINE_CRASH, FAULT_LINE_HANG):
                level = levels.get(line, False)
                if level and not self._lines[line]:
                    edges.append(line)
                self._lines[line] = level
        for line in edges:
            self._inject(line)

    def _inject(self, line: str) -> None:
        with self._lock:
            app = self._app if self._up else None
            if app is None:
                self._pending.append(line)
                return
        if line == FAULT_LINE_CRASH:
            app.crash()
        else:
            app.hang()

    # --- the watchdog ---------------------------------------------------------------

    def _watch(self) -> None:
        last_look = time.monotonic()
        while not self._stop.wait(self.check_interval_s):
            now = time.monotonic()
            overslept_s = now - last_look - self.check_interval_s
            last_look = now
            with self._lock:
                if overslept_s > self.timeout_s / 2:
                    # The watchdog itself could not run for that long (the whole
                    # terminal was starved: memory being filled, an overloaded CPU), so
                    # the application could not kick either: that silence is no fault.
                    self._last_kick = now
                    continue
                app = self._app
                silent_s = now - self._last_kick
            if app is None or silent_s <= self.timeout_s:
                continue
            self._fire(app, silent_s)

    def _fire(self, app: _PaymentApp, silent_s: float) -> None:
        code = "E_APP_HANG" if app.alive else "E_APP_CRASH"
        what = "stopped answering" if app.alive else "crashed"
        silent_ms = round(silent_s * 1000)
        fired_at = time.monotonic()
        with self._lock:
            self._up = False
            self._last_fault = code
        app.abandon()
        self._log(
            "error",
            code,
            f"payment application {what}: no watchdog kick for {silent_ms} ms; restarting it",
        )
        self._show("app_fault", [*APP_FAULT_LINES, code])
        self._emit("app.fault", {"code": code, "silent_ms": silent_ms})
        if self._stop.wait(self.start_s):
            return
        self._launch()
        with self._lock:
            self._restarts += 1
            restarts = self._restarts
        down_ms = round((time.monotonic() - fired_at) * 1000)
        self._log("info", "I_APP_RESTARTED", f"payment application restarted after {code}")
        self._emit("app.restarted", {"code": code, "restarts": restarts, "down_ms": down_ms})
        self._show_idle()

    # --- what the terminal reports ------------------------------------------------------

    @property
    def app_up(self) -> bool:
        with self._lock:
            return self._up

    def status(self) -> dict[str, Any]:
        with self._lock:
            started = self._thread is not None
            return {
                "state": ("running" if self._up else "restarting") if started else "stopped",
                "restarts": self._restarts,
                "last_fault": self._last_fault,
                "watchdog_timeout_ms": round(self.timeout_s * 1000),
                "kick_interval_ms": round(self.kick_interval_s * 1000),
            }
