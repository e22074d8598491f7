"""Outputs people look at: chemiscope files, the offline page, figures, descriptor files.

- :mod:`~equilens.export.chemiscope`: ``export_chemiscope`` (maps of layers,
  properties, arrows, ellipsoids), ``read_chemiscope``, ``validate_chemiscope``;
- :mod:`~equilens.export.potential` and :mod:`~equilens.export.tensor`:
  a model's layers and predictions on a dataset;
- :mod:`~equilens.export.page`: a self-contained offline HTML viewer;
- :mod:`~equilens.export.plots`: PCA maps and annotated heatmaps;
- :mod:`~equilens.export.comparisons`: comparison tables and heatmaps;
- :mod:`~equilens.export.descriptors`: descriptor files with plots.

Submodules are imported on first use.
"""

from __future__ import annotations

from .._lazy import lazy_getattr

__all__ = [
    "descriptor_job",
    "export_chemiscope",
    "export_potential",
    "export_tensor_model",
    "read_chemiscope",
    "save_comparison",
    "save_equivariant_comparison",
    "standalone_html",
    "validate_chemiscope",
]

_LAZY = {
    "export_chemiscope": "chemiscope",
    "read_chemiscope": "chemiscope",
    "validate_chemiscope": "chemiscope",
    "export_potential": "potential",
    "export_tensor_model": "tensor",
    "standalone_html": "page",
    "descriptor_job": "descriptors",
    "save_comparison": "comparisons",
    "save_equivariant_comparison": "comparisons",
}

__getattr__ = lazy_getattr(__name__, _LAZY)
