"""``gru4rec.tune`` and ``gru4rec tune``: the space parser, a resumed study, pruning, and ``train --params``."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest

from gru4rec.cli import main
from gru4rec.config import Config
from gru4rec.datasets import ensure_preset
from gru4rec.tune import (
    BEST_PARAMS_FILE,
    STANDARD_SPACES,
    Parameter,
    SpaceError,
    _EpochReporter,
    check_metric,
    config_with_params,
    load_study,
    parse_fixed,
    read_params,
    read_space,
    run_trial,
    tidy,
    tune,
)

TINY = Path(__file__).resolve().parents[1] / "data" / "tiny"
SMALL_MODEL = dict(layers=(16,), n_epochs=2, n_sample=32, batch_size=32)
SPACE_LINES = [
    '{"name": "learning_rate", "dtype": "float", "values": [0.05, 0.2], "step": 0.05}',
    '{"name": "momentum", "dtype": "categorical", "values": [0.0, 0.3]}',
]


@pytest.fixture(scope="module")
def tiny_tr():
    return ensure_preset("tiny", progress=None).load("train_tr", "train_valid")


def write_space(path: Path, lines) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


# ------------------------------------------------------------------------------------------------ the space file
def test_standard_spaces_parse_with_the_official_names():
    xe = read_space(STANDARD_SPACES["cross-entropy"])
    bprmax = read_space(STANDARD_SPACES["bpr-max"])
    names = ["layers", "batch_size", "learning_rate", "dropout_p_embed", "dropout_p_hidden", "momentum",
             "sample_alpha"]  # fmt: skip
    assert [p.name for p in xe] == names
    assert [p.name for p in bprmax] == names + ["bpreg", "elu_param"]
    assert xe[0] == Parameter("layers", "int", (64, 512), 32, False)
    assert bprmax[-1].dtype == "categorical" and bprmax[-1].values == (0.5, 1, 0)


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"name": "layers", "dtype": "int", "values": [64, 512]', ":2:55: not a JSON object"),  # line, column
        ('{"name": "units", "dtype": "int", "values": [1, 2]}', "'units' is not a hyperparameter"),
        ('{"name": "layers", "dtype": "integer", "values": [1, 2]}', "allowed: int, float, categorical"),
        ('{"name": "layers", "dtype": "int", "values": [512, 64]}', "low <= high"),
        ('{"name": "layers", "dtype": "int", "values": [1, 2, 3]}', "[low, high]"),
        ('{"name": "learning_rate", "dtype": "float", "values": [0.1, 0.2], "step": 0.1, "log": true}', "step and log"),
        ('{"name": "learning_rate", "dtype": "float", "values": [0, 0.2], "log": true}', "low > 0"),
        ('{"name": "layers", "dtype": "int", "values": [1.5, 2]}', "integers"),
        ('{"name": "momentum", "dtype": "categorical", "values": [0.1], "step": 1}', "categorical"),
        ('{"name": "layers", "dtype": "int"}', "missing key 'values'"),
        ('{"name": "layers", "dtype": "int", "values": [1, 2], "scale": 3}', "unknown key(s) scale"),
        ('[1, 2]', "expected a JSON object"),
    ],
)
def test_space_errors_name_the_file_and_line(tmp_path, line, message):
    path = write_space(tmp_path / "space.json", [SPACE_LINES[0], line])
    with pytest.raises(SpaceError) as error:
        read_space(path)
    assert f"{path}:2" in str(error.value) and message in str(error.value), str(error.value)


def test_space_file_level_errors(tmp_path):
    with pytest.raises(SpaceError, match="no such parameter-space file"):
        read_space(tmp_path / "missing.json")
    with pytest.raises(SpaceError, match="no parameters"):
        read_space(write_space(tmp_path / "empty.json", [""]))
    with pytest.raises(SpaceError, match="appears twice"):
        read_space(write_space(tmp_path / "twice.json", [SPACE_LINES[0], SPACE_LINES[0]]))


def test_a_space_whose_corner_is_not_a_valid_config_is_refused(tiny_tr, tmp_path):
    space = read_space(write_space(tmp_path / "s.json", ['{"name": "dropout_p_hidden", "dtype": "float", '
                                                         '"values": [0.0, 1.0]}']))  # fmt: skip
    with pytest.raises(SpaceError, match="dropout_p_hidden"):
        tune(*tiny_tr, space, tmp_path / "study", base=Config.preset("official", **SMALL_MODEL), n_trials=1)


def test_metric_fixed_string_and_params_file_errors(tmp_path):
    assert tidy({"dropout_p_hidden": 0.30000000000000004, "layers": 64}) == {"dropout_p_hidden": 0.3, "layers": 64}
    assert check_metric("MRR@20") == "mrr@20"
    with pytest.raises(ValueError, match="allowed: recall@20, mrr@20"):
        check_metric("ndcg@10")
    assert parse_fixed("loss=bpr-max, n_epochs=3,") == {"loss": "bpr-max", "n_epochs": "3"}
    with pytest.raises(ValueError, match="not name=value"):
        parse_fixed("loss")
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "layers": 100,\n  "loss" "bpr"\n}\n')
    with pytest.raises(ValueError, match=rf"{bad}:3:10: not valid JSON"):
        read_params(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(ValueError, match="expected a JSON object"):
        read_params(bad)
    with pytest.raises(ValueError, match=r"p.json: unknown hyperparameter 'units'"):
        config_with_params(Config(), {"units": 3}, source="p.json")


# ------------------------------------------------------------------------------------------------ the study
@pytest.mark.slow
def test_resumed_study_continues_its_trial_count_and_requeues_an_interrupted_trial(tiny_tr, tmp_path):
    space = read_space(write_space(tmp_path / "space.json", SPACE_LINES))
    base = Config.preset("official", **SMALL_MODEL)
    study_dir = tmp_path / "study"
    first = tune(*tiny_tr, space, study_dir, base=base, n_trials=2, progress=False, n_startup_trials=1)
    assert (first.n_finished, first.n_run_now) == (2, 2)
    # a search killed in the middle of a trial leaves it RUNNING in the SQLite study
    study = load_study(study_dir)
    interrupted = study.ask()
    for p in space:
        p.suggest(interrupted)
    params = dict(interrupted.params)
    second = tune(*tiny_tr, space, study_dir, base=base, n_trials=3, progress=False, n_startup_trials=1)
    assert (second.n_finished, second.n_run_now) == (3, 1)
    trials = load_study(study_dir).trials
    assert [t.number for t in trials] == [0, 1, 2, 3]
    assert trials[2].state == optuna.trial.TrialState.FAIL
    assert trials[3].state == optuna.trial.TrialState.COMPLETE and trials[3].params == params
    finished = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert second.best_value == max(t.value for t in finished)
    assert all(len(t.user_attrs["per_epoch"]) == 2 for t in finished)  # reported after every epoch
    again = tune(*tiny_tr, space, study_dir, base=base, n_trials=3, progress=False)  # nothing left to run
    assert (again.n_finished, again.n_run_now) == (3, 0)
    assert not (study_dir / "trial_run").exists()

    # the best parameters reload into `gru4rec train --params`
    best_file = study_dir / BEST_PARAMS_FILE
    assert Config.from_dict(json.loads(best_file.read_text())) == second.best_config
    run = tmp_path / "run"
    assert main(["train", "--train", str(TINY / "rsc15_train_tr.txt"), "--out", str(run), "--params",
                 str(best_file), "--n_epochs", "1", "--no-progress"]) == 0  # fmt: skip
    saved = Config.from_dict(json.loads((run / "config.json").read_text())["config"])
    assert saved == second.best_config.with_overrides(n_epochs=1)
    assert saved.learning_rate == second.best_params["learning_rate"]


class FakeTrial:
    """The part of ``optuna.Trial`` a trial run uses; ``prune_after`` epochs makes the pruner say stop."""

    def __init__(self, prune_after: int):
        self.prune_after = prune_after
        self.params: dict = {}
        self.reports: list = []
        self.user_attrs: dict = {}

    def suggest_float(self, name, low, high, step=None, log=False):
        self.params[name] = low
        return low

    def suggest_categorical(self, name, choices):
        self.params[name] = choices[0]
        return choices[0]

    def report(self, value, step):
        self.reports.append((step, value))

    def should_prune(self) -> bool:
        return len(self.reports) >= self.prune_after

    def set_user_attr(self, key, value):
        self.user_attrs[key] = value


@pytest.mark.slow
def test_pruning_stops_the_trial_after_the_epoch_the_pruner_names(tiny_tr, tmp_path):
    space = read_space(write_space(tmp_path / "space.json", SPACE_LINES))
    base = Config.preset("official", **{**SMALL_MODEL, "n_epochs": 3})
    trial = FakeTrial(prune_after=1)
    with pytest.raises(optuna.TrialPruned, match="after epoch 1"):
        run_trial(trial, space, base, *tiny_tr, "recall@20", tmp_path / "trial_run")
    assert [step for step, _ in trial.reports] == [1]  # stopped after the first of 3 epochs
    assert 0.0 <= trial.reports[0][1] <= 1.0
    assert not (tmp_path / "trial_run").exists()
    kept = FakeTrial(prune_after=99)
    value = run_trial(kept, space, base, *tiny_tr, "mrr@20", tmp_path / "trial_run")
    assert [step for step, _ in kept.reports] == [1, 2, 3] and value == kept.reports[-1][1]


def test_reporter_reads_the_chosen_metric():
    trial = FakeTrial(prune_after=99)
    reporter = _EpochReporter(trial, "mrr@20")
    reporter.on_epoch_end({"epochs_done": 1, "valid_mrr@20": 0.25, "valid_recall@20": 0.5})
    assert trial.reports == [(1, 0.25)]


@pytest.mark.slow
def test_tune_command_end_to_end(tmp_path, capsys):
    out = tmp_path / "study"
    space = write_space(tmp_path / "space.json", SPACE_LINES)
    args = ["tune", "--train", str(TINY / "rsc15_train_tr.txt"), "--valid", str(TINY / "rsc15_train_valid.txt"),
            "--space", str(space), "--trials", "2", "--metric", "recall@20", "--out", str(out),
            "--fixed", "layers=16,n_epochs=1,n_sample=32,batch_size=32", "--test", str(TINY / "rsc15_test.txt"),
            "--no-progress"]  # fmt: skip
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "2 trials finished" in text and "best recall@20" in text
    metrics = json.loads((out / "best_run" / "metrics.json").read_text())
    assert 0.0 <= metrics["mrr@20"] <= metrics["recall@20"] <= 1.0
    summary = json.loads((out / "best_trial.json").read_text())
    assert summary["metric"] == "recall@20" and summary["n_finished"] == 2
    assert main(args[:-1] + ["--space", str(tmp_path / "nope.json")]) == 2
    assert "no such parameter-space file" in capsys.readouterr().err


@pytest.mark.slow
def test_resuming_with_other_fixed_settings_or_space_is_refused(tiny_tr, tmp_path):
    space = read_space(write_space(tmp_path / "space.json", SPACE_LINES))
    base = Config.preset("official", **{**SMALL_MODEL, "n_epochs": 1})
    tune(*tiny_tr, space, tmp_path / "study", base=base, n_trials=1, progress=False)
    with pytest.raises(ValueError, match=r"other settings \(base_config: n_sample=32 \(study\) != 64 \(now\)\)"):
        tune(*tiny_tr, space, tmp_path / "study", base=base.with_overrides(n_sample=64), n_trials=2, progress=False)
    with pytest.raises(ValueError, match="space"):
        tune(*tiny_tr, space[:1], tmp_path / "study", base=base, n_trials=2, progress=False)
    with pytest.raises(ValueError, match="metric"):
        tune(*tiny_tr, space, tmp_path / "study", base=base, n_trials=2, metric="recall@20", progress=False)


def test_train_params_file_errors_are_one_line(tmp_path, capsys):
    bad = tmp_path / "best.json"
    bad.write_text('{"learning_rate": 0.1, "units": 3}')
    args = ["train", "--train", str(TINY / "rsc15_train_tr.txt"), "--out", str(tmp_path / "run"), "--params", str(bad)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"gru4rec train: error: {bad}: unknown hyperparameter 'units'") and "\n" not in err
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------------------------ strictness
def _fewer_sessions(data, keep: int):
    from gru4rec.session_data import SessionData

    frame = data.to_frame()
    sessions = frame["SessionId"].unique()[:keep]
    return SessionData.from_frame(frame[frame["SessionId"].isin(sessions)], item_map=data.item_map)


def test_resuming_on_other_training_or_validation_data_is_refused(tiny_tr, tmp_path):
    # once: only preset, space and metric were compared, so the best trial compared scores of different splits
    train_data, valid = tiny_tr
    space = read_space(write_space(tmp_path / "space.json", SPACE_LINES))
    base = Config.preset("official", **{**SMALL_MODEL, "n_epochs": 1})
    tune(train_data, valid, space, tmp_path / "study", base=base, n_trials=1, progress=False)
    other_valid = _fewer_sessions(valid, valid.n_sessions // 2)
    with pytest.raises(ValueError, match=r"validation data \(--valid\): number of events: \d+ \(run\) != \d+"):
        tune(train_data, other_valid, space, tmp_path / "study", base=base, n_trials=2, progress=False)
    other_train = _fewer_sessions(train_data, train_data.n_sessions - 5)
    from gru4rec.session_data import SessionData

    other_valid = SessionData.from_frame(valid.to_frame(), item_map=other_train.item_map)  # same sessions
    with pytest.raises(ValueError, match=r"training data \(--train\): .*events"):
        tune(other_train, other_valid, space, tmp_path / "study", base=base, n_trials=2, progress=False)


def test_every_categorical_value_is_checked_before_trial_0(tiny_tr, tmp_path):
    # once: only the first value was checked and trial 0 crashed with Optuna's traceback
    space = read_space(write_space(tmp_path / "s.json", [
        '{"name": "dropout_p_hidden", "dtype": "categorical", "values": [0.1, 1.5]}']))  # fmt: skip
    with pytest.raises(SpaceError, match=r"dropout_p_hidden=1\.5"):
        tune(*tiny_tr, space, tmp_path / "study", base=Config.preset("official", **SMALL_MODEL), n_trials=1)
    assert not (tmp_path / "study" / "study.db").exists()


def test_a_failing_trial_is_one_line_and_the_folder_is_locked(tiny_tr, tmp_path, monkeypatch, capfd):
    import gru4rec.tune as tune_module
    from gru4rec.run_folder import RunFolderError, RunLock

    space = write_space(tmp_path / "space.json", SPACE_LINES)
    out = tmp_path / "study"
    args = ["tune", "--train", str(TINY / "rsc15_train_tr.txt"), "--valid", str(TINY / "rsc15_train_valid.txt"),
            "--space", str(space), "--trials", "1", "--out", str(out), "--fixed", "layers=16,n_epochs=1",
            "--no-progress"]  # fmt: skip

    def failing(*args, **kwargs):
        raise RuntimeError("the trial broke")

    monkeypatch.setattr(tune_module, "train", failing)
    assert main(args) == 1
    err = capfd.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1 and "the trial broke" in err
    with RunLock(out):  # another search holds the folder
        with pytest.raises(RunFolderError, match="in use by process"):
            tune(*tiny_tr, read_space(space), out, base=Config.preset("official", **SMALL_MODEL), n_trials=1)
        assert main(args) == 2
        assert "in use by process" in capfd.readouterr().err


QUICK = "n_epochs=1,n_sample=16,batch_size=16"  # a search that a regression would run stays short


@pytest.mark.parametrize("option, value, words", [
    ("--params", '{"layers": 16.7}', "layers: invalid value 16.7"),
    ("--params", '{"layers": "64", "layer": 1}', "both given"),
    ("--fixed", f"layers=512,layer=1,{QUICK}", "both given"),
    ("--params", b'{"layers": 16, "loss": "\xe9"}', "not UTF-8 text"),
])  # fmt: skip
def test_tune_parameter_errors_are_one_line(tmp_path, capfd, option, value, words):
    if option == "--params":
        params = tmp_path / "p.json"
        params.write_bytes(value if isinstance(value, bytes) else value.encode())
        value = str(params)
    args = ["tune", "--train", str(TINY / "rsc15_train_tr.txt"), "--valid", str(TINY / "rsc15_train_valid.txt"),
            "--space", str(write_space(tmp_path / "space.json", SPACE_LINES)), "--out", str(tmp_path / "study"),
            "--trials", "1", "--no-progress", option, value]  # fmt: skip
    args += ["--fixed", QUICK] if option == "--params" else []
    assert main(args) == 2
    err = capfd.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1
    if "UTF-8" in words:
        assert str(tmp_path / "p.json") in err


def test_an_empty_validation_split_is_a_clear_error(tiny_tr, tmp_path, capfd):
    empty = tmp_path / "valid.txt"
    empty.write_text("SessionId\tItemId\tTime\n1\t999999999\t1.0\n1\t999999998\t2.0\n")  # items unknown to training
    space = read_space(write_space(tmp_path / "space.json", SPACE_LINES))
    from gru4rec.io import read_sessions
    from gru4rec.session_data import SessionData

    valid = SessionData.from_frame(read_sessions(empty), item_map=tiny_tr[0].item_map)
    with pytest.raises(ValueError, match="valid_data: no"):
        tune(tiny_tr[0], valid, space, tmp_path / "study", base=Config.preset("official", **SMALL_MODEL), n_trials=1)
    tune_command = ["tune", "--space", str(tmp_path / "space.json"), "--out", str(tmp_path / "s2"), "--trials", "1",
                    "--fixed", QUICK, "--no-progress"]  # fmt: skip
    train_command = ["train", "--out", str(tmp_path / "r"), "--n_epochs", "1", "--no-progress"]
    for command in (tune_command, train_command):
        code = main(command + ["--train", str(TINY / "rsc15_train_tr.txt"), "--valid", str(empty)])
        err = capfd.readouterr().err.strip()
        assert code == 2 and str(empty) in err and "no validation event can be scored" in err, err
        assert "RuntimeWarning" not in err and "nan" not in err.lower()


@pytest.mark.parametrize("fixed, words", [
    (f"layer=2,{QUICK}", "--fixed layer: the space also searches 'layers'"),
    (f"size=32,{QUICK}", "--fixed size: the space also searches 'layers'"),
    (f"lr=0.1,{QUICK}", "--fixed lr: the space also searches 'learning_rate'"),
    (f"momentum=0.1,{QUICK}", "--fixed momentum: the space also searches 'momentum'"),
])  # fmt: skip
def test_a_fixed_setting_the_space_searches_is_refused(tmp_path, capfd, fixed, words):
    lines = SPACE_LINES + ['{"name": "layers", "dtype": "categorical", "values": [16, 32]}']
    args = ["tune", "--train", str(TINY / "rsc15_train_tr.txt"), "--valid", str(TINY / "rsc15_train_valid.txt"),
            "--space", str(write_space(tmp_path / "space.json", lines)), "--out", str(tmp_path / "study"),
            "--trials", "1", "--no-progress", "--fixed", fixed]  # fmt: skip
    assert main(args) == 2
    err = capfd.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1
    assert not (tmp_path / "study").exists()
