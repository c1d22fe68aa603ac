"""The update medium: how the rig delivers a firmware image for the terminal to install.

``UpdateMedium.deliver(image)`` puts an image file where the terminal's ``fw.update``
finds it by name and returns what was delivered (the name and the SHA-256 of the bytes,
computed by the rig), so a scenario can compare what the terminal installed with what
the rig gave it. ``put_back`` takes every image off the medium.

Driver ``folder`` (``[updates]``): a folder the rig owns (by default in the run's work
folder), wired into the terminal as channel ``updates=<absolute folder path>``; the
terminal reads ``<folder>/<file>``. A lab with real terminals registers its own driver
(a USB mass-storage gadget, a TMS download server) under the same Protocol.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from pydantic import Field

from hil import reporting
from hil.config import RigPath
from hil.drivers import BuildContext, Built, Driver, DriverConfig, register
from hil.errors import ConfigError, RigError
from hil.instruments.dut import runs_as_process


@dataclass(frozen=True)
class DeliveredImage:
    """An image on the medium: the name the terminal is told, the rig's own hash."""

    file: str
    sha256: str
    size: int


@runtime_checkable
class UpdateMedium(Protocol):
    name: str

    def deliver(self, image: Path) -> DeliveredImage:
        """Put ``image`` on the medium under its file name."""

    def put_back(self) -> None:
        """Take every image off the medium."""

    def preflight(self) -> str: ...

    def close(self) -> None: ...


class FolderUpdateMedium:
    def __init__(self, folder: Path, *, name: str = "updates") -> None:
        self.name = name
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def deliver(self, image: Path) -> DeliveredImage:
        with reporting.action(f"{self.name}: deliver {image.name}"):
            try:
                data = image.read_bytes()
            except OSError as e:
                raise ConfigError(f"{image}: cannot read firmware image: {e.strerror}") from e
            target = self.folder / image.name
            try:
                target.write_bytes(data)
            except OSError as e:
                raise RigError(f"cannot write {target}: {e.strerror}", instrument=self.name) from e
            return DeliveredImage(image.name, hashlib.sha256(data).hexdigest(), len(data))

    def put_back(self) -> None:
        for entry in self.folder.iterdir():
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)

    def preflight(self) -> str:
        if not self.folder.is_dir():
            raise RigError(f"update folder {self.folder} is gone", instrument=self.name)
        return f"update folder {self.folder}"

    def close(self) -> None:
        self.put_back()


class FolderUpdateMediumConfig(DriverConfig):
    folder: RigPath | None = Field(
        default=None, description="the folder the terminal reads; default: in the run's work folder"
    )


@register("updates", "folder")
class FolderUpdateMediumDriver(Driver):
    """A rig-owned folder wired into the terminal as channel ``updates``."""

    config_model = FolderUpdateMediumConfig

    @classmethod
    def check(cls, config: FolderUpdateMediumConfig, sections: Mapping[str, DriverConfig]) -> None:
        # The folder is on the rig's host: only a terminal running there can read it.
        if not runs_as_process(sections):
            raise ValueError("driver: 'folder' needs dut.driver 'sim' or 'command'")

    @classmethod
    def build(cls, config: FolderUpdateMediumConfig, context: BuildContext) -> Built:
        folder = (config.folder or context.work_dir / "update-medium").resolve()
        if "," in str(folder):
            raise ConfigError(f"updates.folder: {folder} holds a comma, which a channel cannot")
        medium = FolderUpdateMedium(folder)
        return Built(medium, {"updates": str(folder)})
