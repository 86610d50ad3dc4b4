"""gru4rec.text: wording helpers (the playground's "1 epoch", not "1 epochs")."""

from __future__ import annotations

from gru4rec.text import plural


def test_plural_says_one_epoch_and_two_epochs() -> None:
    assert plural(1, "epoch") == "1 epoch"
    assert plural(2, "epoch") == "2 epochs" and plural(0, "step") == "0 steps"
