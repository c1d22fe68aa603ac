"""Firmware update over the test port: download, verify, write the inactive slot, switch.

The terminal has two firmware slots (``firmware/slot-a.fw.json``, ``slot-b.fw.json``)
and a boot-select record (``firmware/boot-select.json``) naming the one that boots.
``fw.update {"file": NAME}`` installs the image ``NAME`` from the rig's update medium
(channel ``updates``: a folder the rig owns) in four phases:

1. ``downloading``: the file is copied from the medium into ``firmware/download.part``
   a chunk at a time;
2. ``verifying``: the downloaded bytes must be a signed image (``E_FW_UNSIGNED``), in
   the image format (``E_FW_FORMAT``), with a signature the ROM key verifies
   (``E_FW_SIGNATURE``), for this model (``E_FW_MODEL``), with a valid version
   (``E_FW_VERSION``) newer than the running one (``E_FW_DOWNGRADE``);
3. ``writing``: the bytes go into the *inactive* slot (a plain, non-atomic write: a
   power cut leaves that slot torn, which no boot reads), then are read back and
   compared by SHA-256 (``E_FW_WRITE``);
4. ``switching``: boot-select is replaced atomically to name the new slot (the commit
   point), then the terminal reboots into it.

A power cut before the commit boots the old image from the untouched active slot; a
cut after it boots the new one. The boot after an interrupted update discards the
partial download and logs ``E_FW_UPDATE_INTERRUPTED`` naming the phase and the version
it runs. ``hold_at`` (a test hook) stops the update at a documented point of one phase
and reports it, so a rig can cut the power there without racing the terminal.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hil import strictjson
from hil.errors import ConfigError
from hil.firmware import image_from_bytes, verify, version_is_valid
from hil.protocol.endpoint import CommandFailed
from hil.sim.selfcheck import DEFECT_UPDATE_UNCHECKED
from hil.sim.state import (
    FIRMWARE_SLOTS,
    FlashLayout,
    atomic_write_json,
    iso_now,
    read_json,
    remove_durably,
    sync_file,
)
from hil.strictjson import StrictJsonError

PHASES = ("downloading", "verifying", "writing", "switching")
#: The download moves this many bytes per chunk, each after a nominal delay.
CHUNK_BYTES = 256
CHUNK_DELAY_S = 0.05
#: Nominal time to erase and program the slot, and to switch.
WRITE_DELAY_S = 0.1
#: An image larger than this is refused before it is downloaded (E_FW_FORMAT).
MAX_IMAGE_BYTES = 4 * 1024 * 1024
#: A held update carries on after this long if the power never goes.
HOLD_MAX_S = 60.0
#: A file on the update medium is named by a plain file name, never a path.
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

UPDATE_LINES = ["固件更新中", "Updating firmware"]


class Interrupted(Exception):
    """The power went (or a reboot came) while the update ran: stop where it is."""


class Refused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def version_key(version: str) -> tuple[int, int, int, int, str]:
    """Order of versions ``MAJOR.MINOR.PATCH[-pre|+build]``: a pre-release sorts before
    its release; a build suffix does not make a version newer."""
    core = re.split(r"[-+]", version, maxsplit=1)[0]
    rest = version[len(core) :]
    major, minor, patch = (int(part) for part in core.split("."))
    pre_release = rest.startswith("-")
    return major, minor, patch, 0 if pre_release else 1, rest[1:] if pre_release else ""


@dataclass(frozen=True)
class Running:
    """What the terminal runs now: version and slot."""

    version: str | None
    slot: str


class FirmwareUpdater:
    """``fw.update`` and the boot-time clean-up of an interrupted update."""

    def __init__(
        self,
        *,
        layout: FlashLayout,
        medium: Path | None,
        rom_key: bytes,
        model: str,
        running: Callable[[], Running],
        read_back: Callable[[Path], bytes],
        log: Callable[[str, str, str], object],
        emit: Callable[[str, dict[str, Any]], object],
        show: Callable[[str, list[str]], object],
        show_idle: Callable[[], None],
        request_reboot: Callable[[], None],
        halt: threading.Event,
        time_scale: float,
        defects: Callable[[], frozenset[str]] = frozenset,
    ) -> None:
        self.layout = layout
        self.medium = medium
        self._rom_key = rom_key
        self._model = model
        self._running = running
        self._read_back = read_back
        self._log = log
        self._emit = emit
        self._show = show
        self._show_idle = show_idle
        self._request_reboot = request_reboot
        self._halt = halt
        self._scale = time_scale
        self._defects = defects
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    # --- boot ---------------------------------------------------------------------

    def recover_at_boot(self, booting: Running) -> None:
        """Discard what an interrupted update left and say what this boot runs."""
        try:
            record = read_json(self.layout.update_record)
        except ValueError:
            record = {"phase": "unknown", "file": "?"}
        had_part = self.layout.download_part.exists()
        if record is None and not had_part:
            return
        remove_durably(self.layout.download_part)
        info = record if isinstance(record, dict) else {}
        phase = str(info.get("phase", "unknown"))
        switched = booting.slot == info.get("target_slot")
        if booting.version is None:  # not by the update (it commits last): the flash failed
            outcome = f"slot {booting.slot} does not verify"
        elif switched:
            outcome = f"switched to {booting.version} (slot {booting.slot})"
        else:
            outcome = f"kept {booting.version} (slot {booting.slot})"
        self._log(
            "warn",
            "E_FW_UPDATE_INTERRUPTED",
            f"update from {info.get('file', '?')} interrupted while {phase}; {outcome}",
        )
        remove_durably(self.layout.update_record)

    # --- the command --------------------------------------------------------------

    def command(self, args: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(args) - {"file", "hold_at"})
        if unknown:
            raise CommandFailed(
                "E_BAD_ARGS", f"unknown argument(s) {', '.join(unknown)}; expected: file, hold_at"
            )
        name = args.get("file")
        if not isinstance(name, str) or not _FILE_NAME.fullmatch(name):
            raise CommandFailed("E_BAD_ARGS", "file must be a plain file name on the update medium")
        hold_at = args.get("hold_at")
        if hold_at is not None and hold_at not in PHASES:
            raise CommandFailed("E_BAD_ARGS", f"hold_at must be one of {', '.join(PHASES)}")
        if self.medium is None:
            raise CommandFailed("E_FW_NO_MEDIA", "no update medium is connected (channel updates)")
        source = self.medium / name
        try:
            size = source.stat().st_size
        except OSError:
            raise CommandFailed(
                "E_FW_NOT_FOUND", f"no file '{name}' on the update medium"
            ) from None
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                raise CommandFailed("E_BUSY", "a firmware update is already running")
            running = self._running()
            self._thread = threading.Thread(
                target=self._run, args=(source, hold_at, running), name="fw-update", daemon=True
            )
            self._thread.start()
        return {"file": name, "size": size, "from_version": running.version}

    def stop(self, timeout: float) -> None:
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    # --- the phases -----------------------------------------------------------------

    def _sleep(self, nominal_s: float) -> None:
        if self._halt.wait(max(nominal_s * self._scale, 0.0)):
            raise Interrupted

    def _enter(self, phase: str, source: Path, target_slot: str) -> None:
        atomic_write_json(
            self.layout.update_record,
            {
                "phase": phase,
                "file": source.name,
                "target_slot": target_slot,
                "started_at": iso_now(),
            },
        )
        self._show("fw_update", [*UPDATE_LINES, phase])
        self._emit("fw.update_progress", {"phase": phase, "held": False, "file": source.name})

    def _hold(self, phase: str, hold_at: str | None, source: Path) -> None:
        if hold_at != phase:
            return
        self._emit("fw.update_progress", {"phase": phase, "held": True, "file": source.name})
        if self._halt.wait(HOLD_MAX_S):
            raise Interrupted

    def _run(self, source: Path, hold_at: str | None, running: Running) -> None:
        target = next(s for s in FIRMWARE_SLOTS if s != running.slot)
        phase = PHASES[0]
        version: str | None = None
        try:
            self._log("info", "I_FW_UPDATE", f"update from {source.name} started")
            self._enter(phase, source, target)
            data = self._download(source, hold_at)
            phase = "verifying"
            self._enter(phase, source, target)
            self._hold(phase, hold_at, source)
            version = self._verify(data, running)
            phase = "writing"
            self._enter(phase, source, target)
            digest = self._write(data, target, hold_at, source)
            phase = "switching"
            self._enter(phase, source, target)
            self._sleep(WRITE_DELAY_S)
            atomic_write_json(
                self.layout.boot_select,
                {"active": target, "version": version, "sha256": digest, "at": iso_now()},
            )
            remove_durably(self.layout.download_part)
            self._log(
                "info",
                "I_FW_UPDATED",
                f"firmware {version} installed in slot {target} (sha256 {digest[:12]}); "
                f"{running.version} kept in slot {running.slot}; rebooting",
            )
            self._emit("fw.update_finished", {"version": version, "sha256": digest, "slot": target})
            self._hold(phase, hold_at, source)
            remove_durably(self.layout.update_record)
            self._request_reboot()
        except Interrupted:
            return  # the power is going: the boot after it cleans up
        except Refused as e:
            self._refuse(e, phase, version, source)
        except OSError as e:
            self._refuse(Refused("E_FW_WRITE", f"flash error: {e}"), phase, version, source)

    def _refuse(self, refused: Refused, phase: str, version: str | None, source: Path) -> None:
        with contextlib.suppress(OSError):
            remove_durably(self.layout.download_part)
            remove_durably(self.layout.update_record)
        self._log("error", refused.code, f"update from {source.name} refused: {refused.message}")
        self._emit(
            "fw.update_failed",
            {"code": refused.code, "message": refused.message, "phase": phase, "version": version},
        )
        self._show_idle()

    def _download(self, source: Path, hold_at: str | None) -> bytes:
        try:
            size = source.stat().st_size
            if size > MAX_IMAGE_BYTES:
                raise Refused("E_FW_FORMAT", f"image is {size} bytes, over {MAX_IMAGE_BYTES}")
            received = bytearray()
            with source.open("rb") as medium, self.layout.download_part.open("wb") as part:
                while True:
                    self._sleep(CHUNK_DELAY_S)
                    chunk = medium.read(CHUNK_BYTES)
                    if not chunk:
                        break
                    part.write(chunk)
                    part.flush()
                    sync_file(part.fileno())
                    received += chunk
                    if len(received) == len(chunk):  # the first chunk is in flash
                        self._hold("downloading", hold_at, source)
        except FileNotFoundError:
            raise Refused("E_FW_NOT_FOUND", f"'{source.name}' left the update medium") from None
        return bytes(received)

    def _verify(self, data: bytes, running: Running) -> str:
        try:
            document = strictjson.loads_object(data)
        except StrictJsonError as e:
            raise Refused("E_FW_FORMAT", f"not a firmware image: {e}") from None
        unchecked = DEFECT_UPDATE_UNCHECKED in self._defects()  # a seeded defect
        if document.get("signature") in (None, "") and not unchecked:
            raise Refused("E_FW_UNSIGNED", "the image carries no signature")
        try:
            image = image_from_bytes(data, source="update image")
        except ConfigError as e:
            raise Refused("E_FW_FORMAT", str(e)) from None
        if not unchecked and not verify(image, self._rom_key):
            raise Refused(
                "E_FW_SIGNATURE",
                f"firmware {image.version} signature does not verify with the ROM key",
            )
        if image.model != self._model:
            raise Refused(
                "E_FW_MODEL", f"image is for model {image.model}, this terminal is {self._model}"
            )
        if not version_is_valid(image.version):
            raise Refused("E_FW_VERSION", f"version {image.version!r} is not MAJOR.MINOR.PATCH")
        current = running.version
        if (
            current is not None
            and version_is_valid(current)
            and version_key(image.version) <= version_key(current)
        ):
            raise Refused(
                "E_FW_DOWNGRADE",
                f"version {image.version} is not newer than the running {current}",
            )
        return image.version

    def _write(self, data: bytes, slot: str, hold_at: str | None, source: Path) -> str:
        path = self.layout.slot_image(slot)
        half = len(data) // 2
        # Not atomic on purpose: this is the inactive slot, and a cut here leaves it torn.
        with path.open("wb") as f:
            f.write(data[:half])
            f.flush()
            sync_file(f.fileno())
            self._hold("writing", hold_at, source)
            self._sleep(WRITE_DELAY_S)
            f.write(data[half:])
            f.flush()
            sync_file(f.fileno())
        expected = hashlib.sha256(data).hexdigest()
        written = hashlib.sha256(self._read_back(path)).hexdigest()
        if written != expected:
            raise Refused(
                "E_FW_WRITE",
                f"slot {slot} reads back sha256 {written[:12]}, expected {expected[:12]}",
            )
        return expected
