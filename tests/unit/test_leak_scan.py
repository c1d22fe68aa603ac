"""The leak scan: cardholder data in the terminal's raw output is found before anything
masks it, reported with the number masked, and nothing else is taken for it."""

from __future__ import annotations

from typing import Any

import pytest

from hil.protocol.framing import encode_frame
from hil.terminal.leaks import CardDataLeak, Leak, leaks_in_data, leaks_in_text
from tests.unit.test_terminal_testport import FakeConsole

PAN = "4761739001010010"  # Luhn-valid, test BIN
MASKED = "476173******0010"
EPOCH_MS_LUHN = 1795757234053  # a log timestamp that happens to pass Luhn


def kinds(leaks: list[Leak]) -> list[str]:
    return [leak.kind for leak in leaks]


def test_luhn_valid_card_numbers_are_found_in_text_grouped_or_not() -> None:
    for text in (f"card {PAN} read", "card 4761 7390 0101 0010 read", "4761-7390-0101-0010"):
        (leak,) = leaks_in_text(text, "event 'x'", "data.message")
        assert (leak.kind, leak.shown) == ("full PAN", MASKED)
        assert PAN not in leak.describe()


def test_what_is_not_a_card_number_is_left_alone() -> None:
    assert not leaks_in_text(f"card {MASKED} read", "x")  # masked
    assert not leaks_in_text("sale 000123 amount 1234 rrn 000000000042", "x")
    assert not leaks_in_text("4761739001010011", "x")  # fails Luhn
    assert not leaks_in_text("47617390010100101234567", "x")  # 23 digits: not a PAN
    assert not leaks_in_text("2026-11-29T23:46:01.000+00:00", "x")


def test_track_data_is_found_with_the_pan_clear_or_starred() -> None:
    for text, kind in (
        (f";{PAN}=30122011234567890?", "track 2 data"),
        (f"{PAN}D30122010000000000F", "track 2 data"),  # the chip's track-2 equivalent
        (f";{MASKED}=30122011234567890?", "track 2 data"),  # discretionary data still secret
        (f"%B{PAN}^TEST/CARD^3012201000000?", "track 1 data"),
    ):
        leaks = leaks_in_text(text, "answer to 'x'", "result.t")
        assert kinds(leaks) == [kind], text
        assert PAN not in leaks[0].describe() and MASKED in leaks[0].describe()


def test_structured_data_names_the_field_and_reads_integers_only_as_card_numbers() -> None:
    data: dict[str, Any] = {
        "pan": int(PAN),  # a card number sent as a JSON number is still one
        "ts_ms": EPOCH_MS_LUHN,  # a time, not a card number
        "entries": [{"seq": 3, "message": f"read {PAN}"}],
        "pin_block": "0412AC89ABCDEF67",
        "pin_try_counter": 3,
    }
    leaks = leaks_in_data(data, "answer to 'card.read'", "result")
    described = sorted(leak.describe() for leak in leaks)
    assert described == sorted(
        [
            f"full PAN {MASKED} in answer to 'card.read' field result.pan",
            f"full PAN {MASKED} in answer to 'card.read' field result.entries[0].message",
            "PIN block (16 characters withheld) in answer to 'card.read' field result.pin_block",
        ]
    )
    assert not leaks_in_data({"ts_ms": EPOCH_MS_LUHN, "pin_block": None, "pin": ""}, "x")


def test_the_error_names_every_leak_with_the_number_masked() -> None:
    leaks = leaks_in_text(f"{PAN} and again {PAN}", "log entry seq 7", "message")
    error = CardDataLeak(leaks)
    assert str(error).startswith("the terminal leaked cardholder data: full PAN " + MASKED)
    assert PAN not in str(error) and str(error).count("log entry seq 7") == 2


# --- the adapter scans what the terminal wrote, once --------------------------------------


def scanning_adapter(**replies: object) -> tuple[Any, FakeConsole]:
    from hil.terminal import TestPortAdapter

    console = FakeConsole({k.replace("__", "."): v for k, v in replies.items()})
    return TestPortAdapter(console), console


LOG = {
    "entries": [
        {"seq": 1, "ts_ms": EPOCH_MS_LUHN, "level": "info", "code": "I_BOOT", "message": "boot"},
        {"seq": 2, "ts_ms": 1, "level": "info", "code": "I_CARD_READ", "message": f"read {PAN}"},
    ],
    "next": 3,
}


def test_events_answers_and_log_entries_are_scanned_and_each_log_entry_once() -> None:
    port, console = scanning_adapter(
        log__read=LOG, display__read={"screen": "card_read", "lines": [PAN], "changed_seq": 4}
    )
    console.emit("card.read", {"pan": PAN, "ok": True})
    port.display()
    leaks = port.take_leaks()
    assert sorted(leak.source for leak in leaks) == [
        "answer to 'display.read'",
        "event 'card.read' (seq 1)",
        "log entry seq 2 (read with 'log.read')",
    ]
    assert port.take_leaks() == []  # handed out once; the log entry is not scanned again
    port.log(since=0)
    assert port.take_leaks(read_log=False) == []


def test_a_healthy_terminal_output_is_clean() -> None:
    clean = {**LOG, "entries": [LOG["entries"][0]]}
    port, console = scanning_adapter(log__read=clean)
    console.emit("card.read", {"pan": MASKED, "expiry": "3012", "service_code": "201"})
    console.emit("selfcheck.item", {"details": {"firmware_sha256": "ce" * 32, "rss": 1 << 40}})
    assert port.take_leaks() == []


def test_refusals_and_stray_bytes_are_scanned_from_the_transcript() -> None:
    port, console = scanning_adapter(log__read={"entries": [], "next": 0})
    refusal = {
        "type": "res",
        "id": 9,
        "ok": False,
        "error": {"code": "E_X", "message": f"card {PAN} refused"},
    }
    console.transcript.record("rx", b"debug: track ;" + PAN.encode() + b"=3012201123?\r\n")
    console.transcript.record("rx", encode_frame(refusal))
    leaks = port.take_leaks()
    assert sorted((leak.kind, leak.source) for leak in leaks) == [
        ("full PAN", "refusal of request id 9"),
        ("track 2 data", "bytes outside frames on the test port"),
    ]
    console.transcript.record("rx", b"nothing more")
    assert port.take_leaks() == []  # what was scanned is not scanned again
    console.transcript.clear()
    console.transcript.record("rx", encode_frame(refusal))
    assert len(port.take_leaks()) == 1  # a cleared transcript is read from its start


@pytest.mark.parametrize("field", ["pinblock", "PIN_BLOCK", "epb", "encrypted_pin", "pin"])
def test_pin_block_fields_by_name(field: str) -> None:
    (leak,) = leaks_in_data({field: "3A5F"}, "event 'x'")
    assert leak.kind == "PIN block" and "3A5F" not in leak.describe()
