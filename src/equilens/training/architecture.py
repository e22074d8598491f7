"""What a potential's configuration resolves to for a set of elements.

Above ``descriptor.alchemical_above`` elements the SOAP mixes the neighbor
types onto pseudo-species, and above ``model.shared_above`` one network with
an element embedding replaces the per-element networks. The run says which:
one printed line, ``metrics.json`` (``architecture``) and the model's
metadata all hold :func:`describe_architecture`'s answer.
"""

from __future__ import annotations

from typing import Any, Dict, Sequence

from ..models.bpnn import BPNNConfig


def describe_architecture(
    model: BPNNConfig, species: Sequence[int], hypers: Dict[str, Any]
) -> Dict[str, Any]:
    """``n_species``, ``shared``, ``alchemical`` (the mixing, or None) and a
    one-line ``summary`` of the descriptor and the network."""
    shared = model.is_shared(len(species))
    alchemical = hypers.get("alchemical")
    descriptor = (
        f"SOAP with neighbor types mixed onto {alchemical['pseudo_species']} pseudo-species "
        f"({alchemical['embedding']} embedding)"
        if alchemical
        else f"SOAP over {len(species)} neighbor types"
    )
    network = (
        f"one shared network with a {model.embedding}-wide element embedding"
        if shared
        else "one network per element"
    )
    return {
        "n_species": len(species),
        "shared": shared,
        "alchemical": alchemical,
        "summary": f"{len(species)} elements: {descriptor}, {network}",
    }
