"""The steps every potential family takes to train on projected features.

A family's task (``equilens.models.<family>.task``) reads the splits with
:func:`read_splits`, fits its descriptor compression, featurizes every split
(:func:`split_features`, cached on disk by :func:`cached_features`), builds
its module and hands it to :func:`fit_and_write`: the composition baseline
(unless the module starts from a base model), the one training loop, the
metrics of every split against the composition-only model, ``model.pt``,
``metrics.json`` and the parity and learning-curve plots.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Optional, Sequence, Tuple, TypeVar, Union

import ase
import numpy as np
import torch

from ...config import to_mapping
from ...data.io import Dataset, with_species
from ...data.splits import load_splits
from ...descriptors.feature_batches import BATCHES_PER_PROCESS
from ...descriptors.feature_files import (
    FeatureWriter,
    MappedFeatureSet,
    open_features,
    resident,
)
from ...descriptors.projected import FeatureSet, target_tensors, with_targets
from ...devices import resolve_device
from ...errors import ConfigError, EquilensError, FileFormatError
from ...storage import (
    arrays_from_torch,
    arrays_to_torch,
    cached,
    hash_arrays,
    hash_frames,
    hash_json,
    load_torch,
    save_json,
    save_torch,
)
from ...training.distributed import (
    check_frames,
    frames_per_rank,
    gather_to_main,
    is_main,
    local_positions,
    main_first,
    own_frames,
    world_size,
)
from ...training.loop import fit
from ...training.metrics import composition_matrix, energy_force_metrics
from ...training.plots import plot_learning_curve, plot_parity
from ...training.run import run_summary
from .config import LossConfig
from .forces import energy_and_forces

T = TypeVar("T")

#: the features of one split: in memory, or read from the cache batch by batch
Features = Union[FeatureSet, MappedFeatureSet]


def training_order(config, n_frames: int) -> np.ndarray:
    """The seeded order the training frames are stored in, so that the
    consecutive-block batches of the trainer mix the whole trajectory."""
    return np.random.default_rng(config.training.seed).permutation(n_frames)


def read_splits(config, shuffle: bool = True) -> Dict[str, Dataset]:
    """The validated splits of ``config``, each with energies and forces; the
    training frames in :func:`training_order` (``shuffle``) or in file order."""
    splits = load_splits(config.data, with_species(config.read, config.descriptor.species))
    if shuffle:
        splits["train"] = splits["train"].subset(training_order(config, len(splits["train"])))
    if "validation" not in splits:
        raise ConfigError("training needs a validation set (file or validation_fraction)")
    for name, dataset in splits.items():
        if dataset.energies is None or dataset.forces is None:
            raise EquilensError(f"the {name} set needs energies and forces")
    return splits


def split_features(
    splits: Dict[str, Dataset],
    compute: Callable[[Dataset], Features],
    order: Optional[np.ndarray] = None,
    cached: bool = False,
) -> Dict[str, Features]:
    """``compute(dataset)`` of every split; a split given twice (e.g.
    validation and test from one file) is featurized once.

    :param order: the training order (:func:`training_order`) of the
        training frames, given in file order; the training features are
        returned in this order. Under torchrun the training split is this
        rank's frames of the ordered list only
        (:func:`~equilens.training.distributed.own_frames`).
    :param cached: ``compute`` caches its features on disk: the training
        frames are then featurized in file order, so that the runs of other
        seeds share the entry, and read in ``order`` without copying them.
        Features in memory are computed in ``order`` directly (reordering
        them would hold a second copy).
    """
    if world_size() > 1 or (order is not None and not cached):
        train = splits["train"] if order is None else splits["train"].subset(order)
        splits = {**splits, "train": train}
        order = None
    if world_size() > 1:
        check_frames(len(splits["train"]))
        splits = {**splits, "train": splits["train"].subset(own_frames(len(splits["train"])))}
    features: Dict[str, Features] = {}
    by_content: Dict[str, Features] = {}

    def featurize(names) -> None:
        for name in names:
            content = hash_frames(splits[name].frames)
            if content not in by_content:
                by_content[content] = compute(splits[name])
            features[name] = by_content[content]

    # under torchrun every rank featurizes its own training frames at once;
    # the other splits rank 0 computes (and caches) first, the others read them
    featurize(["train"])
    with main_first():
        featurize([name for name in splits if name != "train"])
    if order is not None:
        features["train"] = features["train"].reordered(order.tolist())
    return {name: features[name] for name in splits}


def cached_features(
    dataset: Dataset,
    settings: Dict[str, Any],
    cache_dir: Optional[str],
    batches: Callable[[Optional[int]], Iterator[FeatureSet]],
    dtype: torch.dtype,
    check_disk: Callable[[Sequence[ase.Atoms], str], Any],
) -> Features:
    """The features of ``dataset`` (``batches(per_process)``: its consecutive
    parts, see :func:`~equilens.descriptors.feature_batches.feature_batches`) with
    its energies and forces.

    With a ``cache_dir``, the parts are streamed into
    ``cache_dir/features/features-<key>/`` (a key of the frames, their
    targets and ``settings``: what else decides the features), after
    ``check_disk(frames, folder)`` (which raises when they would not fit),
    and training reads them batch by batch
    (:class:`~equilens.descriptors.feature_files.MappedFeatureSet`): the set
    never exists whole in memory (a small one is read whole:
    :func:`~equilens.descriptors.feature_files.resident`), and a long
    featurization runs in child processes
    (:data:`~equilens.descriptors.feature_batches.BATCHES_PER_PROCESS`
    batches each). A damaged entry is reported with a
    warning and computed again. Without a cache the set is assembled in
    memory.
    """
    if cache_dir is None:
        features = FeatureSet.concatenate(list(batches(None)))
        return with_targets(features, dataset.energies, dataset.forces, dtype)
    key = hash_json(
        {"frames": hash_frames(dataset.frames), "targets": target_hash(dataset)} | settings
    )
    folder = Path(cache_dir) / "features" / f"features-{key[:24]}"
    if folder.exists():
        try:
            return resident(open_features(folder, key))
        except FileFormatError as error:
            warnings.warn(f"{error}; computing the projected features again", stacklevel=2)
    check_disk(dataset.frames, cache_dir)
    with FeatureWriter(folder, key) as writer:
        for part in batches(BATCHES_PER_PROCESS):
            writer.append(part)
        writer.finish(*target_tensors(dataset.energies, dataset.forces, dtype))
    return resident(open_features(folder, key, verify=False))


def cached_fit(
    cache_dir: Optional[str],
    kind: str,
    identity: Dict[str, Any],
    fit: Callable[[], T],
    state: Callable[[T], Any],
    restore: Callable[[Any], T],
    what: str,
) -> T:
    """``fit()``, or with a ``cache_dir`` the fit kept there for the next run
    with the same ``identity`` (frames, species, hypers, settings): the runs
    of a study fit the same compression or maps on the same frames. The
    entry (``cache_dir/<kind>/<kind>-<key>.pt``) holds the plain arrays of
    ``state(fitted)`` (``weights_only`` loading, the checksummed entries of
    :func:`~equilens.storage.cached`); ``what`` names it in warnings."""
    if cache_dir is None:
        return fit()
    key = hash_json(identity)
    what = f"{what} cache entry"
    return cached(
        Path(cache_dir) / kind / f"{kind}-{key[:24]}.pt",
        lambda path: restore(arrays_from_torch(load_torch(path, what))),
        fit,
        lambda path, fitted: save_torch(path, arrays_to_torch(state(fitted))),
        what,
        key,
    )


def baseline_metrics(dataset: Dataset, species, baseline: np.ndarray) -> Dict[str, float]:
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


def evaluate(model, features: Features, species, batch_size: int = 16, gather: bool = False):
    """Metrics of ``model`` on ``features`` and the raw predictions.

    :param gather: ``features`` is this rank's shard (torchrun): the
        predictions of every rank are gathered and rank 0 computes the
        metrics of all frames (the others get ``(None, None)``)
    """
    energies, forces = [], []
    for start in range(0, features.n_frames, batch_size):
        batch = features.select(range(start, min(start + batch_size, features.n_frames)))
        energy, force = energy_and_forces(model, batch, forces=True)
        energies.append(energy.detach().double().cpu().numpy())
        forces.append(force.detach().double().cpu().numpy())
    e_pred, f_pred = np.concatenate(energies), np.concatenate(forces)
    e_ref = features.energy.double().cpu().numpy()
    f_ref = features.forces.double().cpu().numpy()
    n_atoms = features.n_atoms_per_frame.cpu().numpy()
    numbers = np.asarray(species)[features.species.cpu().numpy()]
    arrays: Tuple[np.ndarray, ...] = (e_pred, e_ref, n_atoms, f_pred, f_ref, numbers)
    if gather:
        parts = gather_to_main(arrays)
        if parts is None:
            return None, None
        arrays = tuple(np.concatenate(column) for column in zip(*parts))
    return energy_force_metrics(*arrays), arrays


def objective(
    features, loss_config: LossConfig, energy_std, force_rms, eval_batch, atoms_per_frame=None
):
    """``(loss_fn, validate_fn)`` of the training loop.

    :param atoms_per_frame: atoms of every training frame (all ranks'), to
        normalise a rank's share of a batch under torchrun
    """
    train = features["train"]
    validation = features["validation"]

    def loss_of(model, batch: FeatureSet, create_graph: bool, counts=None):
        """Loss of ``batch``; with ``counts`` (frames, force components of a
        larger batch it is a share of) its sums are divided by those."""
        energy, force = energy_and_forces(model, batch, forces=True, create_graph=create_graph)
        per_atom = (energy - batch.energy) / batch.n_atoms_per_frame
        frames, components = counts or (len(per_atom), force.numel())
        energy_term = torch.sum(per_atom**2) / frames / energy_std**2
        force_term = torch.sum((force - batch.forces) ** 2) / components / force_rms**2
        return loss_config.energy_weight * energy_term + loss_config.force_weight * force_term, (
            energy_term,
            force_term,
        )

    def loss_fn(model, indices, batch=None):
        counts = None
        if batch is not None:  # a share of ``batch`` (torchrun), in this rank's shard
            counts = (len(batch), 3 * int(atoms_per_frame[batch].sum()))
            indices = local_positions(indices)
        loss, _ = loss_of(model, train.select(indices), create_graph=True, counts=counts)
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


def shared_work(config, sections: Sequence[str], training: Sequence[str]) -> Optional[str]:
    """A key of the cached work of a run (compression, features with their
    gradients): the configuration's ``sections`` and ``training`` keys, so
    that runs with equal keys compute the same cache entries; ``None``
    without a cache (nothing is shared)."""
    if getattr(config, "cache_dir", None) is None:
        return None
    mapping = to_mapping(config)
    shared = {name: mapping.get(name) for name in sections}
    shared["training"] = {name: mapping["training"][name] for name in training}
    return hash_json({"task": config.task, **shared})


def target_hash(dataset: Dataset) -> str:
    return hash_arrays([dataset.energies, *dataset.forces])


def fit_baseline(train: Dataset, species) -> Tuple[np.ndarray, float, float, float]:
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


def fit_and_write(
    config,
    potential,
    features: Dict[str, Features],
    splits: Dict[str, Dataset],
    species,
    timings: Dict[str, float],
    fingerprint: Dict[str, Any],
    progress: bool = True,
    stop_after: Optional[int] = None,
    start: Optional[Callable[[np.ndarray], None]] = None,
) -> Dict[str, Any]:
    """Train ``potential.module`` on ``features`` and write the outputs.

    The module's per-species ``baseline`` and output ``scale`` come from the
    composition fit of the training energies, unless ``start(baseline)``
    sets the weights (a fine-tuning start). Writes ``model.pt`` (with the
    metrics in the model's metadata), ``metrics.json`` (errors of every split,
    and of the composition-only model), parity plots and the learning curve;
    returns the summary.
    """
    module = potential.module
    baseline, scale, energy_std, force_rms = fit_baseline(splits["train"], species)
    if start is not None:
        start(baseline)
    else:
        module.baseline.copy_(torch.as_tensor(baseline, dtype=module.baseline.dtype))
        module.scale.fill_(scale)
    device = resolve_device(config.training.device)
    module.to(device)
    on_device = {name: f.to(device=device) for name, f in features.items()}
    atoms_per_frame = torch.tensor([len(atoms) for atoms in splits["train"].frames])
    loss_fn, validate_fn = objective(
        on_device, config.loss, energy_std, force_rms, config.training.batch_size, atoms_per_frame
    )
    output = config.output
    result = fit(
        module,
        loss_fn,
        validate_fn,
        len(splits["train"]),
        config.training,
        output,
        progress=progress,
        stop_after=stop_after,
        fingerprint=fingerprint,
    )
    timings["training_s"] = result.seconds
    metrics: Dict[str, Dict[str, float]] = {}
    baselines: Dict[str, Dict[str, Dict[str, float]]] = {"composition": {}}
    predictions: Dict[str, tuple] = {}
    sharded = world_size() > 1
    for name, feats in on_device.items():
        gather = sharded and name == "train"
        metrics[name], predictions[name] = evaluate(module, feats, species, gather=gather)
        baselines["composition"][name] = baseline_metrics(splits[name], species, baseline)
    module.to("cpu")  # the model file loads anywhere
    summary_device = str(device)
    if not is_main():
        return {}
    summary = run_summary(config, result, timings, splits, metrics, baselines)
    summary["architecture"] = potential.metadata.get("architecture", {})
    summary["device"] = summary_device
    summary["world_size"] = world_size()
    summary["frames_per_rank"] = frames_per_rank(len(splits["train"]))
    potential.metadata["metrics"] = metrics
    potential.save(output / "model.pt")
    save_json(output / "metrics.json", summary)
    for name, (e_pred, e_ref, n_atoms, f_pred, f_ref, numbers) in predictions.items():
        title = f"{config.name}: {name}"
        path = output / f"parity_{name}.png"
        plot_parity(e_pred / n_atoms, e_ref / n_atoms, f_pred, f_ref, numbers, path, title)
    plot_learning_curve(result.history, output / "learning_curve.png")
    return summary
