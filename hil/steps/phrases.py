"""How step phrases are written and what their parameters mean.

Every step of hil's library is declared with ``phrase("... {name:Type} ...")``: a
pytest-bdd ``parse`` parser whose parameters all have one of the types below. A type
matches its text in the Gherkin line and converts it (``"12.34"`` -> 1234 minor
units, ``"250 ms"`` -> a ``Duration``, ``"blur_sigma=1.5"`` -> a ``Degradation``), so
steps receive typed values and never parse strings themselves. A value that has the
right shape but is wrong (an unknown self-check item, a degradation out of range)
stops the scenario with a ``StepValueError`` that quotes the step. The catalogue
(``hil steps``, docs/steps.md) describes each parameter from this table.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from string import Formatter
from typing import Any

from pytest_bdd import parsers

from hil.contract.cards import ENTRY_MODES
from hil.contract.maintenance import APP_FAULT_LINES, UPDATE_PHASES
from hil.contract.security import BIOMETRIC_MODALITIES, POLICY_CODES
from hil.contract.selfcheck import FAULT_LINE_CODES, ITEM_NAMES
from hil.errors import ConfigError
from hil.host.simulator import TRANSACTIONS
from hil.instruments.magstripe import SwipeFault
from hil.qr.degrade import AXES, Degradation
from hil.qr.payloads import WALLETS


class StepValueError(ConfigError):
    """A step's parameter has the right shape but a value no step can use."""


class _BadValue(Exception):
    """Raised by a type's conversion; not a ValueError on purpose, which the ``parse``
    library would swallow as "no match" and turn into a confusing "step not found"."""


@dataclass(frozen=True)
class Duration:
    """A time span written in a step ("250 ms", "1.5 seconds")."""

    ms: float

    @property
    def seconds(self) -> float:
        return self.ms / 1000

    def whole_ms(self) -> int:
        return round(self.ms)


class StepType:
    """One parameter type: the text it matches, how it converts, and how to explain it."""

    # what the ``parse`` library reads off a type converter
    regex_group_count = 0

    def __init__(
        self,
        name: str,
        pattern: str,
        convert: Callable[[str], Any],
        *,
        description: str,
        example: str,
    ) -> None:
        self.name = name
        self.pattern = pattern
        self.convert = convert
        self.description = description
        self.example = example

    def __call__(self, text: str) -> Any:
        try:
            return self.convert(text)
        except (ValueError, KeyError) as e:
            message = e.args[0] if e.args else str(e)
            raise _BadValue(f"{self.name} {text!r}: {message}") from None


def _one_of(kind: str, known: tuple[str, ...]) -> Callable[[str], str]:
    def convert(text: str) -> str:
        if text not in known:
            raise ValueError(f"unknown {kind} (known: {', '.join(known)})")
        return text

    return convert


def _amount(text: str) -> int:
    """ "12.34" -> 1234: an amount in major units as written, in minor units."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError("not an amount") from None
    return int(value * 100)


_DURATION_UNITS = {"ms": 1.0, "s": 1000.0, "second": 1000.0, "seconds": 1000.0}


def _duration(text: str) -> Duration:
    number, _, unit = text.partition(" ")
    return Duration(float(number) * _DURATION_UNITS[unit])


def _config_value(text: str) -> Any:
    """JSON if it parses (45000, true, "x"), else the text itself."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _levels(text: str) -> tuple[float, ...]:
    try:
        levels = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise ValueError("expected numbers separated by commas") from None
    return levels


def _code(text: str) -> str:
    if not (text == "OK" or (text.startswith("E_") and text.replace("_", "").isalnum())):
        raise ValueError("a code is OK or E_ followed by upper-case words")
    return text


def _response_code(text: str) -> str:
    if len(text) != 2 or not text.isalnum():
        raise ValueError("an ISO 8583 response code is two characters")
    return text


_SWIPES: dict[str, SwipeFault] = {"": "none", " with a bad LRC": "bad_lrc", " partially": "partial"}
_PROBLEMS = {"fault": "fail", "warning": "warn"}
#: A card's expiry month, in months from today's.
_EXPIRY_MONTHS = {"last month": -1, "this month": 0, "next month": 1}

_QUOTED = r'[^"]+'
BOOT_REASONS = ("power_on", "reboot", "power_loss")


def _text(name: str, description: str, example: str) -> StepType:
    return StepType(name, _QUOTED, str, description=description, example=example)


#: Every parameter type a step phrase may use, by the name used in phrases.
STEP_TYPES: dict[str, StepType] = {
    t.name: t
    for t in (
        StepType(
            "Item",
            _QUOTED,
            _one_of("self-check item", ITEM_NAMES),
            description="a self-check item: " + ", ".join(ITEM_NAMES),
            example="comm",
        ),
        StepType(
            "Code",
            _QUOTED,
            _code,
            description="a code the terminal reports: OK or E_...",
            example="E_COMM_TIMEOUT",
        ),
        StepType(
            "ResponseCode",
            _QUOTED,
            _response_code,
            description="an ISO 8583 response code (field 39)",
            example="97",
        ),
        StepType(
            "ProblemKind",
            "fault|warning",
            _PROBLEMS.__getitem__,
            description="fault (a failed item) or warning (a warned item)",
            example="fault",
        ),
        StepType(
            "FaultLine",
            _QUOTED,
            _one_of("fault line", tuple(FAULT_LINE_CODES)),
            description="a rig fault line: " + ", ".join(FAULT_LINE_CODES),
            example="reader_power",
        ),
        StepType(
            "EntryMode",
            _QUOTED,
            _one_of("entry mode", ENTRY_MODES),
            description="how a card was read: " + ", ".join(ENTRY_MODES),
            example="chip",
        ),
        StepType(
            "CardEntryMode",
            "chip|contactless",
            str,
            description="how the rig presents a card for a sale: chip (inserted) or "
            "contactless (tapped)",
            example="contactless",
        ),
        StepType(
            "SaleEntryMode",
            "chip|contactless|QR",
            lambda text: "qr" if text == "QR" else text,
            description="the instrument a sale asks for: chip, contactless or QR",
            example="QR",
        ),
        StepType(
            "SwipeManner",
            "(?: with a bad LRC| partially)?",
            _SWIPES.__getitem__,
            description='how the card is swiped: nothing (a clean swipe), " with a bad LRC" '
            'or " partially"',
            example=" with a bad LRC",
        ),
        StepType(
            "LedColour",
            "off|green|red|blue|amber",
            str,
            description="an indicator LED's state: off, green, red, blue or amber",
            example="green",
        ),
        StepType(
            "Wallet",
            _QUOTED,
            _one_of("wallet", tuple(WALLETS)),
            description="a wallet: " + ", ".join(WALLETS),
            example="alipay",
        ),
        StepType(
            "Degradation",
            _QUOTED,
            Degradation.parse,
            description="QR degradations NAME=NUMBER separated by commas (docs/qr.md), "
            "NAME one of " + ", ".join(AXES),
            example="blur_sigma=1.5, contrast=0.4",
        ),
        StepType(
            "Axis",
            _QUOTED,
            _one_of("degradation axis", AXES),
            description="a QR degradation axis: " + ", ".join(AXES),
            example="blur_sigma",
        ),
        StepType(
            "Levels",
            _QUOTED,
            _levels,
            description="levels of a degradation axis, numbers separated by commas",
            example="0, 1, 1.5, 2.5",
        ),
        StepType(
            "Amount",
            r"\d+(?:\.\d{1,2})?",
            _amount,
            description="an amount in major units, e.g. 12.34 (sent as 1234 minor units)",
            example="12.34",
        ),
        StepType(
            "Duration",
            r"\d+(?:\.\d+)? (?:ms|s|seconds?)",
            _duration,
            description="a time: a number, a space and ms, s or seconds",
            example="250 ms",
        ),
        StepType(
            "Count",
            r"\d+",
            int,
            description="a whole number",
            example="3",
        ),
        StepType(
            "Retries",
            r"\d+ retr(?:y|ies)",
            lambda text: int(text.partition(" ")[0]),
            description='a number of retries: "1 retry", "3 retries"',
            example="1 retry",
        ),
        StepType(
            "ConfigValue",
            r'[^"]*',
            _config_value,
            description="a configuration value: JSON (45000, true) or else text",
            example="45000",
        ),
        StepType(
            "HostTransaction",
            _QUOTED,
            _one_of("host transaction", TRANSACTIONS),
            description="a kind of request the host answers: " + ", ".join(TRANSACTIONS),
            example="echo",
        ),
        StepType(
            "ExpiryMonth",
            "last month|this month|next month",
            _EXPIRY_MONTHS.__getitem__,
            description="a card's expiry month relative to today: last month, this month or "
            "next month",
            example="this month",
        ),
        _text("ConfigKey", "a terminal configuration key", "comm.response_timeout_ms"),
        _text("Text", "a text as the terminal must say it", "tamper switch open"),
        StepType(
            "BootReason",
            _QUOTED,
            _one_of("boot reason", BOOT_REASONS),
            description="why the terminal booted: " + ", ".join(BOOT_REASONS),
            example="reboot",
        ),
        _text("CardName", "a card profile of the rig's card folder", "visa-credit"),
        _text("PayloadName", "a merchant QR payload of the QR fixtures", "dynamic_cny"),
        _text("ParameterSet", "a host parameter set file of the host fixtures", "params-v2.json"),
        _text("Version", "a parameter set version", "2024.12.01"),
        _text("SerialNumber", "a terminal serial number", "SIM8A9999999"),
        _text(
            "FirmwareImage",
            "a firmware image file beside the rig's firmware image",
            "pos-sim-healthy-1.5.0.fw.json",
        ),
        _text("FirmwareVersion", "a firmware version", "1.5.0"),
        StepType(
            "UpdatePhase",
            _QUOTED,
            _one_of("update phase", UPDATE_PHASES),
            description="a phase of a firmware update: " + ", ".join(UPDATE_PHASES),
            example="writing",
        ),
        StepType(
            "AppFaultLine",
            _QUOTED,
            _one_of("application fault line", tuple(APP_FAULT_LINES)),
            description="a fault line that fails the payment application once: "
            + ", ".join(APP_FAULT_LINES),
            example="app_crash",
        ),
        StepType(
            "PasswordKind",
            _QUOTED,
            _one_of("kind of weak password", tuple(POLICY_CODES)),
            description="a password that breaks one rule of the password policy: "
            + ", ".join(POLICY_CODES),
            example="too short",
        ),
        StepType(
            "Modality",
            "fingerprint|face",
            _one_of("biometric modality", BIOMETRIC_MODALITIES),
            description="a biometric modality: " + ", ".join(BIOMETRIC_MODALITIES),
            example="fingerprint",
        ),
        _text("Subject", "a synthetic person (their name) or a terminal user", "alice"),
        _text("MarkNote", "a label for a batch of log marker entries", "old"),
    )
}


class Phrase(parsers.parse):
    """A step phrase whose parameters are typed with ``STEP_TYPES``."""

    def __init__(self, format: str) -> None:
        for _, field, spec, _ in Formatter().parse(format):
            if field is not None and spec not in STEP_TYPES:
                raise TypeError(
                    f"step phrase {format!r}: parameter {{{field}}} needs a type, one of "
                    + ", ".join(STEP_TYPES)
                )
        super().__init__(format, extra_types=STEP_TYPES, case_sensitive=True)

    def is_matching(self, name: str) -> bool:
        try:
            return super().is_matching(name)
        except _BadValue as e:
            raise StepValueError(f'step "{name}": {e}') from None

    def parse_arguments(self, name: str) -> dict[str, Any]:
        try:
            return super().parse_arguments(name)
        except _BadValue as e:
            raise StepValueError(f'step "{name}": {e}') from None


def phrase(format: str) -> Phrase:
    """The parser for a step phrase, e.g. ``phrase('the "{item:Item}" self-check passes')``."""
    return Phrase(format)


def parameters(format: str) -> list[tuple[str, StepType]]:
    """The parameters of a phrase, in order: (name, type)."""
    return [
        (field, STEP_TYPES[spec])
        for _, field, spec, _ in Formatter().parse(format)
        if field is not None and spec is not None
    ]
