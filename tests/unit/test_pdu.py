"""Power through a network PDU over SNMP v2c: byte-exact against a scripted agent on a
loopback UDP socket. The agent decodes every datagram with its own small BER codec
(written here from RFC 3416 / X.690, not pysnmp's), re-encodes the request it expects
with the request ID it received, and compares the bytes; it answers as an APC PDU
does. A PDU that does not answer, refuses, or does not switch is a rig fault naming
the instrument and what to check."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

pytest.importorskip("pysnmp")

from hil.config import parse_rig
from hil.errors import ConfigError, RigError
from hil.instruments.pdu import PRESETS, PduOutletPower, SnmpClient
from hil.rig import Rig

GET, RESPONSE, SET = 0xA0, 0xA2, 0xA3
APC_CONTROL = "1.3.6.1.4.1.318.1.1.12.3.3.1.1.4"
APC_STATE = "1.3.6.1.4.1.318.1.1.12.3.5.1.1.4"


# --- BER, as much as SNMP v2c GET/SET of an INTEGER needs ------------------------------


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def tlv(tag: int, body: bytes) -> bytes:
    return bytes([tag]) + _length(len(body)) + body


def integer(value: int) -> bytes:
    size = max(1, (value.bit_length() + 8) // 8)  # room for the sign bit
    return tlv(0x02, value.to_bytes(size, "big", signed=True))


def oid(dotted: str) -> bytes:
    parts = [int(p) for p in dotted.split(".")]
    body = bytearray([40 * parts[0] + parts[1]])
    for arc in parts[2:]:
        chunk = [arc & 0x7F]
        rest = arc >> 7
        while rest:
            chunk.append(0x80 | (rest & 0x7F))
            rest >>= 7
        body.extend(reversed(chunk))
    return tlv(0x06, bytes(body))


def message(community: str, pdu_tag: int, request_id: int, name: str, value: bytes) -> bytes:
    varbind = tlv(0x30, oid(name) + value)
    pdu = tlv(pdu_tag, integer(request_id) + integer(0) + integer(0) + tlv(0x30, varbind))
    return tlv(0x30, integer(1) + tlv(0x04, community.encode()) + pdu)


def _read(data: bytes, at: int) -> tuple[int, bytes, int]:
    tag = data[at]
    n = data[at + 1]
    at += 2
    if n & 0x80:
        size = n & 0x7F
        n = int.from_bytes(data[at : at + size], "big")
        at += size
    return tag, data[at : at + n], at + n


def decode(datagram: bytes) -> tuple[str, int, int, str]:
    """(community, PDU tag, request ID, OID) of a v2c request."""
    _, body, _ = _read(datagram, 0)
    _, version, at = _read(body, 0)
    assert version == b"\x01", "not SNMP v2c"
    _, community, at = _read(body, at)
    pdu_tag, pdu, _ = _read(body, at)
    _, request_id, at = _read(pdu, 0)
    _, _, at = _read(pdu, at)
    _, _, at = _read(pdu, at)
    _, varbinds, _ = _read(pdu, at)
    _, varbind, _ = _read(varbinds, 0)
    _, name, _ = _read(varbind, 0)
    arcs = [name[0] // 40, name[0] % 40]
    value = 0
    for byte in name[1:]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    return (
        community.decode(),
        pdu_tag,
        int.from_bytes(request_id, "big", signed=True),
        ".".join(map(str, arcs)),
    )


def test_the_codec_matches_a_published_encoding() -> None:
    # X.690 8.19 example arcs, and a GET of sysDescr.0 as every SNMP primer prints it
    assert oid("1.3.6.1.2.1.1.1.0").hex() == "06082b06010201010100"
    assert integer(128).hex() == "02020080" and integer(-1).hex() == "0201ff"
    request = message("public", GET, 1, "1.3.6.1.2.1.1.1.0", b"\x05\x00")
    assert request.hex() == (
        "302602010104067075626c6963a019020101020100020100300e300c06082b060102010101000500"
    )
    assert decode(request) == ("public", GET, 1, "1.3.6.1.2.1.1.1.0")


# --- the scripted agent ----------------------------------------------------------------


@dataclass
class ScriptedPdu:
    """An APC rack PDU's outlet table over SNMP v2c on 127.0.0.1: every datagram must
    be byte for byte the request we would encode; ``lag`` GETs read the old state;
    ``mute`` answers nothing; ``refuse`` answers SETs with noAccess (6)."""

    community: str = "private"
    outlets: dict[int, int] = field(default_factory=lambda: {1: 2, 2: 2, 3: 2, 4: 2})
    lag: int = 0
    mute: bool = False
    refuse: bool = False
    log: list[tuple[str, str, int | None]] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                datagram, peer = self.sock.recvfrom(2048)
            except TimeoutError:
                continue
            except OSError:
                return
            answer = self._handle(datagram)
            if answer is not None and not self.mute:
                self.sock.sendto(answer, peer)

    def _handle(self, datagram: bytes) -> bytes | None:
        community, tag, request_id, name = decode(datagram)
        outlet = int(name.rsplit(".", 1)[1])
        if tag == SET:
            # the value is the last TLV of the datagram: an INTEGER
            value = int.from_bytes(datagram[-(datagram[-2]) :], "big", signed=True)
            expected = message(self.community, SET, request_id, name, integer(value))
            self.log.append(("SET", name, value))
        else:
            value = None
            expected = message(self.community, GET, request_id, name, b"\x05\x00")
            self.log.append(("GET", name, None))
        if datagram != expected:
            self.mismatches.append(f"{datagram.hex()} != {expected.hex()}")
        if community != self.community:
            return None  # a wrong community gets silence, as from a real agent
        if tag == SET:
            if self.refuse:
                reply_pdu = (
                    integer(request_id)
                    + integer(6)
                    + integer(1)
                    + tlv(0x30, tlv(0x30, oid(name) + integer(value or 0)))
                )
                return tlv(
                    0x30, integer(1) + tlv(0x04, community.encode()) + tlv(RESPONSE, reply_pdu)
                )
            assert name.startswith(APC_CONTROL + ".")
            self.outlets[outlet] = {1: 1, 2: 2}[value or 0]
            self._pending = self.lag
            return message(community, RESPONSE, request_id, name, integer(value or 0))
        assert name.startswith(APC_STATE + ".")
        state = self.outlets[outlet]
        if getattr(self, "_pending", 0):
            self._pending -= 1
            state = 3 - state  # the relay has not moved yet
        return message(community, RESPONSE, request_id, name, integer(state))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


@pytest.fixture
def agent() -> Iterator[ScriptedPdu]:
    scripted = ScriptedPdu()
    yield scripted
    scripted.close()


def _power(agent: ScriptedPdu, outlet: int = 3, *, community: str = "private") -> PduOutletPower:
    client = SnmpClient("127.0.0.1", agent.port, community, timeout=0.3, retries=0, name="power")
    return PduOutletPower(client, outlet, PRESETS["apc-rpdu"], switch_timeout=2.0, settle_s=0)


def test_on_off_and_cut_set_the_apc_outlet_command_and_read_the_state_back(
    agent: ScriptedPdu,
) -> None:
    power = _power(agent, 3)
    power.on()
    power.off()
    power.cut()
    assert agent.mismatches == []
    assert agent.log == [
        ("SET", f"{APC_CONTROL}.3", 1),
        ("GET", f"{APC_STATE}.3", None),
        ("SET", f"{APC_CONTROL}.3", 2),
        ("GET", f"{APC_STATE}.3", None),
        ("SET", f"{APC_CONTROL}.3", 2),
        ("GET", f"{APC_STATE}.3", None),
    ]
    assert agent.outlets[3] == 2 and not power.is_on


def test_a_slow_relay_is_polled_until_it_reads_the_new_state(agent: ScriptedPdu) -> None:
    agent.lag = 2
    power = _power(agent, 1)
    power.on()
    assert [entry[0] for entry in agent.log] == ["SET", "GET", "GET", "GET"]
    assert power.is_on and agent.mismatches == []


def test_preflight_names_the_pdu_outlet_and_state(agent: ScriptedPdu) -> None:
    assert _power(agent, 2).preflight() == f"SNMP PDU 127.0.0.1:{agent.port}, outlet 2: supply off"


def test_a_pdu_that_does_not_answer_is_one_rig_fault_line_within_its_timeout() -> None:
    mute = ScriptedPdu(mute=True)
    try:
        started = time.monotonic()
        with pytest.raises(RigError) as caught:
            _power(mute, 1).on()
        assert time.monotonic() - started < 10  # bounded: never a hang
        text = str(caught.value)
        assert "\n" not in text
        assert text.startswith(f"power: no SNMP answer from the PDU at 127.0.0.1:{mute.port}")
        assert "check its address, that SNMP v2c is enabled" in text
    finally:
        mute.close()


def test_a_wrong_community_is_met_with_silence_and_reported_as_no_answer(
    agent: ScriptedPdu,
) -> None:
    with pytest.raises(RigError, match="no SNMP answer"):
        _power(agent, 1, community="public").on()


def test_a_refused_set_names_the_outlet_object(agent: ScriptedPdu) -> None:
    agent.refuse = True
    with pytest.raises(RigError, match=rf"refused SET {APC_CONTROL}\.1: noAccess"):
        _power(agent, 1).on()


def _rig_text(port: int, extra: str = "") -> str:
    return f"""
[rig]
name = "pdu-bench"

[dut]
driver = "physical"
model = "POS-X"
serial_number = "SN1"
terminal_id = "T0000001"
merchant_id = "898310058120001"

[console]
driver = "pyserial"
url = "socket://127.0.0.1:9"

[power]
driver = "snmp-pdu"
host = "127.0.0.1"
port = {port}
outlet = 4
timeout_s = 0.3
retries = 0
settle_s = 0.0
{extra}
"""


def test_the_rig_file_builds_it_and_closing_switches_the_outlet_off(
    agent: ScriptedPdu, tmp_path: Path
) -> None:
    rig = Rig(parse_rig(_rig_text(agent.port), tmp_path / "pdu.toml"))
    try:
        rig.build(["power"])
        assert rig.power is not None
        rig.power.on()
        assert agent.outlets[4] == 1
    finally:
        rig.close()
    assert agent.outlets[4] == 2
    assert agent.mismatches == []


def test_custom_oids_are_all_or_nothing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"pdu\.toml: power: model 'custom' needs control_oid"):
        parse_rig(_rig_text(161, 'model = "custom"'), tmp_path / "pdu.toml")
    with pytest.raises(ConfigError, match=r"power: on_value: only for model 'custom'"):
        parse_rig(_rig_text(161, "on_value = 1"), tmp_path / "pdu.toml")
