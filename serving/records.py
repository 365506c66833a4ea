"""The score record: what every scorer hands out, declared once. The HTTP service returns these as
JSON and the weekly batch job writes them as Parquet rows (reasons as a list of structs), so a
reviewer reading either sees the same fields with the same meaning. The batch job's files leave
`as_of` out: their partition folder's name carries it (features.platform.layout), and its readers put it back.

The models below are the one declaration: each field's name, Python type and description (the HTTP
contract, OpenAPI document included), and, where the default does not give it, how it is stored
(`Stored`). The Arrow schema (`SCORE_ARROW` and its structs) and the reviewer console's columns
(`queue_columns`) are derived from them. A scorer computes the record once, column-wise
(`RecordColumns`), and reads it two ways: an Arrow table and JSON-ready rows.
Adding a field is one line here and its computation in `serving.scoring.Scorer.columns`."""

from __future__ import annotations

import types
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from functools import cache
from typing import Annotated, Any, NamedTuple, Union, get_args, get_origin

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field
from pydantic.fields import FieldInfo


@dataclass(frozen=True)
class Stored:
    """How a record field is kept beyond what its Python type says: its Arrow type where the default
    (`arrow_type`) is not it, and whether the reviewer console reads it with a week's queued rows."""

    arrow: pa.DataType | None = None
    queued: bool = True


NOT_QUEUED = Stored(queued=False)
"""A field the console's queue and seller page do not read from a week's rows."""


class Reason(BaseModel):
    """One standard that accounts for a material part of the risk (or keeps it down), from that standard's
    own model: what the seller does about it and where the seller stands against it, in a reviewer's words.
    Never a standard at a perfect rate, never one below the policy's minimum effect, never one not judged
    yet unless its rate already misses. General exposure, context and history are never reasons: they are
    shown beside (`ScoreRecord.context`)."""

    model_config = ConfigDict(extra="forbid")

    rank: Annotated[int, Stored(arrow=pa.int32())] = Field(  # int32 in the weekly score files
        description="1 = the first reason: ordered by the standard's share of the risk (the first is "
                    "standard_at_risk when it has a reason).")
    standard: str = Field(description="The policy metric (standard), e.g. 'cancellation_rate'.")
    label: str = Field(description="The standard's name for a reviewer, e.g. 'Seller cancellations'.")
    contribution: float = Field(
        description="Push of the standard's own features (its behaviour and its volume) on the calibrated log-odds "
                    "of missing it, by the exact TreeSHAP of the standard's own model.")
    probability_change: float = Field(
        description="The part of risk_score this standard's own features account for (negative when they "
                    "keep it down): the standard's share times the part of its own risk they add; at least "
                    "the policy's minimum effect.")
    direction: str = Field(description="'raises' or 'lowers' the risk.")
    value: float | None = Field(description="The seller's rate over the standard's window (null: no volume).")
    volume: int = Field(description="What the rate is judged on over the window (orders, delivered orders, messages).")
    headroom: int | None = Field(
        description="More misses at this volume that would miss the standard (null: missing it now, or not judged).")
    text: str = Field(description="The reason in a reviewer's words: value, standard, trend and headroom.")


class Context(BaseModel):
    """A group of features shown beside the reasons, never as one: history, exposure or context."""

    model_config = ConfigDict(extra="forbid")

    group: str = Field(description="'history', 'exposure' or 'context'.")
    contribution: float = Field(description="The group's push on the calibrated log-odds.")
    features: str = Field(description="The group's values that move the score most, in short words.")


class Contribution(BaseModel):
    """One group's push on the calibrated log-odds (each standard's behaviour, history, exposure, context)."""

    model_config = ConfigDict(extra="forbid")

    group: str
    contribution: float


class Recovery(BaseModel):
    """What brings a standard missed now back."""

    model_config = ConfigDict(extra="forbid")

    standard: str
    needed: int | None = Field(description="Good outcomes in a row that bring it back (null: none suffices alone).")
    back_by: date | None = Field(
        description="The evaluation date by which it is back if every outcome from as_of on is good, at the "
                    "seller's recent volume: the sooner of that run and its misses leaving the window "
                    "(null when as_of is unknown, as for features sent by the caller).")
    text: str


class StandardRisk(BaseModel):
    """The risk of missing one standard within the horizon."""

    model_config = ConfigDict(extra="forbid")

    standard: str = Field(description="The policy metric (standard), e.g. 'on_time_delivery_rate'.")
    label: str = Field(description="The standard's name for a reviewer.")
    risk: float = Field(description="Calibrated probability that the seller misses this standard at an evaluation "
                                    "within the horizon (consistent with risk_score: none above it, together "
                                    "at least it).")
    share: float = Field(description="How much of risk_score this standard accounts for (probability): the Shapley "
                                     "value over the standards of the chance of missing any of them were they "
                                     "independent, scaled to risk_score, so the shares add up to it exactly and the "
                                     "largest is standard_at_risk.")


class ScoreRecord(BaseModel):
    """How risky a seller is, and why."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    record_id: str = Field(description="Identifies this record for the audit trail and `seller-risk replay`: a hash "
                                       "of the model version, the as-of date, the seller and its exact feature values.")
    seller_id: str
    as_of: Annotated[date | None, NOT_QUEUED] = Field(  # a week's folder names it
        description="As-of date of the features (null when the caller sent the features).")
    risk_score: float = Field(description="Calibrated probability that the seller misses a standard within the horizon.")
    standard_at_risk: str | None = Field(description="The standard that accounts for most of the risk (the "
                                                     "largest share in risk_by_standard, which is also the highest "
                                                     "risk); for a seller missing standards now, the missed one with "
                                                     "the largest share; null without per-standard risks. For a "
                                                     "compliant seller its reason, when it has one, is the first.")
    risk_by_standard: list[StandardRisk] = Field(description="The risk of missing each standard and its share of "
                                                             "risk_score, in policy order.")
    risk_band: str = Field(description="The seller's place relative to the week's early-warning queue (the policy's "
                                       "bands: 'recovery' when missing a standard now; for a compliant seller 'review' "
                                       "within this week's queue, 'next' within two queues' worth, 'watch' within "
                                       "five, else 'low'), placed by the cut-offs the weekly batch run of the same "
                                       "model version wrote for the seller's week (or the latest week before it); "
                                       "'unranked' when no such run exists yet.")
    band_meaning: str = Field(description="What the band asks of a reviewer (the weekly batch also gives the seller's "
                                          "place in this week's early-warning queue or recovery list).")
    population: str = Field(description="'missing_now': the seller misses a standard at as_of; else 'compliant_now'.")
    standards_missed_now: list[str] = Field(description="The standards the seller misses at as_of (policy order).")
    base_log_odds: Annotated[float, NOT_QUEUED] = Field(
        description="Calibrated log-odds of the average seller; plus every group's contribution "
                    "(`contributions`) it gives the log-odds of risk_score.")
    model_name: str
    model_version: str
    policy_version: str
    feature_spec_hash: str
    reasons: list[Reason] = Field(description="Standards whose behaviour raises the risk most, strongest first.")
    lowering_reasons: Annotated[list[Reason], NOT_QUEUED] = Field(
        default_factory=list, description="Standards whose behaviour lowers the risk most (only when asked for).")
    context: list[Context] = Field(description="History, exposure and context, shown beside the reasons.")
    contributions: Annotated[list[Contribution], NOT_QUEUED] = Field(
        description="Every group's contribution: each standard's behaviour, then history, exposure, context.")
    recovery: list[Recovery] = Field(
        description="For each standard missed now, what brings it back (empty for a compliant seller).")


# ------------------------------------------------------------------ the Arrow schema, derived

ARROW_TYPES: dict[type, pa.DataType] = {str: pa.string(), float: pa.float64(), int: pa.int64(), bool: pa.bool_(),
                                        date: pa.date32()}
"""The Arrow type of each Python type a record field may have (`Stored.arrow` overrides it per field)."""


def stored(field: FieldInfo) -> Stored:
    """How a declared field is kept (the default unless its annotation says otherwise)."""
    return next((m for m in field.metadata if isinstance(m, Stored)), Stored())


def arrow_type(annotation: Any) -> pa.DataType:
    """The Arrow type of a field's Python type: a list is a list, a model a struct of its fields, and
    `| None` changes nothing (every Arrow field may be null)."""
    if get_origin(annotation) in (Union, types.UnionType):
        [inner] = [a for a in get_args(annotation) if a is not type(None)]
        return arrow_type(inner)
    if get_origin(annotation) is list:
        [item] = get_args(annotation)
        return pa.list_(arrow_type(item))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return arrow_struct(annotation)
    if annotation not in ARROW_TYPES:
        raise TypeError(f"no Arrow type for a score record field of type {annotation!r}: add it to ARROW_TYPES "
                        "or give the field Stored(arrow=...)")
    return ARROW_TYPES[annotation]


def arrow_fields(model: type[BaseModel]) -> list[pa.Field]:
    """A model's fields as Arrow fields, in declaration order."""
    return [pa.field(name, stored(f).arrow or arrow_type(f.annotation)) for name, f in model.model_fields.items()]


def arrow_struct(model: type[BaseModel]) -> pa.StructType:
    return pa.struct(arrow_fields(model))


REASON_ARROW = arrow_struct(Reason)
CONTEXT_ARROW = arrow_struct(Context)
CONTRIBUTION_ARROW = arrow_struct(Contribution)
STANDARD_RISK_ARROW = arrow_struct(StandardRisk)
RECOVERY_ARROW = arrow_struct(Recovery)

SCORE_ARROW = pa.schema(arrow_fields(ScoreRecord))
"""The score record as an Arrow row, field for field ScoreRecord; the batch job adds its run id, the
run's time and the weekly queue, and its files hold every column but as_of
(serving.batch.job.BATCH_FILE_ARROW). tests/serving/test_record_declaration.py holds it to the schema
of the files on disk."""


def queue_columns() -> list[str]:
    """The record's columns the reviewer console reads with a week's queued rows, in record order:
    every field but those declared NOT_QUEUED (the console adds the batch job's own columns)."""
    return [name for name, f in ScoreRecord.model_fields.items() if stored(f).queued]


# ------------------------------------------------------------------ the record held column-wise, two views


class Nullable(NamedTuple):
    """Values of which some are missing (`null`), as a rate without volume."""

    values: np.ndarray
    null: np.ndarray


class Repeated(NamedTuple):
    """The same values in every row, or the same items in every row's list: `values`, `times` over."""

    values: tuple
    times: int


Values = np.ndarray | Nullable | Repeated
"""A field's values for every row (or, inside a list field, every item), flat. A plain array holds
no missing value but None or NaT."""


class Lists(NamedTuple):
    """A list field: its items for every row, flat, sorted by row; `items` is a struct's fields by name
    (a list of models, whose fields are plain values) or the values themselves (a list of values).
    Each item's `row`, or, when every row has as many, `width` items per row."""

    items: Mapping[str, Values] | Values
    row: np.ndarray | None = None
    width: int = 0


Column = Values | Lists


@dataclass(frozen=True)
class RecordColumns:
    """Score records for n rows, column-wise: each field of ScoreRecord by name. The batch table and
    the HTTP records are two views of one computation (serving.scoring.Scorer.columns)."""

    n: int
    columns: Mapping[str, Column]

    def __post_init__(self) -> None:
        names = _row_layout()[0]
        if self.columns.keys() != _declared():
            missing = [c for c in names if c not in self.columns]
            extra = [c for c in self.columns if c not in names]
            raise ValueError(f"the computed columns are not the score record's: missing {missing}, undeclared {extra}")

    def table(self) -> pa.Table:
        """The records as an Arrow table of SCORE_ARROW (the batch job's rows)."""
        return pa.table([self._arrow(self.columns[f.name], f.type) for f in SCORE_ARROW], schema=SCORE_ARROW)

    def rows(self) -> list[dict]:
        """The records as JSON-ready dicts in declaration order (the HTTP response): the values the
        table holds, as Python values (null: None)."""
        names, item_fields = _row_layout()
        values = [self._python(self.columns[name], fields) for name, fields in zip(names, item_fields)]
        return [dict(zip(names, row)) for row in zip(*values)]

    def _arrow(self, column: Column, type_: pa.DataType) -> pa.Array:
        if not isinstance(column, Lists):
            return _arrow_values(column, type_)
        item = type_.value_type
        if isinstance(column.items, Mapping):
            values = pa.StructArray.from_arrays([_arrow_values(column.items[f.name], f.type) for f in item],
                                                fields=list(item))
        else:
            values = _arrow_values(column.items, item)
        offsets = (np.searchsorted(column.row, np.arange(self.n + 1)) if column.row is not None
                   else np.arange(self.n + 1) * column.width)
        return pa.ListArray.from_arrays(pa.array(offsets.astype("int32"), pa.int32()), values)

    def _python(self, column: Column, fields: tuple[str, ...] | None) -> list:
        if type(column) is not Lists:
            return column.tolist() if type(column) is np.ndarray else _python_values(column)
        if fields is None:
            items = _python_values(column.items)
        else:
            items = [dict(zip(fields, v)) for v in zip(*[_python_values(column.items[f]) for f in fields])]
        if column.row is None:
            w = column.width
            return [items[i * w:(i + 1) * w] for i in range(self.n)]
        out: list[list] = [[] for _ in range(self.n)]
        for i, item in zip(column.row.tolist(), items):
            out[i].append(item)
        return out


@cache
def _row_layout() -> tuple[tuple[str, ...], tuple[tuple[str, ...] | None, ...]]:  # read once, as Python
    """The record's field names and, for each list of models, its items' fields."""
    def item_fields(type_: pa.DataType) -> tuple[str, ...] | None:
        if pa.types.is_list(type_) and pa.types.is_struct(type_.value_type):
            return tuple(f.name for f in type_.value_type)
        return None
    return tuple(SCORE_ARROW.names), tuple(item_fields(f.type) for f in SCORE_ARROW)


@cache
def _declared() -> frozenset[str]:
    """The record's field names, as a set."""
    return frozenset(SCORE_ARROW.names)


def _arrow_values(values: Values, type_: pa.DataType) -> pa.Array:
    if isinstance(values, Nullable):
        return pa.array(values.values, type_, mask=values.null)
    if isinstance(values, Repeated):
        if len(values.values) == 1:
            return pa.repeat(pa.scalar(values.values[0], type_), values.times)
        return pa.array(np.tile(np.asarray(values.values, dtype=object), values.times), type_)
    return pa.array(values, type_)


def _python_values(values: Values) -> list:
    if type(values) is np.ndarray:
        return values.tolist()
    if type(values) is Repeated:
        return list(values.values) * values.times
    return [None if missing else v for v, missing in zip(values.values.tolist(), values.null.tolist())]
