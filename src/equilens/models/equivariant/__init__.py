"""The equivariant potential: an equivariant network on lambda-SOAP, energies and forces.

- :mod:`~equilens.models.equivariant.config`: the ``equivariant_potential``
  task's configuration (features, network, loss, training);
- :mod:`~equilens.models.equivariant.module`: the one torch module (the
  network on the precomputed features; the features computed inside with
  featomic-torch for metatomic systems);
- :mod:`~equilens.models.equivariant.model`: :class:`EquivariantPotential`;
- :mod:`~equilens.models.equivariant.task`: training;
- :mod:`~equilens.models.equivariant.export`: the metatomic export.

The features (lambda-SOAP of a compressed density, projected, with exact
position gradients) are in :mod:`equilens.descriptors.equivariant`; the
layers in :mod:`equilens.models.nn`. To change the architecture, edit
``config.py`` (the options) and ``module.py`` (the network).
"""
