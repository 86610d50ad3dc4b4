"""The divergence warning (gru4rec.divergence): the rule, and the command line that prints it."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from gru4rec.cli import main
from gru4rec.divergence import DIVERGENCE_HINT, DivergenceWatch, diverged, divergence_message

TINY = Path(__file__).resolve().parents[1] / "data" / "tiny"


def test_diverged_is_more_than_the_factor_times_the_first_loss() -> None:
    assert not diverged(7.0, 69.9) and diverged(7.0, 70.1)
    assert diverged(0.5, 5.1, factor=10) and not diverged(0.5, 5.1, factor=20)
    assert not diverged(7.0, math.nan) and not diverged(math.inf, 1e9)  # NaN stops training elsewhere


def test_watch_warns_once_and_names_the_learning_rate() -> None:
    warnings = []
    watch = DivergenceWatch(0.2, on_warning=warnings.append)
    for loss in (7.6, 7.0, 6.5, 50.0):
        assert watch.observe(loss) is None
    assert not watch.diverging
    message = watch.observe(80.0)
    assert message is not None and watch.diverging and warnings == [message]
    assert message.startswith(DIVERGENCE_HINT) and "learning rate 0.2" in message and "7.6" in message
    watch({"kind": "log", "loss": 1e6})  # a trainer record; no second warning
    assert warnings == [message] and watch.peak == 1e6
    assert divergence_message(1.0, 20.0, 0.05) != message


def test_watch_takes_the_first_finite_loss_as_reference() -> None:
    watch = DivergenceWatch(0.1)
    watch.observe(math.nan)
    watch.observe(2.0)
    assert watch.first == 2.0 and watch.observe(19.0) is None and watch.observe(21.0) is not None
    with pytest.raises(ValueError, match="factor"):
        DivergenceWatch(0.1, factor=1.0)


def _train(tmp_path: Path, capsys, *extra: str) -> tuple[int, str, str]:
    argv = ["train", "--train", str(TINY / "rsc15_train_tr.txt"), "--out", str(tmp_path / "run"), "--n_epochs", "1",
            "--layers", "32", "--n_sample", "128", "--no-progress", *extra]  # fmt: skip
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_cli_train_warns_when_the_loss_diverges(tmp_path, capsys) -> None:
    code, out, err = _train(tmp_path, capsys, "--learning_rate", "1e6")
    assert code == 0  # a warning, not an error: NaN is what stops a run
    assert "warning: diverging: try a lower learning rate" in err and "learning rate 1e+06" in err


@pytest.mark.slow
def test_cli_train_is_quiet_when_the_loss_falls(tmp_path, capsys) -> None:
    code, out, err = _train(tmp_path, capsys, "--valid", str(TINY / "rsc15_train_valid.txt"))
    assert code == 0 and "diverging" not in err
    assert "epoch 1: loss" in out and "validation Recall@20" in out  # --valid is printed, not only in train.jsonl
