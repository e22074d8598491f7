"""The configuration of ``equilens relax`` and the calculators it names.

::

    name: heo
    minima: data/heo_xtb.minima.extxyz      # reference minima (with reference energies)
    parents: data/heo_xtb.parents.extxyz    # optional: unrelaxed parent crystals
    select: "-2:"                           # which minima/parents (ASE slice)
    calculators:                            # label -> spec
      SevenNet-0: sevenn:7net-0
      fine-tuned: sevenn:results/relax/finetune/model.pth
      BPNN: results/train/heo/model.pt      # an equilens potential
    reference: xtb                          # a calculator spec: scores the energies (optional)
    rattle: {amplitude: 0.1, copies: 3, seed: 0}
    optimizer: {fmax: 0.05, steps: 300, cell_in_distribution: false, cell_out_of_distribution: true}

The reference minima's energies must come from the ``reference`` method (it
scores each relaxed structure against them); the reference may also be one of
the relaxing calculators. Calculator specs: ``xtb`` (GFN1-xTB, tblite), ``emt`` (ASE's EMT), an
equilens potential file, ``sevenn:NAME_OR_PATH``, or a metatomic ``.pt`` file
(through metatomic-ase).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional, Sequence

import ase
from ase.data import atomic_numbers, chemical_symbols

from ..errors import ConfigError


@dataclass(frozen=True)
class RattleConfig:
    """Copies of each minimum with Gaussian displacements (the ``rattle:`` section).

    :param amplitude: standard deviation of the displacements (Å)
    :param copies: rattled copies of each minimum
    :param seed: seeds the displacements
    """

    amplitude: float = 0.1
    copies: int = 3
    seed: int = 0

    def __post_init__(self):
        if not (math.isfinite(self.amplitude) and 0 <= self.amplitude <= 1.0):
            raise ConfigError(f"rattle.amplitude: expected in [0, 1] Å, got {self.amplitude}")
        if self.copies < 0:
            raise ConfigError(f"rattle.copies: expected >= 0, got {self.copies}")


@dataclass(frozen=True)
class OptimizerConfig:
    """BFGS settings (the ``optimizer:`` section).

    :param fmax: converged when every force is below this (eV/Å)
    :param steps: the most BFGS steps
    :param cell_in_distribution: relax the cell of the rattled minima too
        (needs the stress)
    :param cell_out_of_distribution: relax the cell of the parent crystals
    """

    fmax: float = 0.05
    steps: int = 300
    cell_in_distribution: bool = False
    cell_out_of_distribution: bool = True

    def __post_init__(self):
        if not (math.isfinite(self.fmax) and self.fmax > 0):
            raise ConfigError(f"optimizer.fmax: expected a force > 0 (eV/Å), got {self.fmax}")
        if self.steps < 1:
            raise ConfigError(f"optimizer.steps: expected >= 1, got {self.steps}")


@dataclass(frozen=True)
class RelaxConfig:
    """The relaxation benchmark: everything ``equilens relax`` reads from its YAML file.

    :param minima: the reference minima (a file with the reference method's energies)
    :param calculators: label -> calculator spec (``xtb``, ``emt``, an equilens
        potential, ``sevenn:NAME``, a metatomic ``.pt``)
    :param name: the benchmark's name (default output ``results/relax/<name>``)
    :param parents: unrelaxed parent crystals, one per minimum (optional)
    :param select: which minima (and parents), an ASE slice
    :param reference: the calculator spec that scores the relaxed energies
        against the minima's (optional)
    :param rattle: the rattled copies of the minima
    :param optimizer: BFGS settings and which tasks relax the cell
    :param output_dir: output folder (default ``results/relax/<name>``)
    :param device: where the machine-learned calculators run: ``auto`` (a
        CUDA GPU when torch sees one), ``cpu``, ``cuda`` or ``cuda:N``; not
        part of the run's identity (a run resumes on another device)
    """

    minima: str
    calculators: Dict[str, str]
    name: str = "relax"
    parents: Optional[str] = None
    select: str = ":"
    reference: Optional[str] = None
    rattle: RattleConfig = field(default_factory=RattleConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    output_dir: Optional[str] = None
    device: str = "auto"

    def __post_init__(self):
        if not self.calculators:
            raise ConfigError("calculators: give at least one (label: spec)")
        if self.reference is not None and not self.reference.strip():
            raise ConfigError("reference: give a calculator spec (e.g. xtb) or leave it out")

    @property
    def output(self) -> Path:
        return Path(self.output_dir or f"results/relax/{self.name}")


def make_calculator(spec: str, where: str, frames: Sequence[ase.Atoms] = (), device: str = "cpu"):
    """The ASE calculator named by ``spec`` (see the module docstring), a
    machine-learned one running on ``device``; an element of ``frames`` it has
    no parameters for is a one-line :class:`ConfigError` naming ``where``,
    before any calculation."""
    elements = sorted({int(z) for atoms in frames for z in atoms.numbers})
    if spec in ("xtb", "emt"):
        from ase.calculators.emt import parameters

        known = {atomic_numbers[s] for s in parameters} if spec == "emt" else set(range(1, 87))
        missing = [chemical_symbols[z] for z in elements if z not in known]
        if missing:
            raise ConfigError(
                f"{where}: {spec} has no parameters for {', '.join(missing)} (it covers "
                f"{', '.join(sorted(parameters)) if spec == 'emt' else 'H to Rn'})"
            )
        if spec == "xtb":
            from ..data.generate.common import xtb_calculator

            return xtb_calculator()
        from ase.calculators.emt import EMT

        return EMT()
    from ..devices import model_on_device
    from ..errors import ModelError
    from ..models import load

    try:
        model = load(spec)
        model.check_species(list(frames), where=f"{where} ({spec})")
        return model_on_device(model, device).calculator()
    except ModelError as error:
        raise ConfigError(f"{where}: {error}") from None
