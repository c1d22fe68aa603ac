"""Card profiles: synthetic test cards described in YAML (fixtures/cards/*.yaml).

A profile is validated data: what the card holds (PAN, expiry, applications,
records, PIN and its try counter) and how it behaves (mute, no payment application,
a GENERATE AC that declines...). Every error is one line naming the file and the
field, e.g. ``fixtures/cards/x.yaml: pan: fails the Luhn check``.

Only PANs from the test BINs below are accepted, so a real card number cannot slip
into the fixtures by accident (see docs/cards.md to add a test range).
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hil.errors import ConfigError
from hil.masking import luhn_valid, mask_pan
from hil.suite import FIXTURES

DEFAULT_PROFILES = FIXTURES / "cards"

#: BINs (first six digits) of published scheme test ranges; nothing else is loaded.
TEST_BINS: dict[str, str] = {
    "476173": "Visa test cards (ADVT range)",
    "411111": "Visa public test number range",
    "541333": "Mastercard test cards (M-TIP range)",
    "222300": "Mastercard 2-series test range",
    "625094": "UnionPay test cards",
    "623456": "UnionPay test debit range",
}

_HEX = re.compile(r"^(?:[0-9A-Fa-f]{2})*$")

Behaviour = Literal["normal", "mute", "no_payment_app"]
AcDecision = Literal["approve", "online", "decline"]
Interface = Literal["contact", "contactless", "magstripe"]


def _hex(value: str, what: str, *, min_bytes: int = 0, max_bytes: int = 255) -> str:
    if not isinstance(value, str) or not _HEX.fullmatch(value):
        raise ValueError(f"{what} must be hexadecimal bytes (even number of 0-9A-F)")
    n = len(value) // 2
    if not min_bytes <= n <= max_bytes:
        raise ValueError(f"{what} must be {min_bytes} to {max_bytes} bytes, got {n}")
    return value.upper()


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Application(_Strict):
    aid: str
    label: str = Field(min_length=1, max_length=16)
    priority: int = Field(default=1, ge=1, le=15)
    pdol: str = Field(default="9F02069F1A025F2A029A039C019F3704", description="hex DOL")
    aip: str = "1800"

    @field_validator("aid")
    @classmethod
    def _aid(cls, value: str) -> str:
        return _hex(value, "AID", min_bytes=5, max_bytes=16)

    @field_validator("pdol")
    @classmethod
    def _pdol(cls, value: str) -> str:
        return _hex(value, "PDOL", max_bytes=64)

    @field_validator("aip")
    @classmethod
    def _aip(cls, value: str) -> str:
        return _hex(value, "AIP", min_bytes=2, max_bytes=2)

    @field_validator("label")
    @classmethod
    def _label(cls, value: str) -> str:
        if not value.isascii() or not value.isprintable():
            raise ValueError("label must be printable ASCII")
        return value

    @property
    def aid_bytes(self) -> bytes:
        return bytes.fromhex(self.aid)


class Record(_Strict):
    sfi: int = Field(ge=1, le=30)
    record: int = Field(ge=1, le=255)
    tags: dict[str, str] = Field(min_length=1)

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: dict[str, str]) -> dict[str, str]:
        out = {}
        for tag, data in value.items():
            out[_hex(tag, f"tag {tag}", min_bytes=1, max_bytes=3)] = _hex(data, f"tag {tag} value")
        return out


class CardProfile(_Strict):
    name: str = Field(min_length=1)
    description: str = ""
    scheme: str = ""
    pan: str
    expiry: str = Field(description="YYMM")
    effective: str = "2001"
    service_code: str
    cardholder_name: str
    pan_sequence: int = Field(default=1, ge=0, le=99)
    issuer_country: str = "0156"
    currency: str = "0156"
    pin: str = "1234"
    pin_try_counter: int = Field(default=3, ge=0, le=15)
    pin_try_limit: int = Field(default=3, ge=1, le=15)
    interfaces: tuple[Interface, ...] = ("contact", "contactless", "magstripe")
    transport: Literal["t0", "t1"] = "t1"
    behaviour: Behaviour = "normal"
    generate_ac: AcDecision = "online"
    generate_ac_delay_ms: int = Field(default=0, ge=0, le=60000)
    atc: int = Field(default=1, ge=0, le=0xFFFF)
    applications: tuple[Application, ...] = Field(min_length=1)
    records: tuple[Record, ...] = ()
    source: Path = Field(default=Path("<memory>"), exclude=True)

    @field_validator("pan")
    @classmethod
    def _pan(cls, value: str) -> str:
        if not value.isdigit() or not 13 <= len(value) <= 19:
            raise ValueError("must be 13 to 19 digits")
        if not luhn_valid(value):
            raise ValueError(f"{mask_pan(value)} fails the Luhn check")
        if value[:6] not in TEST_BINS:
            raise ValueError(
                f"BIN {value[:6]} is not a test range (allowed: {', '.join(sorted(TEST_BINS))})"
            )
        return value

    @field_validator("expiry", "effective")
    @classmethod
    def _yymm(cls, value: str) -> str:
        if len(value) != 4 or not value.isdigit() or not 1 <= int(value[2:]) <= 12:
            raise ValueError("must be YYMM (4 digits, month 01-12)")
        return value

    @field_validator("service_code")
    @classmethod
    def _service_code(cls, value: str) -> str:
        if len(value) != 3 or not value.isdigit():
            raise ValueError("must be 3 digits")
        return value

    @field_validator("cardholder_name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not 2 <= len(value) <= 26:
            raise ValueError("must be 2 to 26 characters (ISO/IEC 7813 track 1)")
        bad = sorted({c for c in value if c not in " ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/.-'"})
        if bad:
            raise ValueError(
                f"characters {''.join(bad)!r} not allowed (upper case, space, / . - ')"
            )
        return value

    @field_validator("issuer_country", "currency")
    @classmethod
    def _numeric_code(cls, value: str) -> str:
        if len(value) != 4 or not value.isdigit():
            raise ValueError("must be 4 digits (ISO 3166/4217 numeric, zero padded)")
        return value

    @field_validator("pin")
    @classmethod
    def _pin(cls, value: str) -> str:
        if not value.isdigit() or not 4 <= len(value) <= 12:
            raise ValueError("must be 4 to 12 digits")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> CardProfile:
        if self.pin_try_counter > self.pin_try_limit:
            raise ValueError("pin_try_counter: larger than pin_try_limit")
        aids = [a.aid for a in self.applications]
        if len(set(aids)) != len(aids):
            raise ValueError("applications: the same AID twice")
        return self

    # Reports record step arguments by their repr: never the PAN, name or PIN in clear.
    def __repr__(self) -> str:
        return f"CardProfile(name={self.name!r}, pan={self.masked_pan!r})"

    def __str__(self) -> str:
        return repr(self)

    # --- derived -------------------------------------------------------------------

    def expiry_date(self) -> date:
        """The last day the card is valid (cards expire at the end of their month)."""
        year, month = 2000 + int(self.expiry[:2]), int(self.expiry[2:])
        first_of_next = date(year + month // 12, month % 12 + 1, 1)
        return date.fromordinal(first_of_next.toordinal() - 1)

    def is_expired(self, today: date | None = None) -> bool:
        return (today or date.today()) > self.expiry_date()

    @property
    def masked_pan(self) -> str:
        return mask_pan(self.pan)

    def has_interface(self, interface: Interface) -> bool:
        return interface in self.interfaces

    def preferred_application(self) -> Application:
        return min(self.applications, key=lambda a: a.priority)


def month_from(today: date, months: int) -> tuple[int, int]:
    """(year, month) ``months`` calendar months after (before, if negative) ``today``'s."""
    index = today.year * 12 + (today.month - 1) + months
    return index // 12, index % 12 + 1


def expiring(profile: CardProfile, months_from_now: int, today: date | None = None) -> CardProfile:
    """``profile`` with its expiry moved to the month ``months_from_now`` months from
    today's (0: this month, -1: last month): a card profile generated at run time, so a
    scenario about expiry dates means the same thing whenever it runs. Everything that
    carries the expiry (the chip's 5F24 and track-2 equivalent, the stripe's tracks) is
    built from this field. The name says which month it was made for."""
    year, month = month_from(today or date.today(), months_from_now)
    if not 2000 <= year <= 2099:
        raise ConfigError(f"card profile '{profile.name}': expiry year {year} is out of range")
    expiry = f"{year % 100:02d}{month:02d}"
    effective = min(profile.effective, expiry)  # a card is never effective after it expires
    return profile.model_copy(
        update={"expiry": expiry, "effective": effective, "name": f"{profile.name}@{expiry}"}
    )


def _field_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for item in loc:
        out += f"[{item}]" if isinstance(item, int) else ("." if out else "") + str(item)
    return out or "<root>"


def _describe(error: Any) -> tuple[str, str]:
    loc = tuple(error["loc"])
    kind = error["type"]
    words = {
        "missing": "required field missing",
        "extra_forbidden": "unknown key",
        "string_type": "expected string (quote numbers such as PANs and dates)",
        "int_type": "expected integer",
        "literal_error": str(error.get("msg", "")).replace("Input should be", "must be"),
        "tuple_type": "expected a list",
        "dict_type": "expected a mapping",
        "model_type": "expected a mapping",
    }
    if kind in words:
        return _field_path(loc), words[kind]
    message = str(error.get("msg", kind)).removeprefix("Value error, ")
    if not loc and ":" in message:
        field, _, message = message.partition(": ")
        return field, message
    return _field_path(loc), message


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def parse_profile(data: Any, source: Path) -> CardProfile:
    shown = _shown(source)
    if not isinstance(data, dict):
        raise ConfigError(f"{shown}: expected a mapping of profile fields at the top level")
    data = {"name": source.stem, **data}
    try:
        profile = CardProfile.model_validate(data)
    except ValidationError as e:
        errors = e.errors()
        field, message = _describe(errors[0])
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ConfigError(f"{shown}: {field}: {message}{more}") from None
    return profile.model_copy(update={"source": source.resolve()})


def load_profile(path: Path | str) -> CardProfile:
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{_shown(source)}: card profile not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{_shown(source)}: cannot read card profile: {e}") from None
    try:
        # BaseLoader keeps every scalar a string: "0156" stays "0156", and a PAN is
        # never turned into an int. Integers are then converted by field name only.
        data = yaml.load(text, Loader=yaml.BaseLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{_shown(source)}:{where}: invalid YAML") from None
    return parse_profile(_typed(data), source)


_INT_FIELDS = frozenset(
    {
        "pan_sequence",
        "pin_try_counter",
        "pin_try_limit",
        "generate_ac_delay_ms",
        "atc",
        "priority",
        "sfi",
        "record",
    }
)


def _typed(value: Any, key: str = "") -> Any:
    """Integers where the schema wants them; everything else stays the string it was."""
    if isinstance(value, dict):
        return {k: _typed(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return tuple(_typed(v) for v in value)
    if key in _INT_FIELDS and isinstance(value, str) and re.fullmatch(r"-?\d+", value):
        return int(value)
    return value


class ProfileLibrary:
    """The profiles of one folder, by name (file stem or ``name:``)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._cache: dict[str, CardProfile] = {}

    def names(self) -> list[str]:
        return sorted(p.stem for p in self.folder.glob("*.yaml"))

    def get(self, name: str) -> CardProfile:
        if name not in self._cache:
            path = self.folder / f"{name}.yaml"
            if not path.is_file():
                known = ", ".join(self.names()) or "none"
                raise ConfigError(
                    f"card profile '{name}' not found in {_shown(self.folder)} (known: {known})"
                )
            self._cache[name] = load_profile(path)
        return self._cache[name]

    def load_all(self) -> list[CardProfile]:
        return [self.get(name) for name in self.names()]
