"""Hyperparameters of GRU4Rec under the official names, with the seed's aliases, presets and validation.

Names follow the official implementations (Hidasi's Theano ``gru4rec.py`` and its TensorFlow/PyTorch
re-implementations): ``layers``, ``loss``, ``final_act``, ``batch_size``, ``n_sample``, ``sample_alpha``, ``bpreg``,
``logq``, ``elu_param``, ``embedding``, ``constrained_embedding``, ``dropout_p_embed``, ``dropout_p_hidden``,
``learning_rate``, ``momentum``, ``n_epochs`` ... The defaults of :class:`Config` are those of the official
``GRU4Rec`` class (TF/PyTorch re-implementations); presets give complete settings:

- every official best-parameter file under its name (``rsc15_xe_shared_100``, ``yoochoose_xe_shared``,
  ``rees46_xe_shared``, ``retailrocket_bprmax_shared``, ``diginetica_bprmax_shared``, ``coveo_bprmax_shared``: the
  ``paramfiles/<name>_best.py`` of the official repositories); the cross-entropy ones with the GRU variant
  ``OFFICIAL_XE_GRU_VARIANT`` (chosen by measurement, see docs/results.md);
- ``official``: an alias of ``rsc15_xe_shared_100`` (RSC15's best setting);
- ``seed``: the defaults of the Ascend ModelZoo port's ``main.py`` (Songweiping/GRU4Rec_TensorFlow), which the kit
  started from, trained as that TF1 code trains (``dropout_on_state``, ``gru_init``, ``lazy_adam``,
  ``session_order``, ``epoch_end``; ``docs/seed.md``).

Dropout values are always probabilities of DROPPING a unit. The seed passed its ``--dropout`` to TensorFlow's
``DropoutWrapper`` as ``output_keep_prob``, i.e. as a keep probability; at its default 0.5 the two readings coincide.
"""

from __future__ import annotations

import dataclasses
import decimal
import json
import math
import numbers
import re
from dataclasses import dataclass
from typing import Any, Mapping, Optional

import numpy as np

INT64_LIMIT = 2**63  # integer hyperparameters reach TensorFlow as int64: they must be < 2**63
LOSSES = ("cross-entropy", "bpr", "top1", "bpr-max", "top1-max")
OPTIMIZERS = ("adagrad", "adam")
HIDDEN_ACTS = ("tanh", "relu")
# reset_before: r multiplies h before the recurrent product (Theano and official TF codes);
# reset_after: r multiplies the recurrent product, with its own bias (torch.nn.GRUCell, the official PyTorch code).
GRU_VARIANTS = ("reset_before", "reset_after")
# The seed's training semantics (Songweiping/GRU4Rec_TensorFlow, TF1), each a switch; preset ``seed`` sets all five
# (docs/seed.md). gru_init: per_block (the official codes) or tf1 (TF1 GRUCell: glorot over [input; state], gate
# bias 1). session_order: time (first event) or session_id. epoch_end: all_sessions or first_unfilled_lane.
GRU_INITS = ("per_block", "tf1")
SESSION_ORDERS = ("time", "session_id")
EPOCH_ENDS = ("all_sessions", "first_unfilled_lane")
# where and how it runs (gru4rec.devices.DEVICE_KINDS, gru4rec.precision.PRECISIONS, gru4rec.distribute)
DEVICES = ("auto", "cpu", "gpu", "npu")
PRECISIONS = ("fp32", "mixed_bfloat16", "mixed_float16")
DISTRIBUTE = ("none", "mirrored", "multiworker")
PLAIN_FINAL_ACTS = ("softmax", "linear", "relu", "tanh")
PARAM_FINAL_ACTS = ("elu-<X>", "leaky-<X>")
FINAL_ACT_HELP = "softmax, linear, relu, tanh, elu-<X>, leaky-<X> (X a number >= 0)"

# Seed (main.py) flag names -> what they mean here. ``size``/``layer`` together build ``layers``.
SEED_ALIASES = {
    "size": "layers (the size of every layer)",
    "rnn_size": "layers (the size of every layer)",
    "layer": "layers (the number of layers)",
    "epoch": "n_epochs",
    "lr": "learning_rate",
    "dropout": "dropout_p_hidden (read as a drop probability)",
    "batch": "batch_size",
}
_SIMPLE_ALIASES = {"epoch": "n_epochs", "lr": "learning_rate", "dropout": "dropout_p_hidden", "batch": "batch_size"}


def _parse_final_act(value: str) -> tuple[str, float]:
    """``'elu-0.5'`` -> ``('elu', 0.5)``; plain names -> ``(name, 0.0)``. Raises ValueError otherwise."""
    if value in PLAIN_FINAL_ACTS:
        return value, 0.0
    match = re.fullmatch(r"(elu|leaky)-([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)", value)
    if not match:
        raise ValueError(f"final_act: unknown value {value!r}; allowed values: {FINAL_ACT_HELP}")
    return match.group(1), float(match.group(2))


@dataclass(frozen=True)
class Config:
    """All settings of one training run (immutable; use :meth:`with_overrides` for a changed copy)."""

    # model
    layers: tuple = (100,)
    hidden_act: str = "tanh"
    gru_variant: str = "reset_before"
    embedding: int = 0
    constrained_embedding: bool = True
    dropout_p_embed: float = 0.0
    dropout_p_hidden: float = 0.0
    sigma: float = 0.0
    init_as_normal: bool = False
    # loss and negatives
    loss: str = "cross-entropy"
    final_act: Optional[str] = None
    elu_param: float = 0.5
    bpreg: float = 1.0
    logq: float = 0.0
    n_sample: int = 2048
    sample_alpha: float = 0.5
    sample_store_size: int = 10_000_000
    # optimisation
    batch_size: int = 64
    optimizer: str = "adagrad"
    learning_rate: float = 0.05
    momentum: float = 0.0
    decay: float = 1.0
    decay_steps: int = 10_000
    lr_floor: float = 1e-5
    grad_cap: float = 0.0
    n_epochs: int = 10
    bptt_steps: int = 1
    chunk_steps: int = 128
    shuffle: bool = False
    weight_averaging: float = 0.0  # eta of polynomial-decay weight averaging (gru4rec.averaging); 0: the last weights
    seed: int = 42
    log_every: int = 1000
    # the seed's training semantics (docs/seed.md); the defaults are the official codes'
    dropout_on_state: bool = True  # False: dropout on the layer's output only, the carried state is not dropped
    gru_init: str = "per_block"  # tf1: TF1 GRUCell's initial weights (reset_before only)
    lazy_adam: bool = True  # False: Adam decays every row's moments and moves every row each step (TF1 AdamOptimizer)
    session_order: str = "time"  # session_id: sessions enter the lanes in SessionId order (with shuffle=false)
    epoch_end: str = "all_sessions"  # first_unfilled_lane: the epoch ends when a lane cannot be refilled
    # where and how it runs (used by gru4rec.devices / distribute / precision)
    device: str = "auto"
    distribute: str = "none"
    precision: str = "fp32"

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", parse_layers(self.layers))
        self.validate()

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """Raise ValueError naming the first hyperparameter whose value is not allowed, and the allowed values."""

        def check(name: str, ok: bool, allowed: str) -> None:
            if not ok:
                raise ValueError(f"{name}: invalid value {getattr(self, name)!r}; allowed: {allowed}")

        def is_int(value: Any) -> bool:
            return isinstance(value, int) and not isinstance(value, bool)

        def is_num(value: Any) -> bool:
            return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

        check(
            "layers", len(self.layers) >= 1 and all(1 <= n < INT64_LIMIT for n in self.layers),
            "sizes >= 1, e.g. 100 or 100/100",
        )  # fmt: skip
        check("loss", self.loss in LOSSES, ", ".join(LOSSES))
        check("hidden_act", self.hidden_act in HIDDEN_ACTS, ", ".join(HIDDEN_ACTS))
        check("gru_variant", self.gru_variant in GRU_VARIANTS, ", ".join(GRU_VARIANTS))
        if self.final_act is not None:
            if not isinstance(self.final_act, str):
                raise ValueError(f"final_act: invalid value {self.final_act!r}; allowed: {FINAL_ACT_HELP}")
            kind, _ = _parse_final_act(self.final_act)
            if kind == "softmax" and self.loss != "cross-entropy":
                raise ValueError(
                    f"final_act: 'softmax' goes with loss 'cross-entropy' only; with loss {self.loss!r} allowed: "
                    "linear, relu, tanh, elu-<X>, leaky-<X>"
                )
        for name in ("batch_size", "decay_steps", "n_epochs", "bptt_steps", "chunk_steps", "log_every"):
            value = getattr(self, name)
            check(name, is_int(value) and 1 <= value < INT64_LIMIT, "an integer in [1, 2**63 - 1]")
        for name in ("n_sample", "embedding", "sample_store_size", "seed"):
            value = getattr(self, name)
            check(name, is_int(value) and 0 <= value < INT64_LIMIT, "an integer in [0, 2**63 - 1]")
        for name in ("bpreg", "elu_param", "grad_cap", "sigma", "lr_floor", "weight_averaging"):
            check(name, is_num(getattr(self, name)) and getattr(self, name) >= 0, "a number >= 0")
        check("sample_alpha", is_num(self.sample_alpha) and 0 <= self.sample_alpha <= 1, "a number in [0, 1]")
        check("logq", is_num(self.logq) and 0 <= self.logq <= 1, "a number in [0, 1]")
        for name in ("dropout_p_embed", "dropout_p_hidden"):
            check(name, is_num(getattr(self, name)) and 0 <= getattr(self, name) < 1, "a drop probability in [0, 1)")
        check("learning_rate", is_num(self.learning_rate) and self.learning_rate > 0, "a number > 0")
        check("momentum", is_num(self.momentum) and 0 <= self.momentum < 1, "a number in [0, 1)")
        check("decay", is_num(self.decay) and 0 < self.decay <= 1, "a number in (0, 1] (1 = no decay)")
        check("optimizer", self.optimizer in OPTIMIZERS, ", ".join(OPTIMIZERS))
        for name in ("constrained_embedding", "init_as_normal", "shuffle", "dropout_on_state", "lazy_adam"):
            check(name, isinstance(getattr(self, name), bool), "true or false")
        check("device", self.device in DEVICES, ", ".join(DEVICES))
        check("precision", self.precision in PRECISIONS, ", ".join(PRECISIONS))
        check("distribute", self.distribute in DISTRIBUTE, ", ".join(DISTRIBUTE))
        check("gru_init", self.gru_init in GRU_INITS, ", ".join(GRU_INITS))
        check("session_order", self.session_order in SESSION_ORDERS, ", ".join(SESSION_ORDERS))
        check("epoch_end", self.epoch_end in EPOCH_ENDS, ", ".join(EPOCH_ENDS))
        if self.gru_init == "tf1" and self.gru_variant != "reset_before":
            raise ValueError("gru_init: 'tf1' is TF1's GRUCell, whose reset gate acts before the recurrent product; "
                             "allowed: gru_init=tf1 with gru_variant=reset_before, or gru_init=per_block")
        if self.shuffle and self.session_order != "time":
            raise ValueError("session_order: applies with shuffle=false only (shuffle draws a new order every epoch); "
                             "allowed: session_order=time with shuffle=true")
        if self.optimizer == "adam" and self.momentum > 0:
            raise ValueError("momentum: applies to optimizer 'adagrad' only (Adam has its own moments); use momentum=0")
        if self.constrained_embedding and self.embedding > 0:
            raise ValueError(
                "embedding: must be 0 when constrained_embedding is true (the shared embedding is the output "
                "weight matrix); allowed: embedding=0, or constrained_embedding=false with embedding >= 0"
            )
        if self.n_sample == 0 and self.batch_size < 2:
            raise ValueError(
                "batch_size: with n_sample=0 the negatives are the other targets of the mini-batch, so batch_size "
                "must be >= 2; allowed: batch_size >= 2, or n_sample >= 1"
            )

    # ------------------------------------------------------------------ derived values
    @property
    def final_activation(self) -> str:
        """``final_act``, or the loss's default when it is None (softmax for cross-entropy, ELU(elu_param) for
        bpr-max as in the official code, linear otherwise)."""
        if self.final_act is not None:
            return self.final_act
        if self.loss == "cross-entropy":
            return "softmax"
        if self.loss == "bpr-max" and self.elu_param > 0:
            return f"elu-{self.elu_param:g}"
        return "linear"

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    # ------------------------------------------------------------------ construction helpers
    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["layers"] = list(self.layers)
        return out

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_json(cls, text: str) -> Config:
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], base: Optional[Config] = None) -> Config:
        """A Config from ``values`` (official names or seed aliases) on top of ``base`` (default: ``Config()``).

        Unknown names raise ValueError listing the known ones. String values (from a command line or a param file)
        are converted to the field's type; ``layers`` also accepts the official ``"100/100"`` form.
        """
        base = base or cls()
        merged = base.to_dict()
        merged.update(_resolve(dict(values), tuple(base.layers)))
        return cls(**{name: _coerce(name, value) for name, value in merged.items()})

    def with_overrides(self, **overrides: Any) -> Config:
        """A new Config with ``overrides`` applied (official names or seed aliases)."""
        return type(self).from_dict(overrides, base=self)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> Config:
        if name not in PRESETS:
            raise ValueError(f"preset: unknown value {name!r}; allowed: {', '.join(PRESETS)}")
        return cls.from_dict(PRESETS[name]).with_overrides(**overrides)


FIELD_NAMES = tuple(f.name for f in dataclasses.fields(Config))
_FIELD_TYPES = {f.name: f.type for f in dataclasses.fields(Config)}

# The GRU cell and the evaluated weights of the cross-entropy presets, chosen together on validation splits only by
# benchmarks/select_on_validation.py (docs/results/selection.md): 2 cells x eta in {0 (the last weights, as the
# official codes), 0.5, 1, 2, 3, 5}, trained on train_tr and evaluated on train_valid, 10 epochs, seeds 42-44, on
# `small` and on MovieLens-100K; the highest mean Recall@20 over the two data sets wins.
# The official PyTorch code's cell: reset gate after the recurrent product (``torch.nn.GRUCell``);
# ``--gru_variant reset_before`` gives the Theano/TF cell. The BPR-max presets keep the Theano/TF cell (not selected).
OFFICIAL_XE_GRU_VARIANT = "reset_after"
# A polynomial-decay average of the weights with this eta (``gru4rec.averaging``) instead of the last update's (the
# official codes'); ``--weight_averaging 0`` gives the last weights. The BPR-max presets keep the last weights.
OFFICIAL_XE_WEIGHT_AVERAGING = 1.0


def _official_param_file(loss: str, layers: int, batch_size: int, dropout_p_embed: float, dropout_p_hidden: float,
                         learning_rate: float, momentum: float, sample_alpha: float, bpreg: float, logq: float,
                         elu_param: float) -> dict:  # fmt: skip
    """A preset from an official ``paramfiles/*_best.py`` (identical in the TF and PyTorch repositories): shared
    embedding, 2048 extra negatives, 10 epochs, the official optimizer (Adagrad with the file's momentum)."""
    xe = loss == "cross-entropy"
    # elu_param is read by BPR-max only; the cross-entropy files' 0 is left out, so that a loss switched on top of
    # them (the playground) keeps the class default ELU(0.5).
    extra = {} if xe else dict(elu_param=elu_param)
    return dict(
        **extra, loss=loss, constrained_embedding=True, embedding=0, layers=(layers,), n_epochs=10,
        batch_size=batch_size, dropout_p_embed=dropout_p_embed, dropout_p_hidden=dropout_p_hidden,
        learning_rate=learning_rate, momentum=momentum, n_sample=2048, sample_alpha=sample_alpha, bpreg=bpreg,
        logq=logq, optimizer="adagrad", final_act="softmax" if xe else None,
        gru_variant=OFFICIAL_XE_GRU_VARIANT if xe else "reset_before",
        weight_averaging=OFFICIAL_XE_WEIGHT_AVERAGING if xe else 0.0,
    )  # fmt: skip


# The official best-parameter files, under their names (paramfiles/<name>_best.py). BPR-max uses ELU(elu_param) as
# its final activation (final_act None: ``Config.final_activation``), as the official codes do.
OFFICIAL_PARAM_FILES: dict[str, dict] = {
    "rsc15_xe_shared_100": _official_param_file("cross-entropy", 100, 32, 0.0, 0.4, 0.2, 0.2, 0.5, 0.0, 1.0, 0.0),
    "yoochoose_xe_shared": _official_param_file("cross-entropy", 480, 48, 0.0, 0.2, 0.07, 0.0, 0.2, 0.0, 1.0, 0.0),
    "rees46_xe_shared": _official_param_file("cross-entropy", 512, 240, 0.45, 0.0, 0.065, 0.0, 0.5, 0.0, 1.0, 0.0),
    "retailrocket_bprmax_shared": _official_param_file("bpr-max", 224, 80, 0.5, 0.05, 0.05, 0.4, 0.4, 1.95, 0.0, 0.5),
    "diginetica_bprmax_shared": _official_param_file("bpr-max", 512, 128, 0.5, 0.3, 0.05, 0.15, 0.3, 0.9, 0.0, 1.0),
    "coveo_bprmax_shared": _official_param_file("bpr-max", 512, 144, 0.35, 0.0, 0.05, 0.4, 0.2, 1.85, 0.0, 1.0),
}
# Columns of _official_param_file: loss, layers, batch_size, dropout_p_embed, dropout_p_hidden, learning_rate,
# momentum, sample_alpha, bpreg, logq, elu_param.

PRESETS: dict[str, dict] = {
    # ``official`` is the RSC15 best-parameter file (paramfiles/rsc15_xe_shared_100_best.py).
    "official": OFFICIAL_PARAM_FILES["rsc15_xe_shared_100"],
    **OFFICIAL_PARAM_FILES,
    # Ascend ModelZoo GRU4Rec_for_TensorFlow, gru4rec_BP/main.py defaults (from Songweiping/GRU4Rec_TensorFlow):
    # 1 x GRU(100), batch 50, Adam 0.001 decayed x0.96 every 1e4 steps (staircase, floor 1e-5), cross-entropy over
    # a softmax of the in-batch targets, a separate input embedding of the layer size, dropout 0.5, 3 epochs.
    "seed": dict(
        layers=(100,),
        batch_size=50,
        optimizer="adam",
        learning_rate=0.001,
        momentum=0.0,
        decay=0.96,
        decay_steps=10_000,
        lr_floor=1e-5,
        loss="cross-entropy",
        final_act="softmax",
        hidden_act="tanh",
        n_sample=0,
        logq=0.0,
        embedding=100,
        constrained_embedding=False,
        dropout_p_embed=0.0,
        dropout_p_hidden=0.5,
        n_epochs=3,
        sigma=0.0,
        init_as_normal=False,
        grad_cap=0.0,
        log_every=1000,
        # how the seed's TF1 code trains (docs/seed.md): DropoutWrapper(output_keep_prob) leaves the carried state
        # alone, TF1 GRUCell's initial weights, TF1 AdamOptimizer's dense moments, data.sort([SessionId, Time]),
        # and its loop stops at the first lane it cannot refill
        dropout_on_state=False,
        gru_init="tf1",
        lazy_adam=False,
        session_order="session_id",
        epoch_end="first_unfilled_lane",
    ),
}


def _layer_size(value: Any, name: str) -> int:
    """One layer size (or layer count) by its type: an int (not a bool), an integral float, or a decimal string."""
    if isinstance(value, str) and re.fullmatch(r"\s*[0-9]+\s*", value):
        return int(value)
    if isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)):  # numpy ints too
        return int(value)
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return int(value)
    raise ValueError(f"{name}: invalid value {value!r}; expected a whole number")


def parse_layers(value: Any) -> tuple:
    """``layers`` by its type: an int (``100``), a string of sizes separated by ``/`` (the official param strings'
    ``100/100``; ``,`` also) or a list of ints (the official param files' ``[100, 100]``). A string is never iterated
    character by character; floats must be whole numbers and booleans are not numbers."""
    allowed = "sizes >= 1, e.g. 100, \"100/100\" or [100, 100]"
    if isinstance(value, str):
        parts = value.replace(",", "/").split("/")
        if not all(re.fullmatch(r"\s*[0-9]+\s*", part) for part in parts):
            raise ValueError(f"layers: invalid value {value!r}; allowed: {allowed}")
        return tuple(int(part) for part in parts)
    if isinstance(value, (list, tuple)):
        if not value:
            raise ValueError(f"layers: invalid value {value!r}; allowed: {allowed}")
        try:
            return tuple(_layer_size(n, "layers") for n in value)
        except ValueError:
            raise ValueError(f"layers: invalid value {value!r}; allowed: {allowed}") from None
    try:
        return (_layer_size(value, "layers"),)
    except ValueError:
        raise ValueError(f"layers: invalid value {value!r}; allowed: {allowed}") from None


def _resolve(values: dict, current_layers: tuple) -> dict:
    """Map seed aliases onto official names; reject unknown names and ``layers`` given together with the seed's
    ``size``/``rnn_size``/``layer`` (which build ``layers``): one of the two forms, never a mix."""
    out: dict = {}
    if "size" in values and "rnn_size" in values:
        raise ValueError("'size' and 'rnn_size' both given; use one of them")
    aliases = [name for name in ("size", "rnn_size", "layer") if name in values]
    if aliases and "layers" in values:
        raise ValueError(
            f"'layers' and the seed's {' and '.join(repr(a) for a in aliases)} both given; use layers (e.g. 100/100) "
            "or size and layer, not both"
        )
    size = values.pop("size", None)
    size = values.pop("rnn_size", None) if size is None else size
    n_layers = values.pop("layer", None)
    for name, value in values.items():
        target = _SIMPLE_ALIASES.get(name, name)
        if target not in FIELD_NAMES:
            known = ", ".join(FIELD_NAMES)
            aliases_text = ", ".join(SEED_ALIASES)
            raise ValueError(f"unknown hyperparameter {name!r}; known names: {known}; seed aliases: {aliases_text}")
        if target in out:
            raise ValueError(f"{name!r} and {target!r} both given; use one of them")
        out[target] = value
    if size is not None or n_layers is not None:
        base = parse_layers(current_layers)
        size_value = _layer_size(size, "size") if size is not None else base[0]
        count = _layer_size(n_layers, "layer") if n_layers is not None else len(base)
        if count < 1 or size_value < 1:
            raise ValueError(f"layer/size: need layer >= 1 and size >= 1, got layer={count}, size={size_value}")
        if count > 1000:
            raise ValueError(f"layer: at most 1000 layers, got {count}")
        out["layers"] = (size_value,) * count
    return out


def _parse_int(text: str) -> int:
    """An integer from text, exactly (no float round trip): ``12345678901234567``, ``1e4``, ``100.0``."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = decimal.Decimal(text)
    except decimal.InvalidOperation:
        raise ValueError from None
    if not number.is_finite() or number != number.to_integral_value() or abs(number) >= INT64_LIMIT:
        raise ValueError
    return int(number)


def _coerce(name: str, value: Any) -> Any:
    """Convert strings (CLI, param files, JSON) to the type of field ``name``; other values pass through."""
    kind = _FIELD_TYPES[name]
    if name == "layers":
        return parse_layers(value)
    if name == "final_act":
        if value is None or (isinstance(value, str) and value.lower() in ("", "none", "default")):
            return None
        return value
    if not isinstance(value, str):
        if kind == "float" and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if kind == "int" and isinstance(value, float) and value.is_integer():
            return int(value)
        return value
    text = value.strip()
    try:
        if kind == "bool":
            if text.lower() in ("true", "1", "yes"):
                return True
            if text.lower() in ("false", "0", "no"):
                return False
            raise ValueError
        if kind == "int":
            return _parse_int(text)
        if kind == "float":
            return float(text)
    except ValueError:
        raise ValueError(f"{name}: invalid value {value!r}; expected {kind}") from None
    return text
