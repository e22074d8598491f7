"""The toy family's configuration."""

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

from equilens.training.config import output_folder


@dataclass(frozen=True)
class ToyConfig:
    """A pair potential ``k (r - r0)^2`` summed over pairs closer than ``cutoff``.

    :param task: ``toy``
    :param name: the run's name
    :param stiffness: ``k`` (eV/Å²)
    :param length: ``r0`` (Å)
    :param cutoff: pairs beyond it do not count (Å)
    :param output_dir: where the model is written
    """

    task: Literal["toy"] = "toy"
    name: str = "toy"
    stiffness: float = 0.5
    length: float = 1.5
    cutoff: float = 3.0
    output_dir: Optional[str] = None

    @property
    def output(self) -> Path:
        return output_folder(self)
