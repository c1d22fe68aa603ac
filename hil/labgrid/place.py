"""A labgrid place held by this rig: the narrow, typed wrapper around labgrid.

This is the only module that imports labgrid (untyped, an optional extra). It uses
labgrid's client session to reserve the place on the coordinator (the same gRPC
calls ``labgrid-client acquire`` and ``release`` make), builds the place's resources
with labgrid's own resource factory, and binds labgrid's own drivers to them:
``SerialDriver`` for the terminal's test port (a ``NetworkSerialPort``, which the
exporter serves with ser2net over RFC 2217) and ``NetworkPowerDriver`` for its
supply (a ``NetworkPowerPort``).

Why the console's bytes go through the pyserial port that ``SerialDriver`` opened,
and not through ``SerialDriver.read``/``write``: those are labgrid "steps", and
labgrid keeps one process-wide step stack that asserts strict nesting. pos-hil's
test-port session reads on its own thread while steps write on the main thread, so
two steps would overlap and trip that assertion. The driver still does what matters
for a lab: it resolves the resource (including labgrid's SSH proxy for an isolated
exporter), builds the RFC 2217 URL and opens the port.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import importlib.metadata
import io
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from hil.errors import ConfigError, RigError

log = logging.getLogger(__name__)

#: The pyserial fork labgrid depends on; the ``labgrid`` extra pins it.
SERIAL_FORK = "pyserial-labgrid"
SERIAL_FORK_VERSION = "3.5.0.2"
#: How long the exporter may take to bring a place's resources up after acquiring.
RESOURCES_READY_S = 15.0
#: How long ser2net may take to listen once the exporter published its port.
SER2NET_LISTEN_S = 5.0
#: The RFC 2217 option negotiation's limit (labgrid's SerialDriver default: 3 s).
RFC2217_NEGOTIATION_S = 10.0
REINSTALL_FORK = f"pip install --force-reinstall --no-deps {SERIAL_FORK}=={SERIAL_FORK_VERSION}"


def _labgrid() -> Any:
    """labgrid's modules this wrapper uses, or a ConfigError naming the extra."""
    try:
        import labgrid
        import labgrid.driver
        import labgrid.remote.client
    except ImportError as e:
        raise ConfigError(
            f"labgrid is not installed ({e}): install pos-hil with its labgrid extra, "
            "pip install 'pos-hil[labgrid]' (docs/labgrid.md)"
        ) from None
    return labgrid


def serial_package_problem() -> str | None:
    """Why the ``serial`` package on disk is not the labgrid fork, or None when it is.

    pyserial and pyserial-labgrid install the same files (``serial/``); pip lets
    whichever installs last win and reports nothing. labgrid's SerialDriver sets the
    port's timeout on every read; upstream pyserial 3.5 then renegotiates the RFC 2217
    port settings each time, the fork does not. So the files are checked against the
    fork's own record (sha256 of every ``serial/*.py``), not its version string.
    """
    try:
        fork = importlib.metadata.distribution(SERIAL_FORK)
    except importlib.metadata.PackageNotFoundError:
        return f"{SERIAL_FORK} is not installed"
    if fork.version != SERIAL_FORK_VERSION:
        return f"{SERIAL_FORK} is {fork.version}, pos-hil[labgrid] pins {SERIAL_FORK_VERSION}"
    checked = 0
    for file in fork.files or ():
        if not (file.parts[0] == "serial" and file.name.endswith(".py")) or file.hash is None:
            continue
        path = Path(str(file.locate()))
        try:
            digest = hashlib.new(file.hash.mode, path.read_bytes()).digest()
        except OSError:
            return f"{file} is missing (was pyserial or {SERIAL_FORK} uninstalled?)"
        if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != file.hash.value:
            return f"{file} is not {SERIAL_FORK}'s (pyserial's files won the install)"
        checked += 1
    if checked == 0:
        return f"{SERIAL_FORK} records no serial/*.py files"
    return None


def check_serial_package() -> None:
    problem = serial_package_problem()
    if problem is not None:
        raise RigError(
            f"place: the serial package is not labgrid's fork: {problem}; run {REINSTALL_FORK} "
            "(docs/labgrid.md, 'pyserial and the fork')",
            instrument="place",
        )


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """labgrid's client prints its progress ("acquired place x"); the rig's report
    and hil's progress line are the places for that, not stdout."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


@dataclass(frozen=True)
class ResourceSummary:
    name: str
    cls: str


class LabgridPlace:
    """One labgrid place, reserved for this rig while it runs.

    ``acquire=False`` is for a lab that reserves places itself (``labgrid-client
    acquire`` in its CI job): the place must then already be held by this user on this
    host, and the rig leaves it held when it closes.
    """

    def __init__(self, coordinator: str, place: str, *, acquire: bool = True) -> None:
        self.coordinator = coordinator
        self.place = place
        self.acquire = acquire
        self.name = "place"
        self._labgrid = _labgrid()
        check_serial_package()
        client = self._labgrid.remote.client
        try:
            with _quiet():
                self._session: Any = client.start_session(
                    coordinator,
                    extra={
                        "args": argparse.Namespace(place=place, allow_unmatched=False, kick=False),
                        "prog": "pos-hil",
                    },
                )
        except (client.Error, OSError) as e:
            raise RigError(
                f"place: cannot reach the labgrid coordinator at {coordinator} ({e}); "
                "is labgrid-coordinator running there? (place.coordinator in the rig file)",
                instrument="place",
            ) from None
        self._held = False
        self._target: Any = None
        self._drivers: list[Any] = []

    # --- who holds it ----------------------------------------------------------------

    @property
    def me(self) -> str:
        """How the coordinator names this client: host/user (LG_HOSTNAME, LG_USERNAME)."""
        return f"{self._session.gethostname()}/{self._session.getuser()}"

    def _sync(self) -> None:
        if not self._session.loop.run_until_complete(self._session.sync_with_coordinator()):
            raise RigError(
                f"place: lost the labgrid coordinator at {self.coordinator}", instrument="place"
            )

    def _place(self) -> Any:
        places: dict[str, Any] = self._session.places
        found = places.get(self.place)
        if found is None:
            known = ", ".join(sorted(places)) or "none"
            raise ConfigError(
                f"place.name: the labgrid coordinator at {self.coordinator} has no place "
                f"'{self.place}' (its places: {known}); create it with labgrid-client "
                f"-p {self.place} create, or fix place.name in the rig file"
            )
        return found

    def holder(self) -> str | None:
        """Who holds the place now (``host/user``), or None when it is free."""
        self._sync()
        acquired = self._place().acquired
        return str(acquired) if acquired else None

    def reserve(self) -> None:
        """Acquire the place (or check it is ours when ``acquire`` is off); a place
        held by anyone else is a rig fault naming the holder."""
        holder = self.holder()
        if not self.acquire:
            if holder != self.me:
                raise RigError(
                    f"place: {self.place} must be acquired by {self.me} before the run "
                    f"(place.acquire = false) but is "
                    + ("free" if holder is None else f"held by {holder}"),
                    instrument="place",
                )
            return
        if holder is not None:
            raise RigError(
                f"place: {self.place} is held by {holder} (labgrid coordinator "
                f"{self.coordinator}); wait for that run, or ask {holder.split('/')[-1]} "
                f"to release it: labgrid-client -p {self.place} release",
                instrument="place",
            )
        client = self._labgrid.remote.client
        try:
            with _quiet():
                self._session.loop.run_until_complete(self._session.acquire())
        except client.Error as e:
            # someone acquired it between our look and our request
            raise RigError(f"place: cannot acquire {self.place}: {e}", instrument="place") from None
        self._held = True
        log.info("acquired labgrid place %s as %s", self.place, self.me)

    def release(self) -> None:
        """Release the place if this rig acquired it; never raises."""
        if not self._held:
            return
        self._held = False
        try:
            with _quiet():
                self._session.loop.run_until_complete(self._session.release())
        except Exception as e:  # the coordinator may be gone; say so, go on
            log.warning(
                "place: could not release %s (%s): release it with labgrid-client -p %s release",
                self.place,
                e,
                self.place,
            )
        else:
            log.info("released labgrid place %s", self.place)

    # --- its resources, through labgrid's own drivers ----------------------------------

    def resources(self) -> list[ResourceSummary]:
        self._sync()
        entries: dict[tuple[str, str], Any] = self._session.get_target_resources(self._place())
        return [ResourceSummary(name, cls) for (name, cls) in sorted(entries)]

    def _ready_resources(self, timeout: float = RESOURCES_READY_S) -> dict[tuple[str, str], Any]:
        """The place's resources once the exporter has them up: it starts ser2net for
        a serial port only when the place is acquired, then tells the coordinator its
        TCP port, so right after acquiring, a NetworkSerialPort may have none yet."""
        deadline = time.monotonic() + timeout
        while True:
            self._sync()
            entries: dict[tuple[str, str], Any] = self._session.get_target_resources(self._place())
            waiting = [
                f"{cls} '{name}'"
                for (name, cls), entry in sorted(entries.items())
                if not entry.avail or ("port" in entry.args and entry.args["port"] is None)
            ]
            if not waiting:
                return entries
            if time.monotonic() > deadline:
                raise RigError(
                    f"place: {self.place}'s {', '.join(waiting)} not up within {timeout:g} s "
                    "(is its exporter running, and ser2net installed on that machine?)",
                    instrument="place",
                )
            self._session.loop.run_until_complete(asyncio.sleep(0.1))

    def _target_for_drivers(self) -> Any:
        """A labgrid Target holding the place's resources, made by labgrid's factory."""
        if self._target is not None:
            return self._target
        labgrid = self._labgrid
        target = labgrid.Target(self.place)
        entries = self._ready_resources()
        for (name, _cls), entry in sorted(entries.items()):
            resource = labgrid.target_factory.make_resource(target, entry.cls, name, entry.args)
            resource.avail = entry.avail
            resource.extra = entry.extra
        self._target = target
        return target

    def _bind(
        self,
        driver_name: str,
        resource_cls: str,
        what: str,
        resource: str | None,
        *,
        options: dict[str, Any] | None = None,
        retry_s: float = 0.0,
    ) -> Any:
        """labgrid's ``driver_name`` bound to the place's ``resource_cls`` (the one named
        ``resource`` when the place has several), activated; an activation that fails
        with an OS error (connection refused) is tried again for ``retry_s``."""
        target = self._target_for_drivers()
        candidates = [r for r in target.resources if type(r).__name__ == resource_cls and r.avail]
        if resource is not None:
            candidates = [r for r in candidates if r.name == resource]
        if len(candidates) != 1:
            found = ", ".join(f"{type(r).__name__} '{r.name}'" for r in target.resources)
            wanted = resource_cls + (f" named '{resource}'" if resource else "")
            problem = "no" if not candidates else "more than one"
            raise RigError(
                f"place: {self.place} offers {problem} {wanted} for the {what} "
                f"(its resources: {found or 'none'}); "
                + (
                    "name one with the section's 'resource' option"
                    if candidates
                    else "export one and add it to the place (labgrid-client add-match)"
                ),
                instrument="place",
            )
        chosen = candidates[0]

        def failed(e: Exception) -> RigError:
            return RigError(
                f"{what}: labgrid {driver_name} on {resource_cls} '{chosen.name}' of "
                f"place {self.place} failed: {e}",
                instrument=what,
            )

        driver_cls = getattr(self._labgrid.driver, driver_name)
        try:
            target.set_binding_map({"port": chosen.name})
            driver = driver_cls(target, name=f"pos-hil-{what}", **(options or {}))
        except Exception as e:
            raise failed(e) from None
        deadline = time.monotonic() + retry_s
        while True:
            try:
                target.activate(driver)
                break
            except OSError as e:  # pyserial's SerialException is one
                if time.monotonic() > deadline:
                    raise failed(e) from None
                time.sleep(0.2)
            except Exception as e:
                raise failed(e) from None
        self._drivers.append(driver)
        return driver

    def serial_console(self, resource: str | None = None) -> tuple[Any, str]:
        """labgrid's SerialDriver, active on the place's NetworkSerialPort (its
        ``serial`` is the open pyserial port), and where it leads.

        The exporter publishes the port half a second after starting ser2net, which
        on a loaded bench machine may not listen yet: refused connections are retried
        for a few seconds. The RFC 2217 negotiation gets more time than labgrid's 3 s
        default for the same reason."""
        driver = self._bind(
            "SerialDriver",
            "NetworkSerialPort",
            "console",
            resource,
            options={"timeout": RFC2217_NEGOTIATION_S},
            retry_s=SER2NET_LISTEN_S,
        )
        url = str(driver.serial.port).split("?")[0]
        return driver, url

    def power_switch(self, resource: str | None = None) -> LabgridPowerSwitch:
        driver = self._bind("NetworkPowerDriver", "NetworkPowerPort", "power", resource)
        return LabgridPowerSwitch(driver)

    def deactivate(self, driver: Any) -> None:
        if self._target is not None and driver in self._drivers:
            self._drivers.remove(driver)
            with contextlib.suppress(Exception):
                self._target.deactivate(driver)

    def close(self) -> None:
        """Deactivate labgrid's drivers, release the place, leave the coordinator."""
        for driver in list(self._drivers):
            self.deactivate(driver)
        self.release()
        session = self._session
        with contextlib.suppress(Exception), _quiet():
            session.loop.run_until_complete(session.stop())
            session.loop.run_until_complete(session.close())


class LabgridPowerSwitch:
    """labgrid's NetworkPowerDriver, typed: on, off, state."""

    def __init__(self, driver: Any) -> None:
        self._driver = driver

    @property
    def labgrid_driver(self) -> Any:
        return self._driver

    @property
    def where(self) -> str:
        port = self._driver.port
        return f"{port.model} {port.host} index {port.index}"

    def set(self, on: bool) -> None:
        try:
            if on:
                self._driver.on()
            else:
                self._driver.off()
        except Exception as e:
            raise RigError(
                f"power: labgrid NetworkPowerDriver ({self.where}) could not switch "
                f"{'on' if on else 'off'}: {e}",
                instrument="power",
                last_io="on" if on else "off",
            ) from None

    def get(self) -> bool:
        try:
            return bool(cast(object, self._driver.get()))
        except Exception as e:
            raise RigError(
                f"power: labgrid NetworkPowerDriver ({self.where}) could not read the state: {e}",
                instrument="power",
                last_io="get",
            ) from None
