"""Thin on purpose: the hil pytest plugin loads through its ``pytest11`` entry point
(see pyproject.toml) and brings the step library; nothing needs wiring here."""
