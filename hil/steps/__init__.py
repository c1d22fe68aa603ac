"""The reusable pytest-bdd step library, one module per self-check area.

Steps talk to instruments only through their Protocols (via ``Terminal`` and the
rig), so the same feature file runs on the sim rig and on a physical rig.
"""
