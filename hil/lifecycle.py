"""How a run stops when it is told to, and how it tells the person watching what it waits for.

- **SIGTERM is Ctrl-C.** CI systems cancel a job with SIGTERM (then SIGKILL after a
  grace period). A run that dies on SIGTERM leaves its terminal and its rig running;
  one that takes it as Ctrl-C (``KeyboardInterrupt``) tears the rig down and reports
  the run as interrupted. Only the first SIGTERM interrupts: later ones are ignored so
  the teardown they interrupted can finish (SIGKILL still ends the run at once; the
  terminal's watchdog and the next run's clean-up handle what it leaves, see
  hil.runtime).
- **Interruptions held.** Some stretches must not be cut in half by a
  ``KeyboardInterrupt``: starting a process (after the fork, before its handle is
  stored) and the rig's teardown. ``interruptions_held()`` records SIGINT and SIGTERM
  arriving inside and delivers them when the block ends.
- **Notices.** The rig sometimes waits for something outside the run (a free card
  reader held by another run). ``notice()`` says so on stderr, around pytest's output
  capture when a session is running, so the wait is never silent.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytest

log = logging.getLogger(__name__)

_HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Runner:
    """What this process's run has set up: where notices go, whether SIGTERM came."""

    notice_printer: Callable[[str], None] | None = None
    sigterm_seen = False


def watch_runner(config: pytest.Config) -> None:
    """For this pytest session: SIGTERM stops the run like Ctrl-C, and rig notices
    are printed live. Undone when the session ends."""
    capture = config.pluginmanager.getplugin("capturemanager")

    def print_notice(text: str) -> None:
        around_capture = (
            capture.global_and_fixture_disabled()
            if capture is not None
            else contextlib.nullcontext()
        )
        with around_capture:
            sys.stderr.write(f"hil: {text}\n")
            sys.stderr.flush()

    _Runner.notice_printer = print_notice
    restore = stop_on_sigterm_like_ctrl_c()

    def undo() -> None:
        _Runner.notice_printer = None
        restore()

    config.add_cleanup(undo)


def stop_on_sigterm_like_ctrl_c() -> Callable[[], None]:
    """Install the SIGTERM handler (main thread only); returns what puts the old one back."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    _Runner.sigterm_seen = False
    previous = signal.signal(signal.SIGTERM, _sigterm_as_ctrl_c)

    def restore() -> None:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)

    return restore


def _sigterm_as_ctrl_c(signum: int, frame: FrameType | None) -> None:
    if _Runner.sigterm_seen:
        log.warning("SIGTERM again: the rig is being torn down; SIGKILL stops it at once")
        return
    _Runner.sigterm_seen = True
    raise KeyboardInterrupt("SIGTERM")


def notice(text: str) -> None:
    """Tell the person watching the run what it is waiting for (also logged)."""
    log.warning("%s", text)
    printer = _Runner.notice_printer
    if printer is not None:
        printer(text)
    else:
        sys.stderr.write(f"hil: {text}\n")
        sys.stderr.flush()


@contextlib.contextmanager
def interruptions_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM arriving inside the block; deliver them when it ends.

    Blocking them with a signal mask is not enough: the mask is per thread, the kernel
    hands the signal to any thread that does not block it, and Python then raises
    ``KeyboardInterrupt`` in the main thread at its next bytecode, which may be inside
    ``Popen`` or half-way through a teardown. A handler that only records the signal
    leaves no such gap. Afterwards each caught signal is raised again under the old
    handler, so it does exactly what it would have done (interrupt, be ignored, end
    the process).
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread, which gets them
        return
    caught: list[signal.Signals] = []

    def record(signum: int, _frame: FrameType | None) -> None:
        if signal.Signals(signum) not in caught:
            caught.append(signal.Signals(signum))

    # A handler installed outside Python (getsignal() is None) could not be put back.
    held = [signum for signum in _HELD_SIGNALS if signal.getsignal(signum) is not None]
    previous = {signum: signal.signal(signum, record) for signum in held}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in caught:
            signal.raise_signal(signum)


def end_process_at_exit(code: int = 0) -> None:
    """This process, once it exits, ends without Python's interpreter shutdown, with
    exit status ``code``.

    The shutdown tears down every module and object of a pytest session with OpenCV,
    pydantic and the step library loaded: 0.3-0.4 s of CPU for nothing, at the end of
    every ``hil run`` (the CLI, and each ``--rigs`` worker, all at once). Python runs
    atexit handlers after it has joined the process's non-daemon threads (thread pools
    included), newest first, so this one runs after that and before any registered
    earlier; by then nothing is left to do but what is flushed here: the log handlers
    and the standard streams."""

    def end_now() -> None:
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)

    atexit.register(end_now)
