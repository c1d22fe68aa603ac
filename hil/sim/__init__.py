"""The simulated POS terminal (digital twin), started by the sim rig as ``python -m hil.sim``.

It speaks only through the channels a physical terminal has (test port, network,
card reader, camera, fault lines), so any other implementation of the documented
contract can replace it. See docs/test-port-protocol.md.
"""

from __future__ import annotations
