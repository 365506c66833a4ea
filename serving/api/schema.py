"""The HTTP request schema, derived from the feature spec: one field per feature with its type,
its description, its bounds and whether it may be missing, so the OpenAPI page documents every
feature and what the validator enforces is what the page says. A request with an unknown field (at
any depth), a wrong type (no strings or booleans for numbers, no numbers for strings), a NaN, a
count out of its bounds or a rate outside 0 to 1 is refused naming the field."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, NamedTuple

from bentoml import IODescriptor
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model
from pydantic_core import PydanticCustomError

from features.pipeline.spec import Feature, FeatureSpec
from serving.api.routes import Route

MAX_SELLERS = 100
"""Sellers per /score request at most; larger batches belong to the weekly batch job."""

MAX_ORDERS_PER_DAY = 100_000
"""A ceiling on one seller's orders (or customer messages) a day, well above the busiest
marketplace sellers (thousands a day, tens of thousands on a peak day). A count above this rate
over its window is a unit or encoding mistake, not a seller, and the model would score it anyway
(a `cancellation_rate_volume` of 1e308 came back "critical")."""
BACKLOG_DAYS = 365
"""A count of what is open at t (orders past their ship-by date, unanswered messages) holds at most
a year of orders: marketplaces cancel and close what is left open long before."""
HISTORY_DAYS = 36_525
"""A century: no seller's history, and so no count of days or of warnings ever received, is longer."""

SellerId = Annotated[str, Field(strict=True, min_length=1, max_length=128, description="Marketplace seller account id.")]


def _not_text_or_boolean(value: object) -> object:
    """JSON strings and booleans are not numbers: "3" and true are refused (pydantic's lax mode
    takes them), while 3.0 is the integer 3, as JSON Schema's `integer` says."""
    if isinstance(value, (str, bool)):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    return value


def count_limit(f: Feature) -> int:
    """The largest value a request may send for a count feature: days and warnings at most one a day
    of their window (or of a century, for all history); orders and messages at most
    MAX_ORDERS_PER_DAY a day of their window (or of BACKLOG_DAYS, for what is open at t)."""
    if f.name.startswith("days_"):
        return HISTORY_DAYS
    if "warning" in f.name:
        return f.window_days or HISTORY_DAYS
    return MAX_ORDERS_PER_DAY * (f.window_days or BACKLOG_DAYS)


_PERCENT = re.compile(r"\{(?:value|0):(\+?)[^}]*%\}")


def share_bounds(f: Feature) -> tuple[float, float] | None:
    """The bounds of a number the feature spec shows as a percentage: a share of outcomes (a rate, a
    cautious estimate of one, the share fulfilled by the marketplace) lies in 0 to 1; shown signed, a
    difference of two shares (a gap to the threshold, a trend) in -1 to 1. None: not a share."""
    shown = _PERCENT.search(f.reason)
    if f.dtype != "float" or shown is None:
        return None
    return (-1.0, 1.0) if shown.group(1) else (0.0, 1.0)


def _field(f: Feature) -> tuple[object, object]:
    """A feature as a request field: numbers must be finite JSON numbers (counts whole, not negative
    and at most `count_limit`), categories strings; optional features may be left out or null."""
    doc = f"{f.description} ({f.dtype}{f', {f.window_days}-day window' if f.window_days else ''})"
    if f.dtype == "category":
        kind: object = Annotated[str, Field(strict=True, min_length=1, max_length=100, description=doc)]
    elif f.dtype == "int":  # a JSON number, so a count read from a float column (12.0) is accepted
        kind = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0, le=count_limit(f), multiple_of=1,
                                      description=f"{doc}; at most {count_limit(f):,}")]
    elif (bounds := share_bounds(f)) is not None:  # a rate of -1 or 1e308 is a mistake, not a seller
        low, high = bounds
        kind = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=low, le=high,
                                      description=f"{doc}; from {low:g} to {high:g}")]
    else:
        kind = Annotated[float, Field(strict=True, allow_inf_nan=False, description=doc)]
    return (kind | None, None) if f.optional else (kind, ...)


class _Body(IODescriptor):
    """A request body: an unknown field is refused, not ignored, so a misspelt `reason` is noticed."""

    model_config = ConfigDict(extra="forbid")


class RequestModels(NamedTuple):
    """The request schema of a feature spec: a seller's features, one seller sent with its features,
    and the body of each scoring route (serving/api/routes.py names its model by field)."""

    features: type[BaseModel]
    seller: type[BaseModel]
    score: type[IODescriptor]
    score_seller: type[IODescriptor]

    def body(self, route: Route) -> type[IODescriptor]:
        """The model that validates the route's JSON body."""
        if route.body is None:
            raise ValueError(f"{route.method} {route.path} takes no body")
        return getattr(self, route.body)


def request_models(spec: FeatureSpec) -> RequestModels:
    """The request models for a feature spec."""
    features = create_model(  # type: ignore[call-overload]
        "SellerFeatures", __config__=ConfigDict(extra="forbid"),
        __doc__=f"A seller's features (feature spec {spec.hash}); optional ones may be left out.",
        **{f.name: _field(f) for f in spec.features})
    seller = create_model(  # type: ignore[call-overload]
        "SellerRequest", __config__=ConfigDict(extra="forbid"),
        __doc__="One seller to score from features the caller computed.",
        seller_id=(SellerId, ...),
        as_of=(date | None, Field(None, strict=True, description="As-of date of the features, echoed in the record.")),
        features=(features, ...))
    reasons = Annotated[int, Field(ge=0, le=len(spec.features), description="How many standards to give as reasons, "
                                   "strongest first (one reason per standard at risk; a larger number gives them all)."), BeforeValidator(_not_text_or_boolean)]
    lowering = Annotated[int, Field(ge=0, le=len(spec.features), description="How many standards that lower the "
                                    "risk to give, strongest first (one per standard)."), BeforeValidator(_not_text_or_boolean)]
    score = create_model(  # type: ignore[call-overload]
        "ScoreRequest", __base__=_Body, __doc__="Sellers to score from features the caller sends.",
        sellers=(Annotated[list[seller], Field(min_length=1, max_length=MAX_SELLERS,  # type: ignore[valid-type]
                                               description=f"1 to {MAX_SELLERS} sellers with their features.")], ...),
        reasons=(reasons, 5), lowering_reasons=(lowering, 0))
    score_seller = create_model(  # type: ignore[call-overload]
        "ScoreSellerRequest", __base__=_Body, __doc__="A seller to score from the latest feature snapshot.",
        seller_id=(SellerId, ...), reasons=(reasons, 5), lowering_reasons=(lowering, 0))
    return RequestModels(features, seller, score, score_seller)
