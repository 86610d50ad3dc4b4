"""The most recent shared item of a prefix and a neighbour session, for many (lane, neighbour) pairs, exactly.

V-SKNN needs, for every neighbour, how far back in the prefix its most recent shared item is; STAN needs the
neighbour's own last position among the items it shares with the prefix. Both are a *maximum* over the shared
items, which a sparse product (a sum) does not give directly. It does give it exactly with this encoding:

* each entry gets its **distance** ``d >= 0`` from the top of its side (prefix: ``L - position``; neighbour:
  ``length - position``), and distinct items of one side have distinct distances;
* entries are cut into blocks of :data:`BLOCK` distances (``d // BLOCK``), and within a block an entry is encoded as
  ``2 ** -(d mod BLOCK)``: a sum of distinct powers of two in ``[2**-51, 1]``, which float64 holds exactly, so the
  largest power, i.e. the smallest distance, is read back from the sum's exponent (``np.frexp``);
* blocks are taken nearest first, and a pair is settled by the first block in which it shares an item.

One sparse product per block (prefix × item→sessions, both CSR) does the work of all lanes at once in compiled code;
blocks after the first are only computed while some pair is unsettled, and all of them together cost one product.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import scipy.sparse as sp

BLOCK = 52  # distances per block: sums of distinct 2**-j, j < 52, are exact in float64's 53-bit mantissa


def encode(distance: np.ndarray, block: int) -> np.ndarray:
    """``2 ** -(distance - block * BLOCK)`` for entries of ``block`` (float64, exact)."""
    return np.ldexp(1.0, -(np.asarray(distance, dtype=np.int64) - block * BLOCK).astype(np.int32))


def smallest_distance(sums: np.ndarray, block: int) -> np.ndarray:
    """The smallest encoded distance in each sum of :func:`encode` values of one ``block`` (sums > 0)."""
    _, exponent = np.frexp(sums)  # sums in [2**(e-1), 2**e): the largest power is 2**(e-1) = 2**-(d mod BLOCK)
    return block * BLOCK + 1 - exponent.astype(np.int64)


def lookup(product: sp.csr_matrix, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """``product[rows, columns]`` for many (row, column) pairs (0.0 where the product has no entry)."""
    product.sort_indices()
    n_columns = product.shape[1]
    counts = np.diff(product.indptr)
    keys = np.repeat(np.arange(product.shape[0], dtype=np.int64), counts) * n_columns + product.indices
    wanted = rows.astype(np.int64) * n_columns + columns
    at = np.minimum(np.searchsorted(keys, wanted), max(len(keys) - 1, 0))
    found = keys[at] == wanted if len(keys) else np.zeros(len(wanted), dtype=bool)
    return np.where(found, product.data[at] if len(keys) else 0.0, 0.0)


def nearest_shared(
    left_blocks: Sequence[sp.csr_matrix], right_blocks: Sequence[sp.csr_matrix], rows: np.ndarray, columns: np.ndarray
) -> np.ndarray:
    """For each pair ``(rows[j], columns[j])``, the smallest distance of a shared item, -1 if none is shared.

    Exactly one side is cut into blocks: ``left_blocks`` (``(n_rows, n_items)``, one matrix per block, encoded) with
    ``right_blocks`` a single ``(n_items, n_columns)`` matrix of ones, or the other way round."""
    if len(left_blocks) != 1 and len(right_blocks) != 1:
        raise ValueError("only one side of the product may be cut into blocks")
    n_blocks = max(len(left_blocks), len(right_blocks))
    result = np.full(len(rows), -1, dtype=np.int64)
    open_ = np.arange(len(rows))
    for block in range(n_blocks):
        if len(open_) == 0:
            break
        left = left_blocks[block if len(left_blocks) > 1 else 0]
        right = right_blocks[block if len(right_blocks) > 1 else 0]
        if left.nnz == 0 or right.nnz == 0:
            continue
        sums = lookup(left @ right, rows[open_], columns[open_])
        hit = sums > 0
        result[open_[hit]] = smallest_distance(sums[hit], block)
        open_ = open_[~hit]
    return result
