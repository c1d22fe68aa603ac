"""Steps for the firmware update: deliver an image, install it, cut the power mid-way.

The rig delivers images through its update medium (``UpdateMedium``) and computes
their SHA-256 itself; it judges what the terminal did against the documented contract
(``hil.contract.maintenance``): the phases in order, the refusal codes, which image a
power cut at each phase's hold point leaves bootable. A scenario that leaves the
terminal on another image than the rig's is put back by re-flashing the rig's image
(``FlashingStation``) and booting it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import pytest
from pytest_bdd import given, then, when

from hil import reporting, strictjson
from hil.contract.maintenance import BOOTS_AFTER_CUT, UPDATE_INTERRUPTED_CODE, UPDATE_PHASES
from hil.errors import DutError, HilError, RigError
from hil.instruments.dut import FlashingStation
from hil.instruments.updates import UpdateMedium
from hil.rig import Rig
from hil.steps.common import instrument_of, log_position
from hil.steps.phrases import StepValueError, phrase
from hil.strictjson import StrictJsonError
from hil.terminal import (
    BootRecord,
    BootStarted,
    FirmwareUpdateFailed,
    FirmwareUpdateFinished,
    FirmwareUpdateProgress,
    Terminal,
    TerminalEvent,
    as_report,
)

#: An update of a small image takes well under a second on the sim; a real terminal
#: downloading and writing flash gets this long before the rig calls it stuck.
UPDATE_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class DeliveredFirmware:
    """What the rig put on the update medium, as the rig itself read it."""

    file: str
    sha256: str
    #: the manifest's version, or None when the file has none (a malformed image)
    version: str | None


@dataclass
class UpdateRun:
    """What the terminal reported during one update, from the rig's cursor."""

    cursor: int
    log_from: int
    phases: list[str] = field(default_factory=list)
    finished: FirmwareUpdateFinished | None = None
    failed: FirmwareUpdateFailed | None = None
    boot: BootRecord | None = None
    held_at: str | None = None


def _rig_image(hil_rig: Rig) -> tuple[Path, str, str]:
    """The rig's own image: path, version and SHA-256 (as the rig computed them)."""
    expected = hil_rig.expected_identity()
    if (
        hil_rig.firmware is None
        or expected.firmware_version is None
        or expected.firmware_sha256 is None
    ):
        raise StepValueError("the rig names no firmware image, so no update can be judged")
    return hil_rig.firmware, expected.firmware_version, expected.firmware_sha256


def _manifest_version(path: Path) -> str | None:
    try:
        document = strictjson.loads_object(path.read_bytes())
    except (OSError, StrictJsonError):
        return None
    manifest = document.get("manifest")
    version = manifest.get("version") if isinstance(manifest, dict) else None
    return version if isinstance(version, str) else None


@pytest.fixture
def update_medium(hil_rig: Rig) -> UpdateMedium:
    """The rig's update medium; emptied after each scenario."""
    return cast(UpdateMedium, instrument_of(hil_rig, "updates", UpdateMedium))


@pytest.fixture
def rig_firmware_put_back(terminal: Terminal, hil_rig: Rig) -> Iterator[None]:
    """After the scenario: the terminal runs the rig's image again, idle. A scenario
    that installed another image (or left the terminal off or in recovery) is put back
    by flashing the rig's image and powering the terminal on."""
    image, _, sha256 = _rig_image(hil_rig)
    station = cast(FlashingStation, instrument_of(hil_rig, "dut", FlashingStation))
    yield
    try:
        info = terminal.info()
    except HilError:
        info = None
    if info is not None and info.firmware_sha256 == sha256 and info.state == "idle":
        return
    with reporting.action("put the rig's firmware image back", image=image.name):
        if terminal.power is not None and terminal.power.is_on:
            terminal.power_off()
        station.flash(image)
        boot = terminal.power_on()
        if boot.failure is not None:
            raise RigError(
                f"the rig's image {image.name} did not boot when put back: "
                f"{boot.failure.describe()}",
                instrument="dut",
            )


@given(
    phrase('the rig delivers firmware image "{image:FirmwareImage}"'),
    target_fixture="delivered",
)
def deliver_image(
    update_medium: UpdateMedium, hil_rig: Rig, rig_firmware_put_back: None, image: str
) -> DeliveredFirmware:
    """Put this image (a file beside the rig's firmware image) on the update medium."""
    rig_image, _, _ = _rig_image(hil_rig)
    path = rig_image.parent / image
    if not path.is_file():
        raise StepValueError(f"firmware image {image!r}: no file {path}")
    delivered = update_medium.deliver(path)
    result = DeliveredFirmware(delivered.file, delivered.sha256, _manifest_version(path))
    reporting.attach_json("delivered image", as_report(result))
    return result


def _follow(terminal: Terminal, run: UpdateRun, *, stop_held: bool) -> None:
    """Read the update's events until it finished or failed (or is held)."""
    position = run.cursor

    def relevant(event: TerminalEvent) -> bool:
        return isinstance(
            event, FirmwareUpdateProgress | FirmwareUpdateFinished | FirmwareUpdateFailed
        )

    while True:
        event = terminal.wait_event(
            TerminalEvent, since=position, timeout=UPDATE_TIMEOUT_S, where=relevant
        )
        position = event.after
        if isinstance(event, FirmwareUpdateProgress):
            if event.held:
                run.held_at = event.phase
                if stop_held:
                    return
            elif not run.phases or run.phases[-1] != event.phase:
                run.phases.append(event.phase)
        elif isinstance(event, FirmwareUpdateFinished):
            run.finished = event
            if not stop_held:
                return  # held at switching: the hold comes after the commit
        elif isinstance(event, FirmwareUpdateFailed):
            run.failed = event
            return


@when(phrase("the terminal is told to install it"), target_fixture="update_run")
def install(terminal: Terminal, hil_rig: Rig, delivered: DeliveredFirmware) -> UpdateRun:
    """Start the update from the medium and follow it to its end; an update that
    installed waits for the reboot into the new image too."""
    run = UpdateRun(cursor=terminal.mark(), log_from=log_position(terminal))
    terminal.start_firmware_update(delivered.file)
    _follow(terminal, run, stop_held=False)
    if run.finished is not None:
        run.boot = terminal.wait_boot(run.finished.after, run.finished.received_at)
    reporting.attach_json(
        "update",
        {
            "phases": run.phases,
            "finished": as_report(run.finished),
            "failed": as_report(run.failed),
        },
    )
    return run


@then(phrase('the terminal reboots into version "{version:FirmwareVersion}" of that image'))
def reboots_into(
    terminal: Terminal, update_run: UpdateRun, delivered: DeliveredFirmware, version: str
) -> None:
    """Every phase ran in order, the terminal rebooted by itself into the new version,
    and what it runs hashes to exactly what the rig delivered."""
    if update_run.failed is not None:
        raise DutError(f"the terminal refused the update: {update_run.failed.describe()}")
    finished = update_run.finished
    assert finished is not None, "the update never finished"
    assert update_run.phases == list(UPDATE_PHASES), (
        f"update phases {update_run.phases}, documented {list(UPDATE_PHASES)}"
    )
    boot = update_run.boot
    assert boot is not None and boot.failure is None, (
        f"the new image did not boot: {boot.failure.describe() if boot and boot.failure else ''}"
    )
    assert boot.boot_reason == "reboot", f"boot reason {boot.boot_reason!r} after the update"
    assert boot.boot is not None and boot.boot.firmware_version == version, (
        f"booted {boot.boot.firmware_version if boot.boot else None!r}, expected {version!r}"
    )
    info = terminal.info()
    reporting.attach_json("device info after the update", as_report(info))
    with reporting.action(
        "compare the installed image with the delivered one",
        delivered=delivered.sha256,
        reported=info.firmware_sha256,
    ):
        assert delivered.version == version, (
            f"the delivered image is version {delivered.version!r}, the step expects {version!r}"
        )
        assert info.firmware_version == version, f"device info says {info.firmware_version!r}"
        assert info.firmware_sha256 == delivered.sha256 == finished.sha256, (
            f"the terminal runs sha256 {info.firmware_sha256} (update said {finished.sha256}); "
            f"the rig delivered {delivered.sha256}"
        )


@then(phrase('the update is refused with code "{code:Code}" and nothing is installed'))
def refused_with(terminal: Terminal, update_run: UpdateRun, code: str) -> None:
    """The terminal refused the update with this documented code, logged it, and
    neither switched images nor rebooted."""
    if update_run.finished is not None:
        raise DutError(
            f"the terminal installed an image it must refuse with {code}: "
            f"version {update_run.finished.version} in slot {update_run.finished.slot}"
        )
    failed = update_run.failed
    assert failed is not None, "the update neither finished nor failed"
    assert failed.code == code, f"refused with {failed.describe()}; expected {code}"
    logged = [e for e in terminal.log(since=update_run.log_from, limit=1000) if e.code == code]
    assert logged, f"the terminal refused the update with {code} but did not log {code}"
    boots = terminal.find_events(BootStarted, since=update_run.cursor)
    assert not boots, "the terminal rebooted after refusing an update"


def _check_runs(terminal: Terminal, version: str, sha256: str, what: str) -> None:
    info = terminal.info()
    reporting.attach_json("device info", as_report(info))
    with reporting.action(f"check the terminal runs {what}", version=version, sha256=sha256):
        assert info.state == "idle", f"terminal is {info.state!r}, not idle"
        assert info.firmware_version == version, (
            f"the terminal runs {info.firmware_version!r}, expected {what} {version!r}"
        )
        assert info.firmware_sha256 == sha256, (
            f"the terminal runs sha256 {info.firmware_sha256}, {what} is {sha256}"
        )


@then(phrase("the terminal still runs the rig's firmware image"))
def still_runs_rig_image(terminal: Terminal, hil_rig: Rig) -> None:
    """Device info and the firmware self-check item name the rig's own image (version
    and the SHA-256 the rig computed), and the terminal is idle."""
    _, version, sha256 = _rig_image(hil_rig)
    _check_runs(terminal, version, sha256, "the rig's image")
    item = terminal.run_item("firmware")
    assert item.status == "pass", f"firmware item after the refused update: {item.describe()}"
    assert item.details.get("sha256") == sha256, (
        f"the firmware item checked sha256 {item.details.get('sha256')}, "
        f"the rig's image is {sha256}"
    )


@when(
    phrase('the power is cut while the update is held at "{phase:UpdatePhase}"'),
    target_fixture="update_run",
)
def cut_during(terminal: Terminal, delivered: DeliveredFirmware, phase: str) -> UpdateRun:
    """Start the update with the terminal's hold hook at this phase, wait until the
    terminal reports it is held there, then cut the power (the rig's power instrument)."""
    run = UpdateRun(cursor=terminal.mark(), log_from=log_position(terminal))
    terminal.start_firmware_update(delivered.file, hold_at=phase)
    _follow(terminal, run, stop_held=True)
    if run.failed is not None:
        raise DutError(f"the update failed before its {phase} hold: {run.failed.describe()}")
    assert run.held_at == phase, f"the update was held at {run.held_at!r}, asked for {phase!r}"
    terminal.power_cut()
    return run


@then(phrase("after power returns the terminal runs the image that phase allows"))
def boots_allowed_image(
    terminal: Terminal, hil_rig: Rig, update_run: UpdateRun, delivered: DeliveredFirmware
) -> None:
    """Power on: the terminal boots (never recovery) after a power loss, runs the old
    image when the cut came before the commit and the new one after it (as documented
    per phase), and logs that the update was interrupted, naming the version it runs."""
    phase = update_run.held_at
    assert phase is not None, "no update was held when the power was cut"
    boot = terminal.power_on()
    assert boot.failure is None, (
        f"power cut while {phase} bricked the terminal: {boot.failure.describe()}"
    )
    assert boot.boot_reason == "power_loss", f"boot reason {boot.boot_reason!r}"
    _, rig_version, rig_sha256 = _rig_image(hil_rig)
    allowed = BOOTS_AFTER_CUT[phase]
    if allowed == "old":
        version, sha256 = rig_version, rig_sha256
    else:
        assert delivered.version is not None, "the delivered image has no version"
        version, sha256 = delivered.version, delivered.sha256
    _check_runs(terminal, version, sha256, f"the {allowed} image (cut while {phase})")
    entries = [
        e
        for e in terminal.log(since=update_run.log_from, limit=1000)
        if e.code == UPDATE_INTERRUPTED_CODE
    ]
    assert entries, f"no {UPDATE_INTERRUPTED_CODE} in the log after the interrupted update"
    assert version in entries[-1].message, (
        f"{UPDATE_INTERRUPTED_CODE} does not say which version runs ({version}): "
        f"{entries[-1].message!r}"
    )
