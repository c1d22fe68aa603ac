"""The Allure gate masks results and attachments; an attachment stays where the masked
results say it is, even when Allure's random name for it looks like a card number."""

from __future__ import annotations

import json
from pathlib import Path

from allure_commons import model2

from hil.masking import mask_text
from hil.reporting import MaskedAllureFiles


def test_an_attachment_whose_uuid_looks_like_a_card_is_found_by_its_result(
    tmp_path: Path,
) -> None:
    name = "dffbc603-4415-4913-8504-0c067803f2c8-attachment.txt"
    assert mask_text(name) != name  # the mask takes part of this UUID for a card number
    gate = MaskedAllureFiles(tmp_path)
    gate.report_attached_data("transcript", name)
    result = model2.TestResult(uuid="r1", name="scenario")
    result.attachments.append(model2.Attachment(name="transcript", source=name, type="text/plain"))
    gate.report_result(result)
    (written,) = tmp_path.glob("*-result.json")
    source = json.loads(written.read_text(encoding="utf-8"))["attachments"][0]["source"]
    assert (tmp_path / source).read_text(encoding="utf-8") == "transcript"
