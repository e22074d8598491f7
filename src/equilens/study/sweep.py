"""The study's sweep: every entry (a task and its sections) trained with
every seed on the study's data, descriptor and training settings.

An entry is ``{name, task, model, training, options}``
(:class:`~equilens.study.config.ArchitectureConfig`): it becomes the training
configuration of its task (the study's ``data``, ``read``, ``descriptor``,
``compression`` and cache where the task has such a section, the keys of the
study's ``training`` that the task's training section has; then the entry's
own sections), validated before anything is trained, and is trained from
scratch (no base model, unless ``options`` names one) through the registry
(:func:`equilens.models.train`).
"""

from __future__ import annotations

import dataclasses
import time
import typing
from pathlib import Path
from typing import Any, Dict, Tuple

from ..config import from_mapping, to_mapping
from ..errors import EquilensError
from ..models.loading import trained_model
from ..models.registry import (
    FAMILIES,
    prepare_shared,
    resolve,
    shared_work,
    task_family,
    train,
)
from .cluster import single_threaded
from .config import ArchitectureConfig, StudyConfig, StudyError

#: the study's sections a task's configuration receives when it has them
SHARED = ("data", "read", "descriptor", "compression")


def entry_config(config: StudyConfig, entry: ArchitectureConfig, seed: int, folder: Path):
    """The training configuration of ``entry`` with ``seed``: a one-line
    ``StudyError`` names the entry when its task or sections do not fit."""
    where = f"sweep entry '{entry.name}'"
    try:
        family = task_family(entry.task, where=f"{where}: task")
        if not family.potential:
            potentials = [f.task for f in FAMILIES if f.potential]
            raise EquilensError(
                f"task {entry.task} does not train a potential (a sweep takes {potentials})"
            )
        family.check_requirements()
        assert family.config is not None
        cls = resolve(family.config)
        fields = {f.name for f in dataclasses.fields(cls)}
        study = to_mapping(config)
        mapping: Dict[str, Any] = {k: study[k] for k in SHARED if k in fields}
        accepted = {f.name for f in dataclasses.fields(typing.get_type_hints(cls)["training"])}
        shared = {k: v for k, v in study["training"].items() if k in accepted}
        mapping.update(
            task=entry.task,
            name=f"{entry.name}/seed{seed}",
            model=dict(entry.model),
            training={**shared, **entry.training, "seed": seed},
            output_dir=str(folder / "models" / entry.name / f"seed{seed}"),
        )
        if "cache_dir" in fields:
            mapping["cache_dir"] = config.cache_dir
        if family.finetune in fields:
            mapping[family.finetune] = None  # trained from scratch
        mapping.update(entry.options)
        return from_mapping(cls, mapping, where=where)
    except EquilensError as error:
        message = str(error)
        if not message.startswith(where):
            message = f"{where}: {message}"
        raise StudyError(message) from None


def check_sweep(config: StudyConfig, folder: Path) -> None:
    """Validate every entry before anything is trained."""
    for entry in config.sweep:
        entry_config(config, entry, config.seeds[0], folder)


def train_sweep(
    config: StudyConfig, folder: Path, progress: bool, overwrite: bool = False, client=None
) -> Tuple[dict, dict]:
    """Train (or reload) every entry with every seed: ``({key: model},
    {key: summary})`` (the ``metrics.json`` of each run), keys
    ``<entry>/seed<seed>``.

    :param client: a ``dask.distributed.Client``: the runs are trained as
        Dask tasks (one per entry and seed) and their models opened here
        from the files they wrote
    """
    check_sweep(config, folder)
    if client is not None:
        return _train_on_cluster(config, folder, overwrite, client, progress)
    models, summaries = {}, {}
    for entry in config.sweep:
        for seed in config.seeds:
            key = f"{entry.name}/seed{seed}"
            try:
                models[key], summary = train(
                    entry_config(config, entry, seed, folder), progress, overwrite=overwrite
                )
            except EquilensError as error:
                raise StudyError(
                    f"stage 'train' (model {entry.name}, seed {seed}): {error}"
                ) from error
            summaries[key] = summary
    return models, summaries


def _train_run(config: StudyConfig, entry: ArchitectureConfig, seed: int, folder, overwrite):
    """One run of the sweep (a Dask task): trains into its folder."""
    _, summary = single_threaded(
        train, entry_config(config, entry, seed, folder), False, overwrite=overwrite
    )
    return summary


def _prepare_run(config: StudyConfig, entry: ArchitectureConfig, seed: int, folder) -> float:
    """The shared work of a group of runs (a Dask task): computed and cached
    for the run ``(entry, seed)`` and its group; returns its seconds."""
    started = time.perf_counter()
    single_threaded(prepare_shared, entry_config(config, entry, seed, folder), False)
    return time.perf_counter() - started


def _train_on_cluster(
    config: StudyConfig, folder: Path, overwrite: bool, client, progress
) -> Tuple[dict, dict]:
    """Every (entry, seed) run as a Dask task (a failed one is named); the
    models are then opened from the folders the workers wrote.

    Runs that share cached work (:func:`equilens.models.registry.shared_work`:
    one compression and its features for every BPNN and seed of the sweep,
    one set of maps and features for every seed of an equivariant entry)
    are submitted once a task has computed that work
    (:func:`equilens.models.registry.prepare_shared`, with priority): two
    workers computing the same features side by side would both pay for
    them. They are submitted then, not before with the work as a
    dependency, so that the scheduler gives them to whichever worker is free
    (a dependency would tie them to the worker that computed it), with that
    work's seconds as their priority: the runs of the costlier features (the
    equivariant ones) start first, the short ones fill the gaps. The runs
    form one Dask task group (their keys start alike), which the scheduler
    holds in its queue and hands, highest priority first, to a worker when
    it is free (with the local cluster's saturation of 1:
    :func:`equilens.study.cluster.dask_client`)."""
    from dask.distributed import as_completed
    from tqdm.auto import tqdm

    runs: Dict[Any, Tuple[str, int]] = {}
    groups: Dict[str, list] = {}  # shared work -> the runs that wait for it
    preparing: Dict[Any, Tuple[str, str]] = {}  # its task -> (work, entry)
    tag = f"{id(config):x}"

    def submit(entry: ArchitectureConfig, seed: int, priority: int):
        future = client.submit(
            _train_run, config, entry, seed, folder, overwrite, pure=False,
            key=("equilens-train", entry.name, seed, tag), priority=priority,
        )  # fmt: skip
        runs[future] = (entry.name, seed)
        return future

    submitted = []
    for entry in config.sweep:
        for seed in config.seeds:
            share = shared_work(entry_config(config, entry, seed, folder))
            if share is None:
                submitted.append(submit(entry, seed, priority=0))
                continue
            if share not in groups:
                # the work that unlocks runs goes before any run
                future = client.submit(
                    _prepare_run, config, entry, seed, folder, pure=False,
                    key=("equilens-prepare", entry.name, seed, tag), priority=10**9,
                )  # fmt: skip
                groups[share], preparing[future] = [], (share, entry.name)
                submitted.append(future)
            groups[share].append((entry, seed))
    total = len(config.sweep) * len(config.seeds)
    bar = tqdm(total=total, desc="sweep on Dask", unit="run", disable=not progress)
    summaries = {}
    with bar:
        finished = as_completed(submitted)
        for future in finished:
            error = future.exception()
            if future in preparing:
                share, name = preparing[future]
                if error is not None:
                    raise StudyError(
                        f"stage 'train' (model {name}, features shared by "
                        f"{len(groups[share])} runs): {error}"
                    ) from error
                length = 1 + int(future.result())
                for entry, seed in groups[share]:
                    finished.add(submit(entry, seed, priority=length))
                continue
            name, seed = runs[future]
            if error is not None:
                raise StudyError(f"stage 'train' (model {name}, seed {seed}): {error}") from error
            summaries[f"{name}/seed{seed}"] = future.result()
            bar.update(1)
    # the models the workers wrote, opened here from their run folders
    models, ordered = {}, {}
    for entry in config.sweep:
        for seed in config.seeds:
            key = f"{entry.name}/seed{seed}"
            models[key] = trained_model(entry_config(config, entry, seed, folder))
            ordered[key] = summaries[key]
    return models, ordered
