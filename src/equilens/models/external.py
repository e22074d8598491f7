"""What the drivers of other packages' trainers share (``task: sevenn``,
``task: metatrain``, ``task: mace``): the frames written for them, the
trainer run as a child process with a progress bar, the zero-shot baseline
of the base model with refitted per-species offsets (from scratch: the
composition model), the metrics and plots every task writes, and the epoch
log."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import ase
import ase.io
import numpy as np
from ase.calculators.singlepoint import SinglePointCalculator

from ..data.io import Dataset
from ..storage import atomic_write, hash_arrays
from ..training.metrics import composition_matrix, energy_force_metrics
from ..training.plots import plot_learning_curve, plot_parity
from .base import energies_and_forces

Predictions = Tuple[np.ndarray, np.ndarray]


def write_frames(path: Path, dataset: Dataset) -> Path:
    """The frames of ``dataset`` with their energies and forces (and stress
    where the frame has one), as extxyz."""
    assert dataset.energies is not None and dataset.forces is not None
    frames: List[ase.Atoms] = []
    for atoms, energy, forces in zip(dataset.frames, dataset.energies, dataset.forces):
        copy = ase.Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
        results: Dict[str, Any] = {"energy": float(energy), "forces": np.asarray(forces)}
        stress = _stress(atoms)
        if stress is not None:
            results["stress"] = stress
        copy.calc = SinglePointCalculator(copy, **results)
        frames.append(copy)
    with atomic_write(path, "w") as handle:
        ase.io.write(handle, frames, format="extxyz")
    return path


def _stress(atoms: ase.Atoms) -> Optional[np.ndarray]:
    calc = atoms.calc
    if not atoms.pbc.all() or calc is None or "stress" not in getattr(calc, "results", {}):
        return None
    return np.asarray(calc.results["stress"])


def has_stress(dataset: Dataset) -> bool:
    """Every frame is periodic and carries a reference stress."""
    return all(a.pbc.all() and _stress(a) is not None for a in dataset.frames)


def targets_hash(dataset: Dataset) -> str:
    """A hash of the energies and forces of ``dataset``."""
    return hash_arrays([np.asarray(dataset.energies), *(dataset.forces or [])])


def claim_run(
    config, splits: Mapping[str, Dataset], base_file: Optional[Path], outputs, overwrite: bool
):
    """Check that the splits have validation frames, and claim the run's
    output folder for its fingerprint (configuration, structures and targets
    of every split, content of the base model file where there is one);
    returns the fingerprint."""
    from ..errors import ConfigError
    from ..storage import claim_outputs, file_sha256, hash_frames
    from ..training.config import RUN_MARKER, run_fingerprint

    if "validation" not in splits or not len(splits["validation"]):
        raise ConfigError(
            f"data: {config.task} needs validation frames (validation or validation_fraction)"
        )
    data: Dict[str, Any] = {
        name: {"structures": hash_frames(d.frames), "targets": targets_hash(d)}
        for name, d in splits.items()
    }
    if base_file is not None:
        data["base_sha256"] = file_sha256(base_file)
    fingerprint = run_fingerprint(config, data)
    output = config.output
    claim_outputs(output / RUN_MARKER, fingerprint, [output / n for n in outputs], overwrite,
                  str(output))  # fmt: skip
    return fingerprint


def predict(model, dataset: Dataset) -> Predictions:
    """Total energies and the stacked forces of ``model`` on ``dataset``."""
    energies, forces = energies_and_forces(model.predict(dataset.frames))
    return np.asarray(energies), np.concatenate([np.asarray(f) for f in forces])


def no_predictions(dataset: Dataset) -> Predictions:
    """Zero energies and forces for ``dataset``: with :func:`fit_offsets`, the
    composition baseline of a model trained from scratch."""
    return np.zeros(len(dataset.frames)), np.zeros((sum(len(f) for f in dataset.frames), 3))


def fit_offsets(train: Dataset, predicted: np.ndarray) -> Dict[int, float]:
    """Per-species energies (eV) that best explain the reference minus the
    predicted energies of ``train`` from the species counts of each frame
    (least squares; the minimum-norm solution when compositions do not
    separate the species)."""
    species = list(train.species)
    counts = composition_matrix([f.numbers for f in train.frames], species)
    residuals = np.asarray(train.energies) - predicted
    solution, *_ = np.linalg.lstsq(counts, residuals, rcond=None)
    return {int(z): float(v) for z, v in zip(species, solution)}


def offset_energies(dataset: Dataset, offsets: Mapping[int, float]) -> np.ndarray:
    """The energy ``offsets`` add to each frame of ``dataset``."""
    counts = composition_matrix([f.numbers for f in dataset.frames], list(offsets))
    return counts @ np.array(list(offsets.values()))


def evaluate_against_base(
    model,
    splits: Mapping[str, Dataset],
    zero_shot: Mapping[str, Predictions],
    offsets: Mapping[int, float],
    output: Path,
    name: str,
    baseline: str = "zero_shot",
) -> Tuple[Dict[str, Dict[str, float]], Dict[str, Dict[str, Dict[str, float]]]]:
    """Metrics of ``model`` on every split, and of the base model's zero-shot
    predictions plus ``offsets`` as the baseline named ``baseline`` (from
    scratch: :func:`no_predictions`, the ``composition`` baseline); parity
    plots of ``model`` in ``output``."""
    metrics: Dict[str, Dict[str, float]] = {}
    baselines: Dict[str, Dict[str, Dict[str, float]]] = {baseline: {}}
    for split, dataset in splits.items():
        n_atoms = np.array([len(f) for f in dataset.frames])
        numbers = np.concatenate([f.numbers for f in dataset.frames])
        reference = np.concatenate([np.asarray(f) for f in dataset.forces or []])
        energies, forces = predict(model, dataset)
        metrics[split] = energy_force_metrics(
            energies, dataset.energies, n_atoms, forces, reference, numbers
        )
        base_e, base_f = zero_shot[split]
        baselines[baseline][split] = energy_force_metrics(
            base_e + offset_energies(dataset, offsets),
            dataset.energies,
            n_atoms,
            base_f,
            reference,
            numbers,
        )
        plot_parity(
            energies / n_atoms, np.asarray(dataset.energies) / n_atoms, forces, reference,
            numbers, output / f"parity_{split}.png", f"{name}: {split}",
        )  # fmt: skip
    return metrics, baselines


def write_history(output: Path, history: List[Dict[str, float]]) -> None:
    """``log.csv`` (one row per epoch) and ``learning_curve.png``."""
    if not history:
        return
    names = list(history[0])
    with atomic_write(output / "log.csv", "w") as handle:
        handle.write(",".join(names) + "\n")
        for row in history:
            handle.write(",".join(f"{row[n]:.8g}" for n in names) + "\n")
    plot_learning_curve(history, output / "learning_curve.png", "loss (the trainer's own)")


def check_scratch_species(splits: Mapping[str, Dataset]) -> None:
    """Every element of every split is in the training frames (a model
    trained from scratch knows only those)."""
    from ase.data import chemical_symbols

    from ..errors import ConfigError

    known = set(splits["train"].species)
    for name, dataset in splits.items():
        missing = sorted(set(dataset.species) - known)
        if missing:
            raise ConfigError(
                f"data.{name}: element {chemical_symbols[missing[0]]} is not in the training "
                "frames; a model trained from scratch cannot predict it"
            )


def run_trainer(
    command: Sequence[str],
    work: Path,
    name: str,
    epochs: Tuple[int, int],
    epochs_done: Callable[[], int],
    progress: bool,
    threads: Optional[int] = None,
    logs: Sequence[str] = (),
) -> None:
    """Run another package's trainer in ``work`` (output in ``<name>.out``)
    with a progress bar over the epochs (``(done, total)``; ``epochs_done``
    reads the trainer's own log); a one-line error with the last line of
    its logs when it fails.

    :param threads: ``OMP_NUM_THREADS`` of the trainer (default: inherited)
    :param logs: the trainer's own log files in ``work``, searched for the
        error before ``<name>.out``
    """
    from tqdm.auto import tqdm

    from ..errors import EquilensError

    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    out = work / f"{name}.out"
    done, total = epochs
    with open(out, "ab") as log:
        process = subprocess.Popen(
            list(command), cwd=work, stdout=log, stderr=subprocess.STDOUT, env=env
        )
        bar = tqdm(total=total, initial=done, desc=name, unit="epoch", disable=not progress)
        with bar:
            while process.poll() is None:
                time.sleep(1.0)
                bar.update(max(0, epochs_done() - bar.n))
    if process.returncode != 0:
        text = "\n".join(
            (work / log_name).read_text(errors="replace") if (work / log_name).is_file() else ""
            for log_name in (*logs, out.name)
        )
        tail = text.strip().splitlines()[-1:]
        raise EquilensError(
            f"{work}: {name}'s trainer failed (exit {process.returncode}): "
            f"{tail[0][:200] if tail else ''}; see {out}"
        )
