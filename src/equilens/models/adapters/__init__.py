"""Adapters: models of other packages on the equilens model protocol.

- :mod:`~equilens.models.adapters.metatomic`: any metatomic model file (its
  feature outputs as layers);
- :mod:`~equilens.models.adapters.sevenn`: SevenNet checkpoints (every
  interaction layer, equivariant blocks kept), ``equilens[sevenn]``;

Each is imported only when a model of its kind is opened (through
:func:`equilens.models.load`), so that its package stays an optional extra.
"""
