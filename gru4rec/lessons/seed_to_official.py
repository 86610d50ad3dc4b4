"""From the seed to the official GRU4Rec, one change at a time (notebook 06; the playground can reuse the steps).

:data:`STEPS` starts from the seed exactly as it ran (``Config.preset("seed")``: in-batch negatives only, a separate
input embedding, Adam with a staircase decay and TF1's dense moments, dropout 0.5 on the output only, TF1 GRUCell's
initial weights, sessions in SessionId order, the epoch cut at the first lane it cannot refill, and its optimistic
evaluation: ``rank < 20`` with ties as hits) and changes one thing per step until it reaches the official RSC15-best
configuration as the official TF code runs it, then the official PyTorch code's GRU (reset gate after the recurrent
product), then the kit's departure that raises accuracy, a weight average: ``Config.preset("official")``, the kit's
default. Each step is a :class:`Step`: a name, the Config overrides it adds to the previous step, and the evaluation
it is measured with. :func:`run_waterfall` trains and evaluates every step on the same data with the same seed
(``gru4rec.train.train``, ``gru4rec.evaluate.evaluate``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import pandas as pd

from gru4rec.config import OFFICIAL_XE_WEIGHT_AVERAGING, Config
from gru4rec.evaluate import GRU4RecScorer, evaluate
from gru4rec.run_folder import drop_checkpoints
from gru4rec.session_data import SessionData
from gru4rec.train import train


@dataclass(frozen=True)
class Step:
    """One step of the waterfall: ``change`` (Config overrides on top of the previous step) and its evaluation."""

    name: str
    change: Mapping[str, Any]
    tie_mode: str  # "seed" (rank < K, ties as hits) or "conservative" (rank <= K, ties against the model)
    why: str


def _frozen(**values: Any) -> Mapping[str, Any]:
    return MappingProxyType(dict(values))


STEPS: tuple = (
    Step("the seed as it ran", _frozen(), "seed",
         "Config.preset('seed'): in-batch negatives, separate embedding, Adam 0.001 ×0.96 staircase (dense moments, "
         "as TF1), dropout 0.5 on the output only, TF1 GRUCell's initial weights, sessions in SessionId order, the "
         "epoch cut at the first lane it cannot refill; hits counted as rank < K with ties as hits"),
    Step("honest evaluation", _frozen(), "conservative",
         "the same model counted with rank ≤ K and ties against the model (the official evaluation)"),
    Step("+ the official codes' epoch", _frozen(session_order="time", epoch_end="all_sessions"), "conservative",
         "sessions in the order of their first event, every session played to its end (the seed sorted by "
         "SessionId and stopped at the first lane it could not refill)"),
    Step("+ the official GRU initialisation", _frozen(gru_init="per_block"), "conservative",
         "each gate block uniform ±sqrt(6 / (fan_in + fan_out)) on its own shape, biases 0 (TF1's GRUCell: glorot "
         "over [input; state], gate bias 1)"),
    Step("+ 2048 popularity-sampled negatives", _frozen(n_sample=2048, sample_alpha=0.5), "conservative",
         "extra negatives drawn by popularity^0.5, shared by the mini-batch (CIKM 2018, section 3.2)"),
    Step("+ logQ correction", _frozen(logq=1.0), "conservative",
         "subtract log Q(j) from each negative's score: the sampled softmax's bias correction"),
    Step("+ shared embedding", _frozen(constrained_embedding=True, embedding=0), "conservative",
         "the input embedding is the output weight matrix (official constrained_embedding)"),
    Step("+ Adagrad with momentum, lr 0.2",
         _frozen(optimizer="adagrad", learning_rate=0.2, momentum=0.2, decay=1.0, lazy_adam=True), "conservative",
         "the official optimiser at the official RSC15 learning rate, no schedule, touched rows only "
         "(lazy_adam is Adam's switch: no effect on Adagrad)"),
    Step("+ official dropout", _frozen(dropout_p_hidden=0.4, dropout_p_embed=0.0, dropout_on_state=True),
         "conservative",
         "dropout 0.4 on the hidden layer's output, which is also the state carried to the next step (the seed "
         "dropped half of the output and carried the undropped state)"),
    Step("+ official mini-batch (32)", _frozen(batch_size=32, bpreg=0.0), "conservative",
         "batch 32 instead of the seed's 50: now the official RSC15 parameter file as the official TF code runs it "
         "(bpreg only matters for BPR-max)"),
    Step("+ the PyTorch code's GRU", _frozen(gru_variant="reset_after"), "conservative",
         "the reset gate applied after the recurrent product, as torch.nn.GRUCell in the official PyTorch code "
         "(the official RSC15 parameter file as the official PyTorch code runs it)"),
    Step("+ weight averaging", _frozen(weight_averaging=OFFICIAL_XE_WEIGHT_AVERAGING), "conservative",
         "evaluate a polynomial-decay average of the weights instead of the last update's (the kit's one departure "
         "that raises accuracy): now exactly Config.preset('official'), the kit's default (docs/results.md)"),
)
"""The steps of notebook 06, in order (each one change)."""

PUBLISHED = MappingProxyType({
    "ports_recall_gap": (0.30, 0.90),  # third-party ports' Recall@20, this much below the official code's
    "ports_source": "Hidasi & Czapp, RecSys 2023, arXiv 2307.14956 (six third-party GRU4Rec ports, five data sets)",
    "losses_gain_up_to": 0.35,  # the CIKM 2018 losses and sampling over the 2016 GRU4Rec (Recall@20 and MRR@20)
    "losses_source": "Hidasi & Karatzoglou, CIKM 2018, arXiv 1706.03847",
})
"""The published gaps shown beside the measured ones (as fractions)."""


def step_configs(steps: Sequence[Step] = STEPS, start: Optional[Config] = None, **common: Any) -> list:
    """``[(step, config), ...]``: the cumulative Config of every step, each with ``common`` overrides (e.g.
    ``n_epochs``, ``seed``) applied on top. ``start`` defaults to ``Config.preset("seed")``."""
    config = start or Config.preset("seed")
    out = []
    for step in steps:
        config = config.with_overrides(**dict(step.change))
        out.append((step, config.with_overrides(**common)))
    return out


def measure(result: Any, train_data: SessionData, test_data: SessionData, k: int = 20,
            tie_mode: str = "conservative", ceiling: Optional[Mapping[str, float]] = None) -> dict:  # fmt: skip
    """``recall@K``, ``mrr@K`` on ``test_data`` (``gru4rec.evaluate``), their share of ``ceiling`` when given, the mean
    ``epoch_seconds``, ``events_per_s`` and ``final_loss`` of a :class:`gru4rec.train.TrainResult`."""
    scorer = GRU4RecScorer(result.model, train_data.item_map, train_data.item_counts)
    metrics = evaluate(scorer, test_data, cutoffs=(k,), tie_mode=tie_mode)
    seconds = [record["seconds"] for record in result.history]
    row = {f"recall@{k}": metrics[f"recall@{k}"], f"mrr@{k}": metrics[f"mrr@{k}"]}
    if ceiling is not None:
        row[f"share_recall@{k}"] = row[f"recall@{k}"] / ceiling[f"recall@{k}"]
        row[f"share_mrr@{k}"] = row[f"mrr@{k}"] / ceiling[f"mrr@{k}"]
    row.update(epoch_seconds=sum(seconds) / len(seconds), events_per_s=result.events_per_s,
               final_loss=result.epoch_losses[-1])  # fmt: skip
    return row


@dataclass
class Waterfall:
    """What :func:`run_waterfall` measured: one row per step, and the trained model of every distinct config."""

    table: pd.DataFrame
    models: dict = field(default_factory=dict)  # step name -> trained GRU4RecModel
    configs: dict = field(default_factory=dict)  # step name -> Config


def run_waterfall(
    train_data: SessionData,
    test_data: SessionData,
    out_dir: Union[str, Path],
    steps: Sequence[Step] = STEPS,
    k: int = 20,
    ceiling: Optional[Mapping[str, float]] = None,
    on_step: Optional[Callable[[dict], None]] = None,
    keep_checkpoints: bool = True,
    keep_checkpoints_of: Sequence[Config] = (),
    **common: Any,
) -> Waterfall:
    """Train and evaluate every step (``common``: Config overrides for all steps, e.g. ``n_epochs=3, seed=42``).

    A step whose Config equals an earlier step's (the honest evaluation) reuses that model instead of training it
    again, so the two counts are of the same model. A step that only switches on ``weight_averaging`` shares the
    training of the step before it (averaging does not change training): that training runs with the average, the
    step before is measured on its last weights (``TrainResult.last_model``), the step itself on the average. Runs
    go to ``out_dir/<nn>``; with ``keep_checkpoints=False`` their ``checkpoints/`` are deleted once trained (the
    models stay in memory; logs and config stay), except for a run whose Config is one of ``keep_checkpoints_of``
    (later notebooks reuse it: ``gru4rec.reuse``). Columns of the table: ``step``, ``tie_mode``, ``recall@K``,
    ``mrr@K``, their share of ``ceiling`` (when given), ``epoch_seconds`` (mean training time per epoch),
    ``events_per_s``, ``trained`` (False when reused) and ``change``."""
    out_dir = Path(out_dir)
    rows, models, configs, trained_by_config = [], {}, {}, {}
    planned = step_configs(steps, **common)
    for number, (step, config) in enumerate(planned):
        key = config.to_json(sort_keys=True)
        reused = key in trained_by_config
        if not reused:
            averaged = _averaging_twin(config, planned[number + 1][1] if number + 1 < len(planned) else None)
            run = averaged or config
            trained = train(run, train_data, out_dir / f"{number:02d}", progress=False)
            if not keep_checkpoints and run not in keep_checkpoints_of:
                drop_checkpoints(out_dir / f"{number:02d}")
            if averaged is not None:  # the next step's training; this step is its last weights
                trained_by_config[averaged.to_json(sort_keys=True)] = trained
                trained = dataclasses.replace(trained, model=trained.last_model, config=config)
            trained_by_config[key] = trained
        result = trained_by_config[key]
        row = {"step": step.name, "tie_mode": step.tie_mode,
               **measure(result, train_data, test_data, k=k, tie_mode=step.tie_mode, ceiling=ceiling),
               "trained": not reused,
               "change": ", ".join(f"{name}={value}" for name, value in step.change.items()) or "—"}  # fmt: skip
        rows.append(row)
        models[step.name] = result.model
        configs[step.name] = config
        if on_step is not None:
            on_step(row)
    return Waterfall(pd.DataFrame(rows), models, configs)


def _averaging_twin(config: Config, following: Optional[Config]) -> Optional[Config]:
    """``following`` when it is ``config`` with only ``weight_averaging`` switched on (same training), else None."""
    if following is None or config.weight_averaging > 0 or following.weight_averaging <= 0:
        return None
    return following if following.with_overrides(weight_averaging=0.0) == config else None


def config_differences(a: Config, b: Config) -> dict:
    """``{name: (a's value, b's value)}`` for every hyperparameter where the two configs differ."""
    da, db = a.to_dict(), b.to_dict()
    return {name: (da[name], db[name]) for name in da if da[name] != db[name]}
