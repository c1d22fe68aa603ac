"""Steps that break the link between terminal and host (``NetworkFaults``)."""

from __future__ import annotations

from typing import cast

import pytest
from pytest_bdd import given, when

from hil.instruments.network import NetworkFaults
from hil.rig import Rig
from hil.steps.common import instrument_of
from hil.steps.phrases import Duration, phrase


@pytest.fixture
def network_faults(hil_rig: Rig) -> NetworkFaults:
    """The rig's fault path between terminal and host; healed after every scenario."""
    return cast(NetworkFaults, instrument_of(hil_rig, "network", NetworkFaults))


@given(phrase("the network blackholes the host"))
@when(phrase("the network blackholes the host"))
def blackhole(network_faults: NetworkFaults) -> None:
    """Connections to the host are accepted, then every byte is dropped."""
    network_faults.blackhole()


@given(phrase("the network adds {latency:Duration} of latency each way"))
def latency(network_faults: NetworkFaults, latency: Duration) -> None:
    """Every chunk between terminal and host is held this long, in both directions."""
    network_faults.latency(latency.ms)


@given(
    phrase("the network adds {latency:Duration} of latency with {jitter:Duration} jitter each way")
)
def latency_with_jitter(network_faults: NetworkFaults, latency: Duration, jitter: Duration) -> None:
    """Every chunk is held this long, give or take the jitter, in both directions."""
    network_faults.latency(latency.ms, jitter.ms)


@given(phrase("the network resets the connection when the host answers"))
def reset_on_answer(network_faults: NetworkFaults) -> None:
    """The connection is reset (TCP RST) as soon as the host starts answering."""
    network_faults.reset_mid_stream(0, "downstream")


@given(phrase("the network cuts the link after {count:Count} bytes from the host"))
def cut_after(network_faults: NetworkFaults, count: int) -> None:
    """The connection is closed once this many bytes came from the host."""
    network_faults.limit_data(count, "downstream")


@given(phrase("the network is healed"))
@when(phrase("the network is healed"))
def healed(network_faults: NetworkFaults) -> None:
    """Every fault on the link is removed."""
    network_faults.heal()
