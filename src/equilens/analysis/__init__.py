"""Analysis of latent spaces: layers as TensorMaps, measures, projections, labels.

- :mod:`~equilens.analysis.latents`: every layer of any model (per atom,
  per species or pooled per structure), saved with a fingerprint of the
  structures;
- :mod:`~equilens.analysis.compare`: GFRE, GFRD, LFRE between feature sets
  (scikit-matter's measures with a factorising estimator,
  :mod:`~equilens.analysis.estimators`);
- :mod:`~equilens.analysis.streaming`: GFRE, GFRD and CKA from statistics
  accumulated chunk by chunk (any number of atoms), over latents written per
  chunk (:mod:`~equilens.analysis.chunks`);
- :mod:`~equilens.analysis.equivariant`: the equivariant reconstruction error
  between covariant blocks;
- :mod:`~equilens.analysis.projection`: PCA, PCovR, UMAP maps;
- :mod:`~equilens.analysis.labels`: physical per-atom labels;
- :mod:`~equilens.analysis.scorecard`: how well each layer exposes them;
- :mod:`~equilens.analysis.drift`: what fine-tuning does to each layer
  (GFRE both ways and CKA between a model, its base and a from-scratch one).

Submodules are imported on first use, except :mod:`~equilens.analysis.latents`
and :mod:`~equilens.analysis.compare`, whose main functions share their
module's name (a lazy name equal to a submodule's would be the function or
the module depending on what was imported before).
"""

from __future__ import annotations

from .._lazy import lazy_getattr
from .compare import Comparison, compare, compare_by_species
from .latents import latents, load_latents, save_latents

__all__ = [
    "Comparison",
    "LabelConfig",
    "Projector",
    "Scorecard",
    "StreamingComparison",
    "atom_labels",
    "compare",
    "compare_by_species",
    "compare_streaming",
    "equivariant_gfre_matrix",
    "equivariant_reconstruction_error",
    "latent_drift",
    "latents",
    "load_latents",
    "save_latents",
]

_LAZY = {
    "LabelConfig": "labels",
    "atom_labels": "labels",
    "Projector": "projection",
    "Scorecard": "scorecard",
    "StreamingComparison": "streaming",
    "compare_streaming": "streaming",
    "equivariant_gfre_matrix": "equivariant",
    "equivariant_reconstruction_error": "equivariant",
    "latent_drift": "drift",
}

__getattr__ = lazy_getattr(__name__, _LAZY)
