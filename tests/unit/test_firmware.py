"""Firmware image format: signing, verification, tampering, malformed input."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from hil import firmware
from hil.errors import ConfigError
from hil.firmware import (
    IMAGE_FORMAT,
    canonical_manifest,
    image_sha256,
    load_image,
    parse_image,
    sign_manifest,
    verify,
)
from hil.suite import FIXTURES

REPO = Path(__file__).resolve().parents[2]
FIRMWARE_DIR = FIXTURES / "firmware"
ROM_KEY = (REPO / "hil" / "sim" / "rom_key.pub").read_bytes()

MANIFEST: dict[str, Any] = {
    "model": "POS-SIM-A8",
    "version": "2.0.0",
    "build": "unit",
    "build_flags": ["release"],
    "seeded_defects": [],
}


@pytest.fixture(scope="module")
def key_pem() -> bytes:
    return firmware.generate_private_key_pem()


def test_canonical_manifest_is_sorted_compact_utf8() -> None:
    assert canonical_manifest({"b": 1, "a": "ü"}) == '{"a":"ü","b":1}'.encode()


def test_sign_then_verify(key_pem: bytes) -> None:
    image = sign_manifest(MANIFEST, key_pem)
    assert image["format"] == IMAGE_FORMAT
    parsed = parse_image(image)
    assert parsed.version == "2.0.0"
    assert verify(parsed, firmware.public_key_pem(key_pem))


def test_signature_survives_reformatting(key_pem: bytes, tmp_path: Path) -> None:
    image = sign_manifest(MANIFEST, key_pem)
    path = tmp_path / "img.fw.json"
    path.write_text(json.dumps(image, indent=7), encoding="utf-8")
    assert verify(load_image(path), firmware.public_key_pem(key_pem))


@pytest.mark.parametrize(
    ("field", "value"),
    [("version", "2.0.1"), ("seeded_defects", ["comm_selfcheck_lies"]), ("extra", True)],
)
def test_any_manifest_change_breaks_signature(key_pem: bytes, field: str, value: Any) -> None:
    image = sign_manifest(MANIFEST, key_pem)
    image["manifest"][field] = value
    assert not verify(parse_image(image), firmware.public_key_pem(key_pem))


def test_other_key_does_not_verify(key_pem: bytes) -> None:
    image = parse_image(sign_manifest(MANIFEST, key_pem))
    assert not verify(image, ROM_KEY)


def test_fixture_images_against_rom_key() -> None:
    healthy = load_image(FIRMWARE_DIR / "pos-sim-healthy-1.4.2.fw.json")
    assert healthy.model == "POS-SIM-A8"
    assert healthy.version == "1.4.2"
    assert healthy.manifest.seeded_defects == ()
    assert verify(healthy, ROM_KEY)
    lies = load_image(FIRMWARE_DIR / "pos-sim-comm-lies-1.4.2.fw.json")
    assert lies.manifest.seeded_defects == ("comm_selfcheck_lies",)
    assert verify(lies, ROM_KEY)
    assert not verify(load_image(FIRMWARE_DIR / "tampered-1.4.2.fw.json"), ROM_KEY)


def test_fixture_key_matches_rom_key() -> None:
    pem = (FIRMWARE_DIR / "vendor-test-signing-key.pem").read_bytes()
    assert firmware.public_key_pem(pem) == ROM_KEY


def test_image_sha256(tmp_path: Path) -> None:
    path = tmp_path / "x"
    path.write_bytes(b"abc")
    assert image_sha256(path) == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )


def _write(tmp_path: Path, content: str | bytes) -> Path:
    path = tmp_path / "bad.fw.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def _valid(key_pem: bytes) -> dict[str, Any]:
    return sign_manifest(MANIFEST, key_pem)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda img: img.update(format="pos-hil-fw/2"), "format"),
        (lambda img: img.pop("manifest"), "manifest"),
        (lambda img: img["manifest"].pop("version"), "manifest.version"),
        (lambda img: img["manifest"].update(model=""), "manifest.model"),
        (lambda img: img["manifest"].update(build=3), "manifest.build"),
        (lambda img: img["manifest"].update(build_flags="release"), "manifest.build_flags"),
        (lambda img: img["manifest"].update(seeded_defects=[1]), "manifest.seeded_defects"),
        (lambda img: img.update(signature="zz" * 64), "signature"),
        (lambda img: img.update(signature="ab"), "signature"),
        (lambda img: img.update(vendor="x"), "vendor"),
    ],
)
def test_malformed_image_names_file_and_field(
    key_pem: bytes, tmp_path: Path, mutate: Any, field: str
) -> None:
    image = _valid(key_pem)
    mutate(image)
    path = _write(tmp_path, json.dumps(image))
    with pytest.raises(ConfigError) as err:
        load_image(path)
    assert str(path) in str(err.value)
    assert f"'{field}'" in str(err.value)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("{not json", "invalid JSON: Expecting property name"),
        (b"\xff\xfe", "invalid UTF-8 at byte 0"),
        ("[]", "JSON is not an object but list"),
    ],
)
def test_unparseable_image(tmp_path: Path, content: str | bytes, words: str) -> None:
    path = _write(tmp_path, content)
    with pytest.raises(ConfigError) as err:
        load_image(path)
    assert str(err.value) == f"{path}: firmware image: {words}" or str(err.value).startswith(
        f"{path}: firmware image: {words}"
    )


def _signed_text(key_pem: bytes, manifest: dict[str, Any]) -> str:
    return json.dumps(sign_manifest(manifest, key_pem), indent=2)


def test_duplicate_key_in_signed_manifest_is_refused(key_pem: bytes, tmp_path: Path) -> None:
    # Signed with seeded_defects [] (the value Python's json keeps, the last one); a
    # terminal whose parser keeps the first key would run the defect.
    text = _signed_text(key_pem, MANIFEST).replace(
        '"seeded_defects": []', '"seeded_defects": ["comm_selfcheck_lies"], "seeded_defects": []'
    )
    assert verify(parse_image(json.loads(text)), firmware.public_key_pem(key_pem))  # the hole
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_image(path)
    assert str(err.value) == (
        f"{path}: firmware image: not strict JSON: duplicate key 'seeded_defects'"
    )
    with pytest.raises(ConfigError, match="duplicate key 'seeded_defects'"):
        firmware.image_from_bytes(text.encode(), source="flash")


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (('"format"', '"format": "x", "format"'), "not strict JSON: duplicate key 'format'"),
        (('"build": "unit"', '"build": NaN'), "invalid JSON: NaN is not JSON"),
        (('"build": "unit"', '"build": 1e400'), "not strict JSON: number 1e400 is beyond"),
        (('"build": "unit"', '"build": "\\udc00"'), "not strict JSON: unpaired surrogate"),
    ],
)
def test_image_that_is_not_strict_json_is_refused(
    key_pem: bytes, tmp_path: Path, edit: tuple[str, str], reason: str
) -> None:
    text = _signed_text(key_pem, MANIFEST).replace(*edit, 1)
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_image(path)
    assert str(err.value).startswith(f"{path}: firmware image: {reason}")
    assert "\n" not in str(err.value)


def test_manifest_without_canonical_form_is_refused_not_a_crash(key_pem: bytes) -> None:
    # Built in Python rather than read from a file: parse_image and verify must still
    # refuse it with ConfigError, never UnicodeEncodeError or a signature over "NaN".
    with pytest.raises(ConfigError, match="manifest to sign has no canonical JSON form"):
        sign_manifest({**MANIFEST, "build": float("nan")}, key_pem)
    image = _valid(key_pem)
    image["manifest"]["build"] = "\ud800"
    with pytest.raises(ConfigError, match="field 'manifest': has no canonical JSON form"):
        parse_image(image, source="hand-made")
    good = parse_image(_valid(key_pem), source="hand-made")
    odd = replace(good, manifest=replace(good.manifest, raw={"x": "\ud800"}))
    with pytest.raises(ConfigError, match="hand-made: field 'manifest'"):
        verify(odd, firmware.public_key_pem(key_pem))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_image(tmp_path / "nope.fw.json")


def test_bad_keys_raise_config_error(key_pem: bytes) -> None:
    image = parse_image(_valid(key_pem))
    with pytest.raises(ConfigError):
        verify(image, b"not a key")
    with pytest.raises(ConfigError):
        sign_manifest(MANIFEST, ROM_KEY)  # a public key cannot sign


@pytest.mark.parametrize(
    ("version", "ok"),
    [("1.4.2", True), ("2.0.0-rc1", True), ("1.4", False), ("v1.4.2", False), ("", False)],
)
def test_version_is_valid(version: str, ok: bool) -> None:
    assert firmware.version_is_valid(version) is ok


def test_cli_sign_edit_verify(key_pem: bytes, tmp_path: Path, capsys: Any) -> None:
    key = tmp_path / "k.pem"
    key.write_bytes(key_pem)
    pub = tmp_path / "k.pub"
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps(MANIFEST), encoding="utf-8")
    out = tmp_path / "i.fw.json"
    bad = tmp_path / "t.fw.json"
    assert firmware.main(["pubkey", "--key", str(key), "--out", str(pub)]) == 0
    sign = ["sign", "--key", str(key), "--manifest", str(manifest), "--out", str(out)]
    assert firmware.main(sign) == 0
    assert firmware.main(["verify", "--pub", str(pub), str(out)]) == 0
    assert "signature valid" in capsys.readouterr().out
    assert firmware.main(["edit", str(out), "--set", "version=9.9.9", "--out", str(bad)]) == 0
    assert load_image(bad).version == "9.9.9"
    assert firmware.main(["verify", "--pub", str(pub), str(bad)]) == 1
    assert "INVALID" in capsys.readouterr().out
    assert firmware.main(["keygen", "--out", str(key)]) == 2  # never overwrites a key


def test_cli_refuses_a_manifest_with_a_duplicate_key(
    key_pem: bytes, tmp_path: Path, capsys: Any
) -> None:
    key = tmp_path / "k.pem"
    key.write_bytes(key_pem)
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps(MANIFEST)[:-1] + ', "version": "9.9.9"}', encoding="utf-8")
    out = tmp_path / "i.fw.json"
    sign = ["sign", "--key", str(key), "--manifest", str(manifest), "--out", str(out)]
    assert firmware.main(sign) == 2
    assert capsys.readouterr().err == (
        f"error: {manifest}: cannot read manifest: not strict JSON: duplicate key 'version'\n"
    )
    assert not out.exists()
