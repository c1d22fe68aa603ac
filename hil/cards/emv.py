"""A virtual EMV card: the state machine behind the APDUs a terminal sends.

``EmvCard(profile)`` answers what a contact or contactless payment card answers
(EMV Books 1 and 3): SELECT of the PSE ``1PAY.SYS.DDF01`` and PPSE ``2PAY.SYS.DDF01``,
SELECT of an application (FCI with its PDOL), GET PROCESSING OPTIONS (checks the
PDOL data length, answers AIP and AFL), READ RECORD per AFL, GENERATE AC (ATC
incremented per transaction, cryptogram type by the EMV rules for requested vs
returned), VERIFY with a plaintext offline PIN and its try counter, GET DATA, and for
a T=0 card GET RESPONSE after ``61xx`` and ``6Cxx``. Anything else gets the ISO/IEC
7816-4 status word a card would give.

Cryptograms are HMAC-SHA256 over the CDOL1 data, truncated to 8 bytes, keyed from the
profile: deterministic and synthetic. No scheme keys are involved; the sim terminal
does not verify them offline (its host would).
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from dataclasses import dataclass, field

from hil.cards import tlv
from hil.cards.profile import Application, CardProfile

PSE = b"1PAY.SYS.DDF01"
PPSE = b"2PAY.SYS.DDF01"
PSE_DIRECTORY_SFI = 1

SW_OK = b"\x90\x00"
SW_WRONG_LENGTH = b"\x67\x00"
SW_SECURITY = b"\x69\x82"
SW_PIN_BLOCKED = b"\x69\x83"
SW_CONDITIONS = b"\x69\x85"
SW_WRONG_DATA = b"\x6a\x80"
SW_FILE_NOT_FOUND = b"\x6a\x82"
SW_RECORD_NOT_FOUND = b"\x6a\x83"
SW_WRONG_P1P2 = b"\x6a\x86"
SW_DATA_NOT_FOUND = b"\x6a\x88"
SW_INS_NOT_SUPPORTED = b"\x6d\x00"
SW_CLA_NOT_SUPPORTED = b"\x6e\x00"

# A T=1 answer-to-reset with historical bytes: what the terminal sees for a healthy card.
DEFAULT_ATR_T1 = bytes.fromhex(
    "3B E9 00 00 81 31 FE 45 4A 43 4F 50 34 31 56 32 32 A7".replace(" ", "")
)
DEFAULT_ATR_T0 = bytes.fromhex("3B 68 00 00 00 73 C8 40 12 00 90 00".replace(" ", ""))
# A mute card gives no valid answer to reset. vpcd asks the card side for the ATR; a
# reply longer than the 33 bytes ISO/IEC 7816-3 allows makes the reader's power-up
# fail, which PC/SC reports as an unresponsive card (SCARD_W_UNRESPONSIVE_CARD),
# exactly what a lab reader reports for a mute card.
MUTE_ATR = bytes(40)

CDOL1 = bytes.fromhex("9F02069F03069F1A0295055F2A029A039C019F3704")
CDOL2 = bytes.fromhex("8A029F02069F03069F1A0295055F2A029A039C019F3704")
# CVM list: X=0, Y=0; plaintext offline PIN if supported (fall through on failure),
# then signature, then no CVM.
CVM_LIST = bytes.fromhex("00000000000000004103" + "1E03" + "1F03")

CID_AAC, CID_TC, CID_ARQC = 0x00, 0x40, 0x80
_REQUESTED = {0x00: CID_AAC, 0x40: CID_TC, 0x80: CID_ARQC}


@dataclass
class _Session:
    """What lives between power-on and power-off (reset clears it too)."""

    selected: Application | None = None
    selected_pse: bytes | None = None
    gpo_done: bool = False
    ac_count: int = 0
    last_cid: int | None = None
    pending: bytes = b""  # T=0: response data waiting for GET RESPONSE
    pending_sw: bytes = SW_OK


@dataclass
class CardState:
    """What a card remembers across insertions (its EEPROM)."""

    atc: int
    pin_try_counter: int
    last_online_atc: int = 0
    transactions: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _records_for(profile: CardProfile) -> dict[tuple[int, int], bytes]:
    """Record templates (tag 70) by (SFI, record number)."""
    track2_eq = _track2_equivalent(profile)
    name = profile.cardholder_name.encode("ascii")
    built: dict[tuple[int, int], list[tuple[int, bytes]]] = {
        (1, 1): [(0x57, track2_eq), (0x5F20, name), (0x9F1F, b"0000000000")],
        (2, 1): [
            (0x5A, _bcd_pan(profile.pan)),
            (0x5F24, bytes.fromhex(profile.expiry + _last_day(profile))),
            (0x5F25, bytes.fromhex(profile.effective + "01")),
            (0x5F28, bytes.fromhex(profile.issuer_country)),
            (0x5F30, bytes.fromhex("0" + profile.service_code)),
            (0x5F34, bytes([int(str(profile.pan_sequence), 16)])),
            (0x9F07, bytes.fromhex("FF00")),
        ],
        (2, 2): [
            (0x8C, CDOL1),
            (0x8D, CDOL2),
            (0x8E, CVM_LIST),
            (0x9F42, bytes.fromhex(profile.currency)),
        ],
    }
    records = {key: tlv.encode(0x70, tlv.encode_many(items)) for key, items in built.items()}
    for extra in profile.records:
        items = [(int(tag, 16), bytes.fromhex(value)) for tag, value in extra.tags.items()]
        records[(extra.sfi, extra.record)] = tlv.encode(0x70, tlv.encode_many(items))
    return records


def _last_day(profile: CardProfile) -> str:
    return f"{profile.expiry_date().day:02d}"


def _bcd_pan(pan: str) -> bytes:
    digits = pan + ("F" if len(pan) % 2 else "")
    return bytes.fromhex(digits)


def _track2_equivalent(profile: CardProfile) -> bytes:
    digits = f"{profile.pan}D{profile.expiry}{profile.service_code}0000000000"
    if len(digits) % 2:
        digits += "F"
    return bytes.fromhex(digits)


def _afl(records: dict[tuple[int, int], bytes]) -> bytes:
    out = bytearray()
    for sfi in sorted({sfi for sfi, _ in records}):
        numbers = sorted(n for s, n in records if s == sfi)
        out += bytes([sfi << 3, numbers[0], numbers[-1], 0])
    return bytes(out)


class EmvCard:
    """One virtual card. ``process`` is called from the card server's thread."""

    def __init__(self, profile: CardProfile, state: CardState | None = None) -> None:
        self.profile = profile
        self.state = state or CardState(profile.atc, profile.pin_try_counter)
        self._records = _records_for(profile)
        self._afl = _afl(self._records)
        self._session = _Session()
        self._key = hashlib.sha256(b"hil-test-card-key:" + profile.pan.encode()).digest()
        self.powered = False
        self.apdus_processed = 0

    # --- contacts -------------------------------------------------------------------

    @property
    def atr(self) -> bytes:
        if self.profile.behaviour == "mute":
            return MUTE_ATR
        return DEFAULT_ATR_T0 if self.profile.transport == "t0" else DEFAULT_ATR_T1

    def power_on(self) -> None:
        self.powered = True
        self._session = _Session()

    def power_off(self) -> None:
        self.powered = False
        self._session = _Session()

    def reset(self) -> None:
        self._session = _Session()

    # --- APDUs ------------------------------------------------------------------------

    def process(self, apdu: bytes) -> bytes:
        """One C-APDU in, one R-APDU out (data + SW1 SW2)."""
        self.apdus_processed += 1
        if len(apdu) < 4:
            return SW_WRONG_LENGTH
        cla, ins, p1, p2 = apdu[0], apdu[1], apdu[2], apdu[3]
        data, le, case = _parse_body(apdu[4:])
        if case == 0:
            return SW_WRONG_LENGTH
        if ins == 0xC0 and cla == 0x00:
            return self._get_response(le)
        self._session.pending = b""
        if cla not in (0x00, 0x80):
            return SW_CLA_NOT_SUPPORTED
        handler = _HANDLERS.get((cla, ins))
        if handler is None:
            return SW_INS_NOT_SUPPORTED
        response = handler(self, p1, p2, data)
        return self._transport(response, case, le)

    def _transport(self, response: bytes, case: int, le: int | None) -> bytes:
        """T=0 cards hand out response data only through GET RESPONSE or exact Le."""
        body, sw = response[:-2], response[-2:]
        if self.profile.transport != "t0" or not body:
            return response
        if case in (3, 4):
            self._session.pending, self._session.pending_sw = body, sw
            return bytes([0x61, len(body) & 0xFF])
        if case == 2 and le is not None and le != len(body):
            return bytes([0x6C, len(body) & 0xFF])
        return response

    def _get_response(self, le: int | None) -> bytes:
        pending = self._session.pending
        if not pending:
            return SW_CONDITIONS
        if le != len(pending):
            return bytes([0x6C, len(pending) & 0xFF])
        self._session.pending = b""
        return pending + self._session.pending_sw

    # SELECT ---------------------------------------------------------------------------

    def _select(self, p1: int, p2: int, data: bytes) -> bytes:
        if p1 != 0x04 or p2 not in (0x00, 0x02):
            return SW_WRONG_P1P2
        self._session = _Session()
        if self.profile.behaviour == "no_payment_app":
            return SW_FILE_NOT_FOUND
        if data == PSE and self.profile.has_interface("contact"):
            self._session.selected_pse = PSE
            fci = tlv.encode(
                0x6F,
                tlv.encode(0x84, PSE)
                + tlv.encode(
                    0xA5, tlv.encode(0x88, bytes([PSE_DIRECTORY_SFI])) + tlv.encode(0x5F2D, b"zhen")
                ),
            )
            return fci + SW_OK
        if data == PPSE and self.profile.has_interface("contactless"):
            self._session.selected_pse = PPSE
            entries = b"".join(
                tlv.encode(0x61, _directory_entry(app)) for app in self.profile.applications
            )
            fci = tlv.encode(
                0x6F, tlv.encode(0x84, PPSE) + tlv.encode(0xA5, tlv.encode(0xBF0C, entries))
            )
            return fci + SW_OK
        for app in self.profile.applications:
            # Partial selection (P2 00 with a shorter AID prefix) is allowed by EMV.
            if app.aid_bytes == data or (len(data) >= 5 and app.aid_bytes.startswith(data)):
                self._session.selected = app
                proprietary = tlv.encode(0x50, app.label.encode("ascii")) + tlv.encode(
                    0x87, bytes([app.priority])
                )
                if app.pdol:
                    proprietary += tlv.encode(0x9F38, bytes.fromhex(app.pdol))
                proprietary += tlv.encode(0x5F2D, b"zhen")
                fci = tlv.encode(
                    0x6F, tlv.encode(0x84, app.aid_bytes) + tlv.encode(0xA5, proprietary)
                )
                return fci + SW_OK
        return SW_FILE_NOT_FOUND

    # READ RECORD ----------------------------------------------------------------------

    def _read_record(self, p1: int, p2: int, data: bytes) -> bytes:
        if p2 & 0x07 != 0x04 or p1 == 0:
            return SW_WRONG_P1P2
        sfi = p2 >> 3
        if self._session.selected_pse == PSE and self._session.selected is None:
            if sfi != PSE_DIRECTORY_SFI:
                return SW_RECORD_NOT_FOUND
            if p1 != 1:
                return SW_RECORD_NOT_FOUND
            entries = b"".join(
                tlv.encode(0x61, _directory_entry(app)) for app in self.profile.applications
            )
            return tlv.encode(0x70, entries) + SW_OK
        if self._session.selected is None:
            return SW_CONDITIONS
        record = self._records.get((sfi, p1))
        if record is None:
            return SW_RECORD_NOT_FOUND
        return record + SW_OK

    # GET PROCESSING OPTIONS -------------------------------------------------------------

    def _gpo(self, p1: int, p2: int, data: bytes) -> bytes:
        app = self._session.selected
        if app is None or self._session.gpo_done:
            return SW_CONDITIONS
        if p1 != 0 or p2 != 0:
            return SW_WRONG_P1P2
        try:
            items = tlv.decode(data)
        except tlv.TlvError:
            return SW_WRONG_DATA
        if len(items) != 1 or items[0].tag != 0x83:
            return SW_WRONG_DATA
        dol = tlv.parse_dol(bytes.fromhex(app.pdol)) if app.pdol else []
        if len(items[0].value) != sum(length for _, length in dol):
            return SW_WRONG_LENGTH
        self._session.gpo_done = True
        body = tlv.encode(0x82, bytes.fromhex(app.aip)) + tlv.encode(0x94, self._afl)
        return tlv.encode(0x77, body) + SW_OK

    # GENERATE AC ------------------------------------------------------------------------

    def _generate_ac(self, p1: int, p2: int, data: bytes) -> bytes:
        if not self._session.gpo_done or p2 != 0:
            return SW_CONDITIONS if p2 == 0 else SW_WRONG_P1P2
        requested = _REQUESTED.get(p1 & 0xC0)
        if requested is None:
            return SW_WRONG_P1P2
        first = self._session.ac_count == 0
        if not first and self._session.last_cid != CID_ARQC:
            return SW_CONDITIONS  # a transaction ends with its TC or AAC
        if self._session.ac_count >= 2:
            return SW_CONDITIONS
        dol = tlv.parse_dol(CDOL1 if first else CDOL2)
        if len(data) != sum(length for _, length in dol):
            return SW_WRONG_LENGTH
        if self.profile.generate_ac_delay_ms:
            time.sleep(self.profile.generate_ac_delay_ms / 1000)
        cid = self._decide(requested, first)
        with self.state.lock:
            if first:
                self.state.atc = (self.state.atc + 1) & 0xFFFF
                self.state.transactions += 1
            if cid == CID_ARQC:
                self.state.last_online_atc = self.state.atc
            atc = self.state.atc
        self._session.ac_count += 1
        self._session.last_cid = cid
        mac = hmac.new(self._key, data + atc.to_bytes(2, "big") + bytes([cid]), hashlib.sha256)
        body = (
            tlv.encode(0x9F27, bytes([cid]))
            + tlv.encode(0x9F36, atc.to_bytes(2, "big"))
            + tlv.encode(0x9F26, mac.digest()[:8])
            + tlv.encode(0x9F10, bytes.fromhex("06010A03A00000"))
        )
        return tlv.encode(0x77, body) + SW_OK

    def _decide(self, requested: int, first: bool) -> int:
        """EMV Book 3 6.5.5.4: AAC may answer anything; TC only a TC request; ARQC a TC
        or ARQC request. The profile's decision is the card's risk management."""
        decision = self.profile.generate_ac
        if requested == CID_AAC or decision == "decline":
            return CID_AAC
        if not first:  # second GENERATE AC: TC or AAC only
            return CID_TC if requested == CID_TC else CID_AAC
        if requested == CID_TC and decision == "approve":
            return CID_TC
        return CID_ARQC

    # VERIFY -----------------------------------------------------------------------------

    def _verify(self, p1: int, p2: int, data: bytes) -> bytes:
        if p1 != 0 or p2 != 0x80:
            return SW_WRONG_P1P2  # only plaintext offline PIN
        if self._session.selected is None:
            return SW_CONDITIONS
        pin = _pin_from_block(data)
        if pin is None:
            return SW_WRONG_DATA
        with self.state.lock:
            if self.state.pin_try_counter == 0:
                return SW_PIN_BLOCKED
            if hmac.compare_digest(pin, self.profile.pin):
                self.state.pin_try_counter = self.profile.pin_try_limit
                return SW_OK
            self.state.pin_try_counter -= 1
            left = self.state.pin_try_counter
        return SW_PIN_BLOCKED if left == 0 else bytes([0x63, 0xC0 | left])

    # GET DATA ---------------------------------------------------------------------------

    def _get_data(self, p1: int, p2: int, data: bytes) -> bytes:
        tag = (p1 << 8) | p2
        with self.state.lock:
            values = {
                0x9F17: bytes([self.state.pin_try_counter]),
                0x9F36: self.state.atc.to_bytes(2, "big"),
                0x9F13: self.state.last_online_atc.to_bytes(2, "big"),
            }
        if tag not in values:
            return SW_DATA_NOT_FOUND
        return tlv.encode(tag, values[tag]) + SW_OK


def _directory_entry(app: Application) -> bytes:
    return (
        tlv.encode(0x4F, app.aid_bytes)
        + tlv.encode(0x50, app.label.encode("ascii"))
        + tlv.encode(0x87, bytes([app.priority]))
    )


def _pin_from_block(block: bytes) -> str | None:
    """ISO 9564 format 2 plaintext PIN block: 2N PP.. FF.. (N = PIN length)."""
    if len(block) != 8 or block[0] >> 4 != 0x2:
        return None
    length = block[0] & 0x0F
    digits = block[1:].hex().upper()
    pin, filler = digits[:length], digits[length:]
    if not 4 <= length <= 12 or not pin.isdigit() or set(filler) - {"F"}:
        return None
    return pin


def pin_block(pin: str) -> bytes:
    """The plaintext PIN block a terminal sends in VERIFY (format 2)."""
    digits = f"2{len(pin):X}{pin}".ljust(16, "F")
    return bytes.fromhex(digits)


def _parse_body(body: bytes) -> tuple[bytes, int | None, int]:
    """(data, Le, ISO case) of a short APDU body after the header; case 0 = malformed."""
    if not body:
        return b"", None, 1
    if len(body) == 1:
        return b"", body[0], 2
    lc = body[0]
    if lc == 0 or len(body) not in (1 + lc, 2 + lc):
        return b"", None, 0
    data = body[1 : 1 + lc]
    if len(body) == 2 + lc:
        return data, body[-1], 4
    return data, None, 3


_HANDLERS = {
    (0x00, 0xA4): EmvCard._select,
    (0x00, 0xB2): EmvCard._read_record,
    (0x80, 0xA8): EmvCard._gpo,
    (0x80, 0xAE): EmvCard._generate_ac,
    (0x00, 0x20): EmvCard._verify,
    (0x80, 0xCA): EmvCard._get_data,
}
