"""The reusable pytest-bdd step library, one module per area.

Steps talk to the terminal through its domain API (``hil.terminal.Terminal``, never a
wire command) and to instruments only through their Protocols, so the same feature
file runs on the sim rig and on a physical rig. Every phrase is declared with
``hil.steps.phrases.phrase`` (typed parameters); ``hil steps`` lists them all
(docs/steps.md).
"""
