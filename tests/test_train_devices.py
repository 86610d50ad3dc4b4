"""Training on a chosen device and in mixed precision (``gru4rec.train`` with ``gru4rec.devices`` and
``gru4rec.precision``), all on this machine's CPU: no GPU and no NPU executed here."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from gru4rec.baselines import make_baseline
from gru4rec.cli import main
from gru4rec.config import Config
from gru4rec.devices import DeviceUnavailableError
from gru4rec.evaluate import GRU4RecScorer, evaluate
from gru4rec.logs import read_log
from gru4rec.train import Trainer, train

TINY = Path(__file__).resolve().parents[1] / "data" / "tiny"


def _small(**kw) -> Config:
    base = dict(n_epochs=1, n_sample=16, batch_size=16, layers=(16,), chunk_steps=32, log_every=10)
    return Config.preset("official", **{**base, **kw})


def test_config_json_records_device_environment_and_precision(tiny, tmp_path):
    train_data, _ = tiny
    result = train(_small(device="cpu"), train_data, tmp_path / "run", progress=False, max_steps=40)
    meta = json.loads((tmp_path / "run" / "config.json").read_text())
    assert meta["device"]["kind"] == "cpu" and meta["device"]["requested"] == "cpu"
    assert meta["device"]["ran_on"].endswith("device:CPU:0") and meta["device"]["ran_on"] == result.device
    assert meta["environment"]["where_ops_ran"].endswith("device:CPU:0")
    assert meta["precision"]["precision"] == "fp32" and meta["precision"]["compute_dtype"] == "float32"
    assert meta["distribute"] == {"strategy": "none"}
    assert result.steps == 40  # max_steps cut the epoch short


@pytest.mark.skipif(bool(tf.config.list_physical_devices("GPU")), reason="this machine has a GPU")
def test_absent_device_is_an_error_and_nothing_runs_no_gpu_here(tiny, tmp_path, capsys):
    train_data, _ = tiny
    with pytest.raises(DeviceUnavailableError, match="GPU"):
        train(_small(device="gpu"), train_data, tmp_path / "gpu", progress=False)
    assert not (tmp_path / "gpu" / "config.json").exists()
    args = ["train", "--train", str(TINY / "rsc15_train_tr.txt"), "--out", str(tmp_path / "cli"), "--device", "gpu"]
    assert main(args) == 2
    assert "GPU" in capsys.readouterr().err
    assert main(args[:-1] + ["tpu"]) == 2
    assert "device" in capsys.readouterr().err
    with pytest.raises(ValueError, match="precision"):
        Config(precision="fp16")


@pytest.mark.slow
def test_bfloat16_training_still_learns_and_beats_popularity(tiny, tmp_path):
    train_data, test_data = tiny
    cfg = Config.preset("seed", n_epochs=3, learning_rate=0.005, dropout_p_hidden=0.1, chunk_steps=32,
                        log_every=50, precision="mixed_bfloat16")  # fmt: skip
    result = train(cfg, train_data, tmp_path / "bf16", progress=False)
    losses = result.epoch_losses
    assert losses[0] > losses[1] > losses[2] and losses[2] < losses[0] - 0.3, losses
    pop = evaluate(make_baseline("pop", train_data), test_data, cutoffs=(20,))["recall@20"]
    recall = evaluate(GRU4RecScorer(result.model, output="numpy"), test_data, cutoffs=(20,))["recall@20"]
    print(f"bfloat16: epoch losses {losses}, Recall@20 {recall:.4f} vs POP {pop:.4f}")
    assert recall > pop + 0.1, (recall, pop)
    assert all(v.dtype == tf.float32 for v in result.model.trainable_variables)  # float32 master weights
    meta = json.loads((tmp_path / "bf16" / "config.json").read_text())
    assert meta["precision"]["compute_dtype"] == "bfloat16" and meta["precision"]["loss_scale"] is None


def test_bfloat16_window_is_close_to_float32():
    """One update in bfloat16 moves the weights nearly as float32 does (bfloat16 keeps 8 bits of mantissa)."""
    cfg = Config.from_dict({"layers": (8,), "batch_size": 6, "n_sample": 5, "learning_rate": 0.1, "chunk_steps": 4})
    rng = np.random.default_rng(3)
    counts = rng.integers(1, 20, 30)
    a, b = Trainer(cfg, 30, counts), Trainer(cfg.with_overrides(precision="mixed_bfloat16"), 30, counts)
    x, y = (tf.constant(rng.integers(0, 30, (1, 6)), tf.int32) for _ in range(2))
    r, v = tf.zeros((1, 6), tf.bool), tf.ones((1, 6), tf.bool)
    smp = tf.constant(rng.integers(0, 30, (1, 5)), tf.int32)
    state = [tf.constant(rng.normal(size=(6, 8)), tf.float32)]
    before = [w.numpy() for w in a.model.trainable_variables]
    sa, la = a.update_window(x, y, r, v, smp, state)
    sb, lb = b.update_window(x, y, r, v, smp, state)
    assert sb[0].dtype == tf.float32  # the carried state stays float32
    np.testing.assert_allclose(lb.numpy(), la.numpy(), rtol=0.02)
    # Adagrad's first step is g / |g| per element: elements whose float32 gradient is near zero can flip sign in
    # bfloat16, so compare on average (mean deviation within 10% of the mean step).
    for w0, wa, wb in zip(before, a.model.trainable_variables, b.model.trainable_variables):
        step = np.abs(wa.numpy() - w0).mean()
        assert np.abs(wb.numpy() - wa.numpy()).mean() <= 0.1 * step + 1e-7


def test_float16_with_loss_scaling_runs_and_checkpoints_the_scale(tiny, tmp_path):
    train_data, _ = tiny
    cfg = _small(precision="mixed_float16", n_epochs=2)
    result = train(cfg, train_data, tmp_path / "fp16", progress=False, max_steps=80)
    assert all(np.isfinite(result.epoch_losses)) and result.steps == 80
    reader = tf.train.load_checkpoint(str(tmp_path / "fp16" / "checkpoints"))
    names = [name for name, _ in tf.train.list_variables(str(tmp_path / "fp16" / "checkpoints"))]
    key = next(name for name in names if name.startswith("loss_scale/scale"))
    scale = float(reader.get_tensor(key))
    assert 1.0 <= scale <= 2.0**15, scale
    # each overflow skips its update and halves the scale (no growth within 2,000 steps): at most a couple here
    skipped = round(math.log2(2.0**15 / scale))
    assert 0 <= skipped <= 2 and result.updates == 80 - skipped
    meta = json.loads((tmp_path / "fp16" / "config.json").read_text())
    assert meta["precision"]["compute_dtype"] == "float16" and meta["precision"]["loss_scale"]["initial_scale"] > 1


def test_float16_overflowing_steps_are_skipped_without_advancing_the_optimizer():
    cfg = Config.from_dict({"layers": (8,), "batch_size": 6, "n_sample": 5, "precision": "mixed_float16"})
    rng = np.random.default_rng(4)
    trainer = Trainer(cfg, 30, rng.integers(1, 20, 30))
    trainer.loss_scale.scale.assign(2.0**60)  # the scaled float16 gradients overflow
    x, y = (tf.constant(rng.integers(0, 30, (1, 6)), tf.int32) for _ in range(2))
    before = [w.numpy() for w in trainer.model.trainable_variables]
    trainer.update_window(x, y, tf.zeros((1, 6), tf.bool), tf.ones((1, 6), tf.bool),
                          tf.constant(rng.integers(0, 30, (1, 5)), tf.int32), [tf.zeros((6, 8))])  # fmt: skip
    assert int(trainer.optimizer.step.numpy()) == 0
    assert float(trainer.loss_scale.scale.numpy()) == 2.0**59
    for w0, w in zip(before, trainer.model.trainable_variables):
        np.testing.assert_array_equal(w0, w.numpy())


def test_seed_command_precision_log_every_and_max_steps(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = str(TINY / "rsc15_train_full.txt")
    argv = ["seed", f"--data_dir={data}", "--epoch=3", "--size=16", "--precision=mixed_bfloat16", "--log_every=20",
            "--max_steps=100", "--device=cpu"]  # fmt: skip
    assert main(argv) == 0
    log = read_log(tmp_path / "runs" / "seed" / "train.log")
    assert list(log["step"]) == [1, 20, 40, 60, 80, 100]
    meta = json.loads((tmp_path / "runs" / "seed" / "config.json").read_text())
    assert meta["config"]["precision"] == "mixed_bfloat16" and meta["config"]["log_every"] == 20
    assert meta["device"]["ran_on"].endswith("device:CPU:0")
    capsys.readouterr()
    assert main(argv[:-1] + ["--max_steps=0"]) == 2
    assert "--max_steps" in capsys.readouterr().err
