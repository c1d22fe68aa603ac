"""``python -m hil.sim``: run the simulated terminal under the process contract."""

from __future__ import annotations

from hil.sim.terminal import main

raise SystemExit(main())
