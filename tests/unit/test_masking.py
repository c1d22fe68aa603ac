from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from hil.masking import contains_full_pan, luhn_valid, mask_pan, mask_text

VISA_TEST = "4111111111111111"
UNIONPAY_TEST = "6212345678901232"  # Luhn-valid synthetic 16-digit


def _luhn_complete(body: str) -> str:
    for check in "0123456789":
        if luhn_valid(body + check):
            return body + check
    raise AssertionError("unreachable")


def test_luhn_known_values() -> None:
    assert luhn_valid(VISA_TEST)
    assert luhn_valid(UNIONPAY_TEST)
    assert not luhn_valid("4111111111111112")
    assert not luhn_valid("41111x")


def test_mask_pan_keeps_first6_last4() -> None:
    assert mask_pan(VISA_TEST) == "411111******1111"
    assert mask_pan("1234") == "****"


def test_mask_text_masks_embedded_and_grouped_pans() -> None:
    text = f'{{"pan":"{VISA_TEST}"}} card 4111 1111 1111 1111 and 4111-1111-1111-1111'
    masked = mask_text(text)
    assert VISA_TEST not in masked
    assert "4111 1111 1111 1111" not in masked
    assert masked.count("411111******1111") == 3
    assert not contains_full_pan(masked)


def test_mask_text_leaves_non_luhn_numbers() -> None:
    text = "ts 1732684800123 amount 000000001000 stan 4111111111111112"
    assert mask_text(text) == text


@given(st.text(alphabet="0123456789", min_size=12, max_size=18), st.text(max_size=20))
def test_no_luhn_valid_pan_survives(body: str, noise: str) -> None:
    pan = _luhn_complete(body)
    text = f"{noise}[{pan}]{noise}"
    assert f"[{pan}]" not in mask_text(text)


def test_mask_data_keeps_json_valid() -> None:
    import json

    from hil.masking import mask_data

    data = {
        "pan": VISA_TEST,
        "n": int(VISA_TEST),
        "f": 0.5,
        "ok": True,
        "nested": [{"track": f"card {VISA_TEST} end"}],
        "ts": 1732684800000,
    }
    masked = mask_data(data)
    text = json.dumps(masked)
    assert VISA_TEST not in text
    assert json.loads(text)["f"] == 0.5
    assert masked["pan"] == "411111******1111" and masked["n"] == "411111******1111"
    assert masked["nested"][0]["track"] == "card 411111******1111 end"
    assert masked["ok"] is True


def test_mask_data_keeps_missing_values_null() -> None:
    """summary.json used to write a missing limit as the string "None"."""
    import json

    from hil.masking import mask_data

    assert json.dumps(mask_data({"low": None, "high": 2.0})) == '{"low": null, "high": 2.0}'


def test_mask_data_can_leave_integers_alone() -> None:
    """An Allure result's integers are epoch milliseconds; one in ten passes Luhn."""
    from hil.masking import mask_data

    timestamp = next(t for t in range(1795989099460, 1795989099480) if luhn_valid(str(t)))
    data = {"start": timestamp, "name": f"card {VISA_TEST}"}
    assert mask_data(data, numbers=False) == {"start": timestamp, "name": "card 411111******1111"}
    assert mask_data(data)["start"] != timestamp


def test_full_pans_lists_what_a_scan_must_not_find() -> None:
    from hil.masking import full_pans

    text = f"ok 411111******1111, leaked {VISA_TEST} and 4111 1111 1111 1111; stan 4111111111111112"
    assert full_pans(text) == [VISA_TEST, "4111 1111 1111 1111"]
    assert full_pans(mask_text(text)) == []
