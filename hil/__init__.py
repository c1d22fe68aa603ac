"""pos-hil: hardware-in-the-loop self-check certification for payment POS terminals."""

from __future__ import annotations

import os
import sys

__version__ = "0.1.0"


def _rewrite_the_asserts_of_steps_only() -> None:
    """pytest rewrites the asserts of every module of a distribution that has a pytest
    plug-in: all of pos-hil's, in every pytest process (each xdist worker of ``hil run
    --rigs`` too), and again each time where bytecode is not written or the install is
    read-only: about 130 modules, 1.5-2.5 s of CPU each time. Only the step library's
    asserts are checks whose messages a report shows (the library's are invariants), so
    only ``hil.steps`` keeps it. Uses pytest's hook's own set of marked names; a pytest
    without it is left as it is (slower, same results)."""
    for finder in sys.meta_path:
        marked = getattr(finder, "_must_rewrite", None)
        if isinstance(marked, set) and __name__ in marked:
            marked.discard(__name__)
            marked.add(f"{__name__}.steps")
            decided = getattr(finder, "_marked_for_rewrite_cache", None)
            if isinstance(decided, dict):
                decided.clear()


_rewrite_the_asserts_of_steps_only()


def _one_blas_thread_unless_told() -> None:
    """numpy's OpenBLAS starts a thread per core at import, and they spin on the CPU for
    a while: about 0.1 s of CPU per process that imports numpy (every sim terminal that
    powers on, for its scanner's decoder; every rig process that renders a QR screen).
    pos-hil does no linear algebra that such threads speed up, and on a rig host that
    CPU belongs to the other rigs (measured: docs/decisions.md, "Parallel rigs on two
    cores"). Set before numpy loads; a value the caller set is kept."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


_one_blas_thread_unless_told()
