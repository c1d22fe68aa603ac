"""pos-hil: hardware-in-the-loop self-check certification for payment POS terminals."""

from __future__ import annotations

__version__ = "0.1.0"
