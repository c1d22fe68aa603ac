"""A rig that is a labgrid place, against a real labgrid coordinator and exporter.

The test starts ``labgrid-coordinator`` and ``labgrid-exporter`` on 127.0.0.1 (free
ports, HOME and working folder in tmp), a simulated terminal behind a switchable
supply on a pty (tests/integration/bench_supply.py, the rig sees a physical terminal)
and a small HTTP power switch speaking labgrid's ``rest`` model in front of that
supply. The exporter exports the pty as a ``RawSerialPort`` (served by Debian's
ser2net over RFC 2217 once the place is acquired) and the switch as a
``NetworkPowerPort``; ``labgrid-client`` creates the place. ``hil run`` then runs the
shipped boot feature on a rig file with the ``labgrid`` place, console and power
drivers: the place is held by this user during the run and free after it, and a run
while another user holds it stops as a rig fault (exit 3) naming the holder.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from hil.suite import FEATURES, FIXTURES
from tests.conftest import REPO
from tests.integration.bench_supply import ctl

pytestmark = pytest.mark.integration

BENCH = Path(__file__).with_name("bench_supply.py")
BIN = Path(sys.executable).parent
HIL = BIN / "hil"
FIRMWARE = FIXTURES / "firmware" / "pos-sim-healthy-1.4.2.fw.json"
PLACE = "pos-a"
EXPORTER = "bench-1"


def _labgrid_tools() -> None:
    """The extra is part of the dev install (scripts/setup.sh): missing, it is a
    broken set-up, never a reason to skip."""
    missing = [
        tool
        for tool in ("labgrid-coordinator", "labgrid-exporter", "labgrid-client")
        if not (BIN / tool).is_file()
    ]
    if shutil.which("ser2net") is None:
        missing.append("ser2net")
    if missing:
        pytest.fail(
            f"the labgrid test needs {', '.join(missing)}: run make setup "
            "(pos-hil[labgrid] is in the dev install, ser2net comes from apt)"
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Supply:
    """The bench's supply, switched over HTTP as labgrid's ``rest`` power model
    expects: GET answers 0 or 1, PUT takes 0 or 1."""

    control: Path
    requests: list[str] = field(default_factory=list)

    def serve(self) -> tuple[ThreadingHTTPServer, str]:
        supply = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                supply.requests.append(f"GET {self.path}")
                self._answer(b"1" if ctl(supply.control, "status") == 0 else b"0")

            def do_PUT(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                supply.requests.append(f"PUT {self.path} {body.decode()}")
                if body not in (b"0", b"1"):
                    self.send_error(400)
                    return
                # a network switch opens the supply: that is a cut, not a shutdown
                ctl(supply.control, "on" if body == b"1" else "cut")
                self._answer(body)

            def _answer(self, body: bytes) -> None:
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return None

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server, f"http://127.0.0.1:{server.server_address[1]}/supply/{{index}}"


@dataclass
class Lab:
    """A labgrid coordinator and exporter on loopback, and the bench they export."""

    folder: Path
    coordinator: str
    bench: Path
    supply: Supply
    exporter_log: Path

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "HOME": str(self.folder),
            "LG_COORDINATOR": self.coordinator,
            **extra,
        }

    def client(self, *args: str, user: str | None = None) -> subprocess.CompletedProcess[str]:
        extra = {} if user is None else {"LG_USERNAME": user, "LG_HOSTNAME": "bench-2"}
        return subprocess.run(
            [str(BIN / "labgrid-client"), "-p", PLACE, *args],
            check=False,
            cwd=self.folder,
            capture_output=True,
            text=True,
            timeout=60,
            env=self.env(**extra),
        )

    def holder(self) -> str:
        shown = self.client("show")
        assert shown.returncode == 0, shown.stdout + shown.stderr
        for line in shown.stdout.splitlines():
            if line.strip().startswith("acquired:"):
                return line.split(":", 1)[1].strip()
        raise AssertionError(f"no 'acquired:' in labgrid-client show: {shown.stdout}")

    def actions(self) -> list[str]:
        log = self.bench / "actions.log"
        return log.read_text().split() if log.is_file() else []


def _start(command: list[str], cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen[str]:
    with log.open("w") as out:
        return subprocess.Popen(
            command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, text=True
        )


def _wait_for(what: str, check: object, timeout: float = 60.0) -> None:
    assert callable(check)
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    _labgrid_tools()
    folder = tmp_path / "lab"
    folder.mkdir()
    processes: list[subprocess.Popen[str]] = []
    bench = subprocess.Popen(
        [
            sys.executable,
            str(BENCH),
            "serve",
            "--folder",
            str(tmp_path / "bench"),
            "--firmware",
            str(FIRMWARE),
            "--serial",
            "SIM8A0000001",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    processes.append(bench)
    server = None
    try:
        assert bench.stdout is not None
        pty = bench.stdout.readline().split()[1]
        control = Path(bench.stdout.readline().split()[1])
        supply = Supply(control)
        server, power_url = supply.serve()
        coordinator = f"127.0.0.1:{free_port()}"
        lab = Lab(folder, coordinator, tmp_path / "bench", supply, folder / "exporter.log")
        processes.append(
            _start(
                [str(BIN / "labgrid-coordinator"), "--listen", coordinator],
                folder,
                lab.env(),
                folder / "coordinator.log",
            )
        )
        (folder / "exporter.yaml").write_text(
            f"""
{PLACE}:
  RawSerialPort:
    port: {pty}
    speed: 115200
  NetworkPowerPort:
    model: rest
    host: '{power_url}'
    index: 0
""",
            encoding="utf-8",
        )

        def exporter_ready() -> bool:
            said = lab.exporter_log.read_text() if lab.exporter_log.is_file() else ""
            if processes[-1].poll() is not None:
                raise AssertionError(f"labgrid-exporter exited: {said[-2000:]}")
            return "Exporter ready" in said

        _wait_for(
            "the coordinator to listen",
            lambda: (
                subprocess.run(
                    ["bash", "-c", f"exec 3<>/dev/tcp/{coordinator.replace(':', '/')}"],
                    check=False,
                    capture_output=True,
                ).returncode
                == 0
            ),
        )
        processes.append(
            _start(
                [
                    str(BIN / "labgrid-exporter"),
                    "--coordinator",
                    coordinator,
                    "--hostname",
                    "127.0.0.1",
                    "--name",
                    EXPORTER,
                    "exporter.yaml",
                ],
                folder,
                lab.env(),
                lab.exporter_log,
            )
        )
        _wait_for("the exporter", exporter_ready)
        for args in (("create",), ("add-match", f"{EXPORTER}/{PLACE}/*")):
            done = lab.client(*args)
            assert done.returncode == 0, done.stdout + done.stderr
        yield lab
    finally:
        if server is not None:
            server.shutdown()
        for process in reversed(processes):
            _stop(process)


def labgrid_rig(path: Path, coordinator: str, *, place: str = PLACE) -> Path:
    path.write_text(
        f"""
[rig]
name = "labgrid-{place}"

[place]
driver = "labgrid"
coordinator = "{coordinator}"
name = "{place}"

[dut]
driver = "physical"
model = "POS-SIM-A8"
serial_number = "SIM8A0000001"
terminal_id = "T0000001"
merchant_id = "898310058120001"
firmware = "{FIRMWARE}"
boot_timeout_s = 20.0

[console]
driver = "labgrid"

[power]
driver = "labgrid"

[limits]
boot_selfcheck_s = 10.0
""",
        encoding="utf-8",
    )
    return path


def hil_run(rig: Path, cwd: Path, features: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(HIL), "run", "--rig", str(rig), "--features", str(features), "--no-html"],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def boot_features(tmp_path: Path) -> Path:
    features = tmp_path / "features"
    features.mkdir(exist_ok=True)
    shutil.copy(FEATURES / "boot_self_check.feature", features)
    return features


def test_the_boot_feature_runs_on_a_labgrid_place_which_is_held_during_the_run_only(
    lab: Lab, tmp_path: Path
) -> None:
    rig = labgrid_rig(tmp_path / "place.toml", lab.coordinator)
    assert lab.holder() == "None"
    run = hil_run(rig, tmp_path, boot_features(tmp_path))
    seen: set[str] = set()
    while run.poll() is None:
        seen.add(lab.holder())
        time.sleep(0.3)
    stdout, stderr = run.communicate()
    exported = lab.exporter_log.read_text()
    assert run.returncode == 0, stdout[-3000:] + stderr[-2000:] + exported[-1500:]
    summary = json.loads((tmp_path / "reports" / "summary.json").read_text())
    counts = summary["counts"]
    assert counts["passed"] == 5 and sum(counts.values()) == 5, counts
    environment = summary["environment"]
    assert environment["instrument.place"] == "labgrid"
    assert environment["instrument.console"] == "labgrid"
    assert environment["instrument.power"] == "labgrid"
    # held by this user on this host while the run went on, free once it ended
    me = f"{socket.gethostname()}/{getpass.getuser()}"
    assert me in seen, seen
    assert lab.holder() == "None"
    # the test port went through the ser2net the exporter started for the place
    assert "started ser2net for /dev/pts/" in exported, exported[-2000:]
    # every switch went through labgrid's rest power model to the bench's supply
    puts = [r for r in lab.supply.requests if r.startswith("PUT")]
    assert "PUT /supply/0 1" in puts and "PUT /supply/0 0" in puts, lab.supply.requests
    actions = lab.actions()
    assert {"on", "cut"} <= set(actions), actions
    assert actions[-1] == "cut", "the rig switches the terminal off when it closes"


def test_a_place_held_by_another_user_is_a_rig_fault_naming_the_holder(
    lab: Lab, tmp_path: Path
) -> None:
    held = lab.client("acquire", user="lab-b")
    assert held.returncode == 0, held.stdout + held.stderr
    rig = labgrid_rig(tmp_path / "place.toml", lab.coordinator)
    run = hil_run(rig, tmp_path, boot_features(tmp_path))
    stdout, stderr = run.communicate(timeout=300)
    assert run.returncode == 3, stdout[-3000:] + stderr[-2000:]
    said = stdout + stderr
    assert f"{PLACE} is held by bench-2/lab-b" in said, said[-3000:]
    # the other user's hold is untouched, and the terminal was never switched
    assert lab.holder() == "bench-2/lab-b"
    assert lab.actions() == []
    released = lab.client("release", user="lab-b")
    assert released.returncode == 0, released.stdout + released.stderr


def test_unknown_place_coordinator_down_and_rig_check(lab: Lab, tmp_path: Path) -> None:
    features = boot_features(tmp_path)
    unknown = labgrid_rig(tmp_path / "unknown.toml", lab.coordinator, place="pos-z")
    run = hil_run(unknown, tmp_path, features)
    stdout, stderr = run.communicate(timeout=300)
    assert run.returncode == 2, stdout[-3000:] + stderr[-2000:]
    assert f"has no place 'pos-z' (its places: {PLACE})" in stdout + stderr
    down = labgrid_rig(tmp_path / "down.toml", f"127.0.0.1:{free_port()}")
    run = hil_run(down, tmp_path, features)
    stdout, stderr = run.communicate(timeout=300)
    assert run.returncode == 3, stdout[-3000:] + stderr[-2000:]
    assert "cannot reach the labgrid coordinator" in stdout + stderr
    assert lab.holder() == "None"
    # hil rig check names the place, its holder and resources, then lets it go
    good = labgrid_rig(tmp_path / "good.toml", lab.coordinator)
    check = subprocess.run(
        [str(HIL), "rig", "check", "--rig", str(good)],
        check=False,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"labgrid place {PLACE} held by " in check.stdout, check.stdout
    assert "NetworkSerialPort" in check.stdout and "NetworkPowerPort" in check.stdout
    assert lab.holder() == "None"


def test_ctrl_c_mid_run_releases_the_place(lab: Lab, tmp_path: Path) -> None:
    rig = labgrid_rig(tmp_path / "place.toml", lab.coordinator)
    me = f"{socket.gethostname()}/{getpass.getuser()}"
    run = subprocess.Popen(
        [str(HIL), "run", "--rig", str(rig), "--features", str(boot_features(tmp_path))],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # CI may run us with SIGINT ignored, which exec keeps; a user's Ctrl-C is not
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # noqa: PLW1509
    )
    try:
        _wait_for("the run to hold the place", lambda: lab.holder() == me, timeout=120)
        _wait_for("the terminal to be switched on", lambda: "on" in lab.actions(), timeout=60)
    finally:
        run.send_signal(signal.SIGINT)
    stdout, stderr = run.communicate(timeout=120)
    assert run.returncode == 130, stdout[-3000:] + stderr[-2000:]
    assert lab.holder() == "None", "the teardown released the place"
    assert lab.actions()[-1] == "cut", "and switched the terminal off before that"
