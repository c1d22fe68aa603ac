"""Swipe emulation: pass a test card's stripe over the terminal's magnetic head.

``Magstripe.swipe(profile)`` builds ISO/IEC 7813 track 1 (format B) and track 2 with
their LRCs from the profile and delivers them to the head. ``fault`` provokes what a
lab provokes with a swipe emulator coil: ``bad_lrc`` (both tracks arrive with a wrong
LRC) or ``partial`` (the swipe stops early: leading characters only, no end sentinel).

Driver ``sim``: the sim terminal's mag-head channel (``maghead=127.0.0.1:PORT`` in
HIL_CHANNELS; protocol in docs/test-port-protocol.md). Track data is never logged or
attached: steps and the report see the profile name and the fault only.
"""

from __future__ import annotations

import itertools
from typing import Literal, Protocol, runtime_checkable

from pydantic import Field

from hil import reporting
from hil.cards.profile import DEFAULT_PROFILES, CardProfile, ProfileLibrary
from hil.cards.track import build_track1, build_track2, corrupt_lrc, partial
from hil.config import RigFolder
from hil.drivers import BuildContext, Built, Driver, DriverConfig, register
from hil.errors import ConfigError, DutError
from hil.jsonlines.rig_end import RigEndServer

SwipeFault = Literal["none", "bad_lrc", "partial"]
SWIPE_FAULTS: tuple[SwipeFault, ...] = ("none", "bad_lrc", "partial")


@runtime_checkable
class Magstripe(Protocol):
    name: str
    profiles: ProfileLibrary

    def swipe(self, profile: CardProfile, *, fault: SwipeFault = "none") -> None:
        """Swipe the card; returns once the head has taken the swipe."""

    def put_back(self) -> None: ...

    def preflight(self) -> str: ...

    def close(self) -> None: ...


def swipe_tracks(profile: CardProfile, fault: SwipeFault) -> tuple[str, str]:
    """(track 1, track 2) as the head would pick them up for this swipe."""
    if fault not in SWIPE_FAULTS:
        raise ConfigError(f"unknown swipe fault {fault!r} (known: {', '.join(SWIPE_FAULTS)})")
    track1 = build_track1(
        profile.pan, profile.cardholder_name, profile.expiry, profile.service_code, "0000000"
    )
    track2 = build_track2(profile.pan, profile.expiry, profile.service_code, "0000000")
    if fault == "bad_lrc":
        return corrupt_lrc(track1), corrupt_lrc(track2)
    if fault == "partial":
        return partial(track1), partial(track2)
    return track1, track2


class SimMagHead:
    """Swipes into the sim terminal's mag-head channel."""

    def __init__(
        self,
        profiles: ProfileLibrary,
        *,
        ack_timeout: float,
        port: int = 0,
        name: str = "magstripe",
    ) -> None:
        self.name = name
        self.profiles = profiles
        self.ack_timeout = ack_timeout
        self.server = RigEndServer("maghead", port=port)
        self._ids = itertools.count(1)

    @property
    def address(self) -> str:
        return self.server.address

    def swipe(self, profile: CardProfile, *, fault: SwipeFault = "none") -> None:
        with reporting.action(f"{self.name}: swipe", profile=profile.name, fault=fault):
            if not profile.has_interface("magstripe"):
                raise ConfigError(f"card profile '{profile.name}' has no magnetic stripe")
            track1, track2 = swipe_tracks(profile, fault)
            if not self.server.wait_connected(self.ack_timeout):
                raise DutError(
                    f"{self.name}: the terminal is not connected to its mag-head channel "
                    f"({self.server.address})"
                )
            message = {"type": "swipe", "id": next(self._ids), "track1": track1, "track2": track2}
            if self.server.request(message, key="id", timeout=self.ack_timeout) is None:
                raise DutError(
                    f"{self.name}: the terminal did not take the swipe within {self.ack_timeout} s"
                )

    def put_back(self) -> None:
        return None  # a swipe leaves nothing behind

    def preflight(self) -> str:
        state = "terminal connected" if self.server.connected else "terminal not connected"
        return f"mag-head channel {self.server.address}: {state}"

    def close(self) -> None:
        self.server.close()


class SimMagHeadConfig(DriverConfig):
    profiles: RigFolder | None = Field(
        default=None, description="card profile folder; default pos-hil's test cards"
    )
    ack_timeout_s: float = Field(default=5.0, gt=0, le=60)
    port: int = Field(default=0, ge=0, le=65535, description="loopback port; 0 = ephemeral")


@register("magstripe", "sim")
class SimMagHeadDriver(Driver):
    """Swipes into the sim terminal's mag-head channel (``maghead``)."""

    config_model = SimMagHeadConfig

    @classmethod
    def build(cls, config: SimMagHeadConfig, context: BuildContext) -> Built:
        profiles = ProfileLibrary(config.profiles or DEFAULT_PROFILES)
        head = SimMagHead(profiles, ack_timeout=config.ack_timeout_s, port=config.port)
        return Built(head, {"maghead": head.address})
