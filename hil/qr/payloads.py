"""QR payloads a terminal scans: EMVCo merchant-presented codes and wallet auth codes.

Merchant-presented mode (EMV QRCPS-MPM): a string of ID-length-value data objects;
ID is two digits, length two digits counting *characters* of the value, the value
follows. The first object is ``00`` (payload format indicator, ``01``), the last is
``63`` with a four-hex-digit CRC: CRC-16/CCITT-FALSE over the UTF-8 bytes of the
whole payload up to and including ``6304``. Check value of the CRC itself:
``crc16_ccitt_false(b"123456789") == 0x29B1``.

Consumer-presented wallet codes are the numeric "付款码" a phone shows:

| wallet | length | prefix |
| --- | --- | --- |
| WeChat Pay | 18 digits | 10-15 |
| Alipay | 16-24 digits | 25-30 |
| UnionPay (云闪付) | 19 digits | 62 |

Our generator never produces a Luhn-valid number, so no synthetic auth code can pass
for a card number (and be masked) in a report.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from hil.masking import luhn_valid
from hil.protocol.framing import crc16_ccitt_false

CRC_TAG = "63"
FORMAT_TAG = "00"
#: EMVCo templates whose value is itself a list of data objects.
TEMPLATE_TAGS = frozenset({*(f"{n:02d}" for n in range(26, 52)), "62", "64"})


class PayloadError(ValueError):
    """A QR payload is malformed; ``code`` is the terminal error code it maps to."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def crc16_hex(text: str) -> str:
    """CRC-16/CCITT-FALSE of ``text`` (UTF-8) as four upper-case hex digits."""
    return f"{crc16_ccitt_false(text.encode('utf-8')):04X}"


@dataclass(frozen=True)
class DataObject:
    tag: str
    value: str

    def encode(self) -> str:
        if len(self.value) > 99:
            raise PayloadError("E_QR_FORMAT", f"tag {self.tag}: value longer than 99 characters")
        return f"{self.tag}{len(self.value):02d}{self.value}"


def encode_tlv(objects: Iterable[DataObject]) -> str:
    return "".join(o.encode() for o in objects)


def parse_tlv(text: str, *, where: str = "payload") -> list[DataObject]:
    """Split ``text`` into data objects; PayloadError names the offset at fault."""
    objects: list[DataObject] = []
    at = 0
    while at < len(text):
        header = text[at : at + 4]
        if len(header) < 4:
            raise PayloadError(
                "E_QR_FORMAT", f"{where}: truncated data object at character {at}: {header!r}"
            )
        tag, length_text = header[:2], header[2:]
        if not (tag.isascii() and tag.isdigit()):
            raise PayloadError("E_QR_FORMAT", f"{where}: ID {tag!r} at character {at} not 2 digits")
        if not (length_text.isascii() and length_text.isdigit()):
            raise PayloadError(
                "E_QR_FORMAT", f"{where}: tag {tag} at character {at}: length {length_text!r}"
            )
        length = int(length_text)
        value = text[at + 4 : at + 4 + length]
        if len(value) != length:
            raise PayloadError(
                "E_QR_FORMAT",
                f"{where}: tag {tag} at character {at} says {length} characters, "
                f"{len(value)} remain",
            )
        objects.append(DataObject(tag, value))
        at += 4 + length
    return objects


@dataclass(frozen=True)
class MerchantQr:
    """A parsed, CRC-checked EMVCo merchant-presented payload."""

    payload: str
    objects: tuple[DataObject, ...]

    def value(self, tag: str) -> str | None:
        for o in self.objects:
            if o.tag == tag:
                return o.value
        return None

    @property
    def fields(self) -> dict[str, str]:
        return {o.tag: o.value for o in self.objects}

    @property
    def dynamic(self) -> bool:
        return self.value("01") == "12"


def build_mpm(fields: Mapping[str, str] | Iterable[tuple[str, str]]) -> str:
    """Payload from top-level fields (tag -> value, in order), CRC appended.

    ``00`` is put first (``01`` if absent); ``63`` must not be given.
    """
    items = list(fields.items()) if isinstance(fields, Mapping) else list(fields)
    tags = [tag for tag, _ in items]
    if CRC_TAG in tags:
        raise PayloadError("E_QR_FORMAT", "tag 63 (CRC) is computed, do not give it")
    for tag in tags:
        if len(tag) != 2 or not tag.isdigit():
            raise PayloadError("E_QR_FORMAT", f"tag {tag!r} is not two digits")
    if len(set(tags)) != len(tags):
        raise PayloadError("E_QR_FORMAT", f"duplicate tags in {tags}")
    ordered = [(t, v) for t, v in items if t == FORMAT_TAG] or [(FORMAT_TAG, "01")]
    ordered += [(t, v) for t, v in items if t != FORMAT_TAG]
    body = encode_tlv(DataObject(t, v) for t, v in ordered) + CRC_TAG + "04"
    return body + crc16_hex(body)


def with_crc(payload: str, crc: str) -> str:
    """``payload`` with its four CRC digits replaced (to make a deliberately bad one)."""
    if payload[-8:-4] != "6304":
        raise PayloadError("E_QR_FORMAT", "payload does not end with a 6304 CRC object")
    return payload[:-4] + crc


def looks_like_mpm(payload: str) -> bool:
    """An EMVCo MPM starts with the payload format indicator ``000201``."""
    return payload.startswith("000201")


def parse_mpm(payload: str) -> MerchantQr:
    """Parse and validate an MPM payload: TLV well-formed, ``00`` first, ``63`` last, CRC.

    PayloadError code ``E_QR_CRC`` for a wrong CRC, ``E_QR_FORMAT`` for anything else.
    """
    objects = parse_tlv(payload)
    if not objects or objects[0].tag != FORMAT_TAG or objects[0].value != "01":
        raise PayloadError("E_QR_FORMAT", "first data object must be 00 (format indicator 01)")
    last = objects[-1]
    if last.tag != CRC_TAG:
        raise PayloadError("E_QR_FORMAT", "last data object must be 63 (CRC)")
    if len(last.value) != 4 or any(c not in "0123456789ABCDEFabcdef" for c in last.value):
        raise PayloadError("E_QR_FORMAT", f"CRC {last.value!r} is not four hex digits")
    expected = crc16_hex(payload[:-4])
    if last.value.upper() != expected:
        raise PayloadError(
            "E_QR_CRC", f"merchant QR CRC invalid: payload says {last.value}, computed {expected}"
        )
    tags = [o.tag for o in objects]
    duplicates = sorted({t for t in tags if tags.count(t) > 1})
    if duplicates:
        raise PayloadError("E_QR_FORMAT", f"duplicate data objects {duplicates}")
    for o in objects:
        if o.tag in TEMPLATE_TAGS:
            parse_tlv(o.value, where=f"template {o.tag}")
    return MerchantQr(payload, tuple(objects))


# --- consumer-presented wallet auth codes ------------------------------------------

Wallet = Literal["wechat", "alipay", "unionpay"]


@dataclass(frozen=True)
class WalletFormat:
    wallet: Wallet
    title: str
    lengths: tuple[int, ...]
    prefixes: tuple[str, ...]

    def matches(self, code: str) -> bool:
        return (
            code.isascii()
            and code.isdigit()
            and len(code) in self.lengths
            and code.startswith(self.prefixes)
        )


WALLET_FORMATS: tuple[WalletFormat, ...] = (
    WalletFormat("wechat", "WeChat Pay", (18,), tuple(str(p) for p in range(10, 16))),
    WalletFormat("alipay", "Alipay", tuple(range(16, 25)), tuple(str(p) for p in range(25, 31))),
    WalletFormat("unionpay", "UnionPay", (19,), ("62",)),
)
WALLETS: tuple[Wallet, ...] = tuple(f.wallet for f in WALLET_FORMATS)


def wallet_format(wallet: str) -> WalletFormat:
    for f in WALLET_FORMATS:
        if f.wallet == wallet:
            return f
    raise PayloadError("E_QR_FORMAT", f"unknown wallet {wallet!r} (known: {', '.join(WALLETS)})")


def classify_wallet(code: str) -> Wallet | None:
    """Which wallet's auth-code format ``code`` has, or None."""
    for f in WALLET_FORMATS:
        if f.matches(code):
            return f.wallet
    return None


def wallet_auth_code(wallet: str, *, seed: int = 0, length: int | None = None) -> str:
    """A synthetic auth code in ``wallet``'s format, reproducible from ``seed``.

    Never Luhn-valid, so it cannot pass for a card number.
    """
    fmt = wallet_format(wallet)
    size = length if length is not None else fmt.lengths[0]
    if size not in fmt.lengths:
        raise PayloadError("E_QR_FORMAT", f"{fmt.title} codes are {fmt.lengths} digits, not {size}")
    rng = random.Random(f"{wallet}:{seed}:{size}")
    prefix = rng.choice(fmt.prefixes)
    digits = prefix + "".join(rng.choice("0123456789") for _ in range(size - len(prefix)))
    if luhn_valid(digits):
        # Change the last digit: exactly one of ten last digits is Luhn-valid.
        digits = digits[:-1] + str((int(digits[-1]) + 1) % 10)
    return digits


PayloadKind = Literal["emv_mpm", "wallet", "text"]


def kind_of(payload: str) -> PayloadKind:
    if looks_like_mpm(payload):
        return "emv_mpm"
    if classify_wallet(payload) is not None:
        return "wallet"
    return "text"
