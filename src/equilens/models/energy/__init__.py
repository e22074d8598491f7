"""What the potential families (BPNN, equivariant potential) share: the
loss of energies and forces, exact forces from precomputed projected
gradients, and the steps of training a potential on such features.

- :mod:`~equilens.models.energy.config`: the ``loss:`` section;
- :mod:`~equilens.models.energy.forces`: energies and exact forces;
- :mod:`~equilens.models.energy.task`: splits, composition baseline,
  objective, evaluation, cached features, the fit and the files every
  potential writes.
"""
