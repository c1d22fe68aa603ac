"""The process contract: what the rig hands the terminal in environment variables.

Documented under "Running a terminal implementation" in docs/test-port-protocol.md.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from hil.errors import ConfigError
from hil.sim.channels import Channels, parse_channels
from hil.sim.config import ConfigValueError, validate


@dataclass(frozen=True)
class SimEnvironment:
    console_fd: int
    #: HIL_RIG_ALIVE_FD: reads end-of-file once the rig is gone (None: no watchdog)
    rig_alive_fd: int | None
    state_dir: Path
    firmware: Path | None
    factory_serial: str
    provision_tid: str
    provision_mid: str
    provision_admin_password: str | None
    time_scale: float
    channels: Channels
    #: HIL_FLASH_SYNC: fsync each flash write (default on; the sim rig turns it off)
    flash_sync: bool = True
    #: HIL_DECODE_MEMO: a folder where the camera keeps what it decoded, by the frame's
    #: pixels (hil.sim.scanner.DecodeMemo); None: every frame is decoded
    decode_memo: Path | None = None


def _required(environ: Mapping[str, str], name: str) -> str:
    value = environ.get(name, "")
    if not value:
        raise ConfigError(f"{name} is required")
    return value


def _optional_fd(environ: Mapping[str, str], name: str) -> int | None:
    text = environ.get(name, "")
    if not text:
        return None
    try:
        fd = int(text)
        os.fstat(fd)
    except ValueError:
        raise ConfigError(f"{name} must be a file descriptor number, got {text!r}") from None
    except OSError:
        raise ConfigError(f"{name}: {text} is not an open file descriptor") from None
    return fd


def from_environ(environ: Mapping[str, str]) -> SimEnvironment:
    """Parse and check the variables; ConfigError names the variable at fault."""
    fd_text = _required(environ, "HIL_CONSOLE_FD")
    try:
        console_fd = int(fd_text)
    except ValueError:
        raise ConfigError(
            f"HIL_CONSOLE_FD must be a file descriptor number, got {fd_text!r}"
        ) from None
    if console_fd < 0:
        raise ConfigError(f"HIL_CONSOLE_FD must be >= 0, got {console_fd}")

    rig_alive_fd = _optional_fd(environ, "HIL_RIG_ALIVE_FD")

    scale_text = environ.get("HIL_TIME_SCALE", "") or "1.0"
    try:
        time_scale = float(scale_text)
    except ValueError:
        raise ConfigError(f"HIL_TIME_SCALE must be a number, got {scale_text!r}") from None
    if not math.isfinite(time_scale) or time_scale < 0:
        raise ConfigError(f"HIL_TIME_SCALE must be a finite number >= 0, got {scale_text!r}")

    provision = {}
    for var, key in (("HIL_PROVISION_TID", "terminal_id"), ("HIL_PROVISION_MID", "merchant_id")):
        value = environ.get(var, "")
        if value:
            try:
                validate(key, value)
            except ConfigValueError as e:
                raise ConfigError(f"{var}: {e}") from None
        provision[key] = value

    sync_text = environ.get("HIL_FLASH_SYNC", "") or "1"
    if sync_text not in ("0", "1"):
        raise ConfigError(f"HIL_FLASH_SYNC must be 0 or 1, got {sync_text!r}")

    firmware = environ.get("HIL_FIRMWARE", "")
    memo = environ.get("HIL_DECODE_MEMO", "")
    return SimEnvironment(
        console_fd=console_fd,
        rig_alive_fd=rig_alive_fd,
        state_dir=Path(_required(environ, "HIL_STATE_DIR")),
        firmware=Path(firmware) if firmware else None,
        factory_serial=environ.get("HIL_FACTORY_SERIAL", ""),
        provision_tid=provision["terminal_id"],
        provision_mid=provision["merchant_id"],
        provision_admin_password=environ.get("HIL_PROVISION_ADMIN_PASSWORD") or None,
        time_scale=time_scale,
        channels=parse_channels(environ.get("HIL_CHANNELS", "")),
        flash_sync=sync_text == "1",
        decode_memo=Path(memo) if memo else None,
    )
