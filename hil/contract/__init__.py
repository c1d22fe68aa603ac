"""What the documentation promises a terminal does, as the rig's own tables.

Each module restates one part of docs/test-port-protocol.md (and docs/qr.md) on the
rig side: ``selfcheck`` the self-check items, their codes and screen texts; ``cards``
the card read codes and screens; ``qr`` the scanner envelope and calibration target.
They are kept apart from the simulated terminal's tables on purpose: a scenario judges
the terminal against the documented contract, not against the terminal's own code,
so a terminal that changes its codes is caught.
"""
