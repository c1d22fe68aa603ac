"""Firmware images that are not strict JSON: the sim refuses to boot them, the rig to load
them. A manifest read two ways (a key named twice) must never run as "signed"."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from hil.firmware import sign_manifest
from tests.conftest import FIRMWARE, write_sim_rig
from tests.integration.test_sim_process import SimRig

pytestmark = pytest.mark.integration

SIGNING_KEY = (FIRMWARE / "vendor-test-signing-key.pem").read_bytes()
MANIFEST = {
    "model": "POS-SIM-A8",
    "version": "1.4.3",
    "build": "strict-json-test",
    "build_flags": ["release"],
    "seeded_defects": [],
}


def twice_named_defects(folder: Path) -> Path:
    """Signed with ``seeded_defects: []``, which a last-key-wins parser reads; a parser
    that keeps the first key would run ``comm_selfcheck_lies``."""
    text = json.dumps(sign_manifest(MANIFEST, SIGNING_KEY), indent=2).replace(
        '"seeded_defects": []', '"seeded_defects": ["comm_selfcheck_lies"], "seeded_defects": []'
    )
    path = folder / "twice-named.fw.json"
    path.write_text(text, encoding="utf-8")
    return path


def unpaired_surrogate(folder: Path) -> Path:
    """Before strict JSON this parsed, then crashed the signature check at boot."""
    image = sign_manifest(MANIFEST, SIGNING_KEY)
    text = json.dumps(image).replace('"strict-json-test"', '"strict-json-test\\udc00"')
    path = folder / "surrogate.fw.json"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (twice_named_defects, "not strict JSON: duplicate key 'seeded_defects'"),
        (unpaired_surrogate, "not strict JSON: unpaired surrogate \\udc00 in a string"),
    ],
)
def test_terminal_refuses_to_boot_an_image_that_is_not_strict_json(
    tmp_path: Path, make: Callable[[Path], Path], reason: str
) -> None:
    with contextlib.closing(SimRig(tmp_path)) as sim:
        cursor = sim.power_on(firmware=make(tmp_path))
        failed = sim.wait("sys.boot_failed", cursor)
        assert failed.data["code"] == "E_FW_FORMAT"
        assert failed.data["message"] == f"active image: firmware image: {reason}"
        assert not sim.events(cursor, "sys.boot")
        screen = sim.request("display.read")
        assert screen["screen"] == "fw_invalid" and "E_FW_FORMAT" in screen["lines"]
        assert sim.request("device.info")["state"] == "recovery"
        assert sim.process is not None and sim.process.poll() is None  # refused, not crashed


def _hil(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hil", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_rig_refuses_the_image_as_a_configuration_error(tmp_path: Path) -> None:
    image = twice_named_defects(tmp_path)
    error = f"{image}: firmware image: not strict JSON: duplicate key 'seeded_defects'"
    with_option = write_sim_rig(tmp_path / "rig.toml")
    in_rig_file = write_sim_rig(tmp_path / "rig-with-image.toml", firmware=image)
    # the line says where the image was named: the option, or the rig file's field
    for command, where in (
        (["rig", "check", "--rig", str(with_option), "--firmware", str(image)], "--firmware"),
        (["rig", "check", "--rig", str(in_rig_file)], "rig-with-image.toml: dut.firmware"),
        (["run", "--rig", str(in_rig_file)], "rig-with-image.toml: dut.firmware"),
        (["run", "--rig", str(with_option), "--firmware", str(image)], "--firmware"),
    ):
        result = _hil(*command, cwd=tmp_path)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert result.stderr.strip().splitlines() == [f"hil: {where}: {error}"], command
