"""``hil console`` and ``hil send`` as a person and a script use them: subprocesses on
the real sim rig (pty test port, the terminal's process, the fault-line harness)."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import queue
import re
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from hil.runtime import processes_of_run
from hil.suite import FIXTURES
from tests.conftest import write_sim_rig

pytestmark = pytest.mark.integration

HIL = [sys.executable, "-m", "hil"]
PAN = "4111111111111111"  # the synthetic test PAN: Luhn-valid, must never show in clear
FAULT_LINES = '[faultlines]\ndriver = "sim"\n'
QR_SCREEN = '[qr_screen]\ndriver = "sim"\n'


class Lines:
    """A subprocess's stdout, line by line, waited on with a deadline."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.seen: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        assert process.stdout is not None
        stdout = process.stdout

        def pump() -> None:
            for line in stdout:
                self._queue.put(line.rstrip("\n"))
            self._queue.put(None)

        threading.Thread(target=pump, daemon=True).start()

    def expect(self, pattern: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self._queue.get(timeout=max(left, 0.01))
            except queue.Empty:
                line = ""
                left = 0
            if line is None or left <= 0:
                shown = "\n".join(self.seen[-30:])
                pytest.fail(f"no line matching {pattern!r}; last lines:\n{shown}")
            self.seen.append(line)
            if re.search(pattern, line):
                return line


def test_console_drives_the_sim_rig_send_event_instruments_quit(tmp_path: Path) -> None:
    rig = write_sim_rig(tmp_path / "rig.toml", extra=FAULT_LINES + QR_SCREEN)
    transcript = tmp_path / "session.txt"
    marker = f"console-{os.getpid()}"
    process = subprocess.Popen(
        [*HIL, "console", "--rig", str(rig), "--transcript", str(transcript)],
        cwd=tmp_path,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "HIL_RUN_ID": marker},
    )
    assert process.stdin is not None
    stdin = process.stdin

    def type_line(line: str) -> None:
        stdin.write(line + "\n")
        stdin.flush()

    lines = Lines(process)
    try:
        # The console opens the port before the power-on: the boot's events show, decoded.
        lines.expect(r"^evt #\d+ sys\.boot \{.*\"firmware_version\": \"1\.4\.2\"")
        lines.expect(r"^evt #\d+ sys\.ready \{\}$")
        assert processes_of_run(marker), "the sim terminal should be running"

        type_line("device.info")
        info = lines.expect(r"^ok device\.info ")
        assert json.loads(info.removeprefix("ok device.info "))["serial_number"] == "SIM8A0000001"

        # A bad line is one line of error, and the session goes on.
        type_line('config.set {"key": "comm.retries", "value": }')
        bad = lines.expect(r"^! ")
        assert bad.startswith("! config.set: arguments are not a JSON object: invalid JSON")

        # The terminal's refusal is its answer, printed; a PAN in it is masked.
        type_line(f'config.get {{"key": "{PAN}"}}')
        lines.expect(r"^error config\.get E_")

        # PIN material: digit keys never reach the screen or a transcript.
        type_line('keypad.press {"keys": ["7", "3", "enter"]}')
        lines.expect(r'^> keypad\.press \{"keys": \["\*", "\*", "enter"\]\}$')
        lines.expect(r"^ok keypad\.press ")

        # An instrument by hand, then what the terminal makes of it arrives as events.
        type_line(":fault set tamper")
        lines.expect(r"^= fault line tamper set$")
        type_line("selfcheck.run")
        tamper = lines.expect(r"^evt #\d+ selfcheck\.item .*\"item\": \"tamper\"")
        assert '"code": "E_TAMPER"' in tamper, tamper
        lines.expect(r"^ok selfcheck\.run ")

        type_line(':qr show "pos-hil console" blur=0.5 contrast=0.8')
        lines.expect(
            r"^= QR screen shows 15 characters, degradation blur_sigma=0\.5, contrast=0\.8$"
        )
        type_line("scanner.scan")
        lines.expect(r'^evt #\d+ scanner\.decoded \{"payload": "pos-hil console"')

        type_line(":card insert visa-credit")  # this rig has no [cards]: said, goes on
        lines.expect(r"^! :card failed: rig 'test-sim' has no \[cards\] instrument")

        type_line(":quit")
        lines.expect(r"^console closed: quit$")
        assert process.wait(30) == 0, process.stderr.read() if process.stderr else ""
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    survivors = processes_of_run(marker)
    assert survivors == [], f"processes left after :quit: {survivors}"

    screen = "\n".join(lines.seen)
    record = transcript.read_text()
    wire = transcript.with_suffix(".wire.txt").read_text()
    for text in (screen, record, wire):
        assert PAN not in text
        assert not re.search(r'"7", ?"3"', text), "a PIN digit was written"
    assert "411111******1111" in screen
    assert re.search(r"^\d\d:\d\d:\d\d\.\d{3} > device\.info$", record, re.MULTILINE), record
    assert re.search(r"^\d\d:\d\d:\d\d\.\d{3} evt #\d+ sys\.ready \{\}$", record, re.MULTILINE)
    assert '"cmd":"device.info"' in wire, "the wire transcript decodes the frames"


def _send(*args: str, cwd: Path, marker: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **({"HIL_RUN_ID": marker} if marker else {})}
    return subprocess.run(
        [*HIL, "send", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def test_send_prints_the_result_and_exits_by_whose_fault_it_is(tmp_path: Path) -> None:
    rig = write_sim_rig(tmp_path / "rig.toml")
    marker = f"send-{os.getpid()}"

    ok = _send("device.info", "--rig", str(rig), cwd=tmp_path, marker=marker)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["terminal_id"] == "T0000001"

    refused = _send(
        "config.set", '{"key": "no.such.key", "value": 1}', "--rig", str(rig), cwd=tmp_path
    )
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert refused.stdout == ""
    # the last line: a notice about another run's leftovers may come first on a shared host
    said = refused.stderr.splitlines()[-1]
    assert re.fullmatch(r"hil: config\.set: the terminal answered E_CONFIG_KEY: .+", said), said

    bad_json = _send("config.set", '{"key": ', "--rig", str(rig), cwd=tmp_path)
    assert bad_json.returncode == 2
    assert bad_json.stderr.startswith("hil: config.set: arguments are not a JSON object:")
    assert len(bad_json.stderr.splitlines()) == 1

    tampered = FIXTURES / "firmware" / "tampered-1.4.2.fw.json"
    unbooted = _send("device.info", "--rig", str(rig), "--firmware", str(tampered), cwd=tmp_path)
    assert unbooted.returncode == 1, unbooted.stderr
    said = unbooted.stderr.splitlines()[-1]
    assert said.startswith("hil: the terminal did not boot: E_FW_SIGNATURE"), said

    no_port = _send("device.info", "--port", str(tmp_path / "no-such-tty"), cwd=tmp_path)
    assert no_port.returncode == 3, no_port.stderr
    assert "cannot open test port" in no_port.stderr

    assert processes_of_run(marker) == [], "hil send left the terminal running"


def test_console_on_a_terminal_completes_with_tab_and_quits(tmp_path: Path) -> None:
    """stdin and stdout a pty, as for a person: readline's prompt and Tab completion."""
    rig = write_sim_rig(tmp_path / "rig.toml")
    marker = f"console-tty-{os.getpid()}"
    controller, side = pty.openpty()
    process = subprocess.Popen(
        [*HIL, "console", "--rig", str(rig), "--transcript", str(tmp_path / "t.txt")],
        cwd=tmp_path,
        stdin=side,
        stdout=side,
        stderr=side,
        env={**os.environ, "HIL_RUN_ID": marker, "TERM": "dumb"},
        start_new_session=True,
    )
    os.close(side)
    seen = bytearray()

    def wait_for(pattern: bytes, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not re.search(pattern, seen):
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(f"no {pattern!r} on the terminal; it shows:\n{seen[-2000:]!r}")
            ready, _, _ = select.select([controller], [], [], min(left, 0.2))
            if ready:
                with contextlib.suppress(OSError):
                    seen.extend(os.read(controller, 4096))

    try:
        wait_for(rb"evt #\d+ sys\.ready")
        os.write(controller, b"device.i\t\r")  # Tab completes the documented command
        wait_for(rb"ok device\.info \{")
        os.write(controller, b":qu\t\r")
        wait_for(rb"console closed: quit")
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        os.close(controller)
    assert processes_of_run(marker) == []


def test_console_says_when_the_terminal_process_dies_and_exits_1(tmp_path: Path) -> None:
    rig = write_sim_rig(tmp_path / "rig.toml")
    marker = f"console-dies-{os.getpid()}"
    process = subprocess.Popen(
        [*HIL, "console", "--rig", str(rig), "--transcript", str(tmp_path / "t.txt")],
        cwd=tmp_path,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "HIL_RUN_ID": marker},
    )
    assert process.stdin is not None
    lines = Lines(process)
    try:
        lines.expect(r"^evt #\d+ sys\.ready \{\}$")
        terminals = [pid for pid in processes_of_run(marker) if pid != process.pid]
        assert terminals, "the sim terminal should be running"
        for pid in terminals:
            os.kill(pid, signal.SIGKILL)  # a crash, not a power-off
        lines.expect(r"^! the terminal's process exited; the next line ends the console$")
        process.stdin.write("device.info\n")
        process.stdin.flush()
        assert process.wait(30) == 1
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert not any(line.startswith("ok device.info") for line in lines.seen)
    assert processes_of_run(marker) == []


def test_console_and_send_on_the_port_hil_sim_prints(tmp_path: Path) -> None:
    """--port: a terminal already running (here the one ``hil sim`` started), no rig."""
    rig = write_sim_rig(tmp_path / "rig.toml")
    sim = subprocess.Popen(
        [*HIL, "sim", "--rig", str(rig)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert sim.stdout is not None
        match = re.match(r"console port: (\S+)", sim.stdout.readline())
        assert match
        port = match.group(1)
        sent = _send("sys.ping", "--port", port, cwd=tmp_path)
        assert sent.returncode == 0, sent.stderr
        assert isinstance(json.loads(sent.stdout), dict)
        session = subprocess.run(
            [*HIL, "console", "--port", port, "--transcript", str(tmp_path / "t.txt")],
            cwd=tmp_path,
            input="device.info\n:fault set tamper\n:quit\n",
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert session.returncode == 0, session.stderr
        shown = session.stdout.splitlines()
        assert shown[0] == f"console on {port}; :help lists the commands, :quit leaves"
        assert any(line.startswith("ok device.info {") for line in shown), shown
        assert "! :fault: instrument commands need a rig (hil console --rig)" in shown
    finally:
        os.killpg(sim.pid, signal.SIGINT)
        assert sim.wait(15) in (0, 130)


def test_sigterm_ends_the_console_with_130_and_the_rig_torn_down(tmp_path: Path) -> None:
    rig = write_sim_rig(tmp_path / "rig.toml")
    marker = f"console-term-{os.getpid()}"
    process = subprocess.Popen(
        [*HIL, "console", "--rig", str(rig), "--transcript", str(tmp_path / "t.txt")],
        cwd=tmp_path,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "HIL_RUN_ID": marker},
    )
    lines = Lines(process)
    try:
        lines.expect(r"^evt #\d+ sys\.ready \{\}$")
        process.send_signal(signal.SIGTERM)  # how a CI system cancels a job
        assert process.wait(30) == 130
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert process.stderr is not None
    assert process.stderr.read().splitlines()[-1] == (
        "hil: interrupted the console; the rig was torn down"
    )
    assert processes_of_run(marker) == []
