"""Labelled reference data from quantum-chemistry codes, run offline.

- :mod:`equilens.data.generate.iron_water`: Fe(110)/water frames from
  GFN1-xTB Langevin dynamics (tblite, ``equilens[xtb]``);
- :mod:`equilens.data.generate.water_tensors`: dipoles, polarizabilities and
  density-fitting coefficients of water monomers and clusters (PySCF,
  ``equilens[pyscf]``);
- :mod:`equilens.data.generate.heo`: rock-salt high-entropy oxides relaxed and
  rattled with GFN1-xTB;
- :mod:`equilens.data.generate.elements`: random periodic cells of many
  elements, a few GFN1-xTB BFGS steps and rattled copies;
- :mod:`equilens.data.generate.common`: what they share (the xTB calculator,
  labelled frames, the one resume checkpoint).

The generators do not import each other.
"""

from .iron_water import IronWaterConfig, generate_iron_water

__all__ = ["IronWaterConfig", "generate_iron_water"]
