"""Record ids are in the audit trail and the golden week: computed on numpy rows (no frame per
request), they must stay exactly pandas' `hash_pandas_object` of the frame they were first defined on."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from serving.scoring import record_ids


def _pandas_ids(X: np.ndarray, seller_id: np.ndarray, as_of: np.ndarray, name: str, version: str, spec: str) -> np.ndarray:
    """The definition: a frame of the model, the as-of date, the seller and each input's bits, hashed by pandas."""
    frame = pd.DataFrame({"model": np.full(len(X), f"{name}\x1f{version}\x1f{spec}", dtype=object),
                          "as_of": np.asarray([str(d) for d in as_of], dtype=object), "seller_id": seller_id.astype(object)})
    for j in range(X.shape[1]):
        frame[j] = X[:, j].view("uint64")
    return np.asarray([f"{v:016x}" for v in pd.util.hash_pandas_object(frame, index=False).tolist()], dtype=object)


def _rows(n: int, m: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(scale=rng.choice([1e-3, 1.0, 1e6]), size=(n, m))
    X[rng.random(X.shape) < 0.2] = np.nan
    X[rng.random(X.shape) < 0.05] = -0.0
    X[rng.random(X.shape) < 0.05] = rng.integers(0, 500, 1)[0]
    odd = np.array([0x7FF8000000000001, 0xFFF8000000000000, 0x7FF0000000000000, 0x8000000000000000], dtype=np.uint64)
    X.flat[rng.integers(0, X.size, 4)] = odd.view("float64")  # NaN payloads and signs, inf, -0.0: kept apart
    sellers = np.asarray([f"S{rng.integers(0, 10**9)}" + rng.choice(["", "é", "✓ x", "\x1f"]) for _ in range(n)], dtype=object)
    days = np.asarray([rng.choice([date(2026, 1, 5), date(2025, 12, 29), None]) for _ in range(n)], dtype=object)
    return X, sellers, days


@pytest.mark.parametrize("n", [1, 2, 8, 9, 300])
def test_record_ids_are_pandas_hash_of_the_record_frame(n):
    for seed in range(12):
        X, sellers, days = _rows(n, 40 + seed, seed)
        got = record_ids(X, sellers, days, "seller-risk", str(seed), "abc123")
        assert got.tolist() == _pandas_ids(X, sellers, days, "seller-risk", str(seed), "abc123").tolist()


def test_one_seller_gets_the_same_id_alone_or_in_a_batch():
    X, sellers, days = _rows(50, 60, 99)
    batch = record_ids(X, sellers, days, "m", "1", "h")
    alone = [record_ids(X[i:i + 1], sellers[i:i + 1], days[i:i + 1], "m", "1", "h")[0] for i in range(50)]
    assert alone == batch.tolist()
    assert len(set(alone)) == 50


def test_a_strided_matrix_hashes_as_its_values():
    X, sellers, days = _rows(20, 30, 3)
    wide = np.repeat(X, 2, axis=1)[:, ::2]  # not contiguous
    assert record_ids(wide, sellers, days, "m", "1", "h").tolist() == record_ids(X, sellers, days, "m", "1", "h").tolist()
