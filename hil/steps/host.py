"""Steps for the host link: what the host saw, parameter downloads, sales, reversals.

The comm, terminal_id and data_sync items run with the shared self-check steps.

The terminal's verdict is never taken alone: the host's own record of what reached it
(echo, sign-on, download blocks, reversals) is checked beside it. Host checks after a
self-check look only at the messages since that run (``item_check.before``).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from dataclasses import dataclass
from typing import cast

import pytest
from pytest_bdd import given, then, when

from hil import reporting
from hil.contract.selfcheck import (
    COMM_MAX_ECHO_RTT_MS,
    COMM_RETRY_BACKOFF_S,
    DUPLICATE_GRACE_INTERVALS,
    REVERSAL_RETRY_S,
    SALE_REFUSAL_CODES,
    TIMEOUT_LOWER_MARGIN_S,
)
from hil.errors import DutError, HilError
from hil.host import Behaviour, MessageRecord
from hil.host.records import original_stan
from hil.instruments.host import AcquirerHost
from hil.rig import Rig
from hil.steps.common import expect_sale_refused, instrument_of
from hil.steps.phrases import Duration, StepValueError, phrase
from hil.steps.selfcheck import ItemCheck, item_fails
from hil.terminal import (
    ParameterInfo,
    ReversalAcknowledged,
    ReversalStatus,
    SaleResult,
    Terminal,
    as_report,
)

log = logging.getLogger(__name__)

#: How long the rig waits for the host to see something the terminal must send.
HOST_WAIT_S = 15.0
#: The sale "a new sale after a power cycle" makes (minor units).
PROBE_SALE_AMOUNT = 100
#: The item's own delay and I/O on top of its documented worst case (see below).
ITEM_OVERHEAD_S = 1.0


@dataclass(frozen=True)
class HostTimeouts:
    """The terminal's host link settings (config keys comm.*)."""

    connect_ms: int
    response_ms: int
    retries: int

    @property
    def attempts(self) -> int:
        return self.retries + 1

    def waited_out_s(self, time_scale: float) -> float:
        """The least a host item can take when no attempt gets an answer: every attempt
        waits its whole response timeout, with the scaled back-off between attempts."""
        return (
            self.attempts * self.response_ms / 1000
            + self.retries * COMM_RETRY_BACKOFF_S * time_scale
        )

    def worst_case_s(self, time_scale: float) -> float:
        """The documented bound of a host item: every attempt may use its whole connect
        and response timeout, plus the scaled back-off between attempts."""
        attempts = self.retries + 1
        return (
            attempts * (self.connect_ms + self.response_ms) / 1000
            + self.retries * COMM_RETRY_BACKOFF_S * time_scale
        )


@pytest.fixture
def acquirer_host(hil_rig: Rig) -> AcquirerHost:
    """The rig's acquirer host; back to the rig file's behaviour after each scenario."""
    return cast(AcquirerHost, instrument_of(hil_rig, "host", AcquirerHost))


def _config_int(terminal: Terminal, key: str) -> int:
    value = terminal.config_get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise DutError(f"config {key} is {value!r}, not an integer")
    return value


@pytest.fixture
def host_timeouts(terminal: Terminal) -> HostTimeouts:
    """The terminal's host timeouts as configured (the step that sets them replaces this)."""
    return HostTimeouts(
        _config_int(terminal, "comm.connect_timeout_ms"),
        _config_int(terminal, "comm.response_timeout_ms"),
        _config_int(terminal, "comm.retries"),
    )


def _since(host: AcquirerHost, check: ItemCheck) -> list[MessageRecord]:
    return host.records()[check.before.host_messages or 0 :]


# --- terminal settings ---------------------------------------------------------------


@given(
    phrase(
        "the terminal's host timeouts are {connect:Duration} to connect and "
        "{response:Duration} to answer, with {retries:Retries}"
    ),
    target_fixture="host_timeouts",
)
def set_host_timeouts(
    terminal: Terminal, connect: Duration, response: Duration, retries: int
) -> HostTimeouts:
    """Configure how long the terminal waits for the host and how often it retries."""
    timeouts = HostTimeouts(connect.whole_ms(), response.whole_ms(), retries)
    for key, value in (
        ("comm.connect_timeout_ms", timeouts.connect_ms),
        ("comm.response_timeout_ms", timeouts.response_ms),
        ("comm.retries", timeouts.retries),
    ):
        terminal.config_set(key, value)
    return timeouts


def point_host_at(
    terminal: Terminal, request: pytest.FixtureRequest, address: str, port: int, why: str
) -> None:
    """Configure the terminal's host address and port for this scenario; the earlier
    values are put back after it (the terminal's flash keeps config across scenarios)."""
    previous = {k: terminal.config_get(k) for k in ("host.address", "host.port")}
    with reporting.action(why, address=address, port=port):
        terminal.config_set("host.address", address)
        terminal.config_set("host.port", port)

    def restore() -> None:
        try:
            for key, value in previous.items():
                terminal.config_set(key, value)
        except HilError:
            log.exception("could not restore the terminal's host address")

    request.addfinalizer(restore)


@given(phrase("the terminal's host port is set to a port where nothing listens"))
def wrong_port(terminal: Terminal, request: pytest.FixtureRequest) -> None:
    """Point the terminal at a local port nobody listens on (put back afterwards)."""
    # Bound but not listening for the whole scenario: connects are refused, and no
    # other program can be handed the port meanwhile.
    reserved = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    reserved.bind(("127.0.0.1", 0))
    request.addfinalizer(reserved.close)
    port = int(reserved.getsockname()[1])
    point_host_at(terminal, request, "127.0.0.1", port, "configure a wrong host port")


#: An address no TCP connection can ever reach: the limited broadcast address. A
#: connect fails at once with an OS error (network unreachable or permission denied),
#: which is neither a refusal nor a timeout.
UNREACHABLE_HOST = ("255.255.255.255", 9)


@given(phrase("the terminal's host address is set to one no connection can reach"))
def unreachable_host(terminal: Terminal, request: pytest.FixtureRequest) -> None:
    """Point the terminal at the limited broadcast address (put back afterwards)."""
    point_host_at(terminal, request, *UNREACHABLE_HOST, "configure an unreachable host")


# --- comm --------------------------------------------------------------------------------


@then(
    phrase(
        'the "{item:Item}" self-check fails with code "{code:Code}" within its documented '
        "time limit"
    )
)
def item_fails_in_time(
    item_check: ItemCheck, host_timeouts: HostTimeouts, hil_rig: Rig, item: str, code: str
) -> None:
    """The host item failed with this code no later than its timeouts and retries allow."""
    item_fails(item_check, item, code)
    limit_s = host_timeouts.worst_case_s(hil_rig.time_scale) + ITEM_OVERHEAD_S
    measurement = reporting.measure(f"{item} failure time", item_check.wall_s, "s", high=limit_s)
    assert measurement.passed, measurement.describe()


def _echo_rtt_ms(check: ItemCheck) -> float:
    rtt = check.result.details.get("rtt_ms")
    assert isinstance(rtt, int | float) and not isinstance(rtt, bool), (
        f"comm details carry no rtt_ms: {check.result.describe()} {dict(check.result.details)}"
    )
    return float(rtt)


@then(phrase("the echo round trip is recorded within the documented limit"))
def rtt_recorded(item_check: ItemCheck) -> None:
    """The comm item recorded its echo round trip, within the documented 1000 ms."""
    rtt = _echo_rtt_ms(item_check)
    measurement = reporting.measure("echo RTT", rtt, "ms", high=COMM_MAX_ECHO_RTT_MS)
    assert measurement.passed, measurement.describe()


@then(phrase("the echo round trip is at least {minimum:Duration}"))
def rtt_at_least(item_check: ItemCheck, minimum: Duration) -> None:
    """The recorded echo round trip is no shorter than this (the latency added shows)."""
    rtt = _echo_rtt_ms(item_check)
    measurement = reporting.measure("echo RTT under added latency", rtt, "ms", low=minimum.ms)
    assert measurement.passed, measurement.describe() + " (the latency never reached the link?)"


def _echoes(records: list[MessageRecord], tid: str) -> list[MessageRecord]:
    return [
        r
        for r in records
        if r.transaction == "echo" and r.direction == "in" and r.terminal_id == tid
    ]


@then(phrase("the host saw an echo test from the terminal"))
def host_saw_echo(acquirer_host: AcquirerHost, item_check: ItemCheck, hil_rig: Rig) -> None:
    """The host received an echo test from this terminal's TID during the last run."""
    tid = hil_rig.expected_identity().terminal_id
    seen = _echoes(_since(acquirer_host, item_check), tid)
    with reporting.action("host saw an echo test", count=len(seen)):
        assert seen, f"the comm item passed but the host saw no echo test from {tid}"


@then(phrase("the host saw no echo test from the terminal"))
def host_saw_no_echo(acquirer_host: AcquirerHost, item_check: ItemCheck, hil_rig: Rig) -> None:
    """No echo test from this terminal reached the host during the last run."""
    tid = hil_rig.expected_identity().terminal_id
    seen = _echoes(_since(acquirer_host, item_check), tid)
    with reporting.action("host saw no echo test", count=len(seen)):
        assert not seen, f"the host saw {len(seen)} echo test(s) through a cut link"


# --- terminal identity -------------------------------------------------------------------


@given(phrase('the host binds the terminal\'s TID to another device "{serial:SerialNumber}"'))
def bind_elsewhere(acquirer_host: AcquirerHost, hil_rig: Rig, serial: str) -> None:
    """Register the terminal's TID on the host as belonging to another serial number."""
    identity = hil_rig.expected_identity()
    assert serial != identity.serial_number, "the other device must have another serial number"
    acquirer_host.bind_terminal(identity.terminal_id, serial)


def _sign_ons(host: AcquirerHost, check: ItemCheck, tid: str) -> list[MessageRecord]:
    return [
        r
        for r in _since(host, check)
        if r.transaction == "sign_on" and r.direction == "out" and r.terminal_id == tid
    ]


@then(phrase("the host accepted a sign-on of the terminal's TID from its serial number"))
def host_accepted(acquirer_host: AcquirerHost, item_check: ItemCheck, hil_rig: Rig) -> None:
    """During the last run the host answered the TID's sign-on 00 and bound it to this
    terminal's serial number."""
    identity = hil_rig.expected_identity()
    answers = _sign_ons(acquirer_host, item_check, identity.terminal_id)
    assert answers, f"the host saw no sign-on from {identity.terminal_id}"
    last = answers[-1]
    assert last.response_code == "00", f"host answered sign-on with {last.response_code}"
    assert last.flags.get("bound_serial") == identity.serial_number, (
        f"host bound {identity.terminal_id} to {last.flags.get('bound_serial')}"
    )


@then(phrase('the host refused the sign-on with response code "{code:ResponseCode}"'))
def host_refused(
    acquirer_host: AcquirerHost, item_check: ItemCheck, hil_rig: Rig, code: str
) -> None:
    """During the last run the host answered the TID's sign-on with this response code."""
    tid = hil_rig.expected_identity().terminal_id
    answers = _sign_ons(acquirer_host, item_check, tid)
    assert answers, f"the host saw no sign-on from {tid}"
    assert answers[-1].response_code == code, (
        f"host answered sign-on with {answers[-1].response_code}, expected {code}"
    )


# --- data sync -------------------------------------------------------------------------


@given(phrase('the host offers parameter set "{name:ParameterSet}"'))
def host_offers(acquirer_host: AcquirerHost, name: str) -> None:
    """The host downloads this parameter set (a file beside the rig's parameters) from now."""
    acquirer_host.use_parameters(acquirer_host.parameter_set(name))


def _parameters(terminal: Terminal) -> ParameterInfo:
    status = terminal.sync_status()
    reporting.attach_json("sync status", as_report(status))
    return status.parameters


@given(phrase("the terminal has synced the host's parameters"), target_fixture="synced_parameters")
@when(
    phrase("the terminal syncs with the host over the test port"),
    target_fixture="synced_parameters",
)
def sync_now(terminal: Terminal) -> ParameterInfo:
    """Have the terminal download parameters and keys now; it must succeed."""
    result = terminal.sync()
    reporting.attach_json("sync result", as_report(result))
    if not result.passed:
        raise DutError(f"sync: {result.code}: {result.message}")
    return _parameters(terminal)


@then(phrase("the terminal's parameter digest equals the host's"))
def digest_equal(terminal: Terminal, acquirer_host: AcquirerHost) -> None:
    """The terminal's parameter digest equals the digest of the host's parameter set."""
    mine = _parameters(terminal)
    host = acquirer_host.parameters
    with reporting.action("compare parameter digests", terminal=mine.digest, host=host.digest):
        assert mine.digest == host.digest, (
            f"terminal parameters {mine.version} digest {mine.digest}, host "
            f"{host.version} digest {host.digest}"
        )


@then(phrase("the terminal's parameter digest differs from the host's"))
def digest_differs(terminal: Terminal, acquirer_host: AcquirerHost) -> None:
    """The terminal does not hold the host's current parameter set."""
    mine = _parameters(terminal)
    assert mine.digest != acquirer_host.parameters.digest, (
        "the terminal holds the host's new parameters although the download was cut"
    )


@then(phrase('the terminal reports parameter version "{version:Version}"'))
def parameter_version(terminal: Terminal, version: str) -> None:
    """The parameter set in force on the terminal has this version."""
    mine = _parameters(terminal)
    assert mine.version == version, f"terminal parameters {mine.version}"


@then(phrase("the terminal still holds the parameters it had before"))
def parameters_kept(terminal: Terminal, synced_parameters: ParameterInfo) -> None:
    """The parameters in force are still those of the earlier successful sync."""
    before = synced_parameters
    now = _parameters(terminal)
    with reporting.action("compare parameters with before", before=before.digest, now=now.digest):
        assert before.digest, "no parameters were recorded before the download"
        assert now.digest == before.digest, (
            f"parameters changed from {before.version} to {now.version} "
            "after an interrupted download"
        )


@then(phrase("the host saw the whole parameter download and a key download"))
def host_saw_download(acquirer_host: AcquirerHost, item_check: ItemCheck, hil_rig: Rig) -> None:
    """During the last run the host sent every parameter block and answered a key
    download 00."""
    tid = hil_rig.expected_identity().terminal_id
    out = [
        r
        for r in _since(acquirer_host, item_check)
        if r.direction == "out" and r.terminal_id == tid
    ]
    blocks = {
        r.flags.get("block")
        for r in out
        if r.transaction == "parameter_download" and "block" in r.flags
    }
    total = acquirer_host.parameters.blocks()
    assert blocks == set(range(len(total))), (
        f"host sent blocks {sorted(b for b in blocks if b is not None)} of {len(total)}"
    )
    assert any(r.transaction == "key_download" and r.response_code == "00" for r in out), (
        "the host saw no key download"
    )


# --- sale and reversal -------------------------------------------------------------------


@given(phrase("the host never answers sales"))
def never_answer_sales(acquirer_host: AcquirerHost) -> None:
    """The host takes every sale (0200) and never answers it."""
    acquirer_host.behave("sale", Behaviour.never_answer())


@given(phrase("the host never answers reversals"))
def never_answer_reversals(acquirer_host: AcquirerHost) -> None:
    """The host takes every reversal (0400) and never answers it."""
    acquirer_host.behave("reversal", Behaviour.never_answer())


@when(phrase("the host answers reversals again"))
def answer_reversals(acquirer_host: AcquirerHost) -> None:
    """The host answers reversals normally from now on."""
    acquirer_host.behave("reversal", Behaviour.normal())


@pytest.fixture
def sale_wall_times() -> dict[str, float]:
    """How long each sale of the scenario took as the rig saw it, by STAN (seconds)."""
    return {}


@when(phrase("the terminal makes a sale of {amount:Amount} over the host"), target_fixture="sale")
def make_sale(terminal: Terminal, amount: int, sale_wall_times: dict[str, float]) -> SaleResult:
    """The terminal makes a sale of this amount with its test card, over the host."""
    started = time.monotonic()
    sale = terminal.sale(amount)
    sale_wall_times[sale.stan] = time.monotonic() - started
    reporting.attach_json("sale", as_report(sale))
    return sale


@then(phrase("the sale gave up no sooner than the terminal's response timeout"))
def sale_gave_up_no_sooner(
    sale: SaleResult, sale_wall_times: dict[str, float], host_timeouts: HostTimeouts
) -> None:
    """A sale whose answer never came waited at least the configured response timeout
    before failing (the rig's clock only adds to the terminal's)."""
    assert sale.outcome == "failed", f"sale {sale.describe()}"
    floor_s = host_timeouts.response_ms / 1000 - TIMEOUT_LOWER_MARGIN_S
    took = sale_wall_times[sale.stan]
    measurement = reporting.measure("sale time to give up", took, "s", low=floor_s)
    assert measurement.passed, measurement.describe() + " (it gave up before its timeout)"


@then(phrase("the host received that sale exactly once"))
def sale_received_once(acquirer_host: AcquirerHost, sale: SaleResult, hil_rig: Rig) -> None:
    """One 0200 of that sale reached the host: a sale is never sent twice (a second one
    could charge the card twice), and one that was sent is not lost."""
    tid = hil_rig.expected_identity().terminal_id
    received = [
        r
        for r in acquirer_host.records()
        if r.transaction == "sale"
        and r.direction == "in"
        and r.terminal_id == tid
        and r.fields.get("11") == sale.stan
    ]
    with reporting.action("count the sale at the host", stan=sale.stan, received=len(received)):
        assert len(received) == 1, f"the host received sale {sale.stan} {len(received)} times"


@then(phrase('the sale fails with code "{code:Code}"'))
def sale_fails(sale: SaleResult, code: str) -> None:
    """The sale got no usable answer and failed with this comm code."""
    assert sale.outcome == "failed" and sale.code == code, (
        f"sale outcome {sale.outcome} {sale.code or sale.response_code}, expected failed {code}"
    )


def _reversals_of(records: list[MessageRecord], stan: str) -> list[MessageRecord]:
    return [
        r
        for r in records
        if r.transaction == "reversal"
        and r.direction == "out"
        and original_stan(r.fields) == stan
        and r.response_code == "00"
        and not r.note.startswith("never sent")
    ]


@then(phrase("the host acknowledged exactly one reversal of that sale"))
def one_reversal(acquirer_host: AcquirerHost, sale: SaleResult, hil_rig: Rig) -> None:
    """The host acknowledged one reversal of the sale, no more (after waiting the
    documented grace period for a late duplicate), and its journal shows it reversed."""
    stan = sale.stan
    try:
        acquirer_host.wait_for(lambda rs: bool(_reversals_of(rs, stan)), HOST_WAIT_S)
    except TimeoutError:
        raise DutError(
            f"no reversal of sale {stan} reached the host in {HOST_WAIT_S:g} s"
        ) from None
    # A late duplicate would come at the terminal's next reversal retry: wait the
    # documented grace period for it (returns at once if one shows up).
    grace = duplicate_grace_s(hil_rig)
    with contextlib.suppress(TimeoutError):
        acquirer_host.wait_for(lambda rs: len(_reversals_of(rs, stan)) > 1, grace)
    acked = _reversals_of(acquirer_host.records(), stan)
    sent = _reversals_sent(acquirer_host.records(), stan)
    sales = [s for s in acquirer_host.journal() if s.stan == stan]
    with reporting.action(
        "count reversals", stan=stan, sent=len(sent), acknowledged=len(acked), grace_s=grace
    ):
        assert len(acked) == 1, f"host acknowledged {len(acked)} reversals of sale {stan}"
        assert sales and sales[0].reversals >= 1, f"host journal does not show {stan} reversed"


def _reversals_sent(records: list[MessageRecord], stan: str) -> list[MessageRecord]:
    """Every reversal of ``stan`` that reached the host, answered or not."""
    return [
        r
        for r in records
        if r.transaction == "reversal" and r.direction == "in" and original_stan(r.fields) == stan
    ]


def _reversal_status(terminal: Terminal) -> ReversalStatus:
    status = terminal.reversal_status()
    reporting.attach_json("reversal status", as_report(status))
    return status


@then(phrase("the terminal has no reversal pending"))
def no_reversal_pending(terminal: Terminal, sale: SaleResult) -> None:
    """The terminal owes the host no reversal (of that sale or any other)."""
    status = _reversal_status(terminal)
    if status.pending:
        # The host logs its 0410 a moment before the terminal clears its record. The
        # acknowledgement may have come before this step: look from the session's start.
        terminal.wait_event(
            ReversalAcknowledged,
            since=0,
            timeout=HOST_WAIT_S,
            where=lambda event: event.stan == sale.stan,
        )
        status = _reversal_status(terminal)
    assert not status.pending, f"reversal still pending: {status}"


@then(phrase("the terminal has a reversal pending"))
def reversal_pending(terminal: Terminal, sale: SaleResult) -> None:
    """The terminal still owes the host the reversal of that sale."""
    status = _reversal_status(terminal)
    assert status.pending, "no reversal pending after a sale the host never answered"
    assert status.stan == sale.stan, status


@then(phrase("a new sale after a power cycle is approved with no further reversal sent"))
def no_duplicate_after_power_cycle(
    terminal: Terminal, sale: SaleResult, acquirer_host: AcquirerHost, hil_rig: Rig
) -> None:
    """After a power cycle a new sale is approved and the old sale's reversal went to
    the host exactly once."""
    stan = sale.stan
    terminal.power_off()
    terminal.power_on()
    acquirer_host.behave("sale", Behaviour.normal())
    # A pending reversal must go out before any new sale, so one left over would show
    # up here, before the new 0200.
    again = terminal.sale(PROBE_SALE_AMOUNT)
    reporting.attach_json("sale after power cycle", as_report(again))
    assert again.outcome == "approved", f"sale after power cycle: {again.describe()}"
    # Wait the documented grace period: a duplicate would come at the next retry.
    with contextlib.suppress(TimeoutError):
        acquirer_host.wait_for(
            lambda rs: len(_reversals_sent(rs, stan)) > 1, duplicate_grace_s(hil_rig)
        )
    acked = _reversals_of(acquirer_host.records(), stan)
    sent = _reversals_sent(acquirer_host.records(), stan)
    assert len(acked) == 1 and len(sent) == 1, (
        f"reversal of {stan} sent {len(sent)} times, acknowledged {len(acked)} times"
    )


# --- how the host answers, and what it counted -------------------------------------------


def duplicate_grace_s(hil_rig: Rig) -> float:
    """How long an "exactly once" check waits for a late duplicate (documented)."""
    return DUPLICATE_GRACE_INTERVALS * REVERSAL_RETRY_S * hil_rig.time_scale


@given(
    phrase(
        'the host answers "{transaction:HostTransaction}" requests with response code '
        '"{code:ResponseCode}"'
    )
)
def host_declines(acquirer_host: AcquirerHost, transaction: str, code: str) -> None:
    """The host answers this kind of request with this response code (field 39)."""
    acquirer_host.behave(transaction, Behaviour.decline(code))


@given(phrase('the host never answers "{transaction:HostTransaction}" requests'))
def host_never_answers(acquirer_host: AcquirerHost, transaction: str) -> None:
    """The host takes this kind of request and never answers it (the link stays open)."""
    acquirer_host.behave(transaction, Behaviour.never_answer())


@given(phrase('the host answers "{transaction:HostTransaction}" requests with a malformed message'))
def host_malformed(acquirer_host: AcquirerHost, transaction: str) -> None:
    """The host answers this kind of request with a frame that is not an ISO 8583 message."""
    acquirer_host.behave(transaction, Behaviour.malformed())


@given(phrase('the host corrupts the data of its "{transaction:HostTransaction}" answers'))
def host_corrupts(acquirer_host: AcquirerHost, transaction: str) -> None:
    """The download data (field 62) of these answers arrives with its last byte flipped."""
    acquirer_host.behave(transaction, Behaviour.corrupt())


def _requests_since(
    host: AcquirerHost, check: ItemCheck, transaction: str, tid: str
) -> list[MessageRecord]:
    return [
        r
        for r in _since(host, check)
        if r.transaction == transaction and r.direction == "in" and r.terminal_id == tid
    ]


@then(
    phrase(
        'the host received one "{transaction:HostTransaction}" request for each attempt the '
        "terminal's retries allow"
    )
)
def host_counted_attempts(
    acquirer_host: AcquirerHost,
    item_check: ItemCheck,
    host_timeouts: HostTimeouts,
    hil_rig: Rig,
    transaction: str,
) -> None:
    """The host, not the terminal, counts the attempts: exactly retries + 1 requests of
    this kind from the terminal's TID during the last run (fewer is giving up early,
    more is retrying past the configured limit)."""
    tid = hil_rig.expected_identity().terminal_id
    seen = _requests_since(acquirer_host, item_check, transaction, tid)
    with reporting.action(
        "count attempts at the host", expected=host_timeouts.attempts, seen=len(seen)
    ):
        assert len(seen) == host_timeouts.attempts, (
            f"the host received {len(seen)} {transaction} request(s) from {tid}; with "
            f"{host_timeouts.retries} retries the terminal must make "
            f"{host_timeouts.attempts} attempts"
        )


@then(
    phrase(
        'the "{item:Item}" self-check gave up no sooner than every attempt\'s response '
        "timeout allows"
    )
)
def gave_up_no_sooner(
    item_check: ItemCheck, host_timeouts: HostTimeouts, hil_rig: Rig, item: str
) -> None:
    """A terminal that gives up before its timeouts ran out fails as surely as one that
    waits too long: the run took at least every attempt's response timeout plus the
    back-offs (the rig's clock only adds to the terminal's)."""
    assert item_check.result.item == item, f"last item run was {item_check.result.item}"
    floor_s = host_timeouts.waited_out_s(hil_rig.time_scale) - TIMEOUT_LOWER_MARGIN_S
    measurement = reporting.measure(f"{item} time to give up", item_check.wall_s, "s", low=floor_s)
    assert measurement.passed, measurement.describe() + " (it gave up before its timeouts)"


@then(phrase("the host saw no sign-on from the terminal"))
def host_saw_no_sign_on(acquirer_host: AcquirerHost, item_check: ItemCheck) -> None:
    """No sign-on, from any TID, reached the host during the last run."""
    seen = [r for r in _since(acquirer_host, item_check) if r.transaction == "sign_on"]
    assert not seen, f"the host received {len(seen)} sign-on(s) during the run"


# --- amounts -----------------------------------------------------------------------------


@then(
    phrase(
        'a sale of {amount:Amount} is refused with code "{code:Code}" and nothing reaches the host'
    )
)
def sale_of_amount_refused(terminal: Terminal, hil_rig: Rig, amount: int, code: str) -> None:
    """This sale is refused with this documented code before anything is sent."""
    if code not in SALE_REFUSAL_CODES:
        raise StepValueError(f"{code} is not a documented refusal of payment.sale")
    expect_sale_refused(terminal, hil_rig, amount, code)


@then(phrase('a sale is refused with code "{code:Code}" and nothing reaches the host'))
def sale_refused_with(terminal: Terminal, hil_rig: Rig, code: str) -> None:
    """A sale attempted now is refused with this documented code before anything is sent."""
    sale_of_amount_refused(terminal, hil_rig, PROBE_SALE_AMOUNT, code)


@then(phrase("the sale is approved and the host's journal holds exactly {amount:Amount}"))
def sale_approved_exactly(sale: SaleResult, acquirer_host: AcquirerHost, amount: int) -> None:
    """The sale was approved, and the host journaled that STAN once with exactly this
    amount (no rounding, no digit lost on the way)."""
    assert sale.outcome == "approved", f"sale {sale.describe()}"
    journaled = [s for s in acquirer_host.journal() if s.stan == sale.stan]
    with reporting.action(
        "compare amounts", asked=amount, terminal=sale.amount, host=[s.amount for s in journaled]
    ):
        assert len(journaled) == 1, f"the host journaled sale {sale.stan} {len(journaled)} times"
        assert journaled[0].amount == sale.amount == amount, (
            f"asked for {amount}, the terminal reports {sale.amount}, the host journaled "
            f"{journaled[0].amount} (minor units)"
        )
