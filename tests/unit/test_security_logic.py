"""Password policy, login lockout, biometric judgement, log rotation/retention and the
redaction of secrets: the pure logic behind security.feature and logs.feature."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import pytest

from hil.contract import security as contract
from hil.instruments.biometrics import subject_template
from hil.protocol.endpoint import CommandFailed
from hil.protocol.framing import encode_frame
from hil.protocol.transcript import Transcript
from hil.secrets import Secret, redact, redact_json_bytes
from hil.sim import admin
from hil.sim.biometrics import MATCH_MAX_BITS, Sample, judge
from hil.sim.security import PasswordRecord, store_admin_password
from hil.sim.state import FlashLayout, LogStore
from hil.steps.security import AdminSession, make_password, weak_password

STRONG = "Tr0ub4dor&3x"


class Clock:
    def __init__(self) -> None:
        self.ms = 1_800_000_000_000

    def __call__(self) -> int:
        return self.ms


@pytest.fixture
def login(tmp_path: Path) -> tuple[admin.AdminLogin, Clock, list[tuple[str, str, str]]]:
    layout = FlashLayout(tmp_path)
    layout.ensure()
    store_admin_password(layout, STRONG)
    clock = Clock()
    logged: list[tuple[str, str, str]] = []
    terminal_login = admin.AdminLogin(
        layout, log=lambda *e: logged.append(e), time_scale=0.1, clock_ms=clock
    )
    return terminal_login, clock, logged


def _code(call: Any, *args: Any) -> str:
    try:
        call(*args)
    except CommandFailed as e:
        return e.code
    return "OK"


# --- the sim's figures are the documented ones -------------------------------------------


def test_sim_figures_are_the_documented_ones() -> None:
    assert admin.MAX_FAILED_LOGINS == contract.MAX_FAILED_LOGINS
    assert admin.LOCKOUT_S == contract.LOCKOUT_S
    assert (admin.MIN_LENGTH, admin.MAX_LENGTH, admin.HISTORY) == (
        contract.PASSWORD_MIN_LENGTH,
        contract.PASSWORD_MAX_LENGTH,
        contract.PASSWORD_HISTORY,
    )
    assert LogStore.SEGMENT_SIZE * LogStore.MAX_SEGMENTS == contract.LOG_CAPACITY


# --- policy ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(contract.POLICY_CODES))
def test_each_weak_kind_breaks_exactly_its_rule(kind: str) -> None:
    session = AdminSession(current=STRONG)
    history = [PasswordRecord.create(STRONG, iterations=1000)]
    password = weak_password(kind, session)
    violation = admin.policy_violation(password, history)
    assert violation is not None and violation[0] == contract.POLICY_CODES[kind]
    assert password not in violation[1]  # the message never holds the password


def test_policy_edges() -> None:
    exactly_min = "Aa1!" + "b" * (admin.MIN_LENGTH - 4)
    assert admin.policy_violation(exactly_min, []) is None
    assert admin.policy_violation(exactly_min[:-1], [])[0] == "E_SEC_PW_LENGTH"  # type: ignore[index]
    exactly_max = "Aa1!" + "b" * (admin.MAX_LENGTH - 4)
    assert admin.policy_violation(exactly_max, []) is None
    assert admin.policy_violation(exactly_max + "c", [])[0] == "E_SEC_PW_LENGTH"  # type: ignore[index]
    assert admin.policy_violation("Aa1!bbbbbbé", [])[0] == "E_SEC_PW_CLASSES"  # type: ignore[index]


def test_reuse_covers_the_last_n_and_no_more() -> None:
    old = [f"Pw{i}!abcdefg" for i in range(admin.HISTORY + 1)]
    history = [PasswordRecord.create(p, iterations=1000) for p in old]
    for recent in old[-admin.HISTORY :]:
        assert admin.policy_violation(recent, history)[0] == "E_SEC_PW_REUSED"  # type: ignore[index]
    assert admin.policy_violation(old[0], history) is None  # beyond the history


def test_make_password_keeps_every_rule() -> None:
    for _ in range(50):
        password = make_password()
        assert admin.policy_violation(password, []) is None
    assert not any(c in string.digits for c in make_password(without=string.digits))


# --- lockout ----------------------------------------------------------------------------------


def test_lockout_begins_exactly_at_attempt_n(login: Any) -> None:
    terminal_login, clock, logged = login
    codes = [
        _code(terminal_login.login, {"password": f"wrong-{n}"})
        for n in range(1, admin.MAX_FAILED_LOGINS + 1)
    ]
    assert codes == ["E_SEC_BAD_PASSWORD"] * (admin.MAX_FAILED_LOGINS - 1) + ["E_SEC_LOCKED"]
    assert _code(terminal_login.login, {"password": STRONG}) == "E_SEC_LOCKED"
    period_ms = round(admin.LOCKOUT_S * 0.1 * 1000)
    clock.ms += period_ms - 1
    assert _code(terminal_login.login, {"password": STRONG}) == "E_SEC_LOCKED"
    clock.ms += 1
    assert _code(terminal_login.login, {"password": STRONG}) == "OK"
    assert not any(STRONG in message or "wrong-" in message for *_, message in logged)


def test_a_success_before_the_limit_resets_the_count(login: Any) -> None:
    terminal_login, _, _ = login
    for _ in range(admin.MAX_FAILED_LOGINS - 1):
        assert _code(terminal_login.login, {"password": "nope"}) == "E_SEC_BAD_PASSWORD"
    assert _code(terminal_login.login, {"password": STRONG}) == "OK"
    for _ in range(admin.MAX_FAILED_LOGINS - 1):
        assert _code(terminal_login.login, {"password": "nope"}) == "E_SEC_BAD_PASSWORD"


def test_lockout_survives_a_reboot(login: Any, tmp_path: Path) -> None:
    terminal_login, clock, _ = login
    for _ in range(admin.MAX_FAILED_LOGINS):
        _code(terminal_login.login, {"password": "nope"})
    rebooted = admin.AdminLogin(
        FlashLayout(tmp_path), log=lambda *e: None, time_scale=0.1, clock_ms=clock
    )
    assert _code(rebooted.login, {"password": STRONG}) == "E_SEC_LOCKED"


def test_wrong_old_password_counts_and_a_change_needs_the_old(login: Any) -> None:
    terminal_login, _, logged = login
    change = terminal_login.set_password
    assert _code(change, {"old_password": "nope", "new_password": "N3w!passwordX"}) == (
        "E_SEC_BAD_PASSWORD"
    )
    assert _code(change, {"old_password": STRONG, "new_password": "N3w!passwordX"}) == "OK"
    assert _code(terminal_login.login, {"password": "N3w!passwordX"}) == "OK"
    assert _code(terminal_login.login, {"password": STRONG}) == "E_SEC_BAD_PASSWORD"
    assert any("length 13" in message for *_, message in logged)
    assert not any("N3w!passwordX" in message for *_, message in logged)


# --- biometrics -------------------------------------------------------------------------------


def test_judge_order_and_threshold() -> None:
    enrolled = subject_template("alice", "face")
    assert judge(Sample(enrolled, 0.9), None)[0] == "E_BIO_NOT_ENROLLED"
    assert judge(None, enrolled)[0] == "E_BIO_NO_SAMPLE"
    assert judge(Sample(enrolled, 0.1), enrolled)[0] == "E_BIO_SPOOF"
    at_threshold = enrolled ^ ((1 << MATCH_MAX_BITS) - 1)
    assert judge(Sample(at_threshold, 0.9), enrolled)[0] == "OK"
    beyond = enrolled ^ ((1 << (MATCH_MAX_BITS + 1)) - 1)
    assert judge(Sample(beyond, 0.9), enrolled)[0] == "E_BIO_NO_MATCH"
    other = subject_template("bob", "face")
    assert judge(Sample(other, 0.9), enrolled)[0] == "E_BIO_NO_MATCH"


# --- log store ----------------------------------------------------------------------------------


def test_retention_purges_older_entries_and_keeps_younger(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1_800_000_000_000]
    monkeypatch.setattr("hil.sim.state.now_ms", lambda: now[0])
    store = LogStore(tmp_path, segment_size=4, max_segments=8)
    store.retention_ms = lambda: 1000
    store.append_many("info", "I_OLD", [f"old {i}" for i in range(6)])
    now[0] += 999
    store.append_many("info", "I_EDGE", ["edge"])
    now[0] += 2  # old entries are now 1001 ms old, edge 2 ms
    store.purge_expired()
    entries, _ = store.read()
    assert [e.code for e in entries] == ["I_EDGE", "I_LOG_PURGED"]
    assert store.purged_entries == 6
    seqs = [e.seq for e in entries]
    assert seqs == [7, 8]  # seq never goes back
    reopened = LogStore(tmp_path, segment_size=4, max_segments=8)
    assert [e.seq for e in reopened.read()[0]] == [7, 8]
    assert reopened.append("info", "I_X", "next").seq == 9


# --- secrets in reports ---------------------------------------------------------------------------


def test_redact_hides_secret_fields_at_any_depth() -> None:
    value = {"cmd": "x", "args": {"old_password": "abc", "new_password": "defgh", "n": 1}}
    assert redact(value) == {
        "cmd": "x",
        "args": {"old_password": "<secret, 3 chars>", "new_password": "<secret, 5 chars>", "n": 1},
    }


def test_transcript_shows_no_password_in_text_or_hex() -> None:
    password = 'Se"cr3t\\pw!X'
    transcript = Transcript()
    frame = encode_frame(
        {"type": "req", "id": 1, "cmd": "security.login", "args": {"password": password}}
    )
    transcript.record("tx", frame[:20])
    transcript.record("tx", frame[20:])  # split across chunks
    text = transcript.render()
    data = password.encode()
    assert password not in text and data.hex(":") not in text
    assert '"password":"<secret, 12 chars>"' in text
    stream = bytearray(b'{"template":"ab12","x":"keep"}')
    redact_json_bytes(stream)
    assert bytes(stream) == b'{"template":"****","x":"keep"}'


def test_a_secret_is_a_string_whose_repr_hides_it() -> None:
    from _pytest._io.saferepr import saferepr

    password = make_password()
    assert isinstance(password, Secret) and password == str(password)
    assert repr(password) == "<secret, 16 chars>" and str(password) not in saferepr(password)
    frame = encode_frame({"type": "req", "id": 1, "cmd": "x", "args": {"password": password}})
    assert str(password).encode() in frame  # it still travels as the string it is


def test_a_failing_step_shows_no_password_in_its_long_traceback(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        from hil.steps.security import make_password

        def change(old, new):
            assert old == new

        def test_change():
            old = make_password()
            with open("sent.txt", "w") as out:
                out.write(str(old))
            change(old, make_password())
        """
    )
    result = pytester.runpytest("--tb=long", "-l")
    result.assert_outcomes(failed=1)
    text = result.stdout.str()
    assert "<secret, 16 chars>" in text and "no diff shown" in text
    assert (pytester.path / "sent.txt").read_text() not in text
