"""The vpcd driver a hil pcscd loads: Debian's unless the pool names another (the bench
compares a patched one, docs/cards.md "Insertion latency: the floor")."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from hil.cards import pcscd
from hil.cards.pcscd import VPCD_DRIVER, VpcdPool, _start, ephemeral_port_range
from hil.errors import RigError


def test_a_pool_loads_debians_driver_unless_told_otherwise() -> None:
    assert VpcdPool("HIL Virtual Card", 29990).driver == VPCD_DRIVER


def test_a_missing_driver_is_a_rig_fault_naming_it_before_pcscd_starts(tmp_path: Path) -> None:
    missing = tmp_path / "libifdvpcd-patched.so"
    pool = VpcdPool("HIL Driver Check", 39990, 1, driver=missing)
    with pytest.raises(RigError, match=f"vpcd driver {missing} missing$"):
        _start(pool, timeout=1.0)


needs_vpcd = pytest.mark.skipif(
    not VPCD_DRIVER.exists() or pcscd.shutil.which("pcscd") is None,
    reason="pcscd and vsmartcard-vpcd are not installed (scripts/setup.sh installs them)",
)


@needs_vpcd
def test_a_taken_port_inside_the_ephemeral_range_says_to_move_below_it() -> None:
    # An outgoing connection's source port is what took the sim's old default once.
    ephemeral = ephemeral_port_range()
    assert ephemeral is not None
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))  # the kernel picks from the ephemeral range
        port = holder.getsockname()[1]
        assert port in ephemeral
        with pytest.raises(RigError) as raised:
            _start(VpcdPool("HIL Port Check", port, 1), timeout=1.0)
    assert f"vpcd port {port} " in str(raised.value)
    assert f"choose a [cards] port below {ephemeral.start}" in str(raised.value)


@needs_vpcd
def test_a_taken_port_outside_the_ephemeral_range_just_says_choose_another(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pcscd, "ephemeral_port_range", lambda: None)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        with pytest.raises(RigError, match="taken by another program; choose another"):
            _start(VpcdPool("HIL Port Check", port, 1), timeout=1.0)


def test_the_ephemeral_range_is_read_from_the_kernel_file(tmp_path: Path) -> None:
    setting = tmp_path / "ip_local_port_range"
    setting.write_text("32768\t60999\n")
    assert ephemeral_port_range(setting) == range(32768, 61000)
    setting.write_text("garbage\n")
    assert ephemeral_port_range(setting) is None
    assert ephemeral_port_range(tmp_path / "absent") is None


def test_the_sim_pool_lies_below_the_usual_ephemeral_range() -> None:
    from hil.instruments.cards import VpcdCardsConfig

    defaults = VpcdCardsConfig.model_validate({"driver": "vpcd"})
    top = defaults.port + 2 * defaults.readers - 1
    assert top < 32768, "Linux hands out 32768-60999 as source ports by default"
