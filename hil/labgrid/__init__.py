"""Rigs as labgrid places: a lab spread over several machines reserves its rigs
through labgrid's coordinator instead of a home-made one (docs/labgrid.md).

``hil.labgrid.place`` is the only module that imports labgrid (an optional extra,
``pos-hil[labgrid]``, untyped); ``hil.labgrid.drivers`` registers the ``[place]``,
``[console]`` and ``[power]`` drivers named ``labgrid``.
"""
