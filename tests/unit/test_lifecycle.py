"""SIGTERM stops a run like Ctrl-C; held stretches get their signal afterwards."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hil.lifecycle import interruptions_held, notice, stop_on_sigterm_like_ctrl_c


@pytest.fixture
def sigterm_as_ctrl_c() -> Iterator[None]:
    restore = stop_on_sigterm_like_ctrl_c()
    yield
    restore()


def test_sigterm_interrupts_once_then_lets_the_teardown_finish(sigterm_as_ctrl_c: None) -> None:
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGTERM)
    os.kill(os.getpid(), signal.SIGTERM)  # a second SIGTERM: ignored, teardown goes on


def test_signals_inside_a_held_stretch_arrive_when_it_ends(sigterm_as_ctrl_c: None) -> None:
    reached_the_end = False
    with pytest.raises(KeyboardInterrupt), interruptions_held():
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)
        reached_the_end = True
    assert reached_the_end
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_held_stretch_without_signals_changes_nothing() -> None:
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with interruptions_held():
        pass
    assert {s: signal.getsignal(s) for s in before} == before


def test_an_ignored_ctrl_c_stays_ignored_after_a_held_stretch() -> None:
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with interruptions_held():
            os.kill(os.getpid(), signal.SIGINT)
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_notice_without_a_session_goes_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    notice("cards: waiting for a reader")
    assert capsys.readouterr().err == "hil: cards: waiting for a reader\n"


def _python(code: str) -> subprocess.CompletedProcess[str]:
    # Without PYTHONUNBUFFERED, what was printed sits in a pipe's buffer at exit.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


def test_a_process_ending_at_exit_loses_no_output_no_log_and_keeps_its_status(
    tmp_path: Path,
) -> None:
    """No interpreter shutdown; what was printed or logged, still in buffers (a pipe's, a
    buffering log handler's), is written all the same, and the status is the one given."""
    log = tmp_path / "worker.log"
    done = _python(
        "import logging, logging.handlers, sys\n"
        "from hil.lifecycle import end_process_at_exit\n"
        f"to_file = logging.FileHandler({str(log)!r})\n"
        "held = logging.handlers.MemoryHandler(1000, logging.CRITICAL, to_file)\n"
        "logging.getLogger().addHandler(held)\n"
        "end_process_at_exit(3)\n"
        "sys.stdout.write('last words, no newline')\n"
        "logging.getLogger('worker').warning('logged at the end')\n"
    )
    assert (done.returncode, done.stdout) == (3, "last words, no newline"), done.stderr
    assert "logged at the end" in log.read_text(encoding="utf-8")


def test_a_thread_pool_finishes_its_work_before_the_process_ends(tmp_path: Path) -> None:
    # Python joins thread pools before atexit handlers run: queued work is not lost.
    written = tmp_path / "late.txt"
    done = _python(
        "import time\n"
        "from concurrent.futures import ThreadPoolExecutor\n"
        "from pathlib import Path\n"
        "from hil.lifecycle import end_process_at_exit\n"
        "pool = ThreadPoolExecutor(1)\n"
        "end_process_at_exit(0)\n"
        f"pool.submit(lambda: (time.sleep(0.2), Path({str(written)!r}).write_text('done')))\n"
    )
    assert done.returncode == 0, done.stderr
    assert written.read_text(encoding="utf-8") == "done"


@pytest.mark.parametrize(
    ("argv", "status", "said"),
    [
        (["hil", "rig", "check", "--rig", "/nonexistent/rig.toml"], 2, "rig file not found"),
        (["hil", "steps"], 0, ""),
    ],
)
def test_the_hil_command_ends_with_the_status_it_chose(
    argv: list[str], status: int, said: str
) -> None:
    done = _python(f"import sys; sys.argv = {argv!r}\nfrom hil.cli import main\nmain()\n")
    assert done.returncode == status, done.stderr
    assert said in done.stderr
    if status == 0:
        assert done.stdout.strip(), "what the command printed reached the pipe"
