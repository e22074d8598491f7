"""The ``potential`` task: a BPNN on energies and forces, end to end.

``train_potential(config)`` reads the data, computes SOAP, fits the per-species
compression on the training frames, precomputes the projected features and
their gradients (cached on disk), fits the composition baseline, trains with
:func:`equilens.training.loop.fit` and writes into the output folder (the
files of every task, see :mod:`equilens.training`):

``model.pt``        the :class:`~equilens.models.bpnn.model.Potential`
``metrics.json``    errors on every split (meV/atom, eV/Å, per species), and
                    of the composition-only baseline
``log.csv``, ``checkpoint.pt``, ``run.json``, ``parity_<split>.png``,
``learning_curve.png``
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch

from ...config import to_mapping
from ...data.io import Dataset, with_species
from ...data.splits import load_splits
from ...descriptors import DescriptorConfig, compute_soap
from ...descriptors.budget import check_feature_memory
from ...descriptors.compression import SpeciesPCA
from ...descriptors.projected import FeatureSet, featurize
from ...errors import ConfigError, EquilensError, FileFormatError
from ...storage import (
    cached,
    hash_arrays,
    hash_frames,
    hash_json,
    load_torch,
    save_json,
    save_torch,
)
from ...training.config import claim_output, run_fingerprint
from ...training.loop import fit
from ...training.metrics import composition_matrix, energy_force_metrics
from ...training.plots import plot_learning_curve, plot_parity
from ...training.run import run_summary
from . import finetune as _finetune
from .config import LossConfig, PotentialConfig, describe_architecture
from .forces import energy_and_forces
from .model import Potential
from .module import BPNNModule


def train_potential(
    config: PotentialConfig,
    progress: bool = True,
    stop_after: Optional[int] = None,
    overwrite: bool = False,
) -> Tuple[Potential, Dict[str, Any]]:
    """Run the whole training; returns the potential and the summary written
    to ``metrics.json``.

    :param stop_after: stop (as if interrupted) after this epoch
    :param overwrite: replace the outputs of another run in the output folder
    """
    timings = {}
    start = time.perf_counter()
    splits = read_splits(config)
    base, config, hypers = _base_model(config)
    found = set().union(*(set(d.species) for d in splits.values()))
    species = config.descriptor.species or tuple(sorted(found | set(base.species if base else ())))
    hypers, architecture = _resolve(config, species, hypers if base else None, progress)
    dtype = config.training.torch_dtype
    data: Dict[str, Any] = {
        name: {"structures": hash_frames(d.frames), "targets": _target_hash(d)}
        for name, d in splits.items()
    }
    if config.finetune is not None:
        data["base"] = _finetune.base_fingerprint(config.finetune)
    fingerprint = run_fingerprint(config, data)
    claim_output(config.output, fingerprint, overwrite)
    timings["read_s"] = time.perf_counter() - start

    start = time.perf_counter()
    pca = _fit_compression(splits["train"], species, hypers, config, architecture["shared"])
    if base is not None and config.finetune is not None:
        pca = _finetune.compression(base, pca, config.finetune.compression)
    timings["compression_s"] = time.perf_counter() - start

    start = time.perf_counter()
    features = _split_features(splits, hypers, pca, dtype, config, progress)
    timings["features_s"] = time.perf_counter() - start

    with torch.random.fork_rng():
        torch.manual_seed(config.training.seed)
        potential = Potential.build(hypers, pca, config.model, dtype)
    model = potential.module
    baseline, scale, energy_std, force_rms = _fit_baseline(splits["train"], species)
    if base is not None and config.finetune is not None:
        _finetune.start_from_base(model, base, config.finetune, baseline)
    else:
        model.baseline.copy_(torch.as_tensor(baseline, dtype=dtype))
        model.scale.fill_(scale)

    loss_fn, validate_fn = _objective(
        features, config.loss, energy_std, force_rms, config.training.batch_size
    )
    output = config.output
    result = fit(
        model,
        loss_fn,
        validate_fn,
        features["train"].n_frames,
        config.training,
        output,
        progress=progress,
        stop_after=stop_after,
        fingerprint=fingerprint,
    )
    timings["training_s"] = result.seconds

    potential.metadata = {
        "config": to_mapping(config),
        "species": list(species),
        "architecture": architecture,
    }
    metrics: Dict[str, Dict[str, float]] = {}
    baselines: Dict[str, Dict[str, Dict[str, float]]] = {"composition": {}}
    predictions: Dict[str, tuple] = {}
    for name, feats in features.items():
        metrics[name], predictions[name] = evaluate(model, feats, species)
        baselines["composition"][name] = _baseline_metrics(splits[name], species, baseline)
    summary = run_summary(config, result, timings, splits, metrics, baselines)
    summary["architecture"] = architecture
    potential.metadata["metrics"] = metrics
    potential.save(output / "model.pt")
    save_json(output / "metrics.json", summary)
    for name, (e_pred, e_ref, n_atoms, f_pred, f_ref, numbers) in predictions.items():
        title = f"{config.name}: {name}"
        path = output / f"parity_{name}.png"
        plot_parity(e_pred / n_atoms, e_ref / n_atoms, f_pred, f_ref, numbers, path, title)
    plot_learning_curve(result.history, output / "learning_curve.png")
    return potential, summary


def _resolve(config: PotentialConfig, species, base_hypers, progress: bool):
    """The descriptor hypers (a base model's, else the configuration's for
    these elements) and the architecture, announced in one line."""
    hypers = base_hypers or config.descriptor.descriptor_hypers(len(species))
    architecture = describe_architecture(config.model, species, hypers)
    if progress:
        print(f"{config.name}: {architecture['summary']}")
    return hypers, architecture


def _base_model(config: PotentialConfig) -> Tuple[Optional[Potential], PotentialConfig, dict]:
    """The base potential of a fine-tuning run (else None), the configuration
    with the base's compression width and architecture, and the SOAP hypers."""
    hypers = config.descriptor.featomic_dict()
    if config.finetune is None:
        return None, config, hypers
    base = _finetune.load_base(config.finetune)
    _finetune.check_hypers(hypers, base, DescriptorConfig().featomic_dict())
    compression = dataclasses.replace(config.compression, n_components=base.pca.n_components)
    config = dataclasses.replace(config, compression=compression, model=base.config)
    return base, config, base.hypers


def read_splits(config: PotentialConfig) -> Dict[str, Dataset]:
    """The validated splits of ``config``, each with energies and forces; the
    training frames in a seeded random order, so that the consecutive-block
    batches of the trainer mix the whole trajectory."""
    splits = load_splits(config.data, with_species(config.read, config.descriptor.species))
    order = np.random.default_rng(config.training.seed).permutation(len(splits["train"]))
    splits["train"] = splits["train"].subset(order)
    if "validation" not in splits:
        raise ConfigError("training needs a validation set (file or validation_fraction)")
    for name, dataset in splits.items():
        if dataset.energies is None or dataset.forces is None:
            raise EquilensError(f"the {name} set needs energies and forces")
    return splits


def _split_features(splits, hypers, pca, dtype, config, progress) -> Dict[str, FeatureSet]:
    """Projected features of every split; a split given twice (e.g. validation
    and test from one file) is featurized and held in memory once."""
    features, by_content = {}, {}
    frames = [atoms for dataset in splits.values() for atoms in dataset.frames]
    storage = torch.finfo(getattr(torch, config.compression.gradient_storage)).bits // 8
    cutoff = float(hypers["cutoff"]["radius"])
    check_feature_memory(frames, cutoff, config.compression.n_components, storage)
    for name, dataset in splits.items():
        content = hash_frames(dataset.frames)
        if content not in by_content:
            by_content[content] = _cached_features(dataset, hypers, pca, dtype, config, progress)
        features[name] = by_content[content]
    return features


def _baseline_metrics(dataset: Dataset, species, baseline: np.ndarray) -> Dict[str, float]:
    """Errors of the composition-only model (per-species energies, no forces)."""
    composition = composition_matrix([a.numbers for a in dataset.frames], species)
    forces = np.concatenate(dataset.forces)
    return energy_force_metrics(
        composition @ baseline,
        dataset.energies,
        composition.sum(axis=1),
        np.zeros_like(forces),
        forces,
    )


def evaluate(model: BPNNModule, features: FeatureSet, species, batch_size: int = 16):
    """Metrics of ``model`` on ``features`` and the raw predictions."""
    energies, forces = [], []
    for start in range(0, features.n_frames, batch_size):
        batch = features.select(range(start, min(start + batch_size, features.n_frames)))
        energy, force = energy_and_forces(model, batch, forces=True)
        energies.append(energy.detach().double().cpu().numpy())
        forces.append(force.detach().double().cpu().numpy())
    e_pred, f_pred = np.concatenate(energies), np.concatenate(forces)
    e_ref = features.energy.double().numpy()
    f_ref = features.forces.double().numpy()
    n_atoms = features.n_atoms_per_frame.numpy()
    numbers = np.asarray(species)[features.species.numpy()]
    metrics = energy_force_metrics(e_pred, e_ref, n_atoms, f_pred, f_ref, numbers)
    return metrics, (e_pred, e_ref, n_atoms, f_pred, f_ref, numbers)


def _objective(features, loss_config: LossConfig, energy_std, force_rms, eval_batch):
    train = features["train"]
    validation = features["validation"]

    def loss_of(model, batch: FeatureSet, create_graph: bool):
        energy, force = energy_and_forces(model, batch, forces=True, create_graph=create_graph)
        per_atom = (energy - batch.energy) / batch.n_atoms_per_frame
        energy_term = torch.mean(per_atom**2) / energy_std**2
        force_term = torch.mean((force - batch.forces) ** 2) / force_rms**2
        return loss_config.energy_weight * energy_term + loss_config.force_weight * force_term, (
            energy_term,
            force_term,
        )

    def loss_fn(model, indices):
        loss, _ = loss_of(model, train.select(indices), create_graph=True)
        return loss

    def validate_fn(model):
        total = energy_sq = force_sq = 0.0
        n_frames = n_components = 0
        for start in range(0, validation.n_frames, eval_batch):
            batch = validation.select(range(start, min(start + eval_batch, validation.n_frames)))
            _, (energy_term, force_term) = loss_of(model, batch, create_graph=False)
            energy_sq += float(energy_term.detach()) * batch.n_frames
            force_sq += float(force_term.detach()) * batch.forces.numel()
            n_frames += batch.n_frames
            n_components += batch.forces.numel()
        energy_mse = energy_sq / n_frames
        force_mse = force_sq / n_components
        total = loss_config.energy_weight * energy_mse + loss_config.force_weight * force_mse
        return total, {
            "validation_energy_rmse_meV_per_atom": 1000 * energy_std * energy_mse**0.5,
            "validation_force_rmse_eV_per_A": force_rms * force_mse**0.5,
        }

    return loss_fn, validate_fn


def _target_hash(dataset: Dataset) -> str:
    return hash_arrays([dataset.energies, *dataset.forces])


def _fit_baseline(train: Dataset, species) -> Tuple[np.ndarray, float, float, float]:
    """Per-species energies by least squares, and the scales of what is left."""
    composition = composition_matrix([a.numbers for a in train.frames], species)
    baseline, *_ = np.linalg.lstsq(composition, train.energies, rcond=None)
    n_atoms = composition.sum(axis=1)
    residual = (train.energies - composition @ baseline) / n_atoms
    force_rms = float(np.sqrt(np.mean(np.concatenate(train.forces) ** 2)))
    energy_std = float(max(residual.std(), 1e-3))
    # the networks output O(1) numbers; an atom's energy varies by about
    # F * 1 Angstrom when it moves, so the force scale sets the output scale
    scale = max(force_rms, energy_std)
    return baseline, scale, energy_std, force_rms


def _fit_compression(
    train: Dataset, species, hypers, config: PotentialConfig, shared: bool
) -> SpeciesPCA:
    compression = config.compression
    soap = compute_soap(train.frames, species, hypers)
    gradients = None
    if compression.gradient_weight > 0 and compression.gradient_frames > 0:
        rng = np.random.default_rng(config.training.seed)
        count = min(compression.gradient_frames, len(train))
        chosen = np.sort(rng.choice(len(train), count, replace=False))
        # one frame at a time: dense gradients take ~170 MB per 164-atom frame
        gradients = (
            compute_soap([train.frames[i]], species, hypers, gradients=True, neighbors="properties")
            for i in chosen
        )
    return SpeciesPCA(
        n_components=compression.n_components,
        whiten=compression.whiten,
        max_samples=compression.max_samples,
        gradient_weight=compression.gradient_weight,
        seed=config.training.seed,
        shared=shared,
    ).fit(soap, gradients)


def _cached_features(
    dataset: Dataset, hypers, pca: SpeciesPCA, dtype, config, progress
) -> FeatureSet:
    state = pca.state()
    key = hash_json(
        {
            "frames": hash_frames(dataset.frames),
            "targets": _target_hash(dataset),
            "hypers": hypers,
            "pca": hash_arrays(
                [state[name][z] for name in ("components", "mean", "scale") for z in state[name]]
            ),
            "dtype": str(dtype),
            "gradient_storage": config.compression.gradient_storage,
        }
    )
    path = None
    if config.cache_dir is not None:
        path = Path(config.cache_dir) / "features" / f"features-{key[:24]}.pt"

    def compute() -> FeatureSet:
        return featurize(
            dataset.frames,
            hypers,
            pca,
            gradients=True,
            energies=dataset.energies,
            forces=dataset.forces,
            dtype=dtype,
            progress=progress,
            gradient_dtype=getattr(torch, config.compression.gradient_storage),
        )

    def load(target: Path) -> FeatureSet:
        content = load_torch(target, "feature cache")
        if not isinstance(content, dict) or "x" not in content:
            raise FileFormatError(f"{target}: not a feature cache")
        return FeatureSet(**content)

    def save(target: Path, features: FeatureSet) -> None:
        save_torch(target, dataclasses.asdict(features))

    return cached(path, load, compute, save, "projected features")
