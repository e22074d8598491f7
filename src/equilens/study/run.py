"""The latent-space study: architectures x layers x seeds, scored and mapped.

``equilens study [CONFIG]`` runs, stage by stage:

1. **data**: read the labelled frames (default: the embedded GFN1-xTB
   iron/water set, ``embedded:iron_water_xtb.extxyz``);
2. **train**: every architecture of the sweep with every seed
   (:mod:`equilens.study.sweep`, through the registry; a finished run is
   reloaded from its folder, descriptors and features come from the cache);
3. **layers**: every layer of every model on the analysis frames, plus two
   references on the same atoms (:mod:`equilens.study.references`);
4. **labels**: physical labels per atom (:mod:`equilens.analysis.labels`),
   the model's atomic energy and the reference force magnitude;
5. **scorecard**: decodability of each label, GFRE from SOAP and towards the
   atomic energy, trustworthiness and 2D variance of the map
   (:class:`~equilens.analysis.scorecard.Scorecard`), for every (model,
   layer, seed); ranks averaged over seeds, with their spread;
6. **compare**: GFRE between the layers of the first seed's models and SOAP,
   species by species, and the equivariant GFRE between their equivariant
   layers, lambda by lambda (:mod:`equilens.study.equivariant`);
7. **uncertainty**: how well each layer's latent
   distance to the training atoms ranks its model's errors on the held-out
   frames (:mod:`equilens.study.uncertainty`);
8. **outputs**: ``results/<name>/`` (``scorecard.csv``,
   ``scorecard_seeds.csv``, ``gfre/``, ``uncertainty.csv``, ``metrics.json``, plots,
   ``report.md``)
   and ``chemiscope_out/<name>.json.gz`` (:mod:`equilens.study.report`).

A failure names the stage (``StudyError: stage 'train' (model deep, seed
1): ...``).
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any, Dict, Iterator, Optional

import metatensor
import numpy as np
from metatensor import Labels, TensorMap

from ..analysis.labels import CATEGORICAL, atom_labels
from ..config import to_mapping
from ..data.io import with_species
from ..data.splits import load_splits, split_identity
from ..descriptors import compute_soap
from ..errors import EquilensError
from ..models.energy.model import FeatureMemo, ProjectedPotential
from ..storage import check_writable, claim_outputs
from ..tensormaps import frame_atoms
from .cluster import dask_client, joblib_backend
from .config import REFERENCES, StudyConfig, StudyError, is_reference, layer_set_name
from .equivariant import compare_equivariant, save_equivariant
from .layers import FeatureSets, ModelLayers, external_models, like, model_layers, open_external
from .maps import export_study, plot_layer_maps
from .references import reference_sets
from .report import aggregate, write_report, write_tables
from .sweep import check_sweep, train_sweep
from .uncertainty import layer_uncertainty, write_uncertainty

STUDY_OUTPUTS = (
    "report.md",
    "scorecard.csv",
    "scorecard_seeds.csv",
    "scorecard.png",
    "layer_maps.png",
    "metrics.json",
    "config.json",
    "gfre",
    "equivariant_gfre",
    "uncertainty.csv",
)


def _checked_inputs(config: StudyConfig, folder: Path, overwrite: bool):
    """The analysis frames and the opened external models; every sweep entry
    and external model is checked before the folder is claimed and anything
    trained, so that a study refused here can be corrected and rerun."""
    try:
        splits = load_splits(config.data, with_species(config.read, config.descriptor.species))
    except EquilensError as error:
        raise StudyError(f"stage 'data' ({config.data.train}): {error}") from error
    analysis = splits["train"].subset(range(min(config.analysis_frames, len(splits["train"]))))
    check_sweep(config, folder)
    opened = open_external(config.models, analysis.frames)
    chemiscope_file = Path(config.chemiscope_dir) / f"{config.name}.json.gz"
    settings = {k: v for k, v in to_mapping(config).items() if not k.endswith("_dir")}
    settings["data"] = split_identity(settings["data"])
    owned = [folder / name for name in STUDY_OUTPUTS] + [chemiscope_file]
    claim_outputs(folder / "study.json", settings, owned, overwrite, f"study folder {folder}")
    return splits, analysis, opened


def run_study(
    config: StudyConfig,
    progress: bool = True,
    overwrite: bool = False,
    scheduler: Optional[str] = None,
) -> Path:
    """Run every stage; returns the results folder.

    :param overwrite: replace the outputs of a study with another
        configuration in the same folder (otherwise refused)
    :param scheduler: ``local:N`` or a Dask scheduler address: the sweep's
        runs are trained as Dask tasks (:mod:`equilens.study.cluster`)
    """
    folder = Path(config.output_dir) / config.name
    check_writable(folder)
    check_writable(Path(config.chemiscope_dir))
    clock = _Clock(config.name)
    with dask_client(scheduler) as client:
        with clock("data"):
            splits, analysis, opened = _checked_inputs(config, folder, overwrite)
        with clock("train"):
            potentials, summaries = train_sweep(config, folder, progress, overwrite, client)
        with shared_features(potentials.values()), joblib_backend(client):
            return _analyse(config, folder, clock, splits, analysis, opened, potentials, summaries)


@contextlib.contextmanager
def shared_features(models) -> Iterator[FeatureMemo]:
    """The equilens potentials among ``models`` share one
    :class:`~equilens.models.energy.model.FeatureMemo` (the layers and
    predictions of the seeds with one featurizer are featurized once)."""
    memo = FeatureMemo()
    shared = [m for m in models if isinstance(m, ProjectedPotential)]
    for model in shared:
        model.feature_memo = memo
    try:
        yield memo
    finally:
        for model in shared:
            model.feature_memo = None


class _Clock:
    """Announces each stage and records its wall time (``timings``)."""

    def __init__(self, name: str):
        self.name = name
        self.timings: Dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        print(f"[study {self.name}] {stage}", flush=True)
        started = time.perf_counter()
        yield
        self.timings[stage] = time.perf_counter() - started


def _analyse(
    config, folder: Path, clock: _Clock, splits, analysis, opened, potentials, summaries
) -> Path:
    """The stages after training: layers, labels, scorecard, compare,
    uncertainty, outputs."""
    frames = analysis.frames
    metrics = {key: summary["metrics"] for key, summary in summaries.items()}
    timings = clock.timings
    with clock("layers"):
        soap_map = study_soap(config, frames, potentials)
        soap = np.asarray(soap_map.block().values)
        # per-element networks have per-element coordinates; a shared one does not
        per_species = all(p.per_species_coordinates for p in potentials.values())
        layers = {key: model_layers(potential, frames) for key, potential in potentials.items()}
        outputs = {key: read.output for key, read in layers.items()}
        first = f"{config.sweep[0].name}/seed{config.seeds[0]}"
        references = {
            name: like(soap_map, values)
            for name, values in reference_sets(soap, outputs[first], config).items()
        }
        external = external_models(opened, frames)

    with clock("labels"):
        labels = atom_labels(frames, config.labels)
        labels["force"] = np.concatenate([np.linalg.norm(f, axis=1) for f in analysis.forces])
        numbers = np.concatenate([f.numbers for f in frames])

    with clock("scorecard"):
        rows_per_seed = []
        for seed in config.seeds:
            sets = feature_sets(config, seed, layers, references, external, per_species)
            rows_per_seed.extend(score(config, seed, sets, labels, soap, numbers))
        aggregated = aggregate(rows_per_seed)

    with clock("compare"):
        compared = feature_sets(config, config.seeds[0], layers, references, external, per_species)
        gfre = compare_layers(config, frames, soap_map, compared, folder)
        covariant = equivariant_layers(config, config.seeds[0], layers, external)
        equivariant = save_equivariant(compare_equivariant(covariant, config.seeds[0]), folder)

    with clock("uncertainty"):
        # the layers stage's layers are the training frames' when it analysed them all
        whole = len(frames) == len(splits["train"])
        raw = {key: read.raw for key, read in layers.items()} if whole else None
        uncertainty = layer_uncertainty(config, potentials, splits, raw)

    with clock("outputs"):
        best = [
            row["feature_set"]
            for row in aggregated
            if row["feature_set"] in compared.values and not is_reference(row["feature_set"])
        ]
        plot_layer_maps(folder, compared, best[:4], labels, numbers)
        chemiscope = export_study(config, frames, compared, labels, outputs[first], best[0])
    write_tables(folder, config, rows_per_seed, aggregated, metrics, gfre, timings)
    write_uncertainty(folder, uncertainty)
    report = write_report(
        folder, config, aggregated, summaries, gfre, equivariant, chemiscope, timings, uncertainty
    )
    print(f"[study {config.name}] report -> {report}; chemiscope -> {chemiscope}")
    return folder


def study_soap(config: StudyConfig, frames, potentials) -> TensorMap:
    """The SOAP of the analysis atoms, one block over all atoms in frame order."""
    species = tuple(config.descriptor.species or next(iter(potentials.values())).species)
    soap = compute_soap(frames, species, config.descriptor.descriptor_hypers(len(species)))
    return metatensor.sort(soap.keys_to_samples("center_type"), axes="samples")


def feature_sets(
    config: StudyConfig,
    seed: int,
    layers: Dict[str, ModelLayers],
    references,
    external,
    per_species=True,
):
    """The sets scored for ``seed``: every layer of the sweep's models of that
    seed (per-species coordinates unless ``per_species`` is false: shared
    networks and compressions), the references, the external models. A
    model's input is its descriptor (:func:`~equilens.study.config.layer_set_name`),
    scored as a reference without the model's output: the same PCA of SOAP
    for every BPNN and every seed."""
    sets = FeatureSets()
    for architecture in config.sweep:
        read = layers[f"{architecture.name}/seed{seed}"]
        for layer, values in read.sets.items():
            name = layer_set_name(architecture.name, layer, architecture.task)
            if is_reference(name):
                if name not in sets.tensors:
                    sets.add(name, values, per_species=per_species)
                continue
            sets.add(name, values, per_species, read.output)
    for name, values in references.items():
        sets.add(name, values)
    for model_name, (model, read) in external.items():
        for layer, values in read.sets.items():
            name = layer_set_name(model_name, layer)
            output = None if is_reference(name) else read.output
            sets.add(name, values, model.per_species_coordinates, output)
    return sets


def equivariant_layers(
    config: StudyConfig, seed: int, layers: Dict[str, ModelLayers], external
) -> Dict[str, TensorMap]:
    """The equivariant layers of the sweep's models of ``seed`` and of the
    external models, named as in the scorecard."""
    found = {}
    for architecture in config.sweep:
        read = layers[f"{architecture.name}/seed{seed}"]
        for layer, tensor in read.equivariant.items():
            found[layer_set_name(architecture.name, layer, architecture.task)] = tensor
    for name, (_, read) in external.items():
        for layer, tensor in read.equivariant.items():
            found[layer_set_name(name, layer)] = tensor
    return found


def score(config: StudyConfig, seed: int, sets: FeatureSets, labels, soap, numbers) -> list:
    """The scorecard rows of one seed: physical labels decoded per species
    where coordinates are per species; each set against its model's output."""
    from ..analysis.scorecard import Scorecard

    card = Scorecard(
        categorical=[c for c in CATEGORICAL if c in labels],
        max_samples=config.max_samples,
        seed=seed,
        n_jobs=-1,  # every core, or every worker of a Dask cluster (joblib_backend)
    ).fit(
        sets.values,
        labels,
        descriptor=soap,
        outputs=sets.outputs,
        species=numbers,
        per_species=sets.per_species,
    )
    return [{"seed": seed, **row} for row in card.table()]


#: fewest atoms of a species for its own GFRE comparison (train/test split)
MIN_SPECIES_ATOMS = 10


def compare_layers(
    config: StudyConfig, frames, soap: TensorMap, sets: FeatureSets, folder: Path
) -> dict:
    """GFRE between SOAP and every layer of the first seed: species by species
    where layers have per-species coordinates (species with fewer than
    :data:`MIN_SPECIES_ATOMS` atoms left out, with a line), over all atoms
    at once (key ``"all"``) where every layer is shared by the species."""
    from ..analysis.compare import compare, compare_by_species
    from ..analysis.measures import constant_within_species
    from ..export.comparisons import save_comparison

    _, _, numbers = frame_atoms(frames)
    species, counts = np.unique(numbers, return_counts=True)
    rare = species[counts < MIN_SPECIES_ATOMS] if sets.per_species else species[:0]
    if len(rare):
        print(
            f"[study {config.name}] GFRE leaves out center types {rare.tolist()}: fewer than "
            f"{MIN_SPECIES_ATOMS} atoms in the analysis frames"
        )
    kept = ~np.isin(numbers, rare)
    selection = Labels(["center_type"], species[~np.isin(species, rare)].reshape(-1, 1))

    def kept_atoms(tensor: TensorMap) -> TensorMap:
        if not len(rare):
            return tensor
        return metatensor.slice(tensor, axis="samples", selection=selection)

    compared = {"soap": kept_atoms(soap)}
    for name, tensor in sets.tensors.items():
        if name in REFERENCES:
            continue
        if sets.per_species and constant_within_species(sets.values[name], numbers):
            # e.g. a species embedding: nothing to reconstruct within a species
            print(f"[study {config.name}] GFRE leaves out {name}: constant within a species")
            continue
        compared[name] = kept_atoms(tensor)
    options: Dict[str, Any] = {"measures": ("gfre",), "seed": config.seeds[0]}
    gfre: Dict[Any, Any]
    if sets.per_species:
        gfre = compare_by_species(
            compared, n_samples=min(config.max_samples, int(kept.sum())), **options
        )
    else:
        # one block over all atoms already: compare them all at once
        n_samples = min(config.max_samples, len(numbers))
        gfre = {"all": compare(compared, n_samples=n_samples, **options)}
    for z, result in gfre.items():
        save_comparison(result, folder / "gfre" / f"center_type_{z}")
    return gfre
