"""`seller-risk score` as documented: with no arguments it reads the settings' folders (<data>/events,
<data>/features, <data>/scores), and a SIGTERM or SIGINT stops it with one line and the shell's exit
status, its staging cleaned up even when a second signal arrives during the clean-up."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from serving.main import app


def test_no_arguments_reads_the_documented_defaults(tmp_path: Path, monkeypatch) -> None:
    import serving.batch.job as job

    seen = []
    monkeypatch.setattr(job, "run_batch", lambda cfg, advance: seen.append(cfg) or (_ for _ in ()).throw(SystemExit(0)))
    (tmp_path / "events").mkdir()
    (tmp_path / "features").mkdir()
    monkeypatch.setenv("SELLER_RISK_DATA", str(tmp_path))
    for name in ("SELLER_RISK_EVENTS", "SELLER_RISK_FEATURES", "SELLER_RISK_SCORES"):
        monkeypatch.delenv(name, raising=False)
    res = CliRunner().invoke(app, ["score"])
    assert "give --events" not in res.output
    [cfg] = seen
    assert (cfg.events, cfg.features_dir, cfg.out) == (tmp_path / "events", tmp_path / "features", tmp_path / "scores")


def test_no_arguments_and_no_data_names_both_defaults(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SELLER_RISK_DATA", str(tmp_path / "empty"))
    for name in ("SELLER_RISK_EVENTS", "SELLER_RISK_FEATURES"):
        monkeypatch.delenv(name, raising=False)
    res = CliRunner().invoke(app, ["score"])
    assert res.exit_code == 2
    assert str(tmp_path / "empty" / "events") in res.output and str(tmp_path / "empty" / "features") in res.output


@pytest.mark.parametrize("sig, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_the_run_with_one_line_and_its_status(sig, status, tmp_path: Path, monkeypatch) -> None:
    """The run's own signal handling (serving.batch.signals, as run_batch uses it) with a second signal
    landing while the staging folder is removed: the clean-up finishes all the same."""
    import serving.batch.job as job
    from serving.batch.signals import stop_signals

    staging = tmp_path / "scores.work" / "staging" / "as_of=2026-01-05.tmp-1"

    def run_batch(cfg, advance):
        with stop_signals() as check:
            staging.mkdir(parents=True)
            try:
                os.kill(os.getpid(), sig)
                for _ in range(10_000):
                    check()
                time.sleep(5)  # not reached: the signal stops the run
            finally:
                os.kill(os.getpid(), sig)  # a second one, while cleaning up
                for _ in range(10_000):
                    pass
                staging.rmdir()

    monkeypatch.setattr(job, "run_batch", run_batch)
    before = signal.getsignal(sig)  # whatever the process had (another test's Spark installs its own)
    (tmp_path / "features").mkdir()
    res = CliRunner().invoke(app, ["score", "--features", str(tmp_path / "features"), "--out", str(tmp_path / "scores")])
    assert res.exit_code == status, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"stopped by {signal.Signals(sig).name}"), res.output
    assert not staging.exists()
    assert signal.getsignal(sig) is before  # the run's handler is gone, the process's own is back
