"""Card profiles: the fixtures load; bad input is one line naming the file and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from hil.cards.profile import DEFAULT_PROFILES, ProfileLibrary, load_profile
from hil.errors import ConfigError
from hil.masking import luhn_valid

GOOD = """
pan: "4761739001010010"
expiry: "3012"
service_code: "201"
cardholder_name: "TEST/CARD"
applications:
  - aid: "A0000000031010"
    label: "VISA"
"""


def test_every_fixture_loads_with_a_luhn_valid_test_pan() -> None:
    library = ProfileLibrary(DEFAULT_PROFILES)
    profiles = library.load_all()
    names = {p.name for p in profiles}
    assert {
        "visa-credit",
        "mastercard-debit",
        "unionpay-debit",
        "mute",
        "no-payment-app",
        "pin-blocked",
        "expired",
        "declined",
    } <= names
    for profile in profiles:
        assert luhn_valid(profile.pan)
    assert library.get("unionpay-debit").preferred_application().aid == "A000000333010101"
    assert library.get("pin-blocked").pin_try_counter == 0
    assert library.get("expired").is_expired()
    assert not library.get("visa-credit").is_expired()
    assert library.get("mute").behaviour == "mute"
    assert library.get("declined").generate_ac == "decline"


def write(tmp_path: Path, text: str, name: str = "card.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_good_profile(tmp_path: Path) -> None:
    profile = load_profile(write(tmp_path, GOOD))
    assert profile.name == "card" and profile.masked_pan == "476173******0010"
    assert profile.expiry_date().isoformat() == "2030-12-31"


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        (('"4761739001010010"', '"4761739001010011"'), "pan", "fails the Luhn check"),
        (('"4761739001010010"', '"4000056655665556"'), "pan", "not a test range"),
        (('"4761739001010010"', '"47617390"'), "pan", "13 to 19 digits"),
        (('expiry: "3012"', 'expiry: "3013"'), "expiry", "YYMM"),
        (('service_code: "201"', 'service_code: "20"'), "service_code", "3 digits"),
        (('"TEST/CARD"', '"test card"'), "cardholder_name", "not allowed"),
        (('"A0000000031010"', '"A00000"'), "applications[0].aid", "5 to 16 bytes"),
        (('"A0000000031010"', '"XYZ"'), "applications[0].aid", "hexadecimal"),
        (
            ('label: "VISA"', 'label: "VISA"\n    colour: red'),
            "applications[0].colour",
            "unknown key",
        ),
        (('service_code: "201"', 'service_code: "201"\nbehaviour: sleepy'), "behaviour", "must be"),
        (
            ('service_code: "201"', 'service_code: "201"\npin_try_counter: 5'),
            "pin_try_counter",
            "pin_try_limit",
        ),
    ],
)
def test_errors_name_file_and_field(
    tmp_path: Path, change: tuple[str, str], field: str, words: str
) -> None:
    path = write(tmp_path, GOOD.replace(*change))
    with pytest.raises(ConfigError) as info:
        load_profile(path)
    message = str(info.value)
    assert "card.yaml: " in message and f"{field}: " in message and words in message, message
    assert "\n" not in message
    assert "4761739001010011" not in message and "4000056655665556" not in message


def test_missing_field_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"card\.yaml: pan: required field missing"):
        load_profile(write(tmp_path, GOOD.replace('pan: "4761739001010010"\n', "")))
    with pytest.raises(ConfigError, match=r"card.yaml: line \d+: invalid YAML"):
        load_profile(write(tmp_path, "pan: [unclosed\n"))
    with pytest.raises(ConfigError, match="top level"):
        load_profile(write(tmp_path, "- just a list\n"))
    with pytest.raises(ConfigError, match="not found"):
        load_profile(tmp_path / "nope.yaml")


def test_library_names_known_profiles_when_one_is_missing() -> None:
    with pytest.raises(ConfigError, match=r"'nope' not found .*known: .*visa-credit"):
        ProfileLibrary(DEFAULT_PROFILES).get("nope")


def test_repr_never_shows_the_pan_or_pin() -> None:
    # Allure records step arguments by repr; a profile must not leak through it.
    profile = ProfileLibrary(DEFAULT_PROFILES).get("visa-credit")
    for text in (repr(profile), str(profile), f"{[profile]}"):
        assert profile.pan not in text and "1234" not in text and "TEST/VISA" not in text
        assert "476173******0010" in text
