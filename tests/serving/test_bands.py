"""Bands are places relative to the week's queue (serving/bands.py): cut-offs from a ranking, bands by
hand, the policy's rules for them, and the service's reader of the batch summaries."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pytest
import yaml

from features.platform import layout
from features.policy.definition import POLICY_DIR, PolicyError, load_policy
from serving.bands import UNRANKED, CutoffsReader, QueueCutoffs, assign_bands, queue_cutoffs

WEEK = date(2026, 11, 23)


@pytest.fixture(scope="module")
def policy():
    return load_policy("walmart-us-2026")


def test_cutoffs_are_the_scores_at_one_two_and_five_queues(policy) -> None:
    rng = np.random.default_rng(3)
    scores = rng.random(1000)
    missing = rng.random(1000) < 0.2
    cut = queue_cutoffs(scores, missing, 30, policy, WEEK, "4", "run-a")
    compliant = np.sort(scores[~missing])[::-1]
    assert cut.compliant_sellers == len(compliant) == (~missing).sum()
    assert [(c.band, c.within) for c in cut.cutoffs] == [("review", 30), ("next", 60), ("watch", 150)]
    assert [c.lowest_score for c in cut.cutoffs] == [compliant[29], compliant[59], compliant[149]]
    assert QueueCutoffs.from_json(json.loads(json.dumps(cut.to_json()))) == cut


def test_bands_by_hand(policy) -> None:
    # ten compliant sellers, capacity 2: review = the 2 riskiest, next = 3rd-4th, watch = 5th-10th (5 x 2)
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.15, 0.1, 0.05, 0.95])
    missing = np.array([False] * 11 + [True])
    cut = queue_cutoffs(scores, missing, 2, policy, WEEK, "1", "r")
    names, meanings = assign_bands(scores, missing, policy, cut, [WEEK] * 12)
    assert list(names) == ["review"] * 2 + ["next"] * 2 + ["watch"] * 6 + ["low", "recovery"]
    by_name = {b.name: b.meaning for b in policy.risk_bands}
    assert list(meanings) == [by_name[n] for n in names]
    # a score a hair under a cut-off (the batch ranks on plain predictions) still reaches it
    near = assign_bands(np.array([0.8 - 1e-12, 0.8 - 1e-6]), np.zeros(2, bool), policy, cut)[0]
    assert list(near) == ["review", "next"]
    # placed against an earlier week's queue, the meaning says which
    later = assign_bands(np.array([0.85]), np.zeros(1, bool), policy, cut, [date(2026, 11, 30)])[1]
    assert later[0] == f"{by_name['review']} (placed against the queue of {WEEK})"
    # without a ranked week: unranked, but missing a standard now is always recovery
    none = assign_bands(np.array([0.9, 0.9]), np.array([False, True]), policy, None)[0]
    assert list(none) == [UNRANKED, "recovery"]


def test_fewer_compliant_sellers_than_the_bands_reach(policy) -> None:
    cut = queue_cutoffs(np.array([0.5, 0.4, 0.3]), np.zeros(3, bool), 2, policy, WEEK, "1", "r")
    assert [(c.within, c.lowest_score) for c in cut.cutoffs] == [(2, 0.4), (3, 0.3), (3, 0.3)]
    assert list(assign_bands(np.array([0.5, 0.4, 0.3]), np.zeros(3, bool), policy, cut)[0]) == ["review", "review", "next"]
    empty = queue_cutoffs(np.array([0.5]), np.ones(1, bool), 2, policy, WEEK, "1", "r")
    assert [c.within for c in empty.cutoffs] == [0, 0, 0]


def _policy_file(tmp_path: Path, edit) -> Path:
    raw = yaml.safe_load((POLICY_DIR / "walmart-us-2026.yaml").read_text())
    edit(raw["risk_bands"])
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(("edit", "says"), [
    (lambda b: b.pop(0), "missing_now"),
    (lambda b: b[1].update(within_queues=1.5), "within_queues must be 1"),
    (lambda b: b[3].update(within_queues=1.5), "must increase"),
    (lambda b: b[4].update(within_queues=9), "holds the rest"),
    (lambda b: b[2].update(name="review"), "names must differ"),
    (lambda b: b[1].pop("meaning"), "risk_bands.1.meaning"),
])
def test_a_policy_with_bands_that_do_not_place_a_seller_is_refused(tmp_path: Path, edit, says: str) -> None:
    with pytest.raises(PolicyError, match=says):
        load_policy(_policy_file(tmp_path, edit))


def test_the_reader_finds_the_latest_week_up_to_a_date_for_its_model(tmp_path: Path, policy) -> None:
    scores = tmp_path / "scores"

    def week(day: date, run_id: str, top: float) -> QueueCutoffs:
        cut = queue_cutoffs(np.array([top, top / 2, top / 4]), np.zeros(3, bool), 1, policy, day, "1", run_id)
        part = layout.score_partition(scores, day)
        part.mkdir(parents=True)
        (part / "part-00000.parquet").write_bytes(b"")  # a partition holds data files
        (part / layout.SUMMARY).write_text(json.dumps({"as_of": str(day), "band_cutoffs": cut.to_json()}))
        return cut

    a = week(date(2026, 11, 9), "mine", 0.9)
    b = week(date(2026, 11, 16), "mine", 0.8)
    week(date(2026, 11, 23), "another store's model, same version number", 0.7)
    reader = CutoffsReader(scores, "mine", recheck_s=0.0)
    assert reader(date(2026, 11, 30)) == b and reader(date(2026, 11, 16)) == b
    assert reader(date(2026, 11, 12)) == a and reader(date(2026, 11, 1)) is None
    assert reader(None) == b
    c = week(date(2026, 11, 30), "mine", 0.6)  # a new batch run is seen without a restart
    assert reader(None) == c
    assert CutoffsReader(tmp_path / "nothing", "mine")(None) is None
