"""SevenNet: checkpoints opened on the model protocol, fine-tuned by sevenn's trainer.

- :mod:`~equilens.models.sevenn.model`: :class:`SevenNetModel` (every
  interaction layer, equivariant blocks kept; ASE calculator);
- :mod:`~equilens.models.sevenn.task`: ``task: sevenn``, sevenn's own trainer
  driven (offsets refitted, resume, the metrics every task writes);
- :mod:`~equilens.models.sevenn.files`: the files written for sevenn and
  read back from it.

Needs ``equilens[sevenn]``; nothing here is imported until a SevenNet model
or task is asked for.
"""
