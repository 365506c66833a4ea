"""Figures a reviewer of a model looks at: precision-recall, calibration, lift at reviewer capacity
week by week, and what drives the score (SHAP).

Each function returns a `matplotlib.figure.Figure` built without pyplot (no backend is chosen and no
global state is touched), except `shap_summary`, which must draw through pyplot because `shap` does.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter
from sklearn.metrics import average_precision_score, precision_recall_curve

from models.cohorts import calibration_bins, expected_calibration_error

_PERCENT = PercentFormatter(xmax=1.0, decimals=0)


def pr_curves(curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str) -> Figure:
    """How precise each model's queue is at every share of breaches caught; the dashed line is a
    random ranking (precision = the breach rate)."""
    fig = Figure(figsize=(7, 5), layout="constrained")
    ax = fig.add_subplot()
    base_rates: dict[float, list[str]] = {}
    for name, (y, p) in curves.items():
        y, p = np.asarray(y, dtype="int64"), np.asarray(p, dtype="float64")
        if len(y) == 0:
            continue
        base_rates.setdefault(round(float(y.mean()), 6), []).append(name)
        if len(np.unique(y)) < 2:
            ax.plot([], [], label=f"{name} (PR AUC n/a: one outcome only)")
            continue
        precision, recall, _ = precision_recall_curve(y, p)
        ax.plot(recall, precision, drawstyle="steps-post",
                label=f"{name} (PR AUC {average_precision_score(y, p):.3f})")
    for rate, names in base_rates.items():
        whose = "" if len(base_rates) == 1 else f", {', '.join(names)}"
        ax.axhline(rate, linestyle="--", color="grey", linewidth=1, label=f"base rate {rate:.1%}{whose}")
    ax.set(xlim=(0, 1), ylim=(0, 1.02), title=title,
           xlabel="Recall: breaching sellers caught (%)", ylabel="Precision: flagged sellers who breach (%)")
    ax.xaxis.set_major_formatter(_PERCENT)
    ax.yaxis.set_major_formatter(_PERCENT)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right")
    return fig


def calibration_curve(y: np.ndarray, p: np.ndarray, title: str, bins: int = 10) -> Figure:
    """Whether a score of x% means x% of such sellers breach: observed breach rate per score bin
    against the diagonal, with how many sellers got each score below."""
    y, p = np.asarray(y, dtype="float64"), np.asarray(p, dtype="float64")
    table = calibration_bins(y, p, bins)
    ece = expected_calibration_error(y, p, bins)
    fig = Figure(figsize=(7, 7), layout="constrained")
    top, bottom = fig.subplots(2, 1, gridspec_kw={"height_ratios": [3, 1]})
    top.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfectly calibrated")
    top.plot(table["mean_score"], table["breach_rate"], marker="o", label="model: observed vs predicted")
    top.set(xlim=(0, 1), ylim=(0, 1), title=f"{title} (ECE {ece:.3f})",
            xlabel="Mean predicted breach probability in bin (%)", ylabel="Observed breach rate (%)")
    bottom.hist(p, bins=np.linspace(0, 1, max(bins, 50) + 1), color="tab:blue", alpha=0.7)
    bottom.set(xlim=(0, 1), xlabel="Predicted breach probability (%)", ylabel="Sellers (count)")
    if len(p) and (np.histogram(p, bins=50, range=(0, 1))[0].max() > 100):
        bottom.set_yscale("log")
    for ax in (top, bottom):
        ax.xaxis.set_major_formatter(_PERCENT)
        ax.grid(alpha=0.3)
    top.yaxis.set_major_formatter(_PERCENT)
    top.legend(loc="upper left")
    return fig


def lift_by_week(weekly: dict[str, pd.DataFrame], title: str) -> Figure:
    """How many times the base rate of breaches each model's reviewer queue held, week by week
    (the output of `training.metrics.at_capacity` per model); 1 is no better than random."""
    fig = Figure(figsize=(9, 5), layout="constrained")
    ax = fig.add_subplot()
    for name, frame in weekly.items():
        frame = frame.sort_values("as_of")
        ax.plot(pd.to_datetime(frame["as_of"]), frame["lift"], marker="o", markersize=3, label=name)
    ax.axhline(1.0, linestyle="--", color="grey", linewidth=1, label="random queue (lift 1)")
    locator = AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    ax.set(title=title, xlabel="As-of week (date)", ylabel="Lift at capacity (x base breach rate)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    return fig


def shap_summary(contributions: np.ndarray, X: pd.DataFrame, title: str, max_display: int = 20) -> Figure:
    """Which features push sellers' breach scores up or down, and at what feature values (SHAP
    beeswarm of precomputed log-odds contributions, one dot per seller and feature)."""
    import matplotlib.pyplot as plt
    import shap

    colours = X.copy()
    for col in colours.columns:
        if isinstance(colours[col].dtype, pd.CategoricalDtype) or colours[col].dtype == object:
            codes = colours[col].astype("category").cat.codes
            colours[col] = codes.where(codes >= 0).astype("float64")  # missing stays missing (grey)
    fig = plt.figure()
    shap.summary_plot(np.asarray(contributions), colours, show=False, max_display=max_display)
    fig = plt.gcf()
    ax = fig.axes[0]
    ax.set_title(title)
    ax.set_xlabel("SHAP value: contribution to the breach score (log-odds)")
    ax.set_ylabel("Feature")
    fig.tight_layout()
    return fig
