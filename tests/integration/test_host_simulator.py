"""The host simulator over real loopback TCP: each transaction and each behaviour."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator

import pytest

from hil.host import Behaviour, HostSimulator, TerminalRegistry, load_parameter_set
from hil.host.downloads import SIM_TEST_TMK, unwrap_keys
from hil.host.iso8583 import Frame, Iso8583Error, decode_body, encode
from hil.masking import contains_full_pan
from hil.suite import FIXTURES

pytestmark = pytest.mark.integration

PARAMS = load_parameter_set(FIXTURES / "host" / "params-v1.json")
ID = {"41": "T0000001", "42": "898310058120001"}
SALE = {
    "2": "6212345678901232", "3": "000000", "4": "000000001234", "11": "000042",
    "22": "051", "35": "6212345678901232D29122200000000000", "49": "156", **ID,
    "55": "9F02060000000012345A0862123456789012325F340101", "60": "22000001000",
}  # fmt: skip


@pytest.fixture
def host() -> Iterator[HostSimulator]:
    simulator = HostSimulator(PARAMS, registry=TerminalRegistry({"T0000001": "SN-1"}))
    simulator.start()
    yield simulator
    simulator.stop()


class Client:
    def __init__(self, host: HostSimulator, timeout: float = 2.0) -> None:
        self.sock = socket.create_connection(host.address, timeout=timeout)

    def send(self, mti: str, fields: dict[str, str]) -> None:
        self.sock.sendall(encode(mti, fields))

    def read(self) -> Frame:
        (length,) = struct.unpack(">H", self._exactly(2))
        return decode_body(self._exactly(length))

    def exchange(self, mti: str, fields: dict[str, str]) -> Frame:
        self.send(mti, fields)
        return self.read()

    def _exactly(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError(f"closed after {len(out)} of {n} bytes")
            out += chunk
        return bytes(out)

    def close(self) -> None:
        self.sock.close()


def _network(code: str, **extra: str) -> dict[str, str]:
    return {"11": "000001", **ID, "60": f"00000001{code}", **extra}


def test_binds_loopback_on_an_ephemeral_port(host: HostSimulator) -> None:
    address, port = host.address
    assert address == "127.0.0.1" and port > 0


def test_sign_on_echo_and_conflict(host: HostSimulator) -> None:
    client = Client(host)
    assert client.exchange("0800", _network("301")).fields["39"] == "00"
    answer = client.exchange("0800", _network("001", **{"63": "SN-1"}))
    assert (answer.mti, answer.fields["39"]) == ("0810", "00")
    assert client.exchange("0800", _network("001", **{"63": "SN-2"})).fields["39"] == "97"
    client.close()
    refused = [r for r in host.records() if r.transaction == "sign_on" and r.direction == "out"]
    assert [r.response_code for r in refused] == ["00", "97"]
    assert refused[-1].flags["bound_serial"] == "SN-1"


def test_parameter_and_key_download(host: HostSimulator) -> None:
    client = Client(host)
    data = bytearray()
    index, total = 0, 1
    while index < total:
        block = bytes.fromhex(
            client.exchange("0800", _network("360", **{"62": f"{index:04X}"})).fields["62"]
        )
        assert int.from_bytes(block[:2], "big") == index
        total = int.from_bytes(block[2:4], "big")
        data += block[4:]
        index += 1
    end = bytes.fromhex(client.exchange("0800", _network("361")).fields["62"])
    assert end[:32].hex() == PARAMS.digest and end[32:].decode() == PARAMS.version
    assert bytes(data) == PARAMS.data
    keys = bytes.fromhex(client.exchange("0800", _network("350")).fields["62"])
    assert unwrap_keys(keys, SIM_TEST_TMK) == host.keys.keys
    bad = client.exchange("0800", _network("360", **{"62": "00FF"}))
    assert bad.fields["39"] == "30"
    client.close()


def test_sale_reversal_and_settlement(host: HostSimulator) -> None:
    client = Client(host)
    sale = client.exchange("0200", SALE)
    assert (sale.mti, sale.fields["39"], sale.fields["11"]) == ("0210", "00", "000042")
    assert len(sale.fields["37"]) == 12 and sale.fields["38"]
    totals = {"11": "000050", **ID, "48": "000000001234001"}
    assert client.exchange("0500", totals).fields["39"] == "00"
    second = client.exchange("0200", {**SALE, "11": "000043"})
    assert second.fields["39"] == "00"
    reversal = {"3": "000000", "4": "000000001234", "11": "000043", "39": "98", **ID}
    assert client.exchange("0400", reversal).fields["39"] == "00"
    assert client.exchange("0400", reversal).fields["39"] == "00"  # idempotent
    client.close()
    flags = [
        r.flags for r in host.records() if r.transaction == "reversal" and r.direction == "out"
    ]
    assert flags[0]["original_found"] and not flags[0]["duplicate"]
    assert flags[1]["duplicate"]
    assert [(s.stan, s.reversals, s.settled) for s in host.journal()] == [
        ("000042", 0, True), ("000043", 2, False),
    ]  # fmt: skip
    wrong = Client(host)
    assert wrong.exchange("0500", {**totals, "48": "000000009999001"}).fields["39"] == "95"
    wrong.close()


@pytest.mark.parametrize("code", ["05", "51", "54", "55", "58", "91", "96"])
def test_decline_with_any_response_code(host: HostSimulator, code: str) -> None:
    host.behave("sale", Behaviour.decline(code))
    client = Client(host)
    answer = client.exchange("0200", SALE)
    client.close()
    assert answer.fields["39"] == code and "38" not in answer.fields


def test_delay_then_answer(host: HostSimulator) -> None:
    host.behave("echo", Behaviour.delay(0.3))
    client = Client(host)
    import time

    started = time.monotonic()
    assert client.exchange("0800", _network("301")).fields["39"] == "00"
    assert time.monotonic() - started >= 0.3
    client.close()


def test_never_answer_keeps_the_link_silent(host: HostSimulator) -> None:
    host.behave("sale", Behaviour.never_answer())
    client = Client(host, timeout=0.4)
    client.send("0200", SALE)
    with pytest.raises(TimeoutError):
        client.read()
    client.close()
    host.wait_for(lambda rs: any(r.note.startswith("never sent") for r in rs), 2.0)
    assert host.journal()[0].stan == "000042"  # processed, only the answer was lost


def test_close_mid_response_and_malformed(host: HostSimulator) -> None:
    host.behave("echo", Behaviour.close_mid_response(), times=1)
    client = Client(host)
    with pytest.raises(ConnectionError, match="closed after"):
        client.exchange("0800", _network("301"))
    client.close()
    host.behave("echo", Behaviour.malformed(), times=1)
    client = Client(host)
    with pytest.raises(Iso8583Error):
        client.exchange("0800", _network("301"))
    client.close()
    client = Client(host)  # times=1 each: back to normal
    assert client.exchange("0800", _network("301")).fields["39"] == "00"
    client.close()


def test_skip_then_behave_and_reset(host: HostSimulator) -> None:
    host.behave("any", Behaviour.decline("96"), skip=1)
    client = Client(host)
    assert client.exchange("0800", _network("301")).fields["39"] == "00"
    assert client.exchange("0800", _network("301")).fields["39"] == "96"
    host.reset()
    assert client.exchange("0800", _network("301")).fields["39"] == "00"
    client.close()


def test_garbage_from_a_client_is_recorded_and_dropped(host: HostSimulator) -> None:
    with socket.create_connection(host.address, timeout=2) as sock:
        sock.sendall(struct.pack(">H", 12) + b"\x60" + b"\x01" * 11)
        assert sock.recv(10) == b""  # the host hung up
    host.wait_for(lambda rs: any("malformed" in r.note for r in rs), 2.0)
    # The host is still serving.
    client = Client(host)
    assert client.exchange("0800", _network("301")).fields["39"] == "00"
    client.close()


def test_records_hold_no_card_data(host: HostSimulator) -> None:
    client = Client(host)
    client.exchange("0200", SALE)
    client.close()
    text = repr([r.as_dict() for r in host.records()])
    assert not contains_full_pan(text)
    assert "D2912" not in text


@pytest.mark.parametrize(
    ("field_11", "field_61"),
    [
        ("000077", "0000010000771130"),  # the original STAN in 11, and in 61 (the sim's way)
        ("000078", "0000010000771130"),  # a new STAN of its own in 11, the original in 61
        ("000077", None),  # no 61: field 11 names the original
    ],
    ids=["original-in-11-and-61", "new-in-11-original-in-61", "original-in-11-only"],
)
def test_a_reversal_names_its_sale_by_field_61_else_field_11(
    host: HostSimulator, field_11: str, field_61: str | None
) -> None:
    from hil.host.records import original_stan

    client = Client(host)
    assert client.exchange("0200", {**SALE, "11": "000077"}).fields["39"] == "00"
    reversal = {"3": "000000", "4": "000000001234", "11": field_11, "39": "98", **ID}
    if field_61 is not None:
        reversal["61"] = field_61
    answer = client.exchange("0400", reversal)
    client.close()
    assert answer.fields["39"] == "00" and answer.fields.get("61") == field_61
    assert [(s.stan, s.reversals) for s in host.journal()] == [("000077", 1)]
    records = [r for r in host.records() if r.transaction == "reversal"]
    assert [original_stan(r.fields) for r in records] == ["000077", "000077"]  # in and out
    assert records[-1].flags["original_found"] is True
    if field_61 is not None:
        # kept as its parts in the record: 16 digits a PAN scanner would mask
        assert records[0].fields["61"] == {"batch": "000001", "stan": "000077", "date": "1130"}
