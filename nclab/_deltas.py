"""The δ values of the book's sweep and how a δ is labelled: shared by the runs, the tables and the
figures, and imports nothing, so that the figures of the theory need not load the training stack."""

from __future__ import annotations

__all__ = ["SWEEP_DELTAS", "delta_label"]

SWEEP_DELTAS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.4)  # the paper's first δ sweep


def delta_label(delta: float) -> str:
    """The label of a δ in tables and legends: "CE" for δ = 0, "LS δ=0.05" otherwise (chapters 2-8).

    Example
    -------
    >>> delta_label(0.0), delta_label(0.05)
    ('CE', 'LS δ=0.05')
    """
    return "CE" if delta == 0 else f"LS δ={delta:g}"
