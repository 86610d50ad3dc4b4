"""``gru4rec train`` and ``gru4rec seed`` on the embedded tiny data."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from gru4rec.cli import build_parser, main
from gru4rec.cli.train import seed_config
from gru4rec.logs import read_log

TINY = Path(__file__).resolve().parents[1] / "data" / "tiny"


def test_train_help_lists_official_names(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    for name in ("--layers", "--batch_size", "--n_sample", "--sample_alpha", "--bpreg", "--logq", "--elu_param",
                 "--constrained_embedding", "--dropout_p_embed", "--dropout_p_hidden", "--momentum", "--bptt_steps",
                 "--optimizer", "--preset", "--resume", "--gru_variant"):  # fmt: skip
        assert name in out
    flat = " ".join(out.split())
    for preset in ("rsc15_xe_shared_100", "yoochoose_xe_shared", "rees46_xe_shared", "retailrocket_bprmax_shared",
                   "diginetica_bprmax_shared", "coveo_bprmax_shared", "official", "seed"):  # fmt: skip
        assert preset in flat
    args = build_parser().parse_args(["train", "--train", "t", "--out", "o", "--preset", "coveo_bprmax_shared"])
    assert args.preset == "coveo_bprmax_shared"


@pytest.mark.slow
def test_train_valid_test_and_resume(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "--train", str(TINY / "rsc15_train_tr.txt"), "--valid", str(TINY / "rsc15_train_valid.txt"),
            "--out", str(run), "--n_epochs", "1", "--batch-size", "16", "--n_sample", "32", "--layers", "20",
            "--no-progress"]  # fmt: skip
    assert main(args) == 0
    meta = json.loads((run / "config.json").read_text())
    assert meta["config"]["batch_size"] == 16 and meta["config"]["layers"] == [20]
    assert meta["config"]["logq"] == 1.0  # the official preset underneath
    records = [json.loads(line) for line in (run / "train.jsonl").read_text().splitlines()]
    assert "valid_recall@20" in records[-1]
    args[args.index("1")] = "2"
    assert main(args + ["--resume", "--test", str(TINY / "rsc15_test.txt")]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0 < metrics["recall@20"] <= 1 and metrics["tie_mode"] == "conservative"
    assert "recall" in capsys.readouterr().out


def test_train_rejects_bad_values(tmp_path, capsys):
    base = ["train", "--train", str(TINY / "rsc15_train_tr.txt"), "--out", str(tmp_path / "x")]
    assert main(base + ["--loss", "hinge"]) == 2
    assert "loss" in capsys.readouterr().err
    assert main(base + ["--dropout_p_hidden", "1.5"]) == 2
    assert "dropout_p_hidden" in capsys.readouterr().err
    assert main(["train", "--train", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "y")]) == 2


def _seed_args(**kw):
    parser = build_parser()
    argv = ["seed"] + [f"--{k}={v}" for k, v in kw.items()]
    return parser.parse_args(argv)


def test_seed_defaults_and_mapping():
    config, notes = seed_config(_seed_args())
    assert config.layers == (100,) and config.n_epochs == 3 and config.learning_rate == 0.001
    assert config.dropout_p_hidden == 0.5 and config.batch_size == 50 and config.loss == "cross-entropy"
    assert any("DROPPING" in note for note in notes)
    config, notes = seed_config(_seed_args(loss="bpr", final_act="softmax", layer=2, size=30, dropout=0.2))
    assert config.final_act == "tanh" and config.layers == (30, 30) and config.dropout_p_hidden == 0.2
    assert any("tanh" in note for note in notes)
    assert isinstance(_seed_args(), argparse.Namespace)


def test_seed_train_then_evaluate(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = str(TINY / "rsc15_train_full.txt")
    assert main(["seed", f"--data_dir={data}", "--epoch=1", "--size=20"]) == 0
    captured = capsys.readouterr()
    assert "Epoch 0 Step 1\tlr: 0.001000\tloss: " in captured.out and "Each Step time is:" in captured.out
    assert "DROPPING" in captured.err
    assert read_log(tmp_path / "runs" / "seed" / "train.log")["step"].iloc[0] == 1  # the default run folder
    assert not (tmp_path / "checkpoint").exists()  # not the seed's ./checkpoint in the working folder
    assert main(["seed", f"--data_dir={data}", "--train=0", "--test=0", "--size=20"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Recall@20: ") and "MRR@20: " in out
    assert main(["seed", f"--data_dir={data}", "--train=0", "--test=5", "--size=20"]) == 2
