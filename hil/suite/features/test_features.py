"""Collects every .feature file in this folder as pytest-bdd scenarios.

The step definitions come from hil's step library, loaded by the hil pytest plugin.
"""

from pytest_bdd import scenarios

scenarios(".")
