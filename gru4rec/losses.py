"""Final activations and the GRU4Rec losses on a mini-batch score matrix.

Layout (as in the official code): ``scores`` is ``(B, M)`` with ``M = B + n_sample``. Column ``j < B`` is the target
of lane ``j`` (so the positives sit on the diagonal and the other lanes' targets are the in-batch negatives); the
last ``n_sample`` columns are the extra negatives shared by the mini-batch. ``valid`` (B,) marks real lanes: an
invalid lane's row adds nothing to the loss and its column is neither a positive nor a negative (the official code
drops such lanes from the batch instead).

Per-row losses (Hidasi & Karatzoglou, CIKM 2018, section 3, and the official Theano ``gru4rec.py``), with ``r_i`` the
target's score, ``r_j`` the scores of row ``i`` and ``N`` the number of valid columns:

- ``cross-entropy``: ``-log softmax(r)_i`` (computed as logsumexp - r_i; the official adds 1e-24 inside the log);
- ``bpr``: ``mean_j -log sigmoid(r_i - r_j)`` over the ``N`` valid columns, the positive included (a constant
  log 2 / N), as the 2018 Theano code (GRU4Rec v2.0, June 2018: ``T.mean`` over the score matrix, scaled back to a
  sum over rows) and the CIKM 2018 paper; the current Theano code (2020 onwards) sums over the columns instead (the
  kit's BPR times ``N``), and the TF and PyTorch codes have no BPR;
- ``top1``: ``(sum_j [sigmoid(r_j - r_i) + sigmoid(r_j^2)] - sigmoid(r_i^2)) / N`` (official: mean over the columns,
  the positive's regulariser removed);
- ``bpr-max``: ``-log(sum_j s_j sigmoid(r_i - r_j) + 1e-24) + bpreg * sum_j s_j r_j^2`` with ``s`` the softmax over
  the negatives only (the positive excluded, the official ``softmax_neg``);
- ``top1-max``: ``sum_j s_j (sigmoid(r_j - r_i) + sigmoid(r_j^2))``.

logQ correction (official ``logq``), cross-entropy only, as the official TF and PyTorch codes (their
``xe_loss_with_softmax``; the other losses ignore it); the current Theano code (2020 onwards) subtracts it before the
final activation of every loss. The trainer follows TF and PyTorch: before the final activation, ``logq * log Q(j)``
is subtracted from every column, with ``Q`` the support (event count) of the item for in-batch columns (they are drawn
by popularity through the data) and the support to the power ``sample_alpha`` for the extra samples, unnormalised,
exactly as the official code.
"""

from __future__ import annotations

from typing import Optional

import tensorflow as tf

from gru4rec.config import _parse_final_act


def final_activation(scores: tf.Tensor, name: str) -> tf.Tensor:
    """Pointwise final activation. ``softmax`` and ``linear`` leave the scores as they are (the cross-entropy loss
    applies the softmax itself); ``tanh`` under cross-entropy is the seed's softmax-over-tanh."""
    kind, param = _parse_final_act(name)
    if kind in ("softmax", "linear"):
        return scores
    if kind == "relu":
        return tf.nn.relu(scores)
    if kind == "tanh":
        return tf.tanh(scores)
    if kind == "elu":
        return tf.where(scores >= 0, scores, param * (tf.exp(tf.minimum(scores, 0.0)) - 1.0))
    if kind == "leaky":
        return tf.where(scores >= 0, scores, param * scores)
    raise ValueError(f"final_act: unknown value {name!r}")


def _softmax_over(scores: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Row softmax restricted to ``mask`` (float 0/1); rows without any masked-in entry give zeros."""
    lowest = tf.reduce_min(scores)
    top = tf.stop_gradient(tf.reduce_max(tf.where(mask > 0, scores, lowest), axis=1, keepdims=True))
    e = tf.exp(tf.where(mask > 0, scores - top, tf.zeros_like(scores))) * mask
    return e / tf.maximum(tf.reduce_sum(e, axis=1, keepdims=True), 1e-30)


def loss_masks(valid: tf.Tensor, n_sample, dtype=tf.float32) -> tuple:
    """``(row_mask, col_mask, col_bias)`` for ``valid`` lanes: 1/0 per lane, 1/0 per column (the samples always 1),
    and 0/-1e9 per column (added to the logits of the cross-entropy). Works on any leading batch dimensions."""
    row_mask = tf.cast(valid, dtype)
    ones = tf.ones(tf.concat([tf.shape(row_mask)[:-1], [n_sample]], axis=0), dtype)
    col_mask = tf.concat([row_mask, ones], axis=-1)
    return row_mask, col_mask, (col_mask - 1.0) * 1e9


def row_losses(
    scores: tf.Tensor,
    valid: tf.Tensor,
    loss: str,
    final_act: str,
    bpreg: float = 0.0,
    logq_adjust: Optional[tf.Tensor] = None,
    masks: Optional[tuple] = None,
) -> tf.Tensor:
    """Loss of every lane ``(B,)`` (zero for invalid lanes) from raw ``scores (B, B + n_sample)``.

    ``logq_adjust (M,)``: ``logq * log Q(j)`` per column, or None. ``masks``: ``loss_masks(valid, n_sample)``
    when already computed (the trainer computes them for a whole chunk at once).
    """
    batch = scores.shape[0] if scores.shape[0] is not None else tf.shape(scores)[0]
    n_cols = scores.shape[1] if scores.shape[1] is not None else tf.shape(scores)[1]
    row_mask, col_mask, col_bias = masks if masks is not None else loss_masks(valid, n_cols - batch, scores.dtype)
    if logq_adjust is not None:
        scores = scores - logq_adjust[tf.newaxis, :]
    scores = final_activation(scores, final_act)
    if loss == "cross-entropy":
        # logsumexp - r_i; masked columns get -1e9. (Plain ops: on CPU about 2.5x faster than the fused
        # sparse_softmax_cross_entropy_with_logits for (32, 2080) scores, gradient included.)
        rows = tf.reduce_logsumexp(scores + col_bias, axis=1) - tf.linalg.diag_part(scores[:, :batch])
        return rows * row_mask
    target = tf.linalg.diag_part(scores[:, :batch])[:, tf.newaxis]  # (B, 1)
    if loss == "bpr":
        n_valid_cols = tf.reduce_sum(col_mask)
        rows = tf.reduce_sum(tf.nn.softplus(scores - target) * col_mask, axis=1) / n_valid_cols
    elif loss == "top1":
        n_valid_cols = tf.reduce_sum(col_mask)
        terms = (tf.sigmoid(scores - target) + tf.sigmoid(tf.square(scores))) * col_mask
        rows = (tf.reduce_sum(terms, axis=1) - tf.sigmoid(tf.square(target[:, 0]))) / n_valid_cols
    elif loss in ("bpr-max", "top1-max"):
        not_self = 1.0 - tf.eye(batch, n_cols, dtype=scores.dtype)
        neg_mask = col_mask[tf.newaxis, :] * not_self
        weights = _softmax_over(scores, neg_mask)
        has_neg = tf.cast(tf.reduce_sum(neg_mask, axis=1) > 0, scores.dtype)
        if loss == "bpr-max":
            rows = -tf.math.log(tf.reduce_sum(tf.sigmoid(target - scores) * weights, axis=1) + 1e-24)
            if bpreg:
                rows = rows + bpreg * tf.reduce_sum(tf.square(scores) * weights, axis=1)
        else:
            rows = tf.reduce_sum(weights * (tf.sigmoid(scores - target) + tf.sigmoid(tf.square(scores))), axis=1)
        rows = rows * has_neg
    else:
        raise ValueError(f"loss: unknown value {loss!r}")
    return rows * row_mask


def identity_final_activation(name: str) -> bool:
    """Whether the final activation leaves the scores unchanged (``softmax`` under cross-entropy, ``linear``)."""
    return _parse_final_act(name)[0] in ("softmax", "linear")


@tf.custom_gradient
def _softmax_cross_entropy(scores: tf.Tensor, log_weight: tf.Tensor, onehot: tf.Tensor):
    """``logsumexp_u(scores + log_weight) - (scores * onehot).sum`` per row, with its gradient written out
    (``softmax - onehot``): a handful of ops instead of the autodiff of logsumexp and a target gather.
    scores, onehot (B, U); log_weight (U,). Gradients flow to ``scores`` only."""
    logits = scores + log_weight[tf.newaxis, :]
    top = tf.reduce_max(logits, axis=1, keepdims=True)
    e = tf.exp(logits - top)
    total = tf.reduce_sum(e, axis=1, keepdims=True)
    loss = (tf.math.log(total) + top)[:, 0] - tf.reduce_sum(scores * onehot, axis=1)

    def grad(upstream):
        return (e / total - onehot) * upstream[:, tf.newaxis], None, None

    return loss, grad


def cross_entropy_over_unique(
    unique_scores: tf.Tensor,
    columns: tf.Tensor,
    row_mask: tf.Tensor,
    col_mask: tf.Tensor,
    logq_adjust: Optional[tf.Tensor] = None,
) -> tf.Tensor:
    """The cross-entropy of :func:`row_losses`, computed on the scores of the distinct items, ``(B,)``.

    The mini-batch columns ``(M,)`` often repeat an item (a popular item is the target of several lanes and among
    the samples). Since ``sum_c exp(r_c - a_c) = sum_u exp(r_u) * w_u`` with ``w_u = sum_{c -> u} mask_c
    exp(-a_c)``, the softmax over the M columns equals a softmax over the U distinct items with the logits
    ``r_u + log w_u``; the value and the gradient are those of the column form, without expanding the scores to
    the columns (a (B, M) gather and its segment-summed gradient).

    Args:
        unique_scores: (B, U) scores of the distinct items, after the final activation (identity when
            ``logq_adjust`` is given; the logQ correction is applied here).
        columns: (M,) int32, the distinct item of each column; column ``i < B`` is lane ``i``'s target.
        row_mask: (B,) 1/0 valid lanes.  col_mask: (M,) 1/0 valid columns.
        logq_adjust: (M,) ``logq * log Q`` of each column, or None.
    """
    batch = tf.shape(unique_scores)[0]
    n_unique = tf.shape(unique_scores)[1]
    col_weight = col_mask if logq_adjust is None else col_mask * tf.exp(-logq_adjust)
    weight = tf.math.unsorted_segment_sum(col_weight, columns, n_unique)  # (U,)
    log_weight = tf.where(weight > 0, tf.math.log(tf.maximum(weight, 1e-30)), tf.constant(-1e9, weight.dtype))
    onehot = tf.one_hot(columns[:batch], n_unique, dtype=unique_scores.dtype)  # (B, U) each lane's target
    rows = _softmax_cross_entropy(unique_scores, log_weight, onehot)  # lse - r_target
    if logq_adjust is not None:
        rows = rows + logq_adjust[:batch]  # the target's score is r - a
    return rows * row_mask
