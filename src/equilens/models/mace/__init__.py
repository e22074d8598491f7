"""MACE ``.model`` files on the model protocol (every interaction's messages
and node features, all irreps kept).

- :mod:`~equilens.models.mace.model`: :class:`MaceModel`;
- :mod:`~equilens.models.mace.loading`: the pickled file opened without
  running what it contains, the model rebuilt from the installed mace code.

Needs ``equilens[mace]`` (its own environment: mace-torch pins e3nn 0.4).
"""
