"""Which rig-file section builds which instrument: one import line per kind.

Importing a module registers its builder (``register_builder``). The order of the
imports is the build order: later instruments may use earlier ones.
"""

from __future__ import annotations
