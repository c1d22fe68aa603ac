"""The simulated terminal's flash: a directory that survives power cycles.

Every file is replaced atomically (write a temp file in the same directory, fsync it,
rename over the target, fsync the directory), so a SIGKILL at any instant leaves either
the old or the new content, never a torn file. Layout (see docs/test-port-protocol.md)::

    factory.json              serial number and model, written once at the first boot
    config.json               terminal configuration (hil.sim.config keys)
    security.json             admin password record (PBKDF2; never the password itself)
    boot.json                 boot counter and last boot reason
    shutdown.json             clean-shutdown marker; present only between a graceful
                              power-off/reboot and the next boot
    firmware/slot-a.fw.json   firmware slot A, byte for byte as flashed or updated
    firmware/slot-b.fw.json   firmware slot B (hil.sim.update writes the inactive slot)
    firmware/boot-select.json which slot boots: {"active": "a"|"b", "previous": ...};
                              absent means slot A (the flashing station's slot)
    firmware/download.part    an update being downloaded (discarded at boot)
    firmware/update.json      the phase of an update under way (removed when it ends)
    logs/seg-NNNNNN.json      the event log, in segments of up to 256 entries
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hil.masking import mask_text

_TMP_PREFIX = ".tmp-"


# fsync after each write and rename, as a terminal's flash driver must. The sim rig turns
# it off (HIL_FLASH_SYNC=0, `[dut] flash_sync = false`): its power cut is a SIGKILL, which
# the host's page cache survives, so the syncs guard only against a crash of the lab
# machine itself, which no scenario provokes, and they were most of a sale's time.
class _FlashPolicy:
    sync_writes = True


_POLICY = _FlashPolicy()


def set_flash_sync(enabled: bool) -> None:
    _POLICY.sync_writes = enabled


def sync_file(fd: int) -> None:
    """fsync a file written in place (not through ``atomic_write_bytes``), as the flash
    policy says."""
    if _POLICY.sync_writes:
        os.fsync(fd)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


# Timestamps on flash are ISO-8601 text, not epoch milliseconds: a 13-digit number is
# what a PAN scanner looks for, and one in ten would pass the Luhn check.
def iso_from_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def ms_from_iso(text: str) -> int:
    return round(datetime.fromisoformat(text).timestamp() * 1000)


def iso_now() -> str:
    return iso_from_ms(now_ms())


def _fsync_dir(path: Path) -> None:
    if not _POLICY.sync_writes:
        return
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that readers never see a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f"{_TMP_PREFIX}{path.name}.{os.getpid()}.{threading.get_ident()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        if _POLICY.sync_writes:
            os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def atomic_write_json(path: Path, value: Any) -> None:
    text = json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    atomic_write_bytes(path, text.encode("utf-8"))


def read_json(path: Path) -> Any:
    """The decoded file, or None when it does not exist. Raises ValueError when corrupt."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    return json.loads(data.decode("utf-8"))


def remove_durably(path: Path) -> None:
    """Delete ``path`` (if present) and make the deletion survive a power cut."""
    try:
        path.unlink()
    except FileNotFoundError:
        return
    _fsync_dir(path.parent)


def remove_stale_temps(directory: Path) -> int:
    """Delete temp files left by a write that a power cut interrupted."""
    removed = 0
    if not directory.is_dir():
        return 0
    for entry in directory.iterdir():
        if entry.name.startswith(_TMP_PREFIX) and entry.is_file():
            with contextlib.suppress(OSError):
                entry.unlink()
                removed += 1
    return removed


FIRMWARE_SLOTS = ("a", "b")


@dataclass(frozen=True)
class FlashLayout:
    """Paths inside the state directory; the one place that knows the layout."""

    root: Path

    @property
    def factory(self) -> Path:
        return self.root / "factory.json"

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def security(self) -> Path:
        return self.root / "security.json"

    @property
    def boot(self) -> Path:
        return self.root / "boot.json"

    @property
    def shutdown_marker(self) -> Path:
        return self.root / "shutdown.json"

    @property
    def firmware_dir(self) -> Path:
        return self.root / "firmware"

    @property
    def boot_select(self) -> Path:
        return self.firmware_dir / "boot-select.json"

    @property
    def update_record(self) -> Path:
        return self.firmware_dir / "update.json"

    @property
    def download_part(self) -> Path:
        return self.firmware_dir / "download.part"

    def slot_image(self, slot: str) -> Path:
        if slot not in FIRMWARE_SLOTS:
            raise ValueError(f"no firmware slot {slot!r}")
        return self.firmware_dir / f"slot-{slot}.fw.json"

    def active_slot(self) -> str:
        """The slot boot-select names; slot A when it is absent or unreadable (the
        flashing station writes slot A and removes boot-select)."""
        try:
            record = read_json(self.boot_select)
        except ValueError:
            return FIRMWARE_SLOTS[0]
        if isinstance(record, dict) and record.get("active") in FIRMWARE_SLOTS:
            return str(record["active"])
        return FIRMWARE_SLOTS[0]

    @property
    def active_image(self) -> Path:
        """The image the next boot verifies and runs: the active slot's file."""
        return self.slot_image(self.active_slot())

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    def ensure(self) -> None:
        for d in (self.root, self.firmware_dir, self.logs_dir):
            d.mkdir(parents=True, exist_ok=True)
            remove_stale_temps(d)


# --- log store -----------------------------------------------------------------------

LOG_LEVELS = ("info", "warn", "error")


@dataclass(frozen=True)
class LogEntry:
    seq: int
    ts_ms: int
    level: str
    code: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        """The wire form (log.read)."""
        return {
            "seq": self.seq,
            "ts_ms": self.ts_ms,
            "level": self.level,
            "code": self.code,
            "message": self.message,
        }

    def flash_form(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "ts": iso_from_ms(self.ts_ms),
            "level": self.level,
            "code": self.code,
            "message": self.message,
        }


class LogStore:
    """Persistent, bounded event log with a sequence number that survives reboots.

    Entries live in segment files of ``segment_size`` entries; only the newest segment
    is rewritten on append, and the oldest is dropped past ``max_segments``. Messages
    are PAN-masked before they are stored: a full PAN must never reach flash.

    ``storage_error`` tells what the log partition answers with now (None: it works).
    While it fails, new entries are held in RAM (``log.read`` serves them) and written
    with the next append or probe that finds the partition working again: an entry is
    never dropped for a storage fault that heals. Thread-safe.
    """

    SEGMENT_SIZE = 256
    MAX_SEGMENTS = 8

    def __init__(
        self,
        directory: Path,
        *,
        segment_size: int = SEGMENT_SIZE,
        max_segments: int = MAX_SEGMENTS,
        storage_error: Callable[[], OSError | None] = lambda: None,
    ) -> None:
        self._dir = directory
        self._segment_size = segment_size
        self._max_segments = max_segments
        self._storage_error = storage_error
        self._lock = threading.Lock()
        self._segments: list[tuple[int, list[LogEntry]]] = []  # (segment number, entries)
        self._unwritten: set[int] = set()  # segments whose newest entries are only in RAM
        self.load_warnings: list[str] = []
        #: Entries older than this (ms) are purged; None keeps them until they rotate out.
        self.retention_ms: Callable[[], int | None] = lambda: None
        #: Since this boot: entries rotated out to make room, entries purged as too old.
        self.rotated_entries = 0
        self.purged_entries = 0
        self._high_seq = 0  # seq never goes back, even when a purge empties the segments
        #: False only under the seeded defect pan_in_log: messages reach flash unmasked
        self.mask_messages = True
        self._load()

    @property
    def directory(self) -> Path:
        return self._dir

    @staticmethod
    def _segment_name(number: int) -> str:
        return f"seg-{number:06d}.json"

    def _segment_files(self) -> list[tuple[int, Path]]:
        found = []
        if self._dir.is_dir():
            for p in self._dir.iterdir():
                m = re.fullmatch(r"seg-(\d{6})\.json", p.name)
                if m:
                    found.append((int(m.group(1)), p))
        return sorted(found)

    @staticmethod
    def _parse_segment(path: Path) -> list[LogEntry]:
        data = read_json(path)
        if not isinstance(data, dict) or not isinstance(data.get("entries"), list):
            raise ValueError("not a log segment")
        return [
            LogEntry(
                seq=int(e["seq"]),
                ts_ms=ms_from_iso(str(e["ts"])),
                level=str(e["level"]),
                code=str(e["code"]),
                message=str(e["message"]),
            )
            for e in data["entries"]
        ]

    def _load(self) -> None:
        self._dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(self._dir)
        for number, path in self._segment_files():
            try:
                entries = self._parse_segment(path)
            except (ValueError, KeyError, TypeError, OSError) as e:
                self.load_warnings.append(f"log segment {path.name} unreadable: {e}")
                continue
            self._segments.append((number, entries))

    def _last_seq(self) -> int:
        for _, entries in reversed(self._segments):
            if entries:
                return max(entries[-1].seq, self._high_seq)
        return self._high_seq

    @property
    def capacity(self) -> int:
        """The most entries kept: whole segments rotate out past it, oldest first."""
        return self._segment_size * self._max_segments

    def append(self, level: str, code: str, message: str) -> LogEntry:
        return self.append_many(level, code, [message])[0]

    def append_many(self, level: str, code: str, messages: list[str]) -> list[LogEntry]:
        """Append entries in one go (one write of the segments they touch)."""
        if level not in LOG_LEVELS:
            raise ValueError(f"log level must be one of {LOG_LEVELS}, got {level!r}")
        with self._lock:
            added = [self._add(level, code, message) for message in messages]
            self._purge_expired()
            with contextlib.suppress(OSError):  # held in RAM until the partition works
                self._write_unwritten()
            return added

    def _add(self, level: str, code: str, message: str) -> LogEntry:
        """Append one entry and rotate the oldest segment out past capacity, recording
        the rotation as an entry of its own (caller holds the lock)."""
        mask = mask_text if self.mask_messages else str
        entry = LogEntry(
            seq=self._last_seq() + 1,
            ts_ms=now_ms(),
            level=level,
            code=mask(code),
            message=mask(message),
        )
        self._high_seq = entry.seq
        if not self._segments or len(self._segments[-1][1]) >= self._segment_size:
            number = self._segments[-1][0] + 1 if self._segments else 1
            self._segments.append((number, []))
        number, entries = self._segments[-1]
        self._segments[-1] = (number, [*entries, entry])
        self._unwritten.add(number)
        while len(self._segments) > self._max_segments:
            old, dropped = self._segments.pop(0)
            self._unwritten.discard(old)
            self.rotated_entries += len(dropped)
            with contextlib.suppress(OSError):  # gone with the partition's next success
                self._check_storage()
                remove_durably(self._dir / self._segment_name(old))
            if dropped:
                self._add(
                    "info",
                    "I_LOG_ROTATED",
                    f"log full: segment {old} rotated out (entries {dropped[0].seq}-"
                    f"{dropped[-1].seq})",
                )
        return entry

    def _purge_expired(self) -> None:
        """Drop entries older than the retention period (caller holds the lock)."""
        retention = self.retention_ms()
        if retention is None or not self._segments:
            return
        cutoff = now_ms() - retention
        first = next((e for _, entries in self._segments for e in entries), None)
        if first is None or first.ts_ms >= cutoff:
            return
        purged: list[LogEntry] = []
        kept: list[tuple[int, list[LogEntry]]] = []
        for number, entries in self._segments:
            young = [e for e in entries if e.ts_ms >= cutoff]
            purged.extend(e for e in entries if e.ts_ms < cutoff)
            if len(young) != len(entries):
                if young or number == self._segments[-1][0]:
                    self._unwritten.add(number)
                else:
                    self._unwritten.discard(number)
                    with contextlib.suppress(OSError):
                        self._check_storage()
                        remove_durably(self._dir / self._segment_name(number))
            if young or number == self._segments[-1][0]:
                kept.append((number, young))
        self._segments = kept
        self.purged_entries += len(purged)
        self._add(
            "info",
            "I_LOG_PURGED",
            f"{len(purged)} entries older than {retention / 1000:g} s purged "
            f"(seq {purged[0].seq}-{purged[-1].seq})",
        )

    def purge_expired(self) -> None:
        """Apply the retention period now (the logs self-check does)."""
        with self._lock:
            self._purge_expired()
            with contextlib.suppress(OSError):
                self._write_unwritten()

    def _check_storage(self) -> None:
        error = self._storage_error()
        if error is not None:
            raise error

    def _write_unwritten(self) -> None:
        """Write every segment holding entries only in RAM; OSError when the partition
        fails (caller holds the lock)."""
        self._check_storage()
        for number, entries in self._segments:
            if number in self._unwritten:
                atomic_write_json(
                    self._dir / self._segment_name(number),
                    {"entries": [e.flash_form() for e in entries]},
                )
                self._unwritten.discard(number)

    @property
    def held_in_ram(self) -> int:
        """Segments whose newest entries wait for the partition to work again."""
        with self._lock:
            return len(self._unwritten)

    def read(self, since: int = 0, limit: int = 200) -> tuple[list[LogEntry], int]:
        """Entries with ``seq >= since``, oldest first, at most ``limit``; and the cursor
        to pass as ``since`` next time."""
        with self._lock:
            out: list[LogEntry] = []
            for _, entries in self._segments:
                for e in entries:
                    if e.seq >= since:
                        out.append(e)
                        if len(out) >= limit:
                            return out, out[-1].seq + 1
            nxt = out[-1].seq + 1 if out else max(since, self._last_seq() + 1)
            return out, nxt

    def reread_from_flash(self) -> list[LogEntry]:
        """Read every segment back from disk (for the logs self-check); raises OSError or
        ValueError when the store is unreadable."""
        with self._lock:
            self._check_storage()
            entries: list[LogEntry] = []
            for _, path in self._segment_files():
                entries.extend(self._parse_segment(path))
            return entries

    def probe_writable(self) -> None:
        """Write, read back and delete a probe file in the log directory; raises OSError."""
        probe = self._dir / "write-probe.json"
        payload = {"probe": iso_now()}
        with self._lock:
            self._check_storage()
            atomic_write_json(probe, payload)
            if read_json(probe) != payload:
                raise OSError("log store read back different bytes")
            remove_durably(probe)
            self._write_unwritten()  # the partition works: what was held goes to flash
