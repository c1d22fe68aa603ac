"""Steps for the power-on self-check: items, time budget, identity, display, log."""

from __future__ import annotations

from pytest_bdd import then, when

from hil import reporting
from hil.contract.selfcheck import (
    IDLE_SCREEN,
    ITEM_NAMES,
    ITEMS,
    SELFCHECK_SCREEN,
    SELFCHECK_WORDS,
)
from hil.rig import Rig
from hil.steps.phrases import phrase
from hil.steps.selfcheck import expected_outcomes
from hil.terminal import BootRecord, DeviceInfo, SelfCheckItemResult, Terminal, as_report
from hil.terminal.screensource import ScreenSource


def _booted(boot: BootRecord | None) -> BootRecord:
    assert boot is not None, "no boot was observed in this scenario"
    assert boot.failure is None, f"boot failed: {boot.failure.describe() if boot.failure else ''}"
    return boot


def _reported(result: SelfCheckItemResult | None) -> str:
    return "nothing" if result is None else f"{result.status} {result.code} {result.message}"


@then(phrase('it reports boot reason "{reason:BootReason}"'))
def boot_reason_is(boot: BootRecord, reason: str) -> None:
    """The last boot reported this reason (power_on, reboot, power_loss)."""
    assert boot.failure is None, f"boot failed: {boot.failure.describe() if boot.failure else ''}"
    assert boot.boot is not None, "no boot-started event was seen during the boot"
    assert boot.boot_reason == reason, f"boot reason {boot.boot_reason!r}, expected {reason!r}"


@then(phrase("it boots within the self-check time budget"))
def boots_within_budget(boot: BootRecord, hil_rig: Rig) -> None:
    """Power-on to ready took no longer than the rig's boot_selfcheck_s limit."""
    record = _booted(boot)
    limit = hil_rig.limits.boot_selfcheck_s
    measurement = reporting.measure("boot_selfcheck", record.duration_s, "s", high=limit)
    assert record.ready is not None, "the terminal never reported it was ready"
    assert measurement.passed, measurement.describe()


@then(phrase("every self-check item reports a result"))
def every_item_reports(boot: BootRecord) -> None:
    """The boot self-check reported every documented item, in the documented order."""
    record = _booted(boot)
    seen = record.item_names
    with reporting.action("check self-check items", expected=list(ITEM_NAMES), seen=seen):
        assert seen == list(ITEM_NAMES), f"self-check items {seen}, documented {list(ITEM_NAMES)}"
        assert record.selfcheck is not None, "the self-check never reported it finished"


@then(phrase("every self-check item whose channel the rig provides passes"))
def provided_items_pass(boot: BootRecord, hil_rig: Rig) -> None:
    """Items the rig can exercise (their channel is wired, or they need none) passed;
    the firmware item fails E_FW_VERSION instead when the image the rig flashed has a
    version out of the documented format (the rig reads the image itself)."""
    record = _booted(boot)
    expected = expected_outcomes(hil_rig)
    wrong = []
    for spec in ITEMS:
        if spec.needs_channel is not None and spec.needs_channel not in hil_rig.channels:
            continue
        result = record.item(spec.item)
        if result is None or (result.status, result.code) != expected[spec.item]:
            wrong.append(
                f"{spec.item}: {_reported(result)}; expected {' '.join(expected[spec.item])}"
            )
    with reporting.action("check items the rig can provoke", failing=wrong):
        assert not wrong, "self-check items that should pass did not: " + "; ".join(wrong)


@then(phrase("every self-check item whose channel the rig lacks fails with its documented code"))
def absent_items_fail_truthfully(boot: BootRecord, hil_rig: Rig) -> None:
    """Items whose channel the rig does not wire failed with their documented absent code."""
    record = _booted(boot)
    wrong = []
    for spec in ITEMS:
        if spec.needs_channel is None or spec.needs_channel in hil_rig.channels:
            continue
        result = record.item(spec.item)
        if result is None or result.status != "fail" or result.code != spec.absent_code:
            reported = "nothing" if result is None else f"{result.status} {result.code}"
            wrong.append(
                f"{spec.item}: reported {reported}, but the rig wires no "
                f"'{spec.needs_channel}' so it must fail with {spec.absent_code}"
            )
    with reporting.action("check items without a channel report the truth", wrong=wrong):
        assert not wrong, "untruthful self-check: " + "; ".join(wrong)


@then(phrase("the system log holds the code of every failed item"))
def log_holds_codes(boot: BootRecord, terminal: Terminal) -> None:
    """Every code the boot self-check failed with is in the terminal's system log."""
    failed = {result.code for result in _booted(boot).items if result.status == "fail"}
    logged = {entry.code for entry in terminal.log(limit=1000)}
    missing = sorted(failed - logged)
    with reporting.action("check log holds fault codes", failed=sorted(failed), missing=missing):
        assert not missing, f"fault codes missing from the system log: {missing}"


@then(phrase("the self-check ran again over every item"))
def selfcheck_ran_again(boot: BootRecord) -> None:
    """The last boot ran a self-check of its own over every documented item."""
    record = _booted(boot)
    assert record.selfcheck_started is not None, "no self-check started on this boot"
    seen = record.item_names
    assert seen == list(ITEM_NAMES), f"self-check items {seen}, documented {list(ITEM_NAMES)}"


@when(phrase("the rig reads the terminal's device info"), target_fixture="device_info")
def read_device_info(terminal: Terminal) -> DeviceInfo:
    """Ask the terminal who it is (model, serial, IDs, firmware)."""
    info = terminal.info()
    reporting.attach_json("device info", as_report(info))
    return info


@then(phrase("the model, serial number, terminal ID and merchant ID equal the rig file"))
def identity_matches_rig(device_info: DeviceInfo, hil_rig: Rig) -> None:
    """The identity the terminal reports equals the one the rig file declares."""
    expected = hil_rig.expected_identity()
    pairs = {
        "model": (device_info.model, expected.model),
        "serial_number": (device_info.serial_number, expected.serial_number),
        "terminal_id": (device_info.terminal_id, expected.terminal_id),
        "merchant_id": (device_info.merchant_id, expected.merchant_id),
    }
    wrong = {name: pair for name, pair in pairs.items() if pair[0] != pair[1]}
    with reporting.action(
        "compare identity with the rig file", expected={k: v[1] for k, v in pairs.items()}
    ):
        assert not wrong, "identity differs (reported, expected): " + str(wrong)


@then(phrase("the firmware version equals the firmware image"))
def firmware_matches_image(device_info: DeviceInfo, hil_rig: Rig) -> None:
    """The terminal runs the version (and model) of the image the rig flashed."""
    expected = hil_rig.expected_identity()
    assert expected.firmware_version is not None, "the rig names no firmware image to compare"
    with reporting.action("compare firmware", expected=expected.firmware_version):
        assert device_info.firmware_version == expected.firmware_version, (
            f"firmware {device_info.firmware_version!r}, image says {expected.firmware_version!r}"
        )
        if expected.firmware_model is not None:
            assert device_info.model == expected.firmware_model, (
                f"model {device_info.model!r}, image built for {expected.firmware_model!r}"
            )


@then(phrase("the display showed the self-check message during the self-check"))
def display_showed_selfcheck(boot: BootRecord) -> None:
    """During the boot the self-check screen showed its documented words, then idle."""
    record = _booted(boot)
    screens = record.screens
    shown = [s for s in screens if s.screen == SELFCHECK_SCREEN]
    reporting.attach_json("screens during boot", [as_report(s) for s in screens])
    order = [s.screen for s in screens]
    assert shown, f"no '{SELFCHECK_SCREEN}' screen during boot; screens: {order}"
    lines = [line for s in shown for line in s.lines]
    for words in SELFCHECK_WORDS:
        assert any(words in line for line in lines), f"self-check screen never showed {words!r}"
    last_selfcheck = max(i for i, s in enumerate(order) if s == SELFCHECK_SCREEN)
    assert IDLE_SCREEN in order[last_selfcheck:], f"no idle screen after the self-check: {order}"


@then(phrase("the display now shows the idle screen"))
def display_is_idle(screen_source: ScreenSource) -> None:
    """The terminal's display shows its idle screen now (read by the test port or the
    rig's camera)."""
    screen = screen_source.current()
    reporting.attach_json("display now", as_report(screen))
    assert screen.screen == IDLE_SCREEN, (
        f"display shows {screen.screen!r}, not idle (read by the {screen_source.kind})"
    )
