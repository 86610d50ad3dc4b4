"""Config: official names, presets, seed aliases, validation, JSON round trip."""

from __future__ import annotations

import dataclasses

import pytest

from gru4rec.config import FIELD_NAMES, OFFICIAL_XE_GRU_VARIANT, PRESETS, Config

# The official paramfiles/<name>_best.py (hidasib/GRU4Rec_PyTorch_Official and _Tensorflow_Official, identical),
# in their own form: all have constrained_embedding=True, embedding=0, n_epochs=10, n_sample=2048.
OFFICIAL_PARAM_FILES = {
    "rsc15_xe_shared_100": dict(loss="cross-entropy", elu_param=0, layers=[100], batch_size=32, dropout_p_embed=0.0,
                                dropout_p_hidden=0.4, learning_rate=0.2, momentum=0.2, sample_alpha=0.5, bpreg=0.0,
                                logq=1.0),
    "yoochoose_xe_shared": dict(loss="cross-entropy", elu_param=0, layers=[480], batch_size=48, dropout_p_embed=0.0,
                                dropout_p_hidden=0.2, learning_rate=0.07, momentum=0.0, sample_alpha=0.2, bpreg=0.0,
                                logq=1.0),
    "rees46_xe_shared": dict(loss="cross-entropy", elu_param=0, layers=[512], batch_size=240, dropout_p_embed=0.45,
                             dropout_p_hidden=0.0, learning_rate=0.065, momentum=0.0, sample_alpha=0.5, bpreg=0.0,
                             logq=1.0),
    "retailrocket_bprmax_shared": dict(loss="bpr-max", elu_param=0.5, layers=[224], batch_size=80,
                                       dropout_p_embed=0.5, dropout_p_hidden=0.05, learning_rate=0.05, momentum=0.4,
                                       sample_alpha=0.4, bpreg=1.95, logq=0.0),
    "diginetica_bprmax_shared": dict(loss="bpr-max", elu_param=1, layers=[512], batch_size=128, dropout_p_embed=0.5,
                                     dropout_p_hidden=0.3, learning_rate=0.05, momentum=0.15, sample_alpha=0.3,
                                     bpreg=0.9, logq=0.0),
    "coveo_bprmax_shared": dict(loss="bpr-max", elu_param=1, layers=[512], batch_size=144, dropout_p_embed=0.35,
                                dropout_p_hidden=0.0, learning_rate=0.05, momentum=0.4, sample_alpha=0.2, bpreg=1.85,
                                logq=0.0),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(OFFICIAL_PARAM_FILES))
def test_every_official_param_file_is_a_preset_under_its_name(name):
    cfg = Config.preset(name)
    expected = OFFICIAL_PARAM_FILES[name]
    for key, value in expected.items():
        if key == "elu_param" and cfg.loss == "cross-entropy":
            continue  # read by BPR-max only; the preset keeps the class default (see config._official_param_file)
        got = list(cfg.layers) if key == "layers" else getattr(cfg, key)
        assert got == value, (name, key, got, value)
    assert cfg.constrained_embedding and cfg.embedding == 0 and cfg.n_epochs == 10 and cfg.n_sample == 2048
    assert cfg.optimizer == "adagrad"
    if cfg.loss == "bpr-max":  # the official codes: ELU(elu_param) before BPR-max
        assert cfg.final_activation == f"elu-{expected['elu_param']:g}" and cfg.gru_variant == "reset_before"
    else:
        assert cfg.final_activation == "softmax" and cfg.gru_variant == OFFICIAL_XE_GRU_VARIANT


def test_official_is_an_alias_of_the_rsc15_param_file_and_the_variant_one_flag_away():
    assert Config.preset("official") == Config.preset("rsc15_xe_shared_100")
    other = "reset_before" if OFFICIAL_XE_GRU_VARIANT == "reset_after" else "reset_after"
    assert Config.preset("official", gru_variant=other).gru_variant == other


def test_official_preset_is_the_rsc15_best_param_file():
    cfg = Config.preset("official")
    assert cfg.loss == "cross-entropy" and cfg.constrained_embedding and cfg.embedding == 0
    assert cfg.final_act == "softmax" and cfg.layers == (100,) and cfg.n_epochs == 10 and cfg.batch_size == 32
    assert (cfg.dropout_p_embed, cfg.dropout_p_hidden) == (0.0, 0.4)
    assert (cfg.learning_rate, cfg.momentum) == (0.2, 0.2)
    assert (cfg.n_sample, cfg.sample_alpha, cfg.bpreg, cfg.logq) == (2048, 0.5, 0.0, 1.0)
    assert cfg.optimizer == "adagrad" and cfg.gru_variant == OFFICIAL_XE_GRU_VARIANT


def test_seed_preset_is_the_seed_main_defaults():
    cfg = Config.preset("seed")
    assert cfg.layers == (100,) and cfg.batch_size == 50 and cfg.n_epochs == 3
    assert (cfg.optimizer, cfg.learning_rate, cfg.decay) == ("adam", 0.001, 0.96)
    assert (cfg.decay_steps, cfg.lr_floor) == (10000, 1e-5)
    assert cfg.loss == "cross-entropy" and cfg.final_activation == "softmax" and cfg.n_sample == 0
    assert cfg.embedding == 100 and not cfg.constrained_embedding
    assert cfg.dropout_p_hidden == 0.5 and cfg.log_every == 1000 and not cfg.shuffle


def test_defaults_are_valid_and_match_the_official_class():
    cfg = Config()
    assert cfg.loss == "cross-entropy" and cfg.batch_size == 64 and cfg.learning_rate == 0.05
    assert cfg.constrained_embedding and cfg.n_sample == 2048 and cfg.bpreg == 1.0 and cfg.elu_param == 0.5
    assert (cfg.device, cfg.distribute, cfg.precision) == ("auto", "none", "fp32")


@pytest.mark.parametrize(
    "loss, expected", [("cross-entropy", "softmax"), ("bpr-max", "elu-0.5"), ("bpr", "linear"), ("top1-max", "linear")]
)
def test_final_activation_defaults_per_loss(loss, expected):
    assert Config(loss=loss).final_activation == expected


def test_json_round_trip_and_from_dict_strings():
    cfg = Config.preset("official", layers="100/50", shuffle="true", n_sample="1024", final_act="elu-1")
    assert cfg.layers == (100, 50) and cfg.shuffle is True and cfg.n_sample == 1024
    assert Config.from_json(cfg.to_json()) == cfg
    assert Config.from_dict(cfg.to_dict()) == cfg


def test_with_overrides_returns_a_new_config():
    base = Config.preset("seed")
    new = base.with_overrides(learning_rate=0.01)
    assert new.learning_rate == 0.01 and base.learning_rate == 0.001 and new is not base
    with pytest.raises(dataclasses.FrozenInstanceError):
        base.learning_rate = 1.0  # type: ignore[misc]


def test_seed_aliases():
    cfg = Config.preset("seed").with_overrides(size=200, layer=2, epoch=5, lr=0.01, dropout=0.3)
    assert cfg.layers == (200, 200) and cfg.n_epochs == 5 and cfg.learning_rate == 0.01
    assert cfg.dropout_p_hidden == 0.3
    assert Config.preset("seed").with_overrides(layer=3).layers == (100, 100, 100)
    with pytest.raises(ValueError, match="both given"):
        Config.from_dict({"lr": 0.1, "learning_rate": 0.2})


@pytest.mark.parametrize(
    "values, name",
    [
        ({"loss": "hinge"}, "loss"),
        ({"final_act": "sigmoid"}, "final_act"),
        ({"loss": "bpr-max", "final_act": "softmax"}, "final_act"),
        ({"hidden_act": "gelu"}, "hidden_act"),
        ({"gru_variant": "reset_middle"}, "gru_variant"),
        ({"optimizer": "sgd"}, "optimizer"),
        ({"dropout_p_hidden": 1.0}, "dropout_p_hidden"),
        ({"dropout_p_embed": -0.1}, "dropout_p_embed"),
        ({"batch_size": 0}, "batch_size"),
        ({"n_sample": -1}, "n_sample"),
        ({"sample_alpha": 1.5}, "sample_alpha"),
        ({"logq": 2.0}, "logq"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"momentum": 1.0}, "momentum"),
        ({"decay": 0.0}, "decay"),
        ({"layers": "100/0"}, "layers"),
        ({"layers": "a/b"}, "layers"),
        ({"bptt_steps": 0}, "bptt_steps"),
        ({"embedding": 10}, "embedding"),  # with constrained_embedding=True
        ({"optimizer": "adam", "momentum": 0.5}, "momentum"),
        ({"n_sample": 0, "batch_size": 1}, "batch_size"),
        ({"n_epochs": "two"}, "n_epochs"),
    ],
)
def test_invalid_values_name_the_hyperparameter(values, name):
    with pytest.raises(ValueError, match=name):
        Config.from_dict(values)


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError) as err:
        Config.from_dict({"hidden_size": 100})
    assert "hidden_size" in str(err.value) and "layers" in str(err.value) and "size" in str(err.value)
    with pytest.raises(ValueError, match="preset"):
        Config.preset("fastest")


def test_presets_only_use_known_names():
    for values in PRESETS.values():
        assert set(values) <= set(FIELD_NAMES)


@pytest.mark.parametrize(
    "values",
    [
        {"layers": "64", "layer": 1},  # tuple("64") would be ('6', '4'): one layer of 6 units
        {"layers": "100", "size": 50},
        {"layers": [100], "rnn_size": 50},
        {"size": 50, "rnn_size": 60},
        {"layers": 16.7},
        {"layers": [16.9]},
        {"layers": [16, True]},
        {"layers": True},
        {"layers": []},
        {"layers": "100/"},
        {"layers": None},
        {"size": True},
        {"layer": 2.5},
        {"layer": "two"},
    ],
)
def test_layers_and_its_aliases_are_parsed_by_type(values):
    with pytest.raises(ValueError, match="layers|size|layer") as err:
        Config.from_dict(values)
    assert "\n" not in str(err.value)


def test_layers_accepts_the_official_forms():
    assert Config.from_dict({"layers": "64"}).layers == (64,)  # the official param strings: layers=64
    assert Config.from_dict({"layers": "100/50"}).layers == (100, 50)
    assert Config.from_dict({"layers": [100, 50]}).layers == (100, 50)  # the official param files: layers=[100]
    assert Config.from_dict({"layers": 64}).layers == (64,)
    assert Config.from_dict({"layers": [64.0]}).layers == (64,)  # a whole number written as a float
    assert Config(layers="32/16").layers == (32, 16)
    with pytest.raises(ValueError, match="layers"):
        Config(layers=16.7)  # the dataclass itself, not only from_dict


@pytest.mark.parametrize(
    "name, value",
    [("n_epochs", True), ("batch_size", 2.5), ("n_sample", "1.5"), ("learning_rate", True), ("momentum", "nan"),
     ("bpreg", float("inf")), ("shuffle", 1), ("seed", [1])],
)  # fmt: skip
def test_every_field_is_strict_about_its_type(name, value):
    with pytest.raises(ValueError, match=name):
        Config.from_dict({name: value})
