"""Steps for the admin login (password policy, lockout) and the biometric sensors.

The rig makes up every password it sends and keeps them in memory only: reports show
that one was sent and its length, never its text (``hil.secrets``). It counts the
login attempts itself and judges each answer against the documented policy and limit
(``hil.contract.security``); biometric verdicts are judged against what the rig put
on the sensor, never against the terminal's own say.
"""

from __future__ import annotations

import contextlib
import secrets
import string
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import cast

import pytest
from pytest_bdd import given, then, when

from hil import reporting
from hil.contract.security import (
    BIOMETRIC_CODES,
    FACTORY_DEFAULT_ADMIN_PASSWORD,
    LIVENESS_MIN,
    LOCKED,
    LOCKOUT_S,
    MATCH_MAX_BITS,
    MAX_FAILED_LOGINS,
    PASSWORD_MAX_LENGTH,
    PASSWORD_MIN_LENGTH,
    POLICY_CODES,
    WRONG_PASSWORD,
)
from hil.errors import DutError, HilError, RigError
from hil.instruments.biometrics import (
    LIVE_LIVENESS,
    SPOOF_LIVENESS,
    BiometricSensor,
    Presentation,
    subject_template,
)
from hil.rig import Rig
from hil.secrets import Secret
from hil.steps.common import instrument_of
from hil.steps.phrases import StepValueError, phrase
from hil.terminal import Terminal
from hil.terminal.admin import AdminAnswer, BiometricVerdict

#: How much longer than the lockout period the rig waits before it expects a login to
#: work again (the terminal's and the rig's clocks, a loaded machine).
LOCKOUT_MARGIN_S = 0.15
SYMBOLS = "!#$%&*+-=?@^_~"
CLASSES = (string.ascii_lowercase, string.ascii_uppercase, string.digits, SYMBOLS)


def make_password(length: int = 16, *, without: str = "") -> Secret:
    """A random password of ``length`` with every character class but ``without``
    (a ``Secret``: tracebacks show its length only)."""
    pools = [pool for pool in CLASSES if pool != without]
    chosen = [secrets.choice(pool) for pool in pools]
    alphabet = "".join(pools)
    chosen += [secrets.choice(alphabet) for _ in range(length - len(chosen))]
    secrets.SystemRandom().shuffle(chosen)
    return Secret("".join(chosen))


@dataclass
class Attempt:
    number: int  # counted by the rig: 1 for the first of the run of attempts
    answer: AdminAnswer
    sent_at: float  # time.monotonic() just before the request left
    answered_at: float


@dataclass(repr=False)
class AdminSession:
    """What the rig knows about the admin credential. Never shown in a report: reports
    show fixtures by their repr, so this one says only what is safe."""

    current: str | None = None  # None: the rig does not know it (provisioned at random)
    previous: str | None = None
    sent: list[str] = field(default_factory=list)  # every password sent, for the log scan
    last_change: AdminAnswer | None = None
    attempts: list[Attempt] = field(default_factory=list)
    last_login: Attempt | None = None

    def __repr__(self) -> str:
        known = "unknown" if self.current is None else f"{len(self.current)} chars"
        return f"AdminSession(password {known}, {len(self.sent)} sent)"

    def remember(self, password: str) -> str:
        self.sent.append(password)
        return password

    def known(self) -> str:
        if self.current is None:
            raise StepValueError(
                "the rig does not know the admin password: start with 'the rig has reset the "
                "admin password to the factory default' or 'the rig has set an admin "
                "password of its own'"
            )
        return self.current


@pytest.fixture
def admin_session(terminal: Terminal) -> Iterator[AdminSession]:
    """The rig's knowledge of the admin password. A scenario that leaves the factory
    default behind gets a random strong one afterwards, so later scenarios meet a
    provisioned terminal (best effort: a terminal that refuses is this scenario's
    finding already)."""
    session = AdminSession()
    yield session
    if session.current == FACTORY_DEFAULT_ADMIN_PASSWORD:
        with contextlib.suppress(HilError):
            terminal.admin_set_password(session.current, make_password())


def weak_password(kind: str, session: AdminSession) -> str:
    """A password that breaks exactly the rule ``kind`` names."""
    if kind == "factory default":
        return FACTORY_DEFAULT_ADMIN_PASSWORD
    if kind == "too short":
        return make_password(PASSWORD_MIN_LENGTH - 1)
    if kind == "too long":
        return make_password(PASSWORD_MAX_LENGTH + 1)
    if kind == "a recent one":
        return session.known()
    classes = {
        "without a lower-case letter": string.ascii_lowercase,
        "without an upper-case letter": string.ascii_uppercase,
        "without a digit": string.digits,
        "without a symbol": SYMBOLS,
    }
    return make_password(without=classes[kind])


def _change(terminal: Terminal, session: AdminSession, new: str) -> AdminAnswer:
    old = session.known()
    answer = terminal.admin_set_password(old, session.remember(new))
    session.last_change = answer
    if answer.accepted:
        session.previous, session.current = old, new
    return answer


# --- password policy ----------------------------------------------------------------------


@given(phrase("the rig has reset the admin password to the factory default"))
@when(phrase("the rig resets the admin password to the factory default"))
def reset_admin(terminal: Terminal, admin_session: AdminSession) -> None:
    """The service reset: the admin password is the factory default again."""
    terminal.admin_reset()
    admin_session.current = FACTORY_DEFAULT_ADMIN_PASSWORD


@given(phrase("the rig has set an admin password of its own"))
def own_password(terminal: Terminal, admin_session: AdminSession) -> None:
    """Reset to the factory default, then change to a strong password the rig made up."""
    reset_admin(terminal, admin_session)
    answer = _change(terminal, admin_session, make_password())
    if not answer.accepted:
        raise DutError(f"a strong admin password was refused: {answer.code}: {answer.message}")


@when(phrase('the rig changes the admin password to one "{kind:PasswordKind}"'))
def change_to_weak(terminal: Terminal, admin_session: AdminSession, kind: str) -> None:
    """Try a password that breaks one rule of the policy (the rig makes it up)."""
    password = weak_password(kind, admin_session)
    with reporting.action("weak password", rule=kind, length=len(password)):
        _change(terminal, admin_session, password)


@when(phrase("the rig changes the admin password to a strong one"))
def change_to_strong(terminal: Terminal, admin_session: AdminSession) -> None:
    """A password that keeps every rule: a random one, 16 characters of all classes."""
    _change(terminal, admin_session, make_password())


@then(phrase('the change is refused with the policy\'s code for one "{kind:PasswordKind}"'))
def change_refused(admin_session: AdminSession, kind: str) -> None:
    """The password change was refused with the code the policy documents for this rule."""
    answer = admin_session.last_change
    assert answer is not None, "no password change was tried"
    expected = POLICY_CODES[kind]
    assert not answer.accepted, f"a password {kind} was accepted (expected {expected})"
    assert answer.code == expected, (
        f"a password {kind} was refused with {answer.code}, the policy documents {expected}"
    )


@then(phrase("the change is accepted"))
def change_accepted(admin_session: AdminSession) -> None:
    """The last password change was accepted."""
    answer = admin_session.last_change
    assert answer is not None, "no password change was tried"
    assert answer.accepted, f"a strong password was refused: {answer.code}: {answer.message}"


@then(phrase("the admin password the rig set logs in and the one before it does not"))
def new_password_works(terminal: Terminal, admin_session: AdminSession) -> None:
    """Independent proof of the change: a login with each password."""
    current = terminal.admin_login(admin_session.known())
    assert current.accepted, f"the new admin password does not log in: {current.code}"
    if admin_session.previous is not None:
        old = terminal.admin_login(admin_session.previous)
        assert old.code == WRONG_PASSWORD, (
            f"the replaced admin password answered {old.code}, expected {WRONG_PASSWORD}"
        )


@then(phrase("the admin password is still the one the rig set"))
def password_unchanged(terminal: Terminal, admin_session: AdminSession) -> None:
    """Refused changes changed nothing: the password the rig knows still logs in."""
    answer = terminal.admin_login(admin_session.known())
    assert answer.accepted, f"the admin password the rig set no longer logs in: {answer.code}"


@then(phrase("no password the rig sent appears in the terminal's log"))
def no_password_in_log(terminal: Terminal, admin_session: AdminSession) -> None:
    """Every log entry is searched for every password the rig sent (the factory default
    is public and not searched)."""
    secrets_sent = {p for p in admin_session.sent if p != FACTORY_DEFAULT_ADMIN_PASSWORD}
    found = []
    since = 0
    while True:
        page = terminal.log(since=since, limit=400)
        for entry in page:
            if any(s in entry.message or s in entry.code for s in secrets_sent):
                found.append(entry.seq)
        if len(page) < 400:
            break
        since = page[-1].seq + 1
    assert not found, f"log entries seq {found[:10]} hold a password the rig sent"


# --- lockout -------------------------------------------------------------------------------


def _login(terminal: Terminal, password: str, number: int) -> Attempt:
    sent_at = time.monotonic()
    answer = terminal.admin_login(password)
    return Attempt(number, answer, sent_at, time.monotonic())


@when(phrase("the rig logs in with a wrong admin password one time short of the lockout limit"))
def wrong_short_of_limit(terminal: Terminal, admin_session: AdminSession) -> None:
    """N-1 wrong passwords (N: the documented limit), counted by the rig."""
    _wrong_logins(terminal, admin_session, MAX_FAILED_LOGINS - 1)


@when(phrase("the rig logs in with a wrong admin password as many times as the lockout limit"))
def wrong_up_to_limit(terminal: Terminal, admin_session: AdminSession) -> None:
    """N wrong passwords (N: the documented limit), counted by the rig."""
    _wrong_logins(terminal, admin_session, MAX_FAILED_LOGINS)


def _wrong_logins(terminal: Terminal, session: AdminSession, count: int) -> None:
    session.known()
    session.attempts = []
    for number in range(1, count + 1):
        wrong = session.remember(make_password())
        with reporting.action("wrong admin login", attempt=number):
            session.attempts.append(_login(terminal, wrong, number))


@then(phrase("each of those logins is refused as a wrong password"))
def each_wrong(admin_session: AdminSession) -> None:
    """Attempts below the limit: each answered as a wrong password, none locks."""
    for attempt in admin_session.attempts:
        assert attempt.answer.code == WRONG_PASSWORD, (
            f"wrong login {attempt.number} of {len(admin_session.attempts)} (limit "
            f"{MAX_FAILED_LOGINS}) answered {attempt.answer.code}, expected {WRONG_PASSWORD}"
        )


@then(phrase("the logins before the limit are refused as wrong and the one at the limit locks"))
def locks_at_limit(admin_session: AdminSession) -> None:
    """The lockout begins exactly at attempt N: not at N-1, not at N+1."""
    attempts = admin_session.attempts
    assert len(attempts) == MAX_FAILED_LOGINS, "the rig sent a different number of attempts"
    each_wrong_before = attempts[:-1]
    for attempt in each_wrong_before:
        assert attempt.answer.code == WRONG_PASSWORD, (
            f"wrong login {attempt.number} answered {attempt.answer.code}: the lockout must "
            f"begin at attempt {MAX_FAILED_LOGINS}, not before"
        )
    last = attempts[-1]
    assert last.answer.code == LOCKED, (
        f"wrong login {last.number} (the documented limit) answered {last.answer.code}, "
        f"expected {LOCKED}"
    )


@when(phrase("the rig logs in with the right admin password"))
def right_login(terminal: Terminal, admin_session: AdminSession) -> None:
    """A login with the password the rig set."""
    admin_session.last_login = _login(terminal, admin_session.known(), 0)


@then(phrase("the login is accepted"))
def login_accepted(admin_session: AdminSession) -> None:
    """The last login with the right password was accepted."""
    login = admin_session.last_login
    assert login is not None, "no login was tried"
    assert login.answer.accepted, (
        f"the right admin password was refused: {login.answer.code}: {login.answer.message}"
    )


@then(phrase("the login is refused because the admin login is locked"))
def login_locked(hil_rig: Rig, admin_session: AdminSession) -> None:
    """The right password during the lockout is refused with the lockout code. Judged
    only while the rig can prove the lockout still runs: from the moment the locking
    attempt left to the answer, less than the period passed."""
    login = admin_session.last_login
    assert login is not None and admin_session.attempts, "no lockout was provoked"
    period = LOCKOUT_S * hil_rig.time_scale
    elapsed = login.answered_at - admin_session.attempts[-1].sent_at
    if elapsed >= period:
        raise RigError(
            f"the rig took {elapsed:.2f} s to try the right password after the lockout began "
            f"(period {period:g} s): the lockout could not be observed"
        )
    assert login.answer.code == LOCKED, (
        f"the right admin password {elapsed:.2f} s into a {period:g} s lockout answered "
        f"{login.answer.code}, expected {LOCKED}"
    )


@when(phrase("the rig waits out the documented lockout period"))
def wait_lockout(hil_rig: Rig, admin_session: AdminSession) -> None:
    """Until the documented period (x time scale) has passed since the locking attempt
    was answered, plus a margin."""
    assert admin_session.attempts, "no lockout was provoked"
    until = (
        admin_session.attempts[-1].answered_at + LOCKOUT_S * hil_rig.time_scale + LOCKOUT_MARGIN_S
    )
    time.sleep(max(until - time.monotonic(), 0.0))


# --- biometrics -----------------------------------------------------------------------------


@dataclass
class BiometricScene:
    enrolled: dict[tuple[str, str], Presentation] = field(default_factory=dict)
    presented: Presentation | None = None
    verdict: BiometricVerdict | None = None
    verified_user: str = ""


@pytest.fixture
def biometric_sensor(hil_rig: Rig) -> BiometricSensor:
    """The rig's biometric presentation instrument; lifted after each scenario."""
    return cast(BiometricSensor, instrument_of(hil_rig, "biometrics", BiometricSensor))


@pytest.fixture
def biometric_scene() -> BiometricScene:
    return BiometricScene()


@given(phrase('the rig has enrolled the {modality:Modality} of "{subject:Subject}"'))
def enrol(
    terminal: Terminal,
    biometric_sensor: BiometricSensor,
    biometric_scene: BiometricScene,
    modality: str,
    subject: str,
) -> None:
    """Present the subject live and have the terminal enrol them as user ``subject``."""
    presentation = biometric_sensor.present(modality, subject)
    terminal.biometric_enrol(subject, modality)
    biometric_sensor.lift()
    biometric_scene.enrolled[(subject, modality)] = presentation


@when(phrase('the rig presents the {modality:Modality} of "{subject:Subject}"'))
def present_live(
    biometric_sensor: BiometricSensor,
    biometric_scene: BiometricScene,
    modality: str,
    subject: str,
) -> None:
    """A live finger or face of this synthetic subject on the sensor."""
    biometric_scene.presented = biometric_sensor.present(modality, subject)


@when(phrase('the rig presents a spoofed {modality:Modality} of "{subject:Subject}"'))
def present_spoof(
    biometric_sensor: BiometricSensor,
    biometric_scene: BiometricScene,
    modality: str,
    subject: str,
) -> None:
    """A presentation attack (gummy finger, printed photo) made from this subject."""
    biometric_scene.presented = biometric_sensor.present(modality, subject, spoof=True)


@when(phrase('the terminal verifies the {modality:Modality} of user "{user:Subject}"'))
def verify(terminal: Terminal, biometric_scene: BiometricScene, modality: str, user: str) -> None:
    """The terminal's verify command against its enrolment of ``user``."""
    biometric_scene.verdict = terminal.biometric_verify(user, modality)
    biometric_scene.verified_user = user


def expected_verdict(scene: BiometricScene, modality: str) -> str:
    """What the terminal must answer, from what the rig enrolled and presented."""
    presented = scene.presented
    enrolment = scene.enrolled.get((scene.verified_user, modality))
    if enrolment is None:
        return BIOMETRIC_CODES["not enrolled"]
    if presented is None or presented.modality != modality:
        return BIOMETRIC_CODES["nothing"]
    if presented.spoof:
        if not SPOOF_LIVENESS < LIVENESS_MIN <= LIVE_LIVENESS:
            raise RigError("the rig's liveness levels do not straddle the documented minimum")
        return BIOMETRIC_CODES["spoof"]
    distance = presented.distance_to(subject_template(enrolment.subject, modality))
    # The rig's synthetic data must sit clearly on one side of the documented threshold.
    same = presented.subject == enrolment.subject
    if same != (distance <= MATCH_MAX_BITS):
        raise RigError(
            f"the rig's synthetic {modality} samples differ by {distance} bits: not on the "
            f"expected side of the documented {MATCH_MAX_BITS}-bit threshold"
        )
    return BIOMETRIC_CODES["match"] if same else BIOMETRIC_CODES["no match"]


@then(phrase('the verdict is "{code:Code}", as the rig expects from what it presented'))
def verdict_is(biometric_scene: BiometricScene, code: str) -> None:
    """The terminal's verdict equals what the rig derives from what it enrolled and
    presented; the scenario's stated code must agree with that derivation too."""
    verdict = biometric_scene.verdict
    assert verdict is not None, "the terminal verified nothing"
    expected = expected_verdict(biometric_scene, verdict.modality)
    if code != expected:
        raise StepValueError(
            f"the scenario expects {code}, but what the rig presented calls for {expected}"
        )
    assert verdict.code == expected, (
        f"{verdict.modality} of user {verdict.user}: the terminal answered {verdict.code} "
        f"({verdict.message}), the rig presented what calls for {expected}"
    )
