"""The self-check suite that ships with pos-hil: features, the default sim rig, and the
synthetic test data they use (card profiles, QR payloads, host parameter sets, signed
firmware images).

Everything here is package data, so ``pip install pos-hil`` and ``hil run`` in an empty
folder run the whole suite on the simulated rig. The rig file refers to the fixtures
by paths relative to itself (``../fixtures/...``), so the folder layout below is the
layout a lab project gets from ``hil init``:

    features/   one .feature per self-check area
    fixtures/   cards/, firmware/, host/, qr/
    rigs/       sim.toml, the embedded default rig

pos-hil is installed as files (wheel or editable), never run from a zip, so these are
plain paths on disk.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

#: the folder this package lives in
SUITE = Path(str(resources.files(__name__)))
FEATURES = SUITE / "features"
FIXTURES = SUITE / "fixtures"
DEFAULT_RIG = SUITE / "rigs" / "sim.toml"
