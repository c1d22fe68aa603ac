"""QR payload builders: EMVCo MPM TLV and CRC against published vectors, wallet codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hil.errors import ConfigError
from hil.masking import luhn_valid
from hil.qr.fixtures import merchant_names, merchant_payload
from hil.qr.payloads import (
    WALLET_FORMATS,
    WALLETS,
    PayloadError,
    build_mpm,
    classify_wallet,
    crc16_hex,
    kind_of,
    parse_mpm,
    parse_tlv,
    wallet_auth_code,
    with_crc,
)

# The worked example of the EMVCo MPM specification (values in Chinese; lengths count
# characters, the CRC covers the UTF-8 bytes).
EMVCO_SAMPLE = (
    "00020101021229300012D156000000000510A93FO3230Q31280012D15600000001030812345678"
    "520441115802CN5914BEST TRANSPORT6007BEIJING64200002ZH0104最佳运输0202北京"
    "540523.7253031565502016233030412340603***0708A60086670902ME91320016A0112233449988"
    "770708123456786304A13A"
)
# Examples published with open-source MPM libraries (README samples).
PUBLISHED = [
    (EMVCO_SAMPLE, "A13A"),
    (
        "00020101021252044131153137210116372101160123456789ABCDE6016Banteay Meanchey"
        "5913Kuntheas Shop5802KH540510.005303840621201081234567863041FF2",
        "1FF2",
    ),
    (
        "0002010102121516ABCDEF123456789052045311530339254039995802JP5906DONGRI6005TOKYO"
        "62240104hoge0504fuga0704piyo63043FE6",
        "3FE6",
    ),
]


def test_crc_check_value() -> None:
    # CRC-16/CCITT-FALSE catalogue check value
    assert crc16_hex("123456789") == "29B1"


@pytest.mark.parametrize(("payload", "crc"), PUBLISHED)
def test_crc_of_published_payloads(payload: str, crc: str) -> None:
    assert crc16_hex(payload[:-4]) == crc
    parsed = parse_mpm(payload)
    assert parsed.value("63") == crc


def test_emvco_sample_parses_with_character_lengths() -> None:
    parsed = parse_mpm(EMVCO_SAMPLE)
    assert parsed.value("59") == "BEST TRANSPORT"
    assert parsed.value("54") == "23.72"
    assert parsed.value("64") == "0002ZH0104最佳运输0202北京"
    assert parsed.dynamic
    sub = parse_tlv(parsed.value("64") or "")
    assert [(o.tag, o.value) for o in sub] == [("00", "ZH"), ("01", "最佳运输"), ("02", "北京")]


def test_build_reproduces_published_sample() -> None:
    fields = [(o.tag, o.value) for o in parse_mpm(EMVCO_SAMPLE).objects if o.tag != "63"]
    assert build_mpm(fields) == EMVCO_SAMPLE


def test_build_puts_format_first_and_crc_last() -> None:
    payload = build_mpm({"52": "5812", "58": "CN"})
    assert payload.startswith("000201")
    assert payload[-8:-4] == "6304"
    assert payload[-4:] == crc16_hex(payload[:-4])
    assert parse_mpm(payload).fields == {"00": "01", "52": "5812", "58": "CN", "63": payload[-4:]}


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"63": "ABCD"}, "computed"),
        ({"5": "x"}, "two digits"),
        ({"59": "x" * 100}, "longer than 99"),
    ],
)
def test_build_refuses_bad_fields(fields: dict[str, str], words: str) -> None:
    with pytest.raises(PayloadError, match=words):
        build_mpm(fields)


def test_wrong_crc_is_rejected_with_its_code() -> None:
    bad = with_crc(EMVCO_SAMPLE, "A13B")
    with pytest.raises(PayloadError) as e:
        parse_mpm(bad)
    assert e.value.code == "E_QR_CRC"
    assert "A13B" in str(e.value) and "A13A" in str(e.value)


def test_lower_case_crc_digits_are_accepted() -> None:
    assert parse_mpm(EMVCO_SAMPLE[:-4] + "a13a").value("63") == "a13a"


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        ("000201", "last data object must be 63"),
        ("000201010", "truncated"),
        ("0002010102", "says 2 characters, 0 remain"),
        ("00020101X21", "length 'X2'"),
        ("0002026304" + crc16_hex("0002026304"), "first data object"),
        ("00020152045812", "last data object"),
        ("0002AB", "first data object"),
        ("0002016304ZZZZ", "four hex digits"),
        ("00ZZ", "length 'ZZ'"),
        ("A0020101", "ID 'A0'"),
    ],
)
def test_malformed_payloads_are_format_errors(payload: str, words: str) -> None:
    with pytest.raises(PayloadError, match=words) as e:
        parse_mpm(payload)
    assert e.value.code == "E_QR_FORMAT"


def test_duplicate_tags_and_broken_templates_are_format_errors() -> None:
    body = "000201520458125204581263 04"
    payload = body.replace(" ", "")
    payload = payload + crc16_hex(payload)
    with pytest.raises(PayloadError, match="duplicate"):
        parse_mpm(payload)
    body = "000201" + "2605" + "00991" + "6304"
    with pytest.raises(PayloadError, match="template 26") as e:
        parse_mpm(body + crc16_hex(body))
    assert e.value.code == "E_QR_FORMAT"


@pytest.mark.parametrize("wallet", WALLETS)
def test_wallet_codes_have_their_format_and_are_never_luhn_valid(wallet: str) -> None:
    fmt = next(f for f in WALLET_FORMATS if f.wallet == wallet)
    for seed in range(200):
        for length in fmt.lengths:
            code = wallet_auth_code(wallet, seed=seed, length=length)
            assert len(code) == length and code.isdigit()
            assert code.startswith(fmt.prefixes)
            assert classify_wallet(code) == wallet
            assert not luhn_valid(code)
            assert kind_of(code) == "wallet"
    assert wallet_auth_code(wallet, seed=3) == wallet_auth_code(wallet, seed=3)


@pytest.mark.parametrize(
    ("code", "wallet"),
    [
        ("134567890123456789", "wechat"),  # 18 digits, 13
        ("164567890123456789", None),  # 16 is no wallet prefix
        ("13456789012345678", None),  # 17 digits
        ("2845678901234567", "alipay"),  # 16 digits, 28
        ("284567890123456789012345", "alipay"),  # 24 digits
        ("2845678901234567890123456", None),  # 25 digits
        ("6212345678901234567", "unionpay"),  # 19 digits, 62
        ("621234567890123456", None),  # 18 digits
        ("13456789012345678a", None),
        ("１３４５６７８９０１２３４５６７８９", None),  # full-width digits
    ],
)
def test_classify_wallet(code: str, wallet: str | None) -> None:
    assert classify_wallet(code) == wallet


def test_wallet_errors() -> None:
    with pytest.raises(PayloadError, match="unknown wallet"):
        wallet_auth_code("paypal")
    with pytest.raises(PayloadError, match="not 17"):
        wallet_auth_code("wechat", length=17)


def test_kind_of() -> None:
    assert kind_of(EMVCO_SAMPLE) == "emv_mpm"
    assert kind_of("hello") == "text"


def test_fixture_payloads_build_and_validate() -> None:
    names = merchant_names()
    assert {"dynamic_cny", "static_shop", "emvco_annex_sample"} <= set(names)
    for name in names:
        parse_mpm(merchant_payload(name))
    assert merchant_payload("emvco_annex_sample") == EMVCO_SAMPLE


def test_fixture_errors_name_file_and_entry(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    with pytest.raises(ConfigError, match="not found"):
        merchant_payload("x", path)
    path.write_text("{", encoding="utf-8")
    with pytest.raises(ConfigError, match="cannot read"):
        merchant_payload("x", path)
    path.write_text(json.dumps({"format": "other"}), encoding="utf-8")
    with pytest.raises(ConfigError, match="format"):
        merchant_payload("x", path)
    doc = {
        "format": "pos-hil-qr-payloads/1",
        "merchant": {
            "bad_template": {"fields": {"26": "0012COM.EXAMPLE"}},
            "bad_crc": {"payload": with_crc(EMVCO_SAMPLE, "0000")},
            "not_fields": {"fields": ["52"]},
        },
    }
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(ConfigError, match="no such payload"):
        merchant_payload("x", path)
    with pytest.raises(ConfigError, match=r"merchant\.bad_template: template 26"):
        merchant_payload("bad_template", path)
    with pytest.raises(ConfigError, match=r"merchant\.bad_crc: merchant QR CRC invalid"):
        merchant_payload("bad_crc", path)
    with pytest.raises(ConfigError, match=r"merchant\.not_fields\.fields"):
        merchant_payload("not_fields", path)
