"""The seeded defects of the self-check items (hil.sim.defects), against the same item
with no defect: each corrupts exactly its one behaviour. The matrix (hil matrix, the
end-to-end test) shows the suite catches them; these show what each one does."""

from __future__ import annotations

from pathlib import Path

import pytest

from hil.sim import defects as seeded
from hil.sim.selfcheck import KNOWN_DEFECTS
from tests.unit.test_sim_selfcheck import MIB, Rig


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path / "flash")


def test_every_seeded_defect_is_known_to_the_sim_once() -> None:
    assert len(set(seeded.SEEDED_DEFECTS)) == len(seeded.SEEDED_DEFECTS)
    assert set(seeded.SEEDED_DEFECTS) <= set(KNOWN_DEFECTS)


def test_memory_item_fixed_figures_never_measures(rig: Rig) -> None:
    rig.hw.free, rig.hw.rss = 2 * MIB, 900 * MIB
    assert rig.run("memory").code == "E_MEM_FLASH_LOW"  # healthy: measured
    rig.defects = frozenset({seeded.MEMORY_ITEM_FIXED_FIGURES})
    r = rig.run("memory")
    assert (r.status, r.code) == ("pass", "OK")
    assert (r.details["flash_free_bytes"], r.details["rss_bytes"]) == (128 * MIB, 48 * MIB)


def test_power_item_never_reads_sensor(rig: Rig) -> None:
    rig.hw.supply_v = 10.0
    assert rig.run("power").code == "E_POWER_LOW"
    rig.defects = frozenset({seeded.POWER_ITEM_NEVER_READS_SENSOR})
    r = rig.run("power")
    assert (r.code, r.details["supply_v"]) == ("OK", 12.0)


def test_interfaces_item_ignores_permissions(rig: Rig) -> None:
    rig.config |= {"permissions.sale": False, "permissions.refund": False}
    assert rig.run("payment_interfaces").code == "E_IFACE_NONE"
    rig.defects = frozenset({seeded.INTERFACES_ITEM_IGNORES_PERMISSIONS})
    r = rig.run("payment_interfaces")
    assert r.code == "OK" and r.message == "usable interfaces: card, qr, nfc"
    # with every interface disabled it still fails: only the permissions are ignored
    rig.config |= {"interfaces.card": False, "interfaces.qr": False, "interfaces.nfc": False}
    assert rig.run("payment_interfaces").code == "E_IFACE_NONE"


def test_a_defect_of_another_item_changes_nothing_here(rig: Rig) -> None:
    rig.defects = frozenset(seeded.SEEDED_DEFECTS) - {
        seeded.MEMORY_ITEM_FIXED_FIGURES,
        seeded.POWER_ITEM_NEVER_READS_SENSOR,
    }
    rig.hw.free, rig.hw.supply_v = 2 * MIB, 10.0
    assert rig.run("memory").code == "E_MEM_FLASH_LOW"
    assert rig.run("power").code == "E_POWER_LOW"
