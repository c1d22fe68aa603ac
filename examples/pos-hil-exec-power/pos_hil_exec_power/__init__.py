"""pos-hil power driver ``exec``: on, off and cut are commands from the rig file.

Registered as ``("power", "exec")`` when pos-hil imports this module, which it does
for every installed package that names it in the ``pos_hil.drivers`` entry point
group (see pyproject.toml), or when a rig file lists it in ``[rig] plugins``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from pydantic import Field

from hil import reporting
from hil.drivers import BuildContext, Built, Driver, DriverConfig, register
from hil.errors import RigError

__all__ = ["ExecPower", "ExecPowerConfig", "ExecPowerDriver"]

Command = list[str]


class ExecPowerConfig(DriverConfig):
    """The rig file's ``[power]`` options for ``driver = "exec"``."""

    on: Command = Field(min_length=1, description="switches the supply on")
    off: Command = Field(min_length=1, description="graceful power-off")
    cut: Command | None = Field(
        default=None, description="hard cut; default: the off command (one way off)"
    )
    status: Command | None = Field(
        default=None, description="exit 0 = on, 1 = off; default: the last command sent"
    )
    timeout_s: float = Field(default=10.0, gt=0, le=600)


class ExecPower:
    """A supply switched by commands. Implements pos-hil's ``Power`` protocol."""

    def __init__(
        self,
        config: ExecPowerConfig,
        *,
        folder: Path,
        environment: dict[str, str],
        name: str = "power",
    ) -> None:
        self.name = name
        self._config = config
        self._folder = folder
        self._environment = environment
        # Without a status command the supply is what we last asked of it; the rig
        # switches it on before the first scenario, so this is never a guess for long.
        self._commanded_on = False

    def _run(self, action: str, command: Command) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                command,
                cwd=self._folder,
                env={**os.environ, **self._environment},
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=self._config.timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise RigError(
                f"{self.name}: '{action}' command did not finish within "
                f"{self._config.timeout_s:g} s: {' '.join(command)}",
                instrument=self.name,
                last_io=action,
            ) from None
        except OSError as e:
            raise RigError(
                f"{self.name}: cannot run the '{action}' command {command[0]!r}: {e.strerror}",
                instrument=self.name,
                last_io=action,
            ) from None

    def _switch(self, action: str, command: Command, *, on: bool) -> None:
        result = self._run(action, command)
        if result.returncode != 0:
            said = (result.stderr or result.stdout).strip().splitlines()
            raise RigError(
                f"{self.name}: '{action}' command exited {result.returncode}: "
                f"{said[-1] if said else 'no output'}",
                instrument=self.name,
                last_io=action,
            )
        self._commanded_on = on

    def on(self) -> None:
        with reporting.action(f"{self.name}: on", command=self._config.on):
            self._switch("on", self._config.on, on=True)

    def off(self) -> None:
        with reporting.action(f"{self.name}: off (graceful)", command=self._config.off):
            self._switch("off", self._config.off, on=False)

    def cut(self) -> None:
        if self._config.cut is None:
            # Say it in the report: a lab must know the cut was the plain off.
            with reporting.action(f"{self.name}: cut (hard) by the off command"):
                self._switch("cut", self._config.off, on=False)
            return
        with reporting.action(f"{self.name}: cut (hard)", command=self._config.cut):
            self._switch("cut", self._config.cut, on=False)

    @property
    def is_on(self) -> bool:
        if self._config.status is None:
            return self._commanded_on
        result = self._run("status", self._config.status)
        if result.returncode not in (0, 1):
            raise RigError(
                f"{self.name}: 'status' command exited {result.returncode} (0 = on, 1 = off)",
                instrument=self.name,
                last_io="status",
            )
        return result.returncode == 0

    def put_back(self) -> None:
        if not self.is_on:
            self.on()

    def preflight(self) -> str:
        state = "on" if self.is_on else "off"
        source = "status command" if self._config.status is not None else "last command"
        return f"exec supply {state} ({source})"

    def close(self) -> None:
        # Leave the bench as a person expects it after a run: terminal switched off.
        if self._commanded_on:
            self.off()


@register("power", "exec")
class ExecPowerDriver(Driver):
    """``[power] driver = "exec"``: commands run in the rig file's folder."""

    config_model = ExecPowerConfig

    @classmethod
    def build(cls, config: ExecPowerConfig, context: BuildContext) -> Built:
        for option in ("on", "off", "cut", "status"):
            command: Command | None = getattr(config, option)
            if command is not None and not _findable(command[0], context.folder):
                raise context.error(option, f"command not found: {command[0]}")
        power = ExecPower(config, folder=context.folder, environment={"HIL_RIG": context.rig_name})
        return Built(power)


def _findable(program: str, folder: Path) -> bool:
    """Whether ``program`` runs from ``folder``: a path to an executable, or on PATH."""
    if os.sep in program:
        path = Path(program) if Path(program).is_absolute() else folder / program
        return path.is_file() and os.access(path, os.X_OK)
    return shutil.which(program) is not None
