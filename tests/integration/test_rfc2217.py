"""The test port over the network: RFC 2217 through Debian's ser2net, as labs export it.

ser2net (the real one, started here on loopback) serves the terminal's own serial
device; the rig reaches it only as ``rfc2217://127.0.0.1:PORT?ign_set_control``.
Proven here: shipped scenarios pass over it; a link that drops (ser2net killed, then
started again) comes back with the transcript whole and a request in flight answered;
a link that stays down is a rig fault (exit code 3), never the terminal's.

A machine without ser2net fails these tests (scripts/setup.sh installs it): a skip
would let a CI machine call the RFC 2217 path proven without running it.
"""

from __future__ import annotations

import json
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hil.errors import DutError, RigError
from hil.instruments.console import PyserialConsole
from hil.suite import FEATURES
from hil.terminal_process import TerminalProcess
from tests.conftest import REPO
from tests.integration.ser2net import Ser2net, Ser2netMissing
from tests.integration.test_physical_trial import (
    FIRMWARE,
    VendorBench,
    run_hil,
    serve_vendor_bench,
    trial_rig,
)

pytestmark = pytest.mark.integration

WAIT_S = 30.0


def ser2net_in_front_of(device: str, folder: Path) -> Ser2net:
    try:
        server = Ser2net(device, folder)
    except Ser2netMissing as e:
        pytest.fail(str(e))
    server.start()
    return server


def test_a_machine_without_ser2net_fails_with_the_install_hint(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import tests.integration.ser2net as ser2net_module

    monkeypatch.setattr(ser2net_module.shutil, "which", lambda name: None)
    monkeypatch.setattr(ser2net_module.os, "access", lambda path, mode: False)
    with pytest.raises(pytest.fail.Exception, match=r"ser2net not found.*scripts/setup\.sh"):
        ser2net_in_front_of("/dev/null", tmp_path)


# -- the console instrument alone, against a terminal process ----------------------


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[TerminalProcess]:
    process = TerminalProcess(
        [sys.executable, "-m", "hil.sim"],
        state_dir=tmp_path / "flash",
        env={
            "HIL_FACTORY_SERIAL": "SIM8A0000001",
            "HIL_PROVISION_TID": "T0000001",
            "HIL_PROVISION_MID": "898310058120001",
            # Real time: selfcheck.run then blocks about 2.2 s, long enough to drop the
            # link under it.
            "HIL_TIME_SCALE": "1.0",
            "PYTHONPATH": str(REPO),
        },
        stderr_path=tmp_path / "terminal-stderr.log",
    )
    process.flash(FIRMWARE)
    try:
        yield process
    finally:
        process.close()


@pytest.fixture
def ser2net(terminal: TerminalProcess, tmp_path: Path) -> Iterator[Ser2net]:
    server = ser2net_in_front_of(terminal.port_path, tmp_path / "ser2net")
    try:
        yield server
    finally:
        server.stop()


def booted_console(terminal: TerminalProcess, server: Ser2net, **options: Any) -> PyserialConsole:
    console = PyserialConsole(server.url, **options)
    terminal.start()
    console.events.wait_for("sys.ready", since=0, timeout=WAIT_S)
    return console


def in_background(call: Any) -> tuple[threading.Thread, dict[str, Any]]:
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = call()
        except BaseException as e:  # handed to the test thread to judge
            outcome["error"] = e

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def test_a_request_in_flight_survives_ser2net_killed_and_restarted(
    terminal: TerminalProcess, ser2net: Ser2net
) -> None:
    console = booted_console(terminal, ser2net, reconnect_interval=0.2)
    try:
        before = console.request("device.info")
        assert before["serial_number"] == "SIM8A0000001"
        console.transcript.clear()
        console.request("device.info")
        # selfcheck.run blocks ~2.2 s on the terminal: the link drops under it
        thread, outcome = in_background(lambda: console.request("selfcheck.run", timeout=20))
        time.sleep(0.5)
        ser2net.kill()
        time.sleep(1.0)  # the rig's reconnection attempts meet a closed port meanwhile
        ser2net.start()
        thread.join(WAIT_S)
        assert not thread.is_alive()
        assert "error" not in outcome, repr(outcome.get("error"))
        # the self-check's own answer (items wired to nothing fail: this terminal runs
        # without its rig channels, which is not what is tested here)
        assert outcome["result"]["trigger"] == "command"
        assert len(outcome["result"]["results"]) == 13
        after = console.request("device.info")
        assert after["state"] == "idle" and after["boot_count"] == before["boot_count"]
        assert console.link_drops == 1

        # The transcript kept both sides of the drop, with the drop in between.
        lines = console.transcript.render().splitlines()
        dropped = next(i for i, line in enumerate(lines) if "dropped" in line)
        back = next(i for i, line in enumerate(lines) if "re-established" in line)
        assert dropped < back
        assert ser2net.url in lines[dropped]
        assert any('"cmd":"selfcheck.run"' in line for line in lines[:dropped])
        assert any('"cmd":"device.info"' in line for line in lines[:dropped])
        assert any('"cmd":"device.info"' in line for line in lines[back:])
        assert any('"passed":' in line for line in lines[back:]), "the answer after the drop"
    finally:
        console.close()


def test_a_link_that_stays_down_is_a_rig_fault_after_the_attempts(
    terminal: TerminalProcess, ser2net: Ser2net
) -> None:
    console = booted_console(terminal, ser2net, reconnect_attempts=3, reconnect_interval=0.2)
    try:
        console.request("device.info")
        thread, outcome = in_background(lambda: console.request("selfcheck.run", timeout=20))
        time.sleep(0.5)
        started = time.monotonic()
        ser2net.kill()
        thread.join(WAIT_S)
        error = outcome.get("error")
        # The request in flight fails as the rig's fault, not the terminal's, and soon:
        # three attempts 0.2 s apart, not the request's 20 s timeout.
        assert isinstance(error, RigError) and not isinstance(error, DutError), repr(error)
        assert time.monotonic() - started < 10
        assert "could not be re-established: 3 attempt(s)" in str(error.__cause__ or error)
        with pytest.raises(RigError, match="could not be re-established"):
            console.request("device.info")
        text = console.transcript.render()
        assert "not re-established after 3 attempt(s)" in text
    finally:
        console.close()


# -- a whole run: the physical-terminal bench with ser2net on its test port --------


@pytest.fixture
def pty_bench(tmp_path: Path) -> Iterator[VendorBench]:
    """The vendor bench (tests/integration/vendor_bench.py) offering its terminal's test
    port as a serial device, with no TCP bridge of its own: ser2net is the only way in."""
    yield from serve_vendor_bench(tmp_path / "vendor", "--console", "pty")


def rfc2217_rig(path: Path, bench: VendorBench, url: str, console_extra: str = "") -> Path:
    return trial_rig(
        path,
        bench,
        dut_extra=f'firmware = "{FIRMWARE}"',
        name="rfc2217-bench",
        console_url=url,
        console_extra=console_extra,
    )


def features_folder(tmp_path: Path, *names: str) -> Path:
    folder = tmp_path / "features"
    folder.mkdir()
    for name in names:
        shutil.copy(FEATURES / name, folder)
    return folder


def transcripts(reports: Path) -> list[str]:
    results = reports / "allure-results"
    texts = []
    for result in results.glob("*-result.json"):
        for attachment in json.loads(result.read_text()).get("attachments", []):
            if attachment["name"] == "test-port transcript":
                texts.append((results / attachment["source"]).read_text())
    return texts


def passed_scenarios(reports: Path) -> list[str]:
    """Names of the scenarios passed so far in the run under way (a result file is
    written when a scenario starts; its status comes when it ends)."""
    names = []
    for path in reports.glob("runs/*/allure-results/*-result.json"):
        try:
            result = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # being written
        if result.get("status") == "passed":
            names.append(result.get("name", ""))
    return names


def test_shipped_scenarios_pass_with_the_console_over_rfc2217_through_ser2net(
    pty_bench: VendorBench, tmp_path: Path
) -> None:
    server = ser2net_in_front_of(pty_bench.console, tmp_path / "ser2net")
    try:
        features = features_folder(tmp_path, "boot_self_check.feature", "communication.feature")
        rig = rfc2217_rig(tmp_path / "bench.toml", pty_bench, server.url)
        result = run_hil(
            ["run", "--rig", str(rig), "--features", str(features), "--no-html"], tmp_path
        )
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    finally:
        server.stop()
    summary = json.loads((tmp_path / "reports" / "summary.json").read_text())
    counts = summary["counts"]
    # 5 boot + 9 comm scenarios, every one passed with the only way to the test port
    # being ser2net's RFC 2217 server
    assert counts["passed"] == 14 and sum(counts.values()) == 14, counts
    texts = transcripts(tmp_path / "reports")
    assert len(texts) == 14
    assert all("dropped" not in text for text in texts)


def test_a_run_goes_on_when_ser2net_restarts_and_stops_with_a_rig_fault_when_it_stays_down(
    pty_bench: VendorBench, tmp_path: Path
) -> None:
    server = ser2net_in_front_of(pty_bench.console, tmp_path / "ser2net")
    features = features_folder(tmp_path, "boot_self_check.feature")
    rig = rfc2217_rig(
        tmp_path / "bench.toml",
        pty_bench,
        server.url,
        "reconnect_attempts = 4\nreconnect_interval_ms = 250",
    )

    def after_scenarios(count: int, then: Any) -> threading.Thread:
        def watch() -> None:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                if len(passed_scenarios(tmp_path / "reports")) >= count:
                    then()
                    return
                time.sleep(0.05)

        thread = threading.Thread(target=watch, daemon=True)
        thread.start()
        return thread

    def bounce() -> None:
        server.kill()
        time.sleep(0.6)
        server.start()

    try:
        # 1. ser2net killed after the second scenario and back 0.6 s later: all green.
        watcher = after_scenarios(2, bounce)
        result = run_hil(
            ["run", "--rig", str(rig), "--features", str(features), "--no-html"], tmp_path
        )
        watcher.join(5)
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
        counts = json.loads((tmp_path / "reports" / "summary.json").read_text())["counts"]
        assert counts["passed"] == 5 and sum(counts.values()) == 5, counts
        texts = transcripts(tmp_path / "reports")
        bounced = [text for text in texts if "re-established" in text]
        assert len(bounced) == 1, "one scenario's transcript shows the drop and the return"
        assert bounced[0].index("dropped") < bounced[0].index("re-established")

        # 2. ser2net killed after the first scenario, for good: a rig fault, exit 3.
        shutil.rmtree(tmp_path / "reports")
        watcher = after_scenarios(1, server.kill)
        result = run_hil(
            ["run", "--rig", str(rig), "--features", str(features), "--no-html"], tmp_path
        )
        watcher.join(5)
        output = result.stdout + result.stderr
        assert result.returncode == 3, output[-4000:]
        assert "could not be re-established" in output, output[-4000:]
        counts = json.loads((tmp_path / "reports" / "summary.json").read_text())["counts"]
        assert counts.get("failed", 0) == 0, f"a dropped link blamed on the terminal: {counts}"
    finally:
        server.stop()
