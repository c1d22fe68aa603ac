"""power, tamper and card_reader self-check items driven by the rig's fault lines."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from hil.sim.channels import parse_channels
from hil.sim.hardware import Hardware
from hil.sim.selfcheck import CheckContext, check_card_reader, check_power, check_tamper


class Lines:
    """Stands in for hil.sim.faultlines.FaultLineInputs (the transport is tested apart)."""

    def __init__(self, readable: bool = True, **levels: bool) -> None:
        self.readable = readable
        self.reason = "" if readable else "cannot connect to 127.0.0.1:9: refused"
        self.levels = levels

    def is_set(self, name: str) -> bool:
        return self.levels.get(name, False)


class ReaderHardware(Hardware):
    def __init__(self, readers: list[str]) -> None:
        super().__init__()
        self.readers = readers

    def pcsc_readers(self) -> list[str]:
        return self.readers


def ctx(channels: str, lines: Lines | None, readers: list[str] | None = None) -> CheckContext:
    hardware = ReaderHardware(readers or [])
    hardware.fault_lines = cast(Any, lines)
    return cast(
        CheckContext,
        SimpleNamespace(channels=parse_channels(channels), hardware=hardware, defects=frozenset()),
    )


def test_power_and_tamper_pass_on_healthy_fault_lines() -> None:
    healthy = ctx("faultlines=127.0.0.1:1", Lines())
    assert check_power(healthy).code == "OK"
    assert check_power(healthy).details["source"] == "fault lines"
    assert check_tamper(healthy).code == "OK"


def test_fault_lines_provoke_their_codes() -> None:
    low = check_power(ctx("faultlines=127.0.0.1:1", Lines(supply_low=True)))
    assert low.code == "E_POWER_LOW" and low.params["supply_v"] < low.params["min_v"]
    assert check_tamper(ctx("faultlines=127.0.0.1:1", Lines(tamper=True))).code == "E_TAMPER"


def test_unreadable_fault_lines_are_never_a_pass() -> None:
    broken = ctx("faultlines=127.0.0.1:1", Lines(readable=False))
    power = check_power(broken)
    assert power.code == "E_POWER_UNVERIFIED" and "refused" in power.params["reason"]
    assert check_tamper(broken).code == "E_TAMPER_UNVERIFIED"
    assert check_power(ctx("faultlines=127.0.0.1:1", None)).code == "E_POWER_UNVERIFIED"


def test_card_reader_power_fault_and_contactless_reader() -> None:
    wiring = "pcsc=R 00 00,pcsc_cl=R 00 01,faultlines=127.0.0.1:1"
    both = ["R 00 00", "R 00 01"]
    assert check_card_reader(ctx(wiring, Lines(), both)).code == "OK"
    cut = check_card_reader(ctx(wiring, Lines(reader_power=True), both))
    assert cut.code == "E_READER_POWER" and cut.params["reader"] == "R 00 00"
    missing = check_card_reader(ctx(wiring, Lines(), ["R 00 00"]))
    assert missing.code == "E_READER_ABSENT" and "contactless" in missing.params["reason"]
    assert check_card_reader(ctx("", None)).code == "E_READER_ABSENT"
