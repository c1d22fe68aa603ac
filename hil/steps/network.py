"""Steps that break the link between terminal and host (``NetworkFaults``)."""

from __future__ import annotations

import pytest
from pytest_bdd import given, parsers, when

from hil.errors import RigError
from hil.instruments.network import NetworkFaults
from hil.rig import Rig


@pytest.fixture
def network_faults(hil_rig: Rig) -> NetworkFaults:
    """The rig's fault path between terminal and host; healed after every scenario."""
    instrument = hil_rig.instrument("network")
    if not isinstance(instrument, NetworkFaults):
        raise RigError(
            "the [network] instrument does not offer NetworkFaults", instrument="network"
        )
    return instrument


@given("the network blackholes the host")
@when("the network blackholes the host")
def blackhole(network_faults: NetworkFaults) -> None:
    network_faults.blackhole()


@given(parsers.parse("the network adds {ms:d} ms of latency each way"))
def latency(network_faults: NetworkFaults, ms: int) -> None:
    network_faults.latency(ms)


@given(parsers.parse("the network adds {ms:d} ms of latency with {jitter:d} ms jitter each way"))
def latency_with_jitter(network_faults: NetworkFaults, ms: int, jitter: int) -> None:
    network_faults.latency(ms, jitter)


@given("the network resets the connection when the host answers")
def reset_on_answer(network_faults: NetworkFaults) -> None:
    network_faults.reset_mid_stream(0, "downstream")


@given(parsers.parse("the network cuts the link after {count:d} bytes from the host"))
def cut_after(network_faults: NetworkFaults, count: int) -> None:
    network_faults.limit_data(count, "downstream")


@given("the network is healed")
@when("the network is healed")
def healed(network_faults: NetworkFaults) -> None:
    network_faults.heal()
