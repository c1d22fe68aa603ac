"""`hil run` killed (SIGKILL), cancelled (SIGTERM, what CI sends) or interrupted (SIGINT)
while the rig starts, mid-scenario and during teardown: 5 s later no process of the run
and no socket it listened on is left, its work folder goes with the next run, and the
next run passes.

The run is a real ``hil run`` subprocess on a small sim rig (terminal process on a pty,
host simulator, fault proxy). Its processes are recognised by the run ID in their
environment. To land the signal *inside* the rig's start or teardown rather than
near it, a conftest in the feature folder (test instrumentation, nothing else) marks
those moments with a flag file and lingers there for a second.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from hil.runtime import OWNER_FILE, WORK_PREFIX, processes_of_run, runtime_root
from hil.suite import FEATURES
from tests.conftest import write_sim_rig

pytestmark = pytest.mark.integration

HIL = [sys.executable, "-m", "hil"]
GONE_WITHIN_S = 5.0
SMALL_RIG = '\n[host]\ndriver = "sim"\n\n[network]\ndriver = "proxy"\n'

MOMENT_HOOKS = '''
"""Test instrumentation: flags the moment the test signals in, and lingers there."""
import os
import time
from pathlib import Path

from hil.instruments.power import SimPower

_flag = Path(os.environ["HIL_TEST_FLAG"])
_moment = os.environ["HIL_TEST_MOMENT"]


def _linger() -> None:
    if not _flag.exists():
        _flag.touch()
        time.sleep(1.0)


if _moment == "rig start":  # the terminal is booting, Rig.start() has not returned
    _on = SimPower.on

    def _on_then_linger(self):
        _on(self)
        _linger()

    SimPower.on = _on_then_linger
elif _moment == "teardown":  # Rig.close() is switching the terminal off
    _close = SimPower.close

    def _linger_then_close(self):
        _linger()
        _close(self)

    SimPower.close = _linger_then_close
'''


def _listening_sockets() -> dict[int, int]:
    """Socket inode -> port of every listening TCP socket on the host."""
    sockets = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # TCP_LISTEN
                sockets[int(fields[9])] = int(fields[1].rsplit(":", 1)[1], 16)
    return sockets


def _sockets_of(pids: list[int]) -> set[int]:
    inodes = set()
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(int(target[8:-1]))
        except OSError:
            continue
    return inodes


def _work_folders_of(run: str) -> list[Path]:
    found = []
    for folder in runtime_root().glob(f"{WORK_PREFIX}*"):
        try:
            if json.loads((folder / OWNER_FILE).read_text())["run_id"] == run:
                found.append(folder)
        except (OSError, ValueError, KeyError):
            continue
    return found


def _wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)  # watching another process: no event to wait on


@pytest.mark.parametrize("moment", ["rig start", "mid-scenario", "teardown"])
@pytest.mark.parametrize(
    "signum", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name
)
def test_a_stopped_runner_leaves_nothing_behind(
    tmp_path: Path, signum: signal.Signals, moment: str
) -> None:
    features = tmp_path / "features"
    features.mkdir()
    shutil.copy(FEATURES / "boot_self_check.feature", features)
    (features / "conftest.py").write_text(MOMENT_HOOKS)
    # Slow enough that the reboot step is still running when the signal lands.
    rig = write_sim_rig(tmp_path / "rig.toml", time_scale=0.5, extra=SMALL_RIG)
    run = f"killed-{signum.name}-{moment.replace(' ', '-')}-{os.getpid()}"
    flag = tmp_path / "moment-reached"
    output = tmp_path / "output.txt"
    env = {**os.environ, "HIL_RUN_ID": run, "HIL_TEST_FLAG": str(flag), "HIL_TEST_MOMENT": moment}
    with output.open("w") as out:
        runner = subprocess.Popen(
            [*HIL, "run", "--rig", str(rig), "--no-html", "--", "-k", "reboot"],
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            # CI may run us as a background job with SIGINT ignored, and an ignored
            # signal stays ignored across exec; a user's Ctrl-C is not. No threads here.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # noqa: PLW1509
        )
    try:
        if moment == "mid-scenario":
            reached = lambda: "When the terminal is rebooted" in output.read_text()  # noqa: E731
        else:
            reached = flag.exists
        listening: set[int] = set()

        def watch() -> bool:
            # Every socket the run listened on while it ran (by teardown, some are closed).
            listening.update(_sockets_of(processes_of_run(run)) & set(_listening_sockets()))
            return reached()

        _wait_for(watch, 60, f"{moment} ({output.read_text()[-500:]})")
        assert len(processes_of_run(run)) >= 2, "the runner and its terminal should be running"
        if not listening and moment != "teardown":
            # One sample of /proc can miss them on a loaded machine; they stay open
            # while the run goes on (at teardown they may already be closed).
            _wait_for(lambda: watch() and bool(listening), 5, "the run's listening sockets")
        assert listening, "the host simulator and the fault proxy should have been listening"

        runner.send_signal(signum)
        code = runner.wait(60)
        _wait_for(lambda: not processes_of_run(run), GONE_WITHIN_S, "the run's processes to end")
        left = listening & set(_listening_sockets())
        assert not left, f"ports still listening: {[_listening_sockets()[i] for i in left]}"
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    text = output.read_text()
    # What the reports say: never a finished run (they exist once a scenario started).
    summary_file = tmp_path / "reports" / "summary.json"
    if moment != "rig start" or summary_file.exists():
        summary = json.loads(summary_file.read_text())
        assert summary["complete"] is False, summary
        assert summary["run_id"] == run
    if signum == signal.SIGKILL:
        assert code == -signal.SIGKILL
    else:
        assert code == 130, text[-2000:]
        # Teardown ran: the run removed its own work folder.
        assert not _work_folders_of(run), text[-2000:]

    fast_rig = write_sim_rig(tmp_path / "fast.toml", extra=SMALL_RIG)
    following = subprocess.run(
        [*HIL, "run", "--rig", str(fast_rig), "--no-html", "--", "-k", "reboot"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "HIL_TEST_FLAG": str(flag), "HIL_TEST_MOMENT": "none"},
        timeout=120,
        check=False,
    )
    assert following.returncode == 0, following.stdout[-2000:] + following.stderr
    assert not _work_folders_of(run), "the next run should have removed the dead run's folder"


@pytest.mark.parametrize("plant", ["symlink", "open to others"])
def test_a_planted_runtime_folder_stops_the_rig_with_one_line(tmp_path: Path, plant: str) -> None:
    runtime = tmp_path / "runtime"
    target = tmp_path / "attacker"
    target.mkdir(mode=0o700)
    if plant == "symlink":
        runtime.symlink_to(target)
        expected = f"hil: rig fault: runtime folder {runtime}: refused: it is a symlink"
    else:
        runtime.mkdir(mode=0o700)
        runtime.chmod(0o777)
        expected = (
            f"hil: rig fault: runtime folder {runtime}: refused: mode 0777 lets others in, "
            "it must be 0700 (chmod 700 it if it is yours)"
        )
    rig = write_sim_rig(tmp_path / "rig.toml")
    result = subprocess.run(
        [*HIL, "rig", "check", "--rig", str(rig)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "HIL_RUNTIME_DIR": str(runtime)},
        timeout=60,
        check=False,
    )
    assert result.returncode == 3, result.stdout + result.stderr
    assert result.stderr.splitlines() == [expected]
    assert list(target.iterdir()) == []
    if plant != "symlink":
        assert list(runtime.iterdir()) == []
