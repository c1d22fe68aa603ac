"""The simulated terminal's EMV kernel: the read flow over one connected card.

Application selection (PSE for chip, PPSE for contactless, then the terminal's own AID
list), GET PROCESSING OPTIONS with the PDOL, READ RECORD per AFL, the PIN try counter
when the card wants offline PIN, GENERATE AC (an ARQC, or an AAC when the terminal
declines itself). A read that cannot finish stops with a ``ReadFailure`` carrying one of
the documented codes (docs/test-port-protocol.md, "Cards").

Pure protocol logic: it speaks to any card that can ``transmit`` an APDU (the PC/SC
connection in ``hil.sim.pcsc``) and knows nothing of readers, screens or events. The
PAN leaves it masked; the full PAN stays in here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol

from hil.cards import tlv
from hil.masking import mask_pan

#: Entry modes, as a read reports them (``entry_mode``).
ENTRY_CHIP = "chip"
ENTRY_CONTACTLESS = "contactless"
ENTRY_MAGSTRIPE = "magstripe"

PSE = b"1PAY.SYS.DDF01"
PPSE = b"2PAY.SYS.DDF01"

#: Applications this terminal supports (its AID list), tried when the PSE is absent.
SUPPORTED_AIDS: dict[str, str] = {
    "A0000000031010": "VISA",
    "A0000000041010": "MASTERCARD",
    "A000000333010101": "UNIONPAY DEBIT",
    "A000000333010102": "UNIONPAY CREDIT",
    "A000000333010103": "UNIONPAY QUASI CREDIT",
}

# Terminal data for PDOL and CDOL (EMV Book 3 Annex A); numeric values in BCD.
TERMINAL_COUNTRY = bytes.fromhex("0156")
TERMINAL_CURRENCY = bytes.fromhex("0156")
TTQ = bytes.fromhex("36000000")


@dataclass(frozen=True)
class OnlineData:
    """What a sale sends the host about the card: never reported on the test port."""

    pan: str
    expiry: str
    service_code: str
    #: card sequence number, 3 digits (ISO 8583 field 23)
    pan_sequence: str
    #: (tag, value) of the EMV data for field 55, in order
    icc: tuple[tuple[str, bytes], ...] = field(repr=False, default=())

    def __repr__(self) -> str:  # never the PAN, even in a traceback
        return f"OnlineData(pan={mask_pan(self.pan)!r})"


class ReadFailure(Exception):
    """The read stopped with a documented code; ``known`` holds what was read so far."""

    def __init__(self, code: str, message: str, known: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.known = known or {}


class ApduCard(Protocol):
    """A connected card as the kernel needs it: the reader's name and APDU exchange."""

    reader: str

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        """Send one command APDU; return (response data, status word)."""
        ...


def _pan_digits(value: bytes) -> str:
    return value.hex().upper().rstrip("F")


def _cid_name(cid: int) -> str:
    return {0x00: "AAC", 0x40: "TC", 0x80: "ARQC"}.get(cid & 0xC0, f"CID {cid:02X}")


def expiry_passed(yymm: str, today: date) -> bool:
    """True once the month ``yymm`` (YYMM) is over: a card expires at its month's end."""
    year, month = 2000 + int(yymm[:2]), int(yymm[2:4])
    return (today.year, today.month) > (year, month)


def _select(aid: bytes) -> bytes:
    return bytes([0x00, 0xA4, 0x04, 0x00, len(aid)]) + aid + b"\x00"


def _terminal_data(amount: int, unpredictable: bytes, tvr: bytes) -> dict[int, bytes]:
    today = date.today()
    return {
        0x9F66: TTQ,
        0x9F02: bytes.fromhex(f"{amount:012d}"),
        0x9F03: bytes(6),
        0x9F1A: TERMINAL_COUNTRY,
        0x5F2A: TERMINAL_CURRENCY,
        0x9A: bytes.fromhex(today.strftime("%y%m%d")),
        0x9C: b"\x00",
        0x9F37: unpredictable,
        0x95: tvr,
        0x9F35: b"\x22",
        0x9F33: bytes.fromhex("E0F8C8"),
    }


class EmvKernel:
    """The EMV flow over one card: ``run`` returns what was read, or raises ``ReadFailure``."""

    def __init__(self, card: ApduCard, entry: str, *, amount: int = 0) -> None:
        self.card = card
        self.entry = entry
        self.amount = amount
        self.known: dict[str, Any] = {"entry_mode": entry, "reader": card.reader}
        #: the PAN in clear once read: kept off every result (the reader masks it)
        self.pan_digits: str | None = None
        #: what an online authorisation needs (card data in clear, EMV tags for field 55),
        #: kept inside the terminal: filled by a read that ends with an ARQC
        self.online: OnlineData | None = None

    def fail(self, code: str, message: str) -> ReadFailure:
        return ReadFailure(code, message, dict(self.known))

    def run(self) -> dict[str, Any]:
        candidates = self._candidates()
        if not candidates:
            raise self.fail("E_CARD_NO_APP", "no supported payment application on the card (6A82)")
        fci = b""
        chosen: tuple[bytes, str] | None = None
        for aid, label in candidates:
            fci, sw = self.card.transmit(_select(aid))
            if sw == 0x9000:
                chosen = (aid, label)
                break
        if chosen is None:
            raise self.fail("E_CARD_NO_APP", "no supported payment application could be selected")
        aid, label = chosen
        label_tag = tlv.find(fci, 0x50)
        self.known.update(
            aid=aid.hex().upper(), label=(label_tag or label.encode()).decode("ascii", "replace")
        )
        unpredictable = os.urandom(4)
        tvr = bytearray(5)
        values = _terminal_data(self.amount, unpredictable, bytes(tvr))
        pdol = tlv.parse_dol(tlv.find(fci, 0x9F38) or b"")
        pdol_data = tlv.build_dol(pdol, values)
        command = tlv.encode(0x83, pdol_data)
        response, sw = self.card.transmit(
            bytes([0x80, 0xA8, 0x00, 0x00, len(command)]) + command + b"\x00"
        )
        if sw != 0x9000:
            raise self.fail("E_CARD_DATA", f"GET PROCESSING OPTIONS answered {sw:04X}")
        aip, afl = self._aip_afl(response)
        data = self._read_records(afl)
        pan = data.get(0x5A)
        if pan is None:
            raise self.fail("E_CARD_DATA", "the card's records hold no PAN (tag 5A)")
        digits = _pan_digits(pan)
        self.pan_digits = digits
        expiry = data.get(0x5F24, b"").hex()[:4]
        service = data.get(0x5F30, b"").hex()[-3:]
        self.known.update(
            pan=mask_pan(digits),
            expiry=expiry,
            service_code=service,
            pan_sequence=data.get(0x5F34, b"").hex() or None,
            aip=aip.hex().upper(),
        )
        decline: tuple[str, str] | None = None
        if len(expiry) != 4 or not expiry.isdigit():
            raise self.fail("E_CARD_DATA", "expiry date (5F24) missing or malformed")
        if expiry_passed(expiry, date.today()):
            tvr[1] |= 0x40  # expired application
            decline = ("E_CARD_EXPIRED", f"card expired at the end of 20{expiry[:2]}-{expiry[2:]}")
        cvm = data.get(0x8E, b"")
        if decline is None and aip[0] & 0x10 and self._wants_offline_pin(cvm):
            tries = self._pin_tries()
            self.known["pin_try_counter"] = tries
            if tries == 0:
                tvr[2] |= 0x20  # PIN try limit exceeded
                decline = ("E_PIN_BLOCKED", "PIN try limit exceeded on the card (9F17 = 0)")
        values[0x95] = bytes(tvr)
        cdol1 = tlv.parse_dol(data.get(0x8C, b""))
        request = 0x00 if decline else 0x80  # AAC when the terminal declines, else ARQC
        cdol_data = tlv.build_dol(cdol1, values)
        response, sw = self.card.transmit(
            bytes([0x80, 0xAE, request, 0x00, len(cdol_data)]) + cdol_data + b"\x00"
        )
        if sw != 0x9000:
            raise self.fail("E_CARD_DATA", f"GENERATE AC answered {sw:04X}")
        cid, atc, cryptogram, issuer_data = self._ac_result(response)
        self.known.update(cryptogram=_cid_name(cid), atc=atc)
        if decline is not None:
            self.known["outcome"] = "declined"
            raise self.fail(*decline)
        if cid & 0xC0 == 0x00:
            self.known["outcome"] = "declined"
            raise self.fail("E_CARD_DECLINED", "the card declined the transaction (AAC)")
        self.known["outcome"] = "approved" if cid & 0xC0 == 0x40 else "online"
        icc = [
            ("9F26", cryptogram),
            ("9F27", bytes([cid])),
            ("9F10", issuer_data),
            ("9F37", unpredictable),
            ("9F36", atc.to_bytes(2, "big")),
            ("95", bytes(tvr)),
            ("9A", values[0x9A]),
            ("9C", values[0x9C]),
            ("9F02", values[0x9F02]),
            ("5F2A", TERMINAL_CURRENCY),
            ("82", aip),
            ("9F1A", TERMINAL_COUNTRY),
            ("9F33", values[0x9F33]),
            ("84", aid),
            ("5A", pan),
        ]
        if 0x5F34 in data:
            icc.append(("5F34", data[0x5F34]))
        self.online = OnlineData(
            pan=digits,
            expiry=expiry,
            service_code=service or "201",
            pan_sequence=data.get(0x5F34, b"\x01").hex()[-3:].rjust(3, "0"),
            icc=tuple(icc),
        )
        return dict(self.known)

    def _candidates(self) -> list[tuple[bytes, str]]:
        directory = PSE if self.entry == ENTRY_CHIP else PPSE
        fci, sw = self.card.transmit(_select(directory))
        found: list[tuple[int, bytes, str]] = []
        if sw == 0x9000:
            entries = self._directory_entries(fci)
            for entry in entries:
                aid = entry.get(0x4F)
                if aid is None:
                    continue
                label = entry.get(0x50, b"").decode("ascii", "replace")
                priority = entry.get(0x87, b"\x0f")[0] & 0x0F
                if any(
                    aid.hex().upper().startswith(s) or s.startswith(aid.hex().upper())
                    for s in SUPPORTED_AIDS
                ):
                    found.append((priority, aid, label))
        if found:
            return [(aid, label) for _, aid, label in sorted(found, key=lambda f: f[0])]
        # No directory: try the terminal's own list (EMV Book 1 12.3.3).
        out = []
        for aid_hex, name in SUPPORTED_AIDS.items():
            fci, sw = self.card.transmit(_select(bytes.fromhex(aid_hex)))
            if sw == 0x9000:
                out.append((bytes.fromhex(aid_hex), name))
        return out

    def _directory_entries(self, fci: bytes) -> list[dict[int, bytes]]:
        try:
            if self.entry == ENTRY_CONTACTLESS:
                directory = tlv.find(fci, 0xBF0C) or b""
                return [
                    dict((c.tag, c.value) for c in t.children())
                    for t in tlv.decode(directory)
                    if t.tag == 0x61
                ]
            sfi = (tlv.find(fci, 0x88) or b"\x01")[0]
            entries: list[dict[int, bytes]] = []
            for number in range(1, 11):
                record, sw = self.card.transmit(bytes([0x00, 0xB2, number, (sfi << 3) | 4, 0x00]))
                if sw != 0x9000:
                    break
                for item in tlv.walk(record):
                    if item.tag == 0x61:
                        entries.append({c.tag: c.value for c in item.children()})
            return entries
        except tlv.TlvError as e:
            raise self.fail("E_CARD_DATA", f"malformed directory: {e}") from None

    def _aip_afl(self, response: bytes) -> tuple[bytes, bytes]:
        try:
            items = tlv.decode(response)
        except tlv.TlvError as e:
            raise self.fail("E_CARD_DATA", f"malformed GPO response: {e}") from None
        if items and items[0].tag == 0x80 and len(items[0].value) >= 2:
            return items[0].value[:2], items[0].value[2:]
        aip = tlv.find(response, 0x82)
        afl = tlv.find(response, 0x94)
        if aip is None or len(aip) != 2 or afl is None:
            raise self.fail("E_CARD_DATA", "GPO response lacks AIP or AFL")
        return aip, afl

    def _read_records(self, afl: bytes) -> dict[int, bytes]:
        if len(afl) % 4:
            raise self.fail("E_CARD_DATA", f"AFL length {len(afl)} is not a multiple of 4")
        data: dict[int, bytes] = {}
        for i in range(0, len(afl), 4):
            sfi, first, last = afl[i] >> 3, afl[i + 1], afl[i + 2]
            if not 1 <= sfi <= 30 or first == 0 or last < first:
                raise self.fail("E_CARD_DATA", "malformed AFL entry")
            for number in range(first, last + 1):
                record, sw = self.card.transmit(bytes([0x00, 0xB2, number, (sfi << 3) | 4, 0x00]))
                if sw != 0x9000:
                    raise self.fail(
                        "E_CARD_DATA", f"READ RECORD SFI {sfi} record {number} answered {sw:04X}"
                    )
                try:
                    items = tlv.decode(record)
                    if len(items) != 1 or items[0].tag != 0x70:
                        raise tlv.TlvError("record is not a 70 template")
                    for key, value in tlv.flatten(items[0].value).items():
                        data.setdefault(key, value)
                except tlv.TlvError as e:
                    raise self.fail("E_CARD_DATA", f"SFI {sfi} record {number}: {e}") from None
        return data

    @staticmethod
    def _wants_offline_pin(cvm: bytes) -> bool:
        rules = cvm[8:]
        return any(rules[i] & 0x3F == 0x01 for i in range(0, len(rules) - 1, 2))

    def _pin_tries(self) -> int | None:
        data, sw = self.card.transmit(bytes([0x80, 0xCA, 0x9F, 0x17, 0x00]))
        value = tlv.find(data, 0x9F17) if sw == 0x9000 else None
        return value[0] if value else None

    def _ac_result(self, response: bytes) -> tuple[int, int, bytes, bytes]:
        """CID, ATC, application cryptogram and issuer application data (format 1 or 2)."""
        try:
            items = tlv.decode(response)
        except tlv.TlvError as e:
            raise self.fail("E_CARD_DATA", f"malformed GENERATE AC response: {e}") from None
        if items and items[0].tag == 0x80 and len(items[0].value) >= 3:
            value = items[0].value
            return value[0], int.from_bytes(value[1:3], "big"), value[3:11], value[11:]
        cid = tlv.find(response, 0x9F27)
        atc = tlv.find(response, 0x9F36)
        if not cid or not atc:
            raise self.fail("E_CARD_DATA", "GENERATE AC response lacks CID or ATC")
        cryptogram = tlv.find(response, 0x9F26) or b""
        issuer_data = tlv.find(response, 0x9F10) or b""
        return cid[0], int.from_bytes(atc, "big"), cryptogram, issuer_data
