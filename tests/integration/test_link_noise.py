"""Noise on the live test port: the simulated terminal as a process behind a real pty,
stray bytes written to the port in either direction, then a request.

Issue 9: each stray STX used to cost a 200 ms stall and a NAK that the sender counted
against its own frame, so 10 of them made two requests in a row fail. Noise must now be
dropped without NAK and cost the next request nothing. Nothing here is timed: the
request must succeed, and the NAK counters (which only a receiver's decision moves)
must stay at zero.
"""

from __future__ import annotations

import contextlib
import os
import random
import time
from pathlib import Path

import pytest

from hil.protocol.framing import STX
from tests.integration.test_sim_process import SimRig

pytestmark = pytest.mark.integration

# The pty's master end is the terminal's, its slave end the rig's: bytes written to the
# slave (the port the console uses) reach the terminal, bytes written to the master
# reach the rig, as noise on either wire of the cable would.
TO_TERMINAL = "to the terminal"
TO_RIG = "to the rig"

NOISE = {
    "10 stray STX": bytes([STX]) * 10,
    "200 stray STX": bytes([STX]) * 200,
    "200 random bytes": random.Random(20240918).randbytes(200),
    "a lone STX announcing 64 bytes": bytes([STX, 0x00, 0x40]),
}


@pytest.mark.parametrize("direction", [TO_TERMINAL, TO_RIG])
@pytest.mark.parametrize("noise", list(NOISE))
@pytest.mark.parametrize(
    "pause_s",
    [0.0, 0.3],
    ids=["request right behind", "request after 300 ms of silence"],
)
def test_noise_on_the_live_test_port_costs_the_next_request_nothing(
    tmp_path: Path, direction: str, noise: str, pause_s: float
) -> None:
    with contextlib.closing(SimRig(tmp_path)) as sim:
        sim.wait("sys.ready", sim.power_on())
        console = sim.console
        # Boot events are in: the link is idle, so what follows is the noise's doing.
        before = console.stats.as_dict()
        os.write(sim.slave if direction == TO_TERMINAL else sim.master, NOISE[noise])
        if pause_s:
            # Longer than the 200 ms stall timer: a candidate still waiting for the
            # bytes its LEN announced is given up on before the request comes.
            time.sleep(pause_s)

        assert console.request("sys.ping", timeout=5.0)["uptime_ms"] >= 0
        assert console.request("device.info", timeout=5.0)["state"] == "idle"

        after = console.stats.as_dict()
        # Neither end NAKed anything: the terminal's NAKs are the rig's naks_rx.
        assert after["naks_rx"] == before["naks_rx"]
        assert after["naks_tx"] == before["naks_tx"]
        assert after["send_failures"] == before["send_failures"]
        if direction == TO_RIG:
            # Every STX in the noise was judged and dropped as such by the rig.
            stray = NOISE[noise].count(STX)
            assert after["false_starts"] - before["false_starts"] == stray
        assert sim.process is not None and sim.process.poll() is None
