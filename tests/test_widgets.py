"""The playground's logic (gru4rec.widgets): controls -> Config, the loss-curve points, one run, the history and the
tables, and the ipywidgets UI driven without a front end (its Train handler is the function the button calls)."""

from __future__ import annotations

import math
import threading

import numpy as np
import pandas as pd
import pytest

from gru4rec import widgets
from gru4rec.config import LOSSES, Config
from gru4rec.loss_settings import LOSS_SETTINGS_SOURCE, loss_settings
from gru4rec.widgets import (
    Controls,
    LossCurve,
    PlaygroundData,
    RunHistory,
    controls_for_loss,
    describe_config,
    describe_loss_settings,
    load_playground_data,
    log_every_for,
    make_config,
    next_run_dir,
    results_table,
    run_experiment,
    table_html,
)

FAST = dict(data_preset="tiny", n_epochs=1, layer_size=16, n_sample=128, batch_size=32)


# ----------------------------------------------------------------------------------------------- controls -> Config
def test_make_config_defaults_are_the_official_setting_with_the_controls_applied() -> None:
    config = make_config(Controls())
    official = Config.preset("official")
    for name in ("optimizer", "momentum", "constrained_embedding", "embedding", "logq", "bpreg", "final_act"):
        assert getattr(config, name) == getattr(official, name), name
    assert config.layers == (100,) and config.batch_size == 32 and config.n_sample == 2048
    assert config.dropout_p_hidden == 0.4 and config.dropout_p_embed == 0.0
    assert config.learning_rate == 0.2 and config.sample_alpha == 0.5
    assert config.bptt_steps == 1 and config.n_epochs == 3


def test_default_controls_are_the_cross_entropy_settings() -> None:
    assert controls_for_loss("cross-entropy") == Controls()


def test_make_config_maps_every_control() -> None:
    controls = Controls(
        loss="bpr-max", layer_size=64, batch_size=128, n_sample=512, sample_alpha=0.75, dropout=0.1,
        dropout_embed=0.3, learning_rate=0.05, momentum=0.3, bpreg=1.5, final_act="elu-1", method="BPTT",
        bptt_steps=8, n_epochs=2, data_preset="tiny",
    )  # fmt: skip
    config = make_config(controls)
    assert config.loss == "bpr-max" and config.final_act == "elu-1" and config.final_activation == "elu-1"
    assert config.logq == 0.0 and config.bpreg == 1.5 and config.momentum == 0.3 and config.dropout_p_embed == 0.3
    assert config.layers == (64,) and config.batch_size == 128 and config.n_sample == 512
    assert config.sample_alpha == 0.75 and config.dropout_p_hidden == 0.1 and config.learning_rate == 0.05
    assert config.bptt_steps == 8 and config.n_epochs == 2
    # a mapping works too, and the BPTT window is ignored under BP
    assert make_config({**controls.as_dict(), "method": "BP"}).bptt_steps == 1
    assert make_config(controls, seed=7).seed == 7


@pytest.mark.parametrize("loss", LOSSES)
def test_controls_for_loss_move_to_the_loss_settings(loss: str) -> None:
    base = Controls(layer_size=64, n_epochs=2, learning_rate=0.9, momentum=0.0, data_preset="tiny")
    controls = controls_for_loss(loss, base=base, n_sample=None, batch_size=16)
    config = make_config(controls)
    for name, value in loss_settings(loss).items():
        assert getattr(config, name) == value, name  # logq too, which has no control
    assert controls.layer_size == 64 and controls.n_epochs == 2 and controls.batch_size == 16
    assert controls.n_sample == base.n_sample  # None: not changed
    assert loss in describe_loss_settings(loss) and LOSS_SETTINGS_SOURCE[loss] in describe_loss_settings(loss)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"method": "TBPTT"}, "method"),
        ({"method": "BPTT", "bptt_steps": 1}, "bptt_steps"),
        ({"loss": "hinge"}, "loss"),
        ({"loss": "bpr-max", "final_act": "softmax"}, "final_act"),
        ({"dropout": 1.0}, "dropout_p_hidden"),
        ({"learning_rate": 0.0}, "learning_rate"),
    ],
)
def test_make_config_rejects_bad_values_naming_them(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_config(Controls(**changes))


def test_describe_config() -> None:
    text = describe_config(make_config(Controls(method="BPTT", bptt_steps=6, layer_size=50, n_sample=0)))
    assert "50 units" in text and "BPTT(6)" in text and "in-batch neg" in text and "XE (softmax)" in text
    assert "BP ·" in describe_config(make_config(Controls())) and "momentum 0.2" in text
    assert "bpreg 1.95" in describe_config(make_config(controls_for_loss("bpr-max")))


# ----------------------------------------------------------------------------------------------- the curve
def test_loss_curve_recovers_window_means_from_running_means() -> None:
    rng = np.random.default_rng(0)
    steps_per_epoch, log_every = 10, 3
    step_losses = [rng.uniform(1, 5, steps_per_epoch) for _ in range(2)]
    curve = LossCurve(steps_per_epoch)
    expected_x, expected_y = [], []
    for epoch, losses in enumerate(step_losses):
        base = epoch * steps_per_epoch
        previous = 0
        for n in range(1, steps_per_epoch + 1):
            step = base + n
            if step == 1 or step % log_every == 0:  # when the trainer logs
                curve.add_log({"epoch": epoch, "step": step, "loss": losses[:n].mean()})
                expected_x.append(epoch + n / steps_per_epoch)
                expected_y.append(losses[previous:n].mean())
                previous = n
        curve.end_epoch({"steps": steps_per_epoch})
    np.testing.assert_allclose(curve.epoch, expected_x)
    np.testing.assert_allclose(curve.loss, expected_y)
    assert curve.as_dict() == {"epoch": curve.epoch, "loss": curve.loss}
    assert curve.add_log({"epoch": 1, "step": 20, "loss": 1.0}) is None  # no new steps: no point
    with pytest.raises(ValueError):
        LossCurve(0)


def test_log_every_for() -> None:
    assert log_every_for(10, 1, points=150) == 1
    assert log_every_for(9000, 3, points=150) == 180
    assert log_every_for(0, 1) == 1


def test_next_run_dir(tmp_path) -> None:
    assert next_run_dir(tmp_path) == tmp_path / "run-001"
    (tmp_path / "run-001").mkdir()
    (tmp_path / "run-003").mkdir()
    assert next_run_dir(tmp_path) == tmp_path / "run-002"


# ----------------------------------------------------------------------------------------------- tables
def fake_data(ceiling: bool = True) -> PlaygroundData:
    baselines = {"pop": {"recall@20": 0.1, "mrr@20": 0.02}, "markov": {"recall@20": 0.3, "mrr@20": 0.1}}
    return PlaygroundData("tiny", None, None, None, baselines, {"recall@20": 0.6, "mrr@20": 0.3} if ceiling else None)


def fake_record(label: str, recall: float, mrr: float) -> dict:
    return {
        "label": label, "preset": "tiny", "summary": "XE · 16 units", "recall@20": recall, "mrr@20": mrr,
        "losses": [5.0, 4.0], "events_per_s": 1234.5, "train_seconds": 3.2, "curve": {"epoch": [1.0], "loss": [4.0]},
    }  # fmt: skip


def test_results_table_puts_the_run_next_to_the_baselines_and_the_ceiling() -> None:
    frame = results_table(fake_data(), fake_record("run 1", 0.45, 0.2))
    assert list(frame.index) == ["GRU4Rec (run 1)", "POP", "Markov", "ceiling (Bayes-optimal)"]
    assert frame.loc["POP", "Recall@20"] == 0.1 and frame.loc["GRU4Rec (run 1)", "MRR@20"] == 0.2
    assert frame.loc["GRU4Rec (run 1)", "Recall@20 / ceiling"] == pytest.approx(0.75)
    without = results_table(fake_data(ceiling=False))
    assert list(without.index) == ["POP", "Markov"] and "Recall@20 / ceiling" not in without.columns
    text = table_html(frame, "x")
    assert "Recall@20" in text and "MRR@20" in text and "0.4500" in text and "GRU4Rec (run 1)" in text


def test_run_history_frame() -> None:
    history = RunHistory()
    assert history.next_label() == "run 1" and len(history.to_frame()) == 0
    history.add(fake_record("run 1", 0.4, 0.2))
    history.add(fake_record("run 2", 0.5, 0.25))
    frame = history.to_frame()
    assert list(frame["run"]) == ["run 1", "run 2"] and history.next_label() == "run 3"
    assert list(frame["Recall@20"]) == [0.4, 0.5] and frame["final loss"].tolist() == [4.0, 4.0]
    assert list(history.curves(last=1)) == ["run 2"]
    html = table_html(frame, index=False)
    assert "1,234" in html and "run 2" in html


# ----------------------------------------------------------------------------------------------- runs (train + eval)
@pytest.fixture(scope="module")
def tiny() -> PlaygroundData:
    return load_playground_data("tiny", progress=None)


def test_load_playground_data(tiny: PlaygroundData) -> None:
    assert set(tiny.baselines) == {"pop", "spop", "itemknn", "markov", "sr", "vsknn", "stan"}
    for metrics in [*tiny.baselines.values(), tiny.ceiling]:
        assert 0 <= metrics["mrr@20"] <= metrics["recall@20"] <= 1
    assert tiny.ceiling["recall@20"] >= tiny.baselines["pop"]["recall@20"]
    assert load_playground_data("tiny", progress=None) is tiny  # cached
    assert "tiny:" in tiny.describe()


@pytest.mark.slow
def test_run_experiment_trains_evaluates_and_reports_points(tiny: PlaygroundData, tmp_path) -> None:
    points, epochs = [], []
    record = run_experiment(
        Controls(**FAST), tiny, tmp_path, on_point=lambda curve, rec: points.append(len(curve.loss)),
        on_epoch=epochs.append,
    )  # fmt: skip
    assert record["label"] == "run 001" and record["preset"] == "tiny"
    assert (tmp_path / "run-001" / "config.json").exists()
    for k in widgets.CUTOFFS:
        assert 0 <= record[f"mrr@{k}"] <= record[f"recall@{k}"] <= 1
    assert record["recall@20"] > tiny.baselines["pop"]["recall@20"]
    assert len(record["losses"]) == 1 and math.isfinite(record["losses"][0])
    assert points == list(range(1, len(record["curve"]["loss"]) + 1)) and len(points) >= 10
    assert record["curve"]["epoch"][-1] == pytest.approx(1.0)
    assert len(epochs) == 1 and record["events_per_s"] > 0 and record["divergence"] is None
    # the curve's points average back to the epoch's mean loss (each point is a window mean)
    windows = np.diff([0.0, *record["curve"]["epoch"]]) * record["steps_per_epoch"]
    assert np.average(record["curve"]["loss"], weights=windows) == pytest.approx(record["losses"][0], rel=1e-4)
    with pytest.raises(ValueError, match="preset"):
        run_experiment(Controls(**{**FAST, "data_preset": "small"}), tiny, tmp_path)


# ----------------------------------------------------------------------------------------------- the UI, headless
@pytest.mark.slow
def test_playground_train_button_handler(tiny: PlaygroundData, tmp_path) -> None:
    ui = widgets.Playground(Controls(**FAST), tmp_path, data=tiny)
    assert "POP" in ui.results.value and "GRU4Rec" not in ui.results.value
    assert ui.controls_widgets["bptt_steps"].disabled
    ui.controls_widgets["method"].value = "BPTT"
    assert not ui.controls_widgets["bptt_steps"].disabled
    ui.controls_widgets["bptt_steps"].value = 3
    ui.controls_widgets["layer_size"].value = 32
    assert ui.controls() == Controls(**{**FAST, "layer_size": 32, "method": "BPTT", "bptt_steps": 3})

    ui.train_button.click()  # what a click in the browser does: trains in a background thread
    assert ui.wait(timeout=300) is not None, ui.status.value
    assert len(ui.history) == 1, ui.status.value
    record = ui.history.records[0]
    assert record["summary"].startswith("XE (softmax) · 32 units") and "BPTT(3)" in record["summary"]
    live = ui.figure.data[-1]
    assert live.name == "training: run 1" and len(live.x) == len(record["curve"]["epoch"]) > 0
    assert "GRU4Rec (run 1)" in ui.results.value and "Recall@20" in ui.results.value
    assert "run 1" in ui.history_html.value and "done" in ui.status.value
    assert not ui.train_button.disabled and not ui.busy

    # a second run keeps the first one's curve in the figure
    ui.controls_widgets["method"].value = "BP"
    assert ui.train() is not None
    assert [trace.name for trace in ui.figure.data] == ["run 1", "training: run 2"]
    assert isinstance(ui.history.to_frame(), pd.DataFrame) and len(ui.history) == 2


def test_playground_shows_a_failed_run_and_stays_usable(tiny: PlaygroundData, tmp_path, monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise ValueError("batch_size 512 is larger than the number of training sessions")

    monkeypatch.setattr(widgets, "run_experiment", broken)
    ui = widgets.Playground(Controls(**FAST), tmp_path, data=tiny)
    assert ui.train() is None
    assert "failed" in ui.status.value and "batch_size 512" in ui.status.value
    assert not ui.train_button.disabled and len(ui.history) == 0
    assert any("ValueError" in item.get("text", "") for item in ui.output.outputs)


# ----------------------------------------------------------------------------------------------- every loss learns
@pytest.mark.slow
@pytest.mark.parametrize("loss", LOSSES)
def test_every_loss_with_its_settings_beats_pop_on_tiny(loss: str, tiny: PlaygroundData, tmp_path) -> None:
    """The playground's controls for ``loss`` (what choosing it in the loss control gives), one epoch on tiny."""
    record = run_experiment(controls_for_loss(loss, data_preset="tiny", n_epochs=1), tiny, tmp_path)
    pop = tiny.baselines["pop"]
    assert record["recall@20"] > pop["recall@20"], (loss, record["recall@20"], pop)
    assert record["mrr@20"] > pop["mrr@20"], (loss, record["mrr@20"], pop)
    assert record["divergence"] is None, record["divergence"]


def test_playground_loss_control_moves_the_loss_settings(tiny: PlaygroundData, tmp_path) -> None:
    ui = widgets.Playground(Controls(**FAST), tmp_path, data=tiny)
    assert ui.controls_widgets["bpreg"].disabled
    ui.controls_widgets["loss"].value = "bpr-max"
    controls = ui.controls()
    assert controls == controls_for_loss("bpr-max", base=Controls(**FAST))
    assert controls.learning_rate == pytest.approx(0.05) and controls.final_act == "elu-0.5"
    assert not ui.controls_widgets["bpreg"].disabled and "retailrocket" in ui.loss_note.value
    assert "Settings for <b>bpr-max</b>" in ui.status.value
    ui.controls_widgets["momentum"].value = 0.1  # still changeable
    assert ui.controls().momentum == pytest.approx(0.1)
    ui.controls_widgets["loss"].value = "cross-entropy"
    assert ui.controls() == Controls(**FAST)


@pytest.mark.slow
def test_playground_status_line_says_a_run_diverges(tiny: PlaygroundData, tmp_path) -> None:
    """The issue's case: BPR-max with the cross-entropy learning rate 0.2 climbs to thousands."""
    diverging = Controls(**{**FAST, "layer_size": 100, "n_sample": 2048}).replace(
        loss="bpr-max", final_act="elu-0.5", bpreg=1.0
    )
    ui = widgets.Playground(diverging, tmp_path, data=tiny)
    seen = []
    ui.status.observe(lambda change: seen.append(change["new"]), names="value")
    record = ui.train()
    assert record is not None and record["divergence"] is not None
    assert "learning rate 0.2" in record["divergence"]
    assert any("diverging: try a lower learning rate" in value and "Training" in value for value in seen)
    assert "diverging: try a lower learning rate" in ui.status.value and "done" in ui.status.value
    assert ui.figure.layout.yaxis.type == "log"  # the spike does not flatten the curve


def test_kernel_history_survives_a_rerun_of_the_playground_cell(tiny: PlaygroundData, tmp_path) -> None:
    history = widgets.kernel_history(tmp_path / "runs")
    assert widgets.kernel_history(str(tmp_path / "runs")) is history  # same folder, same history
    assert widgets.kernel_history(tmp_path / "other") is not history
    history.add(fake_record("run 1", 0.4, 0.2))
    again = widgets.Playground(Controls(**FAST), tmp_path / "runs", data=tiny,
                               history=widgets.kernel_history(tmp_path / "runs"))  # fmt: skip
    assert "run 1" in again.history_html.value and "keeps the 1 run(s)" in again.status.value


@pytest.mark.slow
def test_rerunning_the_playground_cell_while_a_run_trains_keeps_the_run(tiny, tmp_path, monkeypatch) -> None:
    """Issue 13: the playground is built again (its cell re-run) while a run trains in the background thread. The new
    playground takes the run over (curve, status line with a notice, results), the old one gets no more updates, the
    worker raises nothing, and the history keeps the earlier run and the new one, once each."""
    runs = tmp_path / "runs"
    history = widgets.kernel_history(runs)
    history.add(fake_record("run 1", 0.4, 0.2))
    started, rebuilt = threading.Event(), threading.Event()
    real_run_experiment = widgets.run_experiment

    def held_after_three_points(*args, on_point=None, **kwargs):
        def point(curve, record):
            on_point(curve, record)
            if len(curve.loss) == 3:  # the cell is re-run here, while the run trains
                started.set()
                assert rebuilt.wait(120)

        return real_run_experiment(*args, on_point=point, **kwargs)

    crashes = []
    monkeypatch.setattr(threading, "excepthook", crashes.append)
    monkeypatch.setattr(widgets, "run_experiment", held_after_three_points)
    first = widgets.Playground(Controls(**FAST), runs, data=tiny, history=widgets.kernel_history(runs))
    thread = first.start()
    assert thread is not None and first.train_button.disabled
    assert started.wait(120), first.status.value
    assert widgets.live_run(runs) is first.run

    again = widgets.Playground(Controls(**FAST), runs, data=tiny, history=widgets.kernel_history(runs))
    assert again.run is first.run and again.busy and again.train_button.disabled
    assert again.start() is None and first.start() is None  # one run at a time per runs folder
    assert "re-run while <b>run 2</b> trained" in again.status.value
    assert [trace.name for trace in again.figure.data] == ["run 1", "training: run 2"]
    assert len(again.figure.data[-1].x) == 3  # the points so far, drawn in the new playground
    old_chart = first.chart.outputs
    rebuilt.set()

    record = again.wait(timeout=300)
    thread.join(timeout=60)
    assert not thread.is_alive() and crashes == [] and first.run.error is None, (crashes, again.status.value)
    assert record is not None and record["label"] == "run 2"
    assert [r["label"] for r in history.records] == ["run 1", "run 2"]
    assert "run 2</b> done" in again.status.value and "re-run while" in again.status.value
    assert "GRU4Rec (run 2)" in again.results.value and "run 2" in again.history_html.value
    assert len(again.figure.data[-1].x) == len(record["curve"]["epoch"]) > 3
    assert first.chart.outputs is old_chart  # the old playground (gone from the page) got no more updates
    assert not again.busy and not again.train_button.disabled and not first.busy
    assert widgets.live_run(runs) is None
    third = widgets.Playground(Controls(**FAST), runs, data=tiny, history=widgets.kernel_history(runs))
    assert third.run is None and "keeps the 2 run(s)" in third.status.value


def test_playground_labels_fit_their_width(tiny: PlaygroundData, tmp_path) -> None:
    """Every control's label fits the label column (JupyterLab's 13 px sans font: at most ~7.5 px a character),
    so "dropout (hidden)" and "dropout (embed)" are not cut."""
    ui = widgets.Playground(Controls(**FAST), tmp_path, data=tiny)
    for name, control in ui.controls_widgets.items():
        if name == "method":
            continue
        assert control.style.description_width == f"{widgets.LABEL_WIDTH_PX}px", name
        assert len(control.description) * 7.5 + 8 <= widgets.LABEL_WIDTH_PX, control.description
