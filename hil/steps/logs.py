"""Steps for the terminal's system log store: rotation when full and purge by age.

The rig writes marker entries (``log.mark``: many entries in one command, so filling
the 2048-entry store takes a fraction of a second), reads the whole log back over the
test port and judges it against the documented capacity and retention
(``hil.contract.security``): which entries survive, their order, and the entries the
terminal writes to record a rotation or a purge.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from pytest_bdd import given, then, when

from hil import reporting
from hil.contract.security import (
    LOG_CAPACITY,
    LOG_KEPT_AFTER_ROTATION,
    LOG_RETENTION_DEFAULT_S,
    LOG_RETENTION_KEY,
    LOG_RETENTION_MIN_S,
    LOG_SEGMENT_ENTRIES,
    MAX_MARKS_PER_COMMAND,
)
from hil.errors import HilError, RigError
from hil.rig import Rig
from hil.steps.phrases import StepValueError, phrase
from hil.steps.selfcheck import ItemCheck
from hil.terminal import LogEntry, Terminal

#: log.read pages: a page of entries must fit one test-port frame (64 KiB).
READ_PAGE = 400
#: Marker entries in one retention batch.
BATCH = 20
#: Beyond the retention period the rig waits this much more before it expects a purge.
RETENTION_MARGIN_S = 0.3
_MARK = re.compile(r"mark (\S+) (\d+)/(\d+)")


@dataclass
class Batch:
    chunks: dict[str, int]  # note of each log.mark -> marks written before it in the batch
    first_seq: int
    last_seq: int
    count: int
    started: float  # time.monotonic() before the command left
    answered: float


@dataclass
class LogScene:
    batches: dict[str, Batch] = field(default_factory=dict)
    retention_s: float | None = None  # effective (scaled) period the rig set
    entries: list[LogEntry] = field(default_factory=list)
    retention_set: bool = False


@pytest.fixture
def log_scene(terminal: Terminal) -> Iterator[LogScene]:
    """What the rig wrote to the log; the retention period goes back to its default
    after the scenario."""
    scene = LogScene()
    yield scene
    if scene.retention_set:
        with contextlib.suppress(HilError):
            terminal.config_set(LOG_RETENTION_KEY, LOG_RETENTION_DEFAULT_S)


def read_whole_log(terminal: Terminal) -> list[LogEntry]:
    entries: list[LogEntry] = []
    since = 0
    while True:
        page = terminal.log(since=since, limit=READ_PAGE)
        entries.extend(page)
        if len(page) < READ_PAGE:
            return entries
        since = page[-1].seq + 1


def write_marks(terminal: Terminal, scene: LogScene, label: str, count: int) -> Batch:
    """``count`` marker entries in as many ``log.mark`` commands as it takes; each command
    numbers its own marks, so each gets a note of its own (unique per run)."""
    token = secrets.token_hex(3)
    started = time.monotonic()
    chunks: dict[str, int] = {}
    first = last = -1
    done = 0
    while done < count:
        n = min(MAX_MARKS_PER_COMMAND, count - done)
        note = f"{label}-{token}-{len(chunks)}"
        marks = terminal.log_mark(n, note)
        chunks[note] = done
        first = marks.first_seq if first < 0 else first
        last = marks.last_seq
        done += n
    batch = Batch(chunks, first, last, count, started, time.monotonic())
    scene.batches[label] = batch
    return batch


def _marks_of(entries: list[LogEntry], batch: Batch) -> list[tuple[int, int]]:
    """(seq, index within the batch, from 1) of the batch's marker entries, in log order."""
    found = []
    for entry in entries:
        match = _MARK.fullmatch(entry.message) if entry.code == "I_LOG_MARK" else None
        if match and match.group(1) in batch.chunks:
            found.append((entry.seq, batch.chunks[match.group(1)] + int(match.group(2))))
    return found


# --- rotation -------------------------------------------------------------------------------


@when(phrase("the rig writes marker entries past the log's documented capacity"))
def fill_log(terminal: Terminal, log_scene: LogScene) -> None:
    """As many marker entries as the log holds: with the entries already there (the
    boot wrote some) at least one segment rotates out, and with it the first mark (the
    rotation's own record is newer than it, so not every mark fits)."""
    count = LOG_CAPACITY
    with reporting.action("fill the system log", entries=count, capacity=LOG_CAPACITY):
        write_marks(terminal, log_scene, "fill", count)
        log_scene.entries = read_whole_log(terminal)


@then(phrase("the system log keeps the newest entries in order within its documented capacity"))
def newest_kept(log_scene: LogScene) -> None:
    """Between capacity minus a segment and capacity entries, sequence numbers without a
    gap, and the marks kept are the newest ones, in the order they were written."""
    entries = log_scene.entries
    batch = log_scene.batches["fill"]
    assert LOG_KEPT_AFTER_ROTATION <= len(entries) <= LOG_CAPACITY, (
        f"the log holds {len(entries)} entries after the rig wrote {batch.count}; the "
        f"documented store keeps {LOG_KEPT_AFTER_ROTATION}-{LOG_CAPACITY}"
    )
    seqs = [e.seq for e in entries]
    gaps = [(a, b) for a, b in itertools.pairwise(seqs) if b != a + 1]
    assert not gaps, f"the log's sequence numbers jump (first jumps: {gaps[:3]})"
    marks = _marks_of(entries, batch)
    assert marks, "none of the rig's marker entries is in the log"
    indices = [index for _, index in marks]
    assert indices[-1] == batch.count, (
        f"the newest marker entry kept is {indices[-1]}/{batch.count}: the newest were lost"
    )
    assert indices == list(range(indices[0], batch.count + 1)), (
        "the marker entries kept are not the newest ones in the order written"
    )
    assert indices[0] > 1 and seqs[0] > batch.first_seq, (
        f"the oldest marker entry ({indices[0]}/{batch.count}) is still there: nothing rotated out"
    )


@then(phrase("the system log records the rotation"))
def rotation_recorded(log_scene: LogScene) -> None:
    """An I_LOG_ROTATED entry names the entries that went, and they are gone."""
    rotated = [e for e in log_scene.entries if e.code == "I_LOG_ROTATED"]
    assert rotated, "no I_LOG_ROTATED entry records the rotation"
    oldest = log_scene.entries[0].seq
    for entry in rotated:
        match = re.search(r"entries (\d+)-(\d+)", entry.message)
        assert match, f"I_LOG_ROTATED seq {entry.seq} does not name the entries: {entry.message}"
        assert int(match.group(2)) < oldest, (
            f"I_LOG_ROTATED seq {entry.seq} says entries {match.group(0)} went, but the log "
            f"still starts at {oldest}"
        )


@then(phrase('the "logs" self-check reports the rotation'))
def item_reports_rotation(item_check: ItemCheck, log_scene: LogScene) -> None:
    """The logs item's details count the entries rotated out and the documented capacity."""
    details = item_check.result.details
    assert details.get("capacity") == LOG_CAPACITY, (
        f"the logs item reports capacity {details.get('capacity')}, documented {LOG_CAPACITY}"
    )
    rotated = details.get("rotated_entries")
    assert isinstance(rotated, int) and rotated >= LOG_SEGMENT_ENTRIES, (
        f"the logs item reports {rotated!r} entries rotated out after the rig overfilled it"
    )


# --- retention ------------------------------------------------------------------------------


@given(phrase("the rig sets the log retention period to {seconds:Count} seconds"))
def set_retention(terminal: Terminal, hil_rig: Rig, log_scene: LogScene, seconds: int) -> None:
    """Config ``log.retention_s`` (nominal seconds; the terminal scales it)."""
    if seconds < LOG_RETENTION_MIN_S:
        raise StepValueError(f"the retention period is at least {LOG_RETENTION_MIN_S} seconds")
    log_scene.retention_set = True
    terminal.config_set(LOG_RETENTION_KEY, seconds)
    log_scene.retention_s = seconds * hil_rig.time_scale


@when(phrase('the rig writes marker entries "{label:MarkNote}"'))
def write_batch(terminal: Terminal, log_scene: LogScene, label: str) -> None:
    """A small batch of marker entries labelled ``label``."""
    write_marks(terminal, log_scene, label, BATCH)


@when(phrase("the rig waits out the log retention period"))
def wait_retention(log_scene: LogScene) -> None:
    """Until the newest batch is older than the retention period, plus a margin."""
    if log_scene.retention_s is None or not log_scene.batches:
        raise StepValueError("set a retention period and write entries first")
    newest = max(b.answered for b in log_scene.batches.values())
    time.sleep(max(newest + log_scene.retention_s + RETENTION_MARGIN_S - time.monotonic(), 0))


@then(
    phrase(
        'the system log holds no "{aged:MarkNote}" entry and every "{fresh:MarkNote}" one, '
        "and records the purge"
    )
)
def purged_by_age(
    terminal: Terminal, item_check: ItemCheck, log_scene: LogScene, aged: str, fresh: str
) -> None:
    """Both sides of the period: entries older than it are gone, younger ones all there
    (judged only while the rig can prove they are younger), and I_LOG_PURGED says so."""
    entries = read_whole_log(terminal)
    read_at = time.monotonic()
    old, young = log_scene.batches[aged], log_scene.batches[fresh]
    assert log_scene.retention_s is not None
    age = read_at - young.started
    if age >= log_scene.retention_s:
        raise RigError(
            f"the rig took {age:.2f} s from writing the young entries to reading them back "
            f"(retention {log_scene.retention_s:g} s): their side could not be observed"
        )
    left = _marks_of(entries, old)
    assert not left, f"{len(left)} entries older than the retention period are still there"
    kept = [index for _, index in _marks_of(entries, young)]
    assert kept == list(range(1, young.count + 1)), (
        f"of {young.count} entries younger than the retention period, the log holds {len(kept)}"
    )
    purges = [e for e in entries if e.code == "I_LOG_PURGED"]
    assert purges, "no I_LOG_PURGED entry records the purge"
    purged = item_check.result.details.get("purged_entries")
    assert isinstance(purged, int) and purged >= old.count, (
        f"the logs item reports {purged!r} entries purged; the rig aged {old.count}"
    )


# --- entries held while the partition fails ---------------------------------------------------


@then(phrase('the system log holds every "{label:MarkNote}" entry'))
def holds_every(terminal: Terminal, log_scene: LogScene, label: str) -> None:
    """Every marker entry of the batch, in order, read back over the test port (after a
    power cut: only what reached flash is left)."""
    batch = log_scene.batches[label]
    kept = [index for _, index in _marks_of(read_whole_log(terminal), batch)]
    assert kept == list(range(1, batch.count + 1)), (
        f"of the {batch.count} '{label}' entries, the log holds {len(kept)}"
    )
