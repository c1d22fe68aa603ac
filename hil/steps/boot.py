"""Steps for the power-on self-check: items, time budget, identity, display, log."""

from __future__ import annotations

from typing import Any

from pytest_bdd import then, when

from hil import reporting
from hil.rig import Rig
from hil.selfcheck_spec import (
    IDLE_SCREEN,
    ITEM_NAMES,
    ITEMS,
    SELFCHECK_SCREEN,
    SELFCHECK_WORDS,
)
from hil.terminal import BootRecord, Terminal


def _booted(boot: BootRecord | None) -> BootRecord:
    assert boot is not None, "no boot was observed in this scenario"
    assert boot.failed is None, f"boot failed: {boot.failed.data if boot.failed else ''}"
    return boot


@then("it boots within the self-check time budget")
def boots_within_budget(boot: BootRecord, hil_rig: Rig) -> None:
    record = _booted(boot)
    limit = hil_rig.config.limits.boot_selfcheck_s
    measurement = reporting.measure("boot_selfcheck", record.duration_s, "s", high=limit)
    assert record.ready is not None, "the terminal never reported sys.ready"
    assert measurement.passed, measurement.describe()


@then("every self-check item reports a result")
def every_item_reports(boot: BootRecord) -> None:
    record = _booted(boot)
    seen = [str(e.data.get("item")) for e in record.items]
    with reporting.action("check self-check items", expected=list(ITEM_NAMES), seen=seen):
        assert seen == list(ITEM_NAMES), f"self-check items {seen}, documented {list(ITEM_NAMES)}"
        assert record.finished is not None, "no selfcheck.finished event"
    for event in record.items:
        status = event.data.get("status")
        assert status in ("pass", "warn", "fail"), (
            f"item {event.data.get('item')}: status {status!r}"
        )


@then("every self-check item whose channel the rig provides passes")
def provided_items_pass(boot: BootRecord, hil_rig: Rig) -> None:
    results = _booted(boot).item_results()
    wrong = []
    for spec in ITEMS:
        if spec.needs_channel is not None and spec.needs_channel not in hil_rig.channels:
            continue
        result = results.get(spec.item, {})
        if result.get("status") != "pass":
            wrong.append(
                f"{spec.item}: {result.get('status')} {result.get('code')} {result.get('message')}"
            )
    with reporting.action("check items the rig can provoke", failing=wrong):
        assert not wrong, "self-check items that should pass did not: " + "; ".join(wrong)


@then("every self-check item whose channel the rig lacks fails with its documented code")
def absent_items_fail_truthfully(boot: BootRecord, hil_rig: Rig) -> None:
    results = _booted(boot).item_results()
    wrong = []
    for spec in ITEMS:
        if spec.needs_channel is None or spec.needs_channel in hil_rig.channels:
            continue
        result = results.get(spec.item, {})
        if result.get("status") != "fail" or result.get("code") != spec.absent_code:
            wrong.append(
                f"{spec.item}: reported {result.get('status')} {result.get('code')}, but the rig "
                f"wires no '{spec.needs_channel}' so it must fail with {spec.absent_code}"
            )
    with reporting.action("check items without a channel report the truth", wrong=wrong):
        assert not wrong, "untruthful self-check: " + "; ".join(wrong)


@then("the system log holds the code of every failed item")
def log_holds_codes(boot: BootRecord, terminal: Terminal) -> None:
    failed = {
        str(e.data.get("code")) for e in _booted(boot).items if e.data.get("status") == "fail"
    }
    logged = {str(entry.get("code")) for entry in terminal.log(limit=1000)}
    missing = sorted(failed - logged)
    with reporting.action("check log holds fault codes", failed=sorted(failed), missing=missing):
        assert not missing, f"fault codes missing from the system log: {missing}"


@then("the self-check ran again over every item")
def selfcheck_ran_again(boot: BootRecord) -> None:
    record = _booted(boot)
    assert record.selfcheck_started is not None, "no selfcheck.started event on this boot"
    seen = [str(e.data.get("item")) for e in record.items]
    assert seen == list(ITEM_NAMES), f"self-check items {seen}, documented {list(ITEM_NAMES)}"


@when("the rig reads the terminal's device info", target_fixture="device_info")
def read_device_info(terminal: Terminal) -> dict[str, Any]:
    info = terminal.info()
    reporting.attach_json("device.info", info)
    return info


@then("the model, serial number, terminal ID and merchant ID equal the rig file")
def identity_matches_rig(device_info: dict[str, Any], hil_rig: Rig) -> None:
    expected = hil_rig.expected_identity()
    pairs = {
        "model": expected.model,
        "serial_number": expected.serial_number,
        "terminal_id": expected.terminal_id,
        "merchant_id": expected.merchant_id,
    }
    wrong = {k: (device_info.get(k), v) for k, v in pairs.items() if device_info.get(k) != v}
    with reporting.action("compare identity with the rig file", expected=pairs):
        assert not wrong, "identity differs (reported, expected): " + str(wrong)


@then("the firmware version equals the firmware image")
def firmware_matches_image(device_info: dict[str, Any], hil_rig: Rig) -> None:
    expected = hil_rig.expected_identity()
    assert expected.firmware_version is not None, "the rig names no firmware image to compare"
    with reporting.action("compare firmware", expected=expected.firmware_version):
        assert device_info.get("firmware_version") == expected.firmware_version, (
            f"firmware {device_info.get('firmware_version')!r}, image says "
            f"{expected.firmware_version!r}"
        )
        if expected.firmware_model is not None:
            assert device_info.get("model") == expected.firmware_model, (
                f"model {device_info.get('model')!r}, image built for {expected.firmware_model!r}"
            )


@then("the display showed the self-check message during the self-check")
def display_showed_selfcheck(boot: BootRecord) -> None:
    record = _booted(boot)
    screens = [e.data for e in record.displays]
    shown = [s for s in screens if s.get("screen") == SELFCHECK_SCREEN]
    reporting.attach_json("screens during boot", screens)
    assert shown, (
        f"no '{SELFCHECK_SCREEN}' screen during boot; screens: {[s.get('screen') for s in screens]}"
    )
    lines = [str(line) for s in shown for line in s.get("lines", [])]
    for words in SELFCHECK_WORDS:
        assert any(words in line for line in lines), f"self-check screen never showed {words!r}"
    order = [s.get("screen") for s in screens]
    last_selfcheck = max(i for i, s in enumerate(order) if s == SELFCHECK_SCREEN)
    assert IDLE_SCREEN in order[last_selfcheck:], f"no idle screen after the self-check: {order}"


@then("the display now shows the idle screen")
def display_is_idle(terminal: Terminal) -> None:
    screen = terminal.display()
    reporting.attach_json("display now", screen)
    assert screen.get("screen") == IDLE_SCREEN, f"display shows {screen.get('screen')!r}, not idle"
