"""Exact path-dependent TreeSHAP for a LightGBM booster, several times faster than LightGBM's own
`pred_contrib` on the shallow trees our search grows: the values are LightGBM's (a test compares
them on the trained model to 1e-9), the work per seller is a few table look-ups per leaf.

Why not `pred_contrib`: it walks every tree for every row and rebuilds each leaf's path weights
there (O(leaves x depth^2) per tree and row, with an allocation per call); on the 1M-seller batch it
was two thirds of the job. Why not a library: `shap`'s C++ TreeSHAP is the same algorithm on one
core, and `fasttreeshap` (LinkedIn's "Fast TreeSHAP v2", the idea used here) is an unmaintained
fork of an old `shap`, offered to us only as a source archive to compile.

The idea (Yang 2021, Fast TreeSHAP v2): in path-dependent TreeSHAP a leaf contributes to the
features on its path only, and how much depends on one bit per path feature: whether the row
satisfies every split on that feature along the path ("one fraction" 1, else 0); the "zero
fractions" (cover ratios) are the tree's. So a leaf with d distinct path features has 2^d possible
contribution vectors, computed once per model (`Tables`); scoring a row evaluates each split once,
builds each leaf's bit mask from its path and adds that mask's vector. A leaf deeper than
TABLE_FEATURES distinct features computes its vector per row instead (O(d^2)), so the tables stay
small (at most 2^6 x 6 numbers a leaf) whatever depth the search picks.

For one leaf with value v and path features P (zero fraction z_j, one fraction o_j), feature i's
contribution is the Shapley value of the leaf's value function f(S) = v * prod(o_j, j in S) *
prod(z_j, j in P - S) over the players P:

    phi_i = v * (o_i - z_i) * sum_k  k! (|P| - k - 1)! / |P|!  *  e_k(P - {i})

with e_k the sum over subsets S of P - {i} of size k of prod(o_j, j in S) * prod(z_j, j not in S),
the coefficient of t^k in prod_{j != i} (z_j + o_j t). A feature split on twice on the path is one
player whose fractions are the products of its splits' (as LightGBM's path unwinding does). The
expected value of a tree is sum over leaves of v * (leaf count / root count).

Splits are decided as LightGBM decides them for raw float64 inputs (`Tree::NumericalDecision`,
`Tree::CategoricalDecision` in LightGBM 4): its predictor reads a number within 1e-35 of zero as 0.0
(it keeps only the others); a NaN is 0.0 unless the split's missing type is NaN;
a missing value (NaN, or 0 for missing type Zero) follows the default direction; otherwise left
when value <= threshold; a categorical split sends NaN and negative codes right and the codes in
its bitset left.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import cache
from math import factorial

import numba
import numpy as np

TABLE_FEATURES = 6
"""Leaves with at most this many distinct path features get a precomputed table (2^d x d numbers)."""
MAX_FEATURES = 64
"""Distinct features on one leaf's path that a row's scratch space holds (the search grows depth <= 10)."""
ZERO_THRESHOLD = float(np.float32(1e-35))
"""LightGBM's kZeroThreshold (a float): its predictor reads an input within it of 0 as 0.0."""
NUMERICAL, CATEGORICAL = 0, 1
MISSING_NONE, MISSING_ZERO, MISSING_NAN = 0, 1, 2
_MISSING = {"None": MISSING_NONE, "Zero": MISSING_ZERO, "NaN": MISSING_NAN}
BLOCK_ROWS = 64
"""Rows taken through the trees together, so each tree's tables are read from cache, not memory."""
SERIAL_ROWS = 2_000
"""Fewer rows than this are explained on the calling thread: starting the thread pool costs more."""
_POOL = threading.Lock()


@dataclass(frozen=True)
class Tables:
    """A booster flattened for TreeSHAP: its splits, each leaf's path and contribution tables."""

    n_features: int
    expected: float  # sum over trees of each tree's expected value (pred_contrib's last column)
    tree_node: np.ndarray  # int64, trees + 1: each tree's first split in the node arrays
    tree_leaf: np.ndarray  # int64, trees + 1: each tree's first leaf in the leaf arrays
    node_feature: np.ndarray  # int64
    node_threshold: np.ndarray  # float64 (categorical: unused)
    node_kind: np.ndarray  # int8: NUMERICAL or CATEGORICAL
    node_default_left: np.ndarray  # bool
    node_missing: np.ndarray  # int8: MISSING_*
    node_cats: np.ndarray  # int64, nodes + 1: the categorical split's slice of `cats`
    cats: np.ndarray  # uint32 bitsets
    leaf_value: np.ndarray  # float64
    leaf_step: np.ndarray  # int64, leaves + 1: the leaf's slice of the step arrays (its path, root first)
    step_node: np.ndarray  # int64: the split (global node index)
    step_left: np.ndarray  # bool: the path goes left there
    step_slot: np.ndarray  # int64: the path feature that split is on (0..d-1, the leaf's own numbering)
    leaf_slot: np.ndarray  # int64, leaves + 1: the leaf's slice of the slot arrays
    slot_feature: np.ndarray  # int64: the model feature of each path feature
    slot_zero: np.ndarray  # float64: its zero fraction (product of the cover ratios of its splits)
    leaf_table: np.ndarray  # int64, leaves: the leaf's offset in `table`, -1: computed per row
    table: np.ndarray  # float64: per tabled leaf, 2^d masks x d contributions
    tree_root: np.ndarray  # int64, trees: the root split (global node index), -1 for a one-leaf tree
    tree_single: np.ndarray  # float64, trees: a one-leaf tree's value (0 for the others)
    node_left: np.ndarray  # int64, nodes: the left child, a global node index, or -1 - leaf for a leaf
    node_right: np.ndarray  # int64, nodes: the right child, as `node_left`

    @classmethod
    def from_booster(cls, booster) -> Tables:
        """Flatten a binary-objective LightGBM booster (`booster.dump_model()`)."""
        dump = booster.dump_model()
        if dump.get("num_tree_per_iteration", 1) != 1:
            raise ValueError("TreeSHAP tables are built for single-output boosters (binary or regression)")
        b = _Builder()
        expected = 0.0
        for info in dump["tree_info"]:
            expected += b.add_tree(info["tree_structure"])
        return b.tables(len(dump["feature_names"]), expected)

    @property
    def walk_arrays(self) -> tuple[np.ndarray, ...]:
        """The arrays `_raw_rows` reads to walk each tree from its root to one leaf."""
        return (self.tree_root, self.tree_single, self.node_left, self.node_right, self.node_feature,
                self.node_threshold, self.node_kind, self.node_default_left, self.node_missing, self.node_cats,
                self.cats, self.leaf_value)

    def raw_scores(self, X: np.ndarray, threads: int = 0) -> np.ndarray:
        """Each row's raw score (the trees' summed leaf values, tree by tree from 0.0 as LightGBM's
        predictor adds them; a test holds them equal to `Booster.predict(raw_score=True)` bit for bit),
        one root-to-leaf walk per tree: a single seller costs microseconds where a `predict` call costs
        tens (its per-call set-up), and the HTTP service and the batch job read the same function."""
        X = np.ascontiguousarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"expected rows x {self.n_features} features, got shape {X.shape}")
        out = np.zeros(len(X))
        if threads == 1 or len(X) < SERIAL_ROWS:
            _raw_rows(0, len(X), X, out, self.walk_arrays)
            return out
        with _POOL:
            previous = numba.get_num_threads()
            numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS) if threads
                                  else numba.config.NUMBA_NUM_THREADS)
            try:
                _raw_parallel(max(1, min(len(X) // BLOCK_ROWS, 4 * numba.get_num_threads())), X, out,
                              self.walk_arrays)
            finally:
                numba.set_num_threads(previous)
        return out

    @property
    def arrays(self) -> tuple[np.ndarray, ...]:
        """The arrays the compiled kernels read, as one argument (in `_shap_rows`' order)."""
        return (self.tree_node, self.tree_leaf, self.node_feature, self.node_threshold, self.node_kind,
                self.node_default_left, self.node_missing, self.node_cats, self.cats, self.leaf_value,
                self.leaf_step, self.step_node, self.step_left, self.step_slot, self.leaf_slot, self.slot_feature,
                self.slot_zero, self.leaf_table, self.table)

    def contributions(self, X: np.ndarray, threads: int = 0) -> np.ndarray:
        """Rows x features: each feature's TreeSHAP contribution to the raw score (with `expected`
        they add up to it). `threads`: 0 all cores, 1 the calling thread only."""
        X = np.ascontiguousarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"expected rows x {self.n_features} features, got shape {X.shape}")
        out = np.zeros((len(X), self.n_features))
        if len(X) == 0:
            return out
        args = (X, out, self.arrays, _shapley_weights())
        if threads == 1 or len(X) < SERIAL_ROWS:
            _shap_rows(0, len(X), *args)
            return out
        cores = numba.config.NUMBA_NUM_THREADS
        with _POOL:  # numba's fallback thread pool (workqueue) must not be entered by two threads at once
            previous = numba.get_num_threads()
            numba.set_num_threads(min(threads, cores) if threads else cores)
            try:
                _shap_parallel(max(1, min(len(X) // BLOCK_ROWS, 4 * numba.get_num_threads())), *args)
            finally:
                numba.set_num_threads(previous)
        return out


@cache
def _shapley_weights(n: int = MAX_FEATURES) -> np.ndarray:
    """W[m, k] = k! (m - k - 1)! / m!: the Shapley weight of a coalition of k among m players."""
    w = np.zeros((n + 1, n + 1))
    for m in range(1, n + 1):
        for k in range(m):
            w[m, k] = factorial(k) * factorial(m - k - 1) / factorial(m)
    return w


class _Builder:
    """Collects the flattened arrays tree by tree."""

    def __init__(self) -> None:
        self.tree_node, self.tree_leaf = [0], [0]
        self.node: dict[str, list] = {k: [] for k in ("feature", "threshold", "kind", "default_left", "missing",
                                                      "left", "right")}
        self.tree_root: list[int] = []
        self.tree_single: list[float] = []
        self.cat_words: dict[int, np.ndarray] = {}  # global node -> its categorical split's bitset
        self.leaf_value, self.leaf_step, self.leaf_slot, self.leaf_table = [], [0], [0], []
        self.step_node, self.step_left, self.step_slot = [], [], []
        self.slot_feature, self.slot_zero = [], []
        self.table: list[np.ndarray] = []
        self.table_size = 0

    def add_tree(self, root: dict) -> float:
        """Add one tree (dump_model's tree_structure); returns its expected value."""
        if "split_index" not in root:  # a single leaf: no contributions, its value is expected
            self.tree_node.append(len(self.node["feature"]))
            self.tree_leaf.append(len(self.leaf_value))
            self.tree_root.append(-1)
            self.tree_single.append(float(root["leaf_value"]))
            return float(root["leaf_value"])
        first = len(self.node["feature"])
        self.tree_root.append(first + int(root["split_index"]))
        self.tree_single.append(0.0)
        total = float(root["internal_count"])
        expected = 0.0
        stack = [(root, [])]  # node, path: [(global node, went left, cover ratio), ...]
        while stack:
            n, path = stack.pop()
            if "split_index" in n:
                g = first + int(n["split_index"])
                self._node(g - first, n)
                count = float(n["internal_count"])
                for child, left in ((n["right_child"], False), (n["left_child"], True)):
                    stack.append((child, [*path, (g, left, _count(child) / count)]))
            else:
                v = float(n["leaf_value"])
                expected += v * _count(n) / total
                self._leaf(v, path)
            if path:  # the parent's pointer to this child: a split, or -1 - leaf
                parent, left, _ = path[-1]
                self.node["left" if left else "right"][parent] = (
                    g if "split_index" in n else -len(self.leaf_value))
        self.tree_node.append(len(self.node["feature"]))
        self.tree_leaf.append(len(self.leaf_value))
        return expected

    def _node(self, index: int, n: dict) -> None:
        """Record split `index` of the current tree (splits are numbered 0.. per tree)."""
        first = self.tree_node[-1]
        while len(self.node["feature"]) <= first + index:
            for k in self.node:
                self.node[k].append(0)
        at = first + index
        self.node["feature"][at] = int(n["split_feature"])
        self.node["default_left"][at] = bool(n["default_left"])
        self.node["missing"][at] = _MISSING[n["missing_type"]]
        if n["decision_type"] == "==":
            self.node["kind"][at] = CATEGORICAL
            self.node["threshold"][at] = 0.0
            levels = [int(c) for c in str(n["threshold"]).split("||")]
            words = np.zeros(max(levels) // 32 + 1, dtype=np.uint32)
            for c in levels:
                words[c // 32] |= np.uint32(1 << (c % 32))
            self.cat_words[at] = words
        elif n["decision_type"] == "<=":
            self.node["kind"][at] = NUMERICAL
            self.node["threshold"][at] = float(n["threshold"])
        else:
            raise ValueError(f"unknown LightGBM decision type {n['decision_type']!r}")

    def _leaf(self, value: float, path: list[tuple[int, bool, float]]) -> None:
        slots: dict[int, int] = {}
        zero: list[float] = []
        for g, left, ratio in path:
            f = self.node["feature"][g]
            if f not in slots:
                slots[f] = len(slots)
                zero.append(1.0)
            zero[slots[f]] *= ratio
            self.step_node.append(g)
            self.step_left.append(left)
            self.step_slot.append(slots[f])
        self.slot_feature.extend(slots)
        self.slot_zero.extend(zero)
        self.leaf_value.append(value)
        self.leaf_step.append(len(self.step_node))
        self.leaf_slot.append(len(self.slot_feature))
        d = len(slots)
        if d > MAX_FEATURES:
            raise ValueError(f"a leaf's path splits on {d} distinct features; TreeSHAP here handles at most {MAX_FEATURES}")
        if d <= TABLE_FEATURES:
            self.leaf_table.append(self.table_size)
            t = _leaf_table(value, np.asarray(zero), _shapley_weights())
            self.table.append(t.ravel())
            self.table_size += t.size
        else:
            self.leaf_table.append(-1)

    def tables(self, n_features: int, expected: float) -> Tables:
        nodes = len(self.node["feature"])
        bounds, words = [0], []
        for at in range(nodes):
            w = self.cat_words.get(at)
            if w is not None:
                words.extend(w.tolist())
            bounds.append(len(words))
        i64 = lambda v: np.asarray(v, dtype=np.int64)  # noqa: E731
        return Tables(
            n_features, expected, i64(self.tree_node), i64(self.tree_leaf), i64(self.node["feature"]),
            np.asarray(self.node["threshold"], dtype=np.float64), np.asarray(self.node["kind"], dtype=np.int8),
            np.asarray(self.node["default_left"], dtype=np.bool_), np.asarray(self.node["missing"], dtype=np.int8),
            i64(bounds), np.asarray(words, dtype=np.uint32), np.asarray(self.leaf_value, dtype=np.float64),
            i64(self.leaf_step), i64(self.step_node), np.asarray(self.step_left, dtype=np.bool_), i64(self.step_slot),
            i64(self.leaf_slot), i64(self.slot_feature), np.asarray(self.slot_zero, dtype=np.float64),
            i64(self.leaf_table), np.concatenate(self.table) if self.table else np.zeros(0),
            i64(self.tree_root), np.asarray(self.tree_single, dtype=np.float64), i64(self.node["left"]),
            i64(self.node["right"]))


def _count(n: dict) -> float:
    return float(n["internal_count"] if "split_index" in n else n["leaf_count"])


# ------------------------------------------------------------------ compiled kernels


@numba.njit(cache=True, nogil=True)
def _leaf_phi(value, zero, ones, weights, poly, out):
    """The leaf's contribution to each of its d path features, for one-fractions `ones` (0 or 1), in
    O(d^2): the product P(t) = prod_j (z_j + o_j t) once, then each feature's own factor divided out
    of it (as TreeSHAP's path unwinding does). `poly`: scratch of d + 1 numbers."""
    d = len(zero)
    poly[0] = 1.0
    for j in range(d):
        poly[j + 1] = poly[j] * ones[j]
        for k in range(j, 0, -1):
            poly[k] = poly[k] * zero[j] + poly[k - 1] * ones[j]
        poly[0] = poly[0] * zero[j]
    for i in range(d):
        o, z = ones[i], zero[i]
        s = 0.0
        if o == 0.0:  # P = Q * z
            for k in range(d):
                s += weights[d, k] * poly[k] / z
        else:  # P = Q * (z + t): Q[d-1] = P[d], Q[k-1] = P[k] - z Q[k]
            q = poly[d]
            s = weights[d, d - 1] * q
            for k in range(d - 1, 0, -1):
                q = poly[k] - z * q
                s += weights[d, k - 1] * q
        out[i] = value * (o - z) * s


@numba.njit(cache=True)
def _leaf_table(value, zero, weights):
    """2^d x d: the leaf's contributions for every set of path features the row satisfies (bit j of
    the mask: path feature j)."""
    d = len(zero)
    t = np.empty((1 << d, d))
    ones = np.empty(d)
    poly = np.empty(d + 1)
    for mask in range(1 << d):
        for j in range(d):
            ones[j] = 1.0 if (mask >> j) & 1 else 0.0
        _leaf_phi(value, zero, ones, weights, poly, t[mask])
    return t


@numba.njit(cache=True, nogil=True)
def _in_bitset(x, start, stop, cats):
    """A categorical split: NaN and negative codes go right, the codes in the bitset left."""
    if np.isnan(x):
        return False
    c = int(x)
    if c < 0 or c // 32 >= stop - start:
        return False
    return (cats[start + c // 32] >> np.uint32(c % 32)) & np.uint32(1) == 1


@numba.njit(cache=True, nogil=True, inline="always")
def _goes_left(v, node, node_threshold, node_kind, node_default_left, node_missing, node_cats, cats):
    """Whether input `v` goes left at split `node`, as LightGBM's predictor decides it."""
    m = node_missing[node]
    if node_kind[node] == 1:
        return _in_bitset(v, node_cats[node], node_cats[node + 1], cats)
    if v != v:  # NaN: missing for missing types NaN and Zero (as 0.0), else 0.0
        return node_default_left[node] if m != 0 else 0.0 <= node_threshold[node]
    if -ZERO_THRESHOLD <= v <= ZERO_THRESHOLD:  # LightGBM reads it as 0.0
        return node_default_left[node] if m == 1 else 0.0 <= node_threshold[node]
    return v <= node_threshold[node]


@numba.njit(cache=True, nogil=True)
def _raw_rows(start, stop, X, out, arrays):
    """Rows start..stop of X scored into `out`: each tree walked from its root to one leaf."""
    (tree_root, tree_single, node_left, node_right, node_feature, node_threshold, node_kind, node_default_left,
     node_missing, node_cats, cats, leaf_value) = arrays
    for r in range(start, stop):
        x = X[r]
        s = 0.0
        for t in range(len(tree_root)):
            node = tree_root[t]
            if node < 0:
                s += tree_single[t]
                continue
            while node >= 0:
                if _goes_left(x[node_feature[node]], node, node_threshold, node_kind, node_default_left, node_missing,
                              node_cats, cats):
                    node = node_left[node]
                else:
                    node = node_right[node]
            s += leaf_value[-1 - node]
        out[r] = s


@numba.njit(cache=True, parallel=True)
def _raw_parallel(blocks, X, out, arrays):
    n = len(X)
    size = (n + blocks - 1) // blocks
    for b in numba.prange(blocks):
        _raw_rows(b * size, min(n, (b + 1) * size), X, out, arrays)


@numba.njit(cache=True, nogil=True)
def _shap_rows(start, stop, X, out, arrays, weights):
    """Rows start..stop of X explained into `out` (`Tables.arrays` describe the trees)."""
    (tree_node, tree_leaf, node_feature, node_threshold, node_kind, node_default_left, node_missing, node_cats, cats,
     leaf_value, leaf_step, step_node, step_left, step_slot, leaf_slot, slot_feature, slot_zero, leaf_table,
     table) = arrays
    left = np.empty(max(1, len(node_feature)), dtype=np.bool_)
    ones = np.empty(MAX_FEATURES)
    phi = np.empty(MAX_FEATURES)
    poly = np.empty(MAX_FEATURES + 1)
    for b0 in range(start, stop, BLOCK_ROWS):  # a block of rows tree by tree: a tree's tables stay in cache
        b1 = min(stop, b0 + BLOCK_ROWS)
        for t in range(len(tree_node) - 1):
            for r in range(b0, b1):
                x = X[r]
                o = out[r]
                for node in range(tree_node[t], tree_node[t + 1]):  # every split of the tree, decided once
                    # written out, not a call to `_goes_left`: numba compiled the call into a kernel 50% slower
                    v = x[node_feature[node]]
                    m = node_missing[node]
                    if node_kind[node] == 1:
                        left[node] = _in_bitset(v, node_cats[node], node_cats[node + 1], cats)
                    elif v != v:  # NaN: missing for missing types NaN and Zero (as 0.0), else 0.0
                        left[node] = node_default_left[node] if m != 0 else 0.0 <= node_threshold[node]
                    elif -ZERO_THRESHOLD <= v <= ZERO_THRESHOLD:  # LightGBM reads it as 0.0
                        left[node] = node_default_left[node] if m == 1 else 0.0 <= node_threshold[node]
                    else:
                        left[node] = v <= node_threshold[node]
                for leaf in range(tree_leaf[t], tree_leaf[t + 1]):
                    s0, s1 = leaf_slot[leaf], leaf_slot[leaf + 1]
                    d = s1 - s0
                    mask = (1 << d) - 1
                    for s in range(leaf_step[leaf], leaf_step[leaf + 1]):  # branch-free: the bits are noise
                        mask &= ~(np.int64(left[step_node[s]] != step_left[s]) << step_slot[s])
                    at = leaf_table[leaf]
                    if at >= 0:
                        base = at + mask * d
                        for j in range(d):
                            o[slot_feature[s0 + j]] += table[base + j]
                    else:
                        for j in range(d):
                            ones[j] = 1.0 if (mask >> j) & 1 else 0.0
                        _leaf_phi(leaf_value[leaf], slot_zero[s0:s1], ones[:d], weights, poly, phi[:d])
                        for j in range(d):
                            o[slot_feature[s0 + j]] += phi[j]


@numba.njit(cache=True, parallel=True)
def _shap_parallel(blocks, X, out, arrays, weights):
    n = len(X)
    size = (n + blocks - 1) // blocks
    for b in numba.prange(blocks):
        _shap_rows(b * size, min(n, (b + 1) * size), X, out, arrays, weights)
