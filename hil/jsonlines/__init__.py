"""JSON-lines channels between the rig and a process terminal (mag head, fault lines).

One UTF-8 JSON object per line, over TCP on loopback. The rig listens
(``rig_end.RigEndServer``) and wires the address into the terminal's ``HIL_CHANNELS``;
the terminal connects (``terminal_end.TerminalEndClient``). Both ends frame and parse
with ``codec``. Each channel's messages: docs/test-port-protocol.md.
"""
