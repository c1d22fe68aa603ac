"""Which rig-file section builds which instrument: one import line per kind.

Importing a module registers its builder (``register_builder``). The order of the
imports is the build order: later instruments may use earlier ones.
"""

from __future__ import annotations

import hil.instruments.host  # [host]; before [network]: the proxy needs its address
import hil.instruments.network  # [network]
import hil.instruments.qrscreen  # noqa: F401  [qr_screen]
from hil.instruments import cards, faultlines, magstripe  # noqa: F401  [cards] [faultlines] [magstripe]
