"""Steps for the host link: comm, terminal_id and data_sync self-checks, sale/reversal.

The terminal's verdict is never taken alone: the host's own record of what reached
it (echo, sign-on, download blocks, reversals) is checked beside it, and the screen
text is compared with the documented contract (``hil.selfcheck_spec``).
"""

from __future__ import annotations

import logging
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from pytest_bdd import given, parsers, then, when

from hil import reporting
from hil.errors import DutError, HilError, RigError
from hil.host import Behaviour, MessageRecord
from hil.instruments.host import AcquirerHost
from hil.rig import Rig
from hil.selfcheck_spec import COMM_MAX_ECHO_RTT_MS, COMM_RETRY_BACKOFF_S, HOST_FAULT_SCREENS
from hil.terminal import Terminal

log = logging.getLogger(__name__)

#: How long the rig waits for the host to see something the terminal must send.
HOST_WAIT_S = 15.0


@dataclass
class HostScenario:
    """What a scenario learnt along the way (settings it made, results it saw)."""

    connect_timeout_ms: int = 5000
    response_timeout_ms: int = 30000
    retries: int = 3
    item: dict[str, Any] = field(default_factory=dict)
    item_wall_s: float = 0.0
    parameters_before: dict[str, Any] = field(default_factory=dict)
    sale: dict[str, Any] = field(default_factory=dict)
    records_before: int = 0


@pytest.fixture
def acquirer_host(hil_rig: Rig) -> AcquirerHost:
    instrument = hil_rig.instrument("host")
    if not isinstance(instrument, AcquirerHost):
        raise RigError("the [host] instrument does not offer AcquirerHost", instrument="host")
    return instrument


@pytest.fixture
def host_scenario() -> HostScenario:
    return HostScenario()


def _since(host: AcquirerHost, scenario: HostScenario) -> list[MessageRecord]:
    return host.records()[scenario.records_before :]


# --- terminal settings ---------------------------------------------------------------


@given(
    parsers.parse(
        "the terminal's host timeouts are {connect:d} ms to connect and {response:d} ms "
        "to answer, with {retries:d} retry"
    )
)
@given(
    parsers.parse(
        "the terminal's host timeouts are {connect:d} ms to connect and {response:d} ms "
        "to answer, with {retries:d} retries"
    )
)
def host_timeouts(
    terminal: Terminal, host_scenario: HostScenario, connect: int, response: int, retries: int
) -> None:
    for key, value in (
        ("comm.connect_timeout_ms", connect),
        ("comm.response_timeout_ms", response),
        ("comm.retries", retries),
    ):
        terminal.config_set(key, value)
    host_scenario.connect_timeout_ms = connect
    host_scenario.response_timeout_ms = response
    host_scenario.retries = retries


@given("the terminal's host port is set to a port where nothing listens")
def wrong_port(terminal: Terminal, request: pytest.FixtureRequest) -> None:
    previous = {k: terminal.config_get(k) for k in ("host.address", "host.port")}
    # Bound but not listening for the whole scenario: connects are refused, and no
    # other program can be handed the port meanwhile.
    reserved = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    reserved.bind(("127.0.0.1", 0))
    port = int(reserved.getsockname()[1])
    with reporting.action("configure a wrong host port", port=port):
        terminal.config_set("host.address", "127.0.0.1")
        terminal.config_set("host.port", port)

    def restore() -> None:
        # The terminal's flash keeps config across scenarios: put the host back.
        reserved.close()
        try:
            for key, value in previous.items():
                terminal.config_set(key, value)
        except HilError:
            log.exception("could not restore the terminal's host address")

    request.addfinalizer(restore)


# --- self-check items ------------------------------------------------------------------


@given(parsers.parse('the rig runs the "{item}" self-check'))
@when(parsers.parse('the rig runs the "{item}" self-check'))
def run_item(
    terminal: Terminal, host_scenario: HostScenario, acquirer_host: AcquirerHost, item: str
) -> None:
    host_scenario.records_before = len(acquirer_host.records())
    started = time.monotonic()
    summary = terminal.selfcheck([item])
    host_scenario.item_wall_s = time.monotonic() - started
    results = [r for r in summary.get("results", []) if r.get("item") == item]
    if len(results) != 1:
        raise DutError(f"selfcheck.run [{item}] returned {len(results)} results for it")
    host_scenario.item = dict(results[0])
    reporting.attach_json(f"self-check {item}", host_scenario.item)


@then(parsers.parse('the "{item}" item passes'))
def item_passes(host_scenario: HostScenario, item: str) -> None:
    result = host_scenario.item
    with reporting.action(f"check {item} passed", result=result.get("code")):
        assert result.get("item") == item, f"last item run was {result.get('item')}, not {item}"
        assert result.get("status") == "pass", (
            f"{item}: {result.get('status')} {result.get('code')}: {result.get('message')}"
        )


@given(parsers.parse('the "{item}" item fails with code "{code}"'))
@then(parsers.parse('the "{item}" item fails with code "{code}"'))
def item_fails(host_scenario: HostScenario, item: str, code: str) -> None:
    result = host_scenario.item
    with reporting.action(f"check {item} failed with {code}", reported=result.get("code")):
        assert result.get("item") == item, f"last item run was {result.get('item')}, not {item}"
        assert result.get("status") == "fail" and result.get("code") == code, (
            f"{item} reported {result.get('status')} {result.get('code')} "
            f"({result.get('message')}); the rig provoked {code}"
        )


@then(parsers.parse('the "{item}" item fails with code "{code}" within its documented time limit'))
def item_fails_in_time(
    host_scenario: HostScenario, terminal: Terminal, hil_rig: Rig, item: str, code: str
) -> None:
    item_fails(host_scenario, item, code)
    s = host_scenario
    scale = getattr(hil_rig.config.dut, "time_scale", 1.0)
    attempts = s.retries + 1
    # Documented bound: every attempt may use its whole connect and response timeout,
    # plus the scaled back-off between attempts; 1 s for the item's own delay and I/O.
    limit_s = (
        attempts * (s.connect_timeout_ms + s.response_timeout_ms) / 1000
        + s.retries * COMM_RETRY_BACKOFF_S * scale
        + 1.0
    )
    measurement = reporting.measure(f"{item} failure time", s.item_wall_s, "s", high=limit_s)
    assert measurement.passed, measurement.describe()


@then("the echo round trip is recorded within the documented limit")
def rtt_recorded(host_scenario: HostScenario) -> None:
    rtt = host_scenario.item.get("details", {}).get("rtt_ms")
    assert isinstance(rtt, int | float), f"comm details carry no rtt_ms: {host_scenario.item}"
    measurement = reporting.measure("echo RTT", float(rtt), "ms", high=COMM_MAX_ECHO_RTT_MS)
    assert measurement.passed, measurement.describe()


@then(parsers.parse("the echo round trip is at least {ms:d} ms"))
def rtt_at_least(host_scenario: HostScenario, ms: int) -> None:
    rtt = host_scenario.item.get("details", {}).get("rtt_ms")
    assert isinstance(rtt, int | float), f"comm details carry no rtt_ms: {host_scenario.item}"
    measurement = reporting.measure("echo RTT under added latency", float(rtt), "ms", low=ms)
    assert measurement.passed, measurement.describe() + " (the latency never reached the link?)"


def _echoes(records: list[MessageRecord], tid: str) -> list[MessageRecord]:
    return [
        r
        for r in records
        if r.transaction == "echo" and r.direction == "in" and r.terminal_id == tid
    ]


@then("the host saw an echo test from the terminal")
def host_saw_echo(acquirer_host: AcquirerHost, host_scenario: HostScenario, hil_rig: Rig) -> None:
    tid = hil_rig.expected_identity().terminal_id
    seen = _echoes(_since(acquirer_host, host_scenario), tid)
    with reporting.action("host saw an echo test", count=len(seen)):
        assert seen, f"the comm item passed but the host saw no echo test from {tid}"


@then("the host saw no echo test from the terminal")
def host_saw_no_echo(
    acquirer_host: AcquirerHost, host_scenario: HostScenario, hil_rig: Rig
) -> None:
    tid = hil_rig.expected_identity().terminal_id
    seen = _echoes(_since(acquirer_host, host_scenario), tid)
    with reporting.action("host saw no echo test", count=len(seen)):
        assert not seen, f"the host saw {len(seen)} echo test(s) through a cut link"


@then(parsers.parse('the idle screen shows the fault "{code}" with its documented text'))
def screen_shows_fault(terminal: Terminal, code: str) -> None:
    expected = f"{code} {HOST_FAULT_SCREENS[code]}"
    screen = terminal.display()
    reporting.attach_json("display", screen)
    lines = [str(line) for line in screen.get("lines", [])]
    assert screen.get("screen") == "idle", f"display shows {screen.get('screen')!r}, not idle"
    assert expected in lines, f"idle screen lacks {expected!r}: {lines}"


@then("the terminal still answers on its test port")
def still_answers(terminal: Terminal) -> None:
    info = terminal.info()
    assert info.get("state") == "idle", f"terminal state {info.get('state')!r} after the fault"


# --- terminal identity -------------------------------------------------------------------


@given(parsers.parse('the host binds the terminal\'s TID to another device "{serial}"'))
def bind_elsewhere(acquirer_host: AcquirerHost, hil_rig: Rig, serial: str) -> None:
    identity = hil_rig.expected_identity()
    assert serial != identity.serial_number, "the other device must have another serial number"
    acquirer_host.bind_terminal(identity.terminal_id, serial)


def _sign_ons(host: AcquirerHost, scenario: HostScenario, tid: str) -> list[MessageRecord]:
    return [
        r
        for r in _since(host, scenario)
        if r.transaction == "sign_on" and r.direction == "out" and r.terminal_id == tid
    ]


@then("the host accepted a sign-on of the terminal's TID from its serial number")
def host_accepted(acquirer_host: AcquirerHost, host_scenario: HostScenario, hil_rig: Rig) -> None:
    identity = hil_rig.expected_identity()
    answers = _sign_ons(acquirer_host, host_scenario, identity.terminal_id)
    assert answers, f"the host saw no sign-on from {identity.terminal_id}"
    last = answers[-1]
    assert last.response_code == "00", f"host answered sign-on with {last.response_code}"
    assert last.flags.get("bound_serial") == identity.serial_number, (
        f"host bound {identity.terminal_id} to {last.flags.get('bound_serial')}"
    )


@then(parsers.parse('the host refused the sign-on with response code "{code}"'))
def host_refused(
    acquirer_host: AcquirerHost, host_scenario: HostScenario, hil_rig: Rig, code: str
) -> None:
    tid = hil_rig.expected_identity().terminal_id
    answers = _sign_ons(acquirer_host, host_scenario, tid)
    assert answers, f"the host saw no sign-on from {tid}"
    assert answers[-1].response_code == code, (
        f"host answered sign-on with {answers[-1].response_code}, expected {code}"
    )


# --- data sync -------------------------------------------------------------------------


@given(parsers.parse('the host offers parameter set "{name}"'))
def host_offers(acquirer_host: AcquirerHost, name: str) -> None:
    acquirer_host.use_parameters(acquirer_host.parameter_set(name))


def _parameters(terminal: Terminal) -> dict[str, Any]:
    status = terminal.console.request("sync.status")
    reporting.attach_json("sync.status", status)
    parameters = status.get("parameters", {})
    return dict(parameters) if isinstance(parameters, dict) else {}


@given("the terminal has synced the host's parameters")
@when("the terminal syncs with the host over the test port")
def sync_over_test_port(terminal: Terminal, host_scenario: HostScenario) -> None:
    result = terminal.console.request("sync.run", timeout=60.0)
    reporting.attach_json("sync.run", result)
    if result.get("code") != "OK":
        raise DutError(f"sync.run: {result.get('code')}: {result.get('message')}")
    host_scenario.parameters_before = _parameters(terminal)


@then("the terminal's parameter digest equals the host's")
def digest_equal(terminal: Terminal, acquirer_host: AcquirerHost) -> None:
    mine = _parameters(terminal)
    host = acquirer_host.parameters
    with reporting.action(
        "compare parameter digests", terminal=mine.get("digest"), host=host.digest
    ):
        assert mine.get("digest") == host.digest, (
            f"terminal parameters {mine.get('version')} digest {mine.get('digest')}, host "
            f"{host.version} digest {host.digest}"
        )


@then("the terminal's parameter digest differs from the host's")
def digest_differs(terminal: Terminal, acquirer_host: AcquirerHost) -> None:
    mine = _parameters(terminal)
    assert mine.get("digest") != acquirer_host.parameters.digest, (
        "the terminal holds the host's new parameters although the download was cut"
    )


@then(parsers.parse('the terminal reports parameter version "{version}"'))
def parameter_version(terminal: Terminal, version: str) -> None:
    mine = _parameters(terminal)
    assert mine.get("version") == version, f"terminal parameters {mine.get('version')}"


@then("the terminal still holds the parameters it had before")
def parameters_kept(terminal: Terminal, host_scenario: HostScenario) -> None:
    before = host_scenario.parameters_before
    now = _parameters(terminal)
    with reporting.action(
        "compare parameters with before", before=before.get("digest"), now=now.get("digest")
    ):
        assert before.get("digest"), "no parameters were recorded before the download"
        assert now.get("digest") == before.get("digest"), (
            f"parameters changed from {before.get('version')} to {now.get('version')} "
            "after an interrupted download"
        )


@then("the host saw the whole parameter download and a key download")
def host_saw_download(
    acquirer_host: AcquirerHost, host_scenario: HostScenario, hil_rig: Rig
) -> None:
    tid = hil_rig.expected_identity().terminal_id
    out = [
        r
        for r in _since(acquirer_host, host_scenario)
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


@given("the host never answers sales")
def never_answer_sales(acquirer_host: AcquirerHost) -> None:
    acquirer_host.behave("sale", Behaviour.never_answer())


@given("the host never answers reversals")
def never_answer_reversals(acquirer_host: AcquirerHost) -> None:
    acquirer_host.behave("reversal", Behaviour.never_answer())


@when("the host answers reversals again")
def answer_reversals(acquirer_host: AcquirerHost) -> None:
    acquirer_host.behave("reversal", Behaviour.normal())


def _amount(text: str) -> int:
    units, _, cents = text.partition(".")
    return int(units) * 100 + int((cents + "00")[:2])


@when(parsers.parse("the terminal makes a sale of {amount} over the host"))
def make_sale(
    terminal: Terminal, host_scenario: HostScenario, acquirer_host: AcquirerHost, amount: str
) -> None:
    host_scenario.records_before = len(acquirer_host.records())
    result = terminal.console.request("payment.sale", {"amount": _amount(amount)}, timeout=60.0)
    reporting.attach_json("payment.sale", result)
    host_scenario.sale = dict(result)


@then(parsers.parse('the sale fails with code "{code}"'))
def sale_fails(host_scenario: HostScenario, code: str) -> None:
    sale = host_scenario.sale
    assert sale.get("outcome") == "failed" and sale.get("code") == code, (
        f"sale outcome {sale.get('outcome')} {sale.get('code') or sale.get('response_code')}, "
        f"expected failed {code}"
    )


def _reversals_of(records: list[MessageRecord], stan: str) -> list[MessageRecord]:
    return [
        r
        for r in records
        if r.transaction == "reversal"
        and r.direction == "out"
        and r.fields.get("11") == stan
        and r.response_code == "00"
        and not r.note.startswith("never sent")
    ]


@then("the host acknowledged exactly one reversal of that sale")
def one_reversal(acquirer_host: AcquirerHost, host_scenario: HostScenario) -> None:
    stan = str(host_scenario.sale.get("stan"))
    try:
        acquirer_host.wait_for(lambda rs: bool(_reversals_of(rs, stan)), HOST_WAIT_S)
    except TimeoutError:
        raise DutError(
            f"no reversal of sale {stan} reached the host in {HOST_WAIT_S:g} s"
        ) from None
    acked = _reversals_of(acquirer_host.records(), stan)
    sales = [s for s in acquirer_host.journal() if s.stan == stan]
    with reporting.action("count acknowledged reversals", stan=stan, acknowledged=len(acked)):
        assert len(acked) == 1, f"host acknowledged {len(acked)} reversals of sale {stan}"
        assert sales and sales[0].reversals >= 1, f"host journal does not show {stan} reversed"


def _reversal_status(terminal: Terminal) -> dict[str, Any]:
    status = terminal.console.request("reversal.status")
    reporting.attach_json("reversal.status", status)
    return status


@then("the terminal has no reversal pending")
def no_reversal_pending(terminal: Terminal, host_scenario: HostScenario) -> None:
    stan = host_scenario.sale.get("stan")
    status = _reversal_status(terminal)
    if status.get("pending"):
        # The host logs its 0410 a moment before the terminal clears its record.
        terminal.console.events.wait_for(
            "reversal.acknowledged",
            since=0,
            timeout=HOST_WAIT_S,
            where=lambda data: data.get("stan") == stan,
        )
        status = _reversal_status(terminal)
    assert not status.get("pending"), f"reversal still pending: {status}"


@then("the terminal has a reversal pending")
def reversal_pending(terminal: Terminal, host_scenario: HostScenario) -> None:
    status = _reversal_status(terminal)
    assert status.get("pending"), "no reversal pending after a sale the host never answered"
    assert status.get("stan") == host_scenario.sale.get("stan"), status


@then("a new sale after a power cycle is approved with no further reversal sent")
def no_duplicate_after_power_cycle(
    terminal: Terminal, host_scenario: HostScenario, acquirer_host: AcquirerHost
) -> None:
    stan = str(host_scenario.sale.get("stan"))
    terminal.power_off()
    terminal.power_on()
    acquirer_host.behave("sale", Behaviour.normal())
    # A pending reversal must go out before any new sale, so one left over would show
    # up here, before the new 0200.
    result = terminal.console.request("payment.sale", {"amount": 100}, timeout=60.0)
    reporting.attach_json("payment.sale after power cycle", result)
    assert result.get("outcome") == "approved", f"sale after power cycle: {result}"
    acked = _reversals_of(acquirer_host.records(), stan)
    sent = [
        r
        for r in acquirer_host.records()
        if r.transaction == "reversal" and r.direction == "in" and r.fields.get("11") == stan
    ]
    assert len(acked) == 1 and len(sent) == 1, (
        f"reversal of {stan} sent {len(sent)} times, acknowledged {len(acked)} times"
    )
