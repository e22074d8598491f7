"""The BPNN family: Behler-Parrinello networks on compressed SOAP, energies and forces.

- :mod:`~equilens.models.bpnn.config`: the ``potential`` task's configuration
  (architecture, compression, loss, fine-tuning);
- :mod:`~equilens.models.bpnn.module`: the one torch module (networks on
  projected features; SOAP inside with featomic-torch for metatomic systems);
- :mod:`~equilens.models.bpnn.model`: :class:`Potential`, the model protocol;
- exact forces come from :mod:`~equilens.models.energy.forces`;
- :mod:`~equilens.models.bpnn.task`: training (``task: potential``);
- :mod:`~equilens.models.bpnn.finetune`: starting from a trained potential;
- :mod:`~equilens.models.bpnn.export`: the metatomic export.

To change the architecture, edit ``config.py`` (the options) and
``module.py`` (the network); training, layers, the ASE calculator and the
export all run that module.
"""

from __future__ import annotations

from .config import BPNNConfig, PotentialConfig
from .model import Potential

__all__ = ["BPNNConfig", "Potential", "PotentialConfig"]
