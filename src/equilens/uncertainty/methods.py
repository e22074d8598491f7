"""The estimators by the names the command line gives them."""

from __future__ import annotations

from typing import Optional, Sequence

from ..errors import ModelError
from .ensemble import Ensemble
from .estimators import LLPR, LatentDistance, UncertaintyEstimator

METHODS = ("llpr", "distance", "ensemble")


def make_estimator(
    method: str,
    model,
    members: Sequence = (),
    layer: Optional[str] = None,
    neighbours: int = 5,
) -> UncertaintyEstimator:
    """The estimator named ``method`` (one of ``METHODS``) over ``model``
    (and, for ``ensemble``, the other ``members``)."""
    if method not in METHODS:
        raise ModelError(f"unknown uncertainty method {method!r}; expected one of {METHODS}")
    if method != "ensemble" and members:
        raise ModelError(f"--member models are for --method ensemble, not {method}")
    if method == "ensemble" and layer is not None:
        raise ModelError("an ensemble uses no layer; leave out --layer")
    if method == "llpr":
        return LLPR(model, layer)
    if method == "distance":
        return LatentDistance(model, layer, neighbours=neighbours)
    return Ensemble([model, *members])
