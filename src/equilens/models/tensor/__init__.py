"""The tensor family: equivariant networks on lambda-SOAP for tensorial targets.

- :mod:`~equilens.models.tensor.config`: the ``tensor`` task's configuration;
- :mod:`~equilens.models.tensor.module`: the one torch module (built from
  ``metatensor.torch.learn.nn``; lambda-SOAP inside with featomic-torch for
  metatomic systems);
- :mod:`~equilens.models.tensor.model`: :class:`TensorModel`, the model protocol;
- :mod:`~equilens.models.tensor.layout`: the target's layout and the network's blocks;
- :mod:`~equilens.models.tensor.data`, :mod:`~equilens.models.tensor.objective`,
  :mod:`~equilens.models.tensor.task`: training (``task: tensor``);
- :mod:`~equilens.models.tensor.baseline`: the per-block ridge baseline;
- :mod:`~equilens.models.tensor.export`: the metatomic export.

To change the architecture, edit ``config.py`` (the options) and
``module.py`` (the network); training, layers and the export all run that
module.
"""

from __future__ import annotations

from .config import EquivariantConfig, TensorConfig
from .model import TensorModel

__all__ = ["EquivariantConfig", "TensorConfig", "TensorModel"]
