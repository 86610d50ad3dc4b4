"""Small wording helpers shared by the command line and the notebooks' widgets."""

from __future__ import annotations

__all__ = ["plural"]


def plural(count: int, noun: str) -> str:
    """``"1 epoch"``, ``"2 epochs"``, ``"0 epochs"``: the count and the noun, with an ``s`` unless the count is 1."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
