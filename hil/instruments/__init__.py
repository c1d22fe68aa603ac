"""Rig instruments: one module per kind, each a ``typing.Protocol`` and its drivers."""
