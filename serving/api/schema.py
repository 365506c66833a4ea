"""The HTTP request schema, derived from the feature spec: one field per feature with its type,
its description and whether it may be missing, so the OpenAPI page documents every feature and a
request with an unknown name, a wrong type or a NaN is refused naming the field."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, create_model

from features.spec import Feature, FeatureSpec

MAX_SELLERS = 100
"""Sellers per /score request at most; larger batches belong to the weekly batch job."""

SellerId = Annotated[str, Field(min_length=1, max_length=128, description="Marketplace seller account id.")]


def _field(f: Feature) -> tuple[object, object]:
    """A feature as a request field: numbers must be finite JSON numbers (counts whole and not
    negative), categories strings; optional features may be left out or null."""
    doc = f"{f.description} ({f.dtype}{f', {f.window_days}-day window' if f.window_days else ''})"
    if f.dtype == "category":
        kind: object = Annotated[str, Field(strict=True, min_length=1, max_length=100, description=doc)]
    elif f.dtype == "int":
        kind = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0, multiple_of=1, description=doc)]
    else:
        kind = Annotated[float, Field(strict=True, allow_inf_nan=False, description=doc)]
    return (kind | None, None) if f.optional else (kind, ...)


def request_models(spec: FeatureSpec) -> tuple[type[BaseModel], type[BaseModel]]:
    """(SellerFeatures, SellerRequest) for a feature spec."""
    features = create_model(  # type: ignore[call-overload]
        "SellerFeatures", __config__=ConfigDict(extra="forbid"),
        __doc__=f"A seller's features (feature spec {spec.hash}); optional ones may be left out.",
        **{f.name: _field(f) for f in spec.features})
    seller = create_model(  # type: ignore[call-overload]
        "SellerRequest", __config__=ConfigDict(extra="forbid"),
        __doc__="One seller to score from features the caller computed.",
        seller_id=(SellerId, ...),
        as_of=(date | None, Field(None, description="As-of date of the features, echoed in the record.")),
        features=(features, ...))
    return features, seller


class ScoreSellerRequest(BaseModel):
    """A seller to score from the latest feature snapshot."""

    model_config = ConfigDict(extra="forbid")
    seller_id: SellerId
