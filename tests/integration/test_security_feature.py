"""End to end: the security and logs features on the real sim rig, and no secret the
rig sent (admin password, biometric template) in any file the run writes.

The scan knows the secrets because a conftest in the run's folder records every
password the steps make up and every sample the biometric instrument presents, into a
file outside the folder that is scanned.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_features

pytestmark = pytest.mark.integration

RECORDER = """
import os
from pathlib import Path

import hil.instruments.biometrics as biometrics
import hil.steps.security as security

RECORD = Path(os.environ["SECRETS_RECORD"])


def _keep(text):
    with RECORD.open("a", encoding="utf-8") as out:
        out.write(text + "\\n")


_make_password = security.make_password


def make_password(*args, **kwargs):
    password = _make_password(*args, **kwargs)
    _keep(password)
    return password


security.make_password = make_password

_present = biometrics.SimBiometricSensor.present


def present(self, *args, **kwargs):
    presentation = _present(self, *args, **kwargs)
    _keep(f"{presentation.sample:064x}")
    return presentation


biometrics.SimBiometricSensor.present = present
"""


def _forms(secret: str) -> list[str]:
    """The secret as text, and as the transcript's hex column would show its bytes."""
    data = secret.encode("utf-8")
    return [secret, data.hex(":"), data.hex(" ")]


def test_security_and_logs_green_and_no_secret_in_any_report(
    pytester: pytest.Pytester,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    record = tmp_path_factory.mktemp("secrets") / "sent.txt"
    monkeypatch.setenv("SECRETS_RECORD", str(record))
    pytester.makeconftest(RECORDER)
    run = run_features(
        pytester,
        ("security.feature", "logs.feature"),
        f"--junitxml={pytester.path / 'junit.xml'}",
        "-rA",
        extra='[biometrics]\ndriver = "sim"\n[faultlines]\ndriver = "sim"\n',
    )
    run.result.assert_outcomes(passed=7)
    console = run.result.stdout.str() + run.result.stderr.str()

    sent = {line for line in record.read_text(encoding="utf-8").splitlines() if line}
    passwords = [s for s in sent if len(s) != 64]
    templates = [s for s in sent if len(s) == 64]
    assert len(passwords) >= 10 and len(templates) >= 8  # the recorder saw the secrets

    # The run did attach transcripts: a scan of files without them would prove nothing.
    results = [json.loads(p.read_text()) for p in run.results.glob("*-result.json")]
    assert all(
        any(a["name"] == "test-port transcript" for a in case.get("attachments", []))
        for case in results
    )
    leaks = []
    for path in sorted(pytester.path.rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts or path.name == "conftest.py":
            continue
        text = path.read_bytes().decode("latin-1")
        for secret in sent:
            if any(form in text for form in _forms(secret)):
                leaks.append(f"{path.relative_to(pytester.path)}: a {len(secret)}-char secret")
    leaks += [
        f"console: a {len(s)}-char secret" for s in sent if any(f in console for f in _forms(s))
    ]
    assert leaks == []
    # What the report does say: that a secret was sent, and its length.
    transcripts = "".join(
        (run.results / a["source"]).read_text()
        for case in results
        for a in case.get("attachments", [])
        if a["name"] == "test-port transcript"
    )
    assert '"new_password":"<secret, 16 chars>"' in transcripts
