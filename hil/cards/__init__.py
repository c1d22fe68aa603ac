"""Cards: profiles, BER-TLV, the virtual EMV card, magstripe tracks, vpcd and pcscd.

Used on the rig side (the card the rig serves to PC/SC) and by the simulated
terminal (TLV parsing, track decoding). See docs/cards.md.
"""
