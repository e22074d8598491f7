"""metatrain's SOAP-BPNN on equilens's splits: errors and training wall time.

An outside baseline for equilens's own training results. For each dataset
this script

1. builds the train / validation / test splits exactly as equilens does
   (:func:`equilens.data.splits.load_splits`) and writes them to extxyz files
   (energy in ``atoms.info["ref_energy"]``, eV; forces in
   ``atoms.arrays["ref_forces"]``, eV/Å);
2. writes a metatrain ``options.yaml`` for the ``soap_bpnn`` architecture with
   all of metatrain's default hyper-parameters except the number of epochs,
   trained on energies and forces, with a fixed seed;
3. runs ``mtt train options.yaml`` in a separate virtual environment (made
   here if missing, with ``metatrain[soap-bpnn]`` and the local CPU build of
   torch) and measures the wall-clock time of that command;
4. evaluates the exported ``model.pt`` on the validation and test frames in
   that environment and checks its forces on one frame (see
   :data:`EVALUATION_SNIPPET`);
5. prints and saves energy RMSE / MAE in meV/atom (``(E_pred - E_ref) /
   n_atoms``), force RMSE / MAE in eV/Å over all Cartesian components, and
   the training time.

The training wall time covers the whole ``mtt train`` command: reading the
data, fitting metatrain's composition baseline and target scale, the epochs
(each with a validation pass) and exporting the model; "s/epoch" is that
total divided by the number of epochs. metatrain's own final evaluation is
switched off (``final_eval: false``) so that it does not count. The JSON file
also has the time of the epochs alone as logged by metatrain (one-second
resolution). As by metatrain's default, the exported model is the epoch with
the best validation error.

    python benchmarks/metatrain_compare.py [--datasets water iron_water]
        [--epochs 50] [--workdir results/metatrain] [--venv .venv-metatrain]
        [--max-frames N] [--threads N]

Figures go to ``<workdir>/<dataset>/metatrain_metrics.json``, the training
log to ``<workdir>/<dataset>/train.log``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import ase
import ase.io
import numpy as np
import yaml

from equilens.data.io import Dataset, ReadOptions
from equilens.data.splits import SplitConfig, load_splits
from equilens.training.metrics import energy_force_metrics

REPO_ROOT = Path(__file__).resolve().parents[1]
METATRAIN_VERSION = "2026.4.1"
# pinned in the same pip command as metatrain, so that pip takes the local CPU
# wheel instead of resolving a CUDA build
TORCH_VERSION = "2.13.0"
SPLIT_NAMES = ("train", "validation", "test")
EVALUATED_SPLITS = ("validation", "test")
ENERGY_KEY = "ref_energy"
FORCES_KEY = "ref_forces"
SEED = 0
# SOAP-BPNN's default batch size: metatrain refuses a training set smaller
METATRAIN_BATCH_SIZE = 8
# central finite-difference check of the exported model's forces
FD_STEP = 1e-4  # Å, on the float64 twin (see EVALUATION_SNIPPET)
FD_COMPONENTS = 3  # the largest predicted force components of one frame
FD_RTOL = 1e-3


@dataclass(frozen=True)
class BenchmarkDataset:
    """A dataset of the comparison: where its splits come from."""

    name: str
    splits: SplitConfig
    options: ReadOptions


def benchmark_datasets() -> Dict[str, BenchmarkDataset]:
    """The datasets, split as in equilens's own training runs."""
    return {
        "water": BenchmarkDataset(
            "water",
            SplitConfig(
                train="reference:water/train",
                validation="reference:water/validation",
                test="reference:water/validation",
            ),
            ReadOptions(require_forces=True),
        ),
        "iron_water": BenchmarkDataset(
            "iron_water",
            SplitConfig(
                train="reference:iron_water/train",
                test="reference:iron_water/test",
                validation_fraction=0.1,
                seed=0,
            ),
            ReadOptions(require_forces=True),
        ),
    }


# ---------------------------------------------------------------------------
# virtual environment


def venv_python(venv: Path) -> Path:
    """The interpreter of a virtual environment."""
    return venv / "bin" / "python"


def installed_versions(venv: Path) -> Optional[Dict[str, str]]:
    """Versions of metatrain and torch in ``venv``, or ``None`` when the
    environment is missing or cannot import what the benchmark needs."""
    python = venv_python(venv)
    if not python.exists():
        return None
    probe = (
        "import json, metatrain, torch, sphericart.torch, metatomic_ase;"
        "print(json.dumps({'metatrain': metatrain.__version__,"
        " 'torch': torch.__version__}))"
    )
    result = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        return None
    return json.loads(result.stdout.strip().splitlines()[-1])


def ensure_venv(venv: Path, metatrain_version: str) -> Dict[str, str]:
    """Create ``venv`` and install ``metatrain[soap-bpnn]`` into it if needed.

    :returns: the installed versions of metatrain and torch
    :raises RuntimeError: if the installation fails or gives a torch other
        than the pinned CPU build
    """
    versions = installed_versions(venv)
    if versions is None or versions["metatrain"] != metatrain_version:
        if not venv_python(venv).exists():
            print(f"creating virtual environment {venv}", flush=True)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        command = [
            str(venv_python(venv)),
            "-m",
            "pip",
            "install",
            f"metatrain[soap-bpnn]=={metatrain_version}",
            f"torch=={TORCH_VERSION}",
        ]
        print("installing: " + " ".join(command[1:]), flush=True)
        subprocess.run(command, check=True)
        versions = installed_versions(venv)
        if versions is None:
            raise RuntimeError(f"metatrain is still not importable in {venv}")
    if versions["metatrain"] != metatrain_version:
        raise RuntimeError(
            f"{venv} has metatrain {versions['metatrain']}, expected {metatrain_version}"
        )
    if not versions["torch"].startswith(TORCH_VERSION) or "+cu" in versions["torch"]:
        raise RuntimeError(
            f"{venv} has torch {versions['torch']}, expected the CPU build of {TORCH_VERSION}"
        )
    return versions


# ---------------------------------------------------------------------------
# data and options


def load_benchmark_splits(spec: BenchmarkDataset, max_frames: Optional[int]) -> Dict[str, Dataset]:
    """equilens's splits of ``spec``, each cut to ``max_frames`` if given."""
    splits = load_splits(spec.splits, spec.options)
    missing = [name for name in SPLIT_NAMES if name not in splits]
    if missing:
        raise RuntimeError(f"{spec.name}: equilens gave no {missing} split")
    if max_frames is not None:
        splits = {
            name: part.subset(np.arange(min(max_frames, len(part))))
            for name, part in splits.items()
        }
    return splits


def write_extxyz(dataset: Dataset, path: Path) -> None:
    """Write frames with their reference energies and forces under
    :data:`ENERGY_KEY` (``info``) and :data:`FORCES_KEY` (``arrays``).

    Frames are rebuilt from numbers, positions, cell and pbc, so nothing else
    (calculators, constraints) travels; the file is read back and checked.
    """
    if dataset.energies is None or dataset.forces is None:
        raise RuntimeError(f"{path.name}: the split lacks energies or forces")
    frames = []
    for atoms, energy, forces in zip(dataset.frames, dataset.energies, dataset.forces):
        copy = ase.Atoms(
            numbers=atoms.numbers,
            positions=atoms.positions,
            cell=atoms.cell.array,
            pbc=atoms.pbc,
        )
        copy.info[ENERGY_KEY] = float(energy)
        copy.arrays[FORCES_KEY] = np.asarray(forces, dtype=np.float64)
        frames.append(copy)
    ase.io.write(path, frames, format="extxyz")

    back = ase.io.read(path, ":", format="extxyz")
    energies = np.array([atoms.info[ENERGY_KEY] for atoms in back])
    forces = np.concatenate([atoms.arrays[FORCES_KEY] for atoms in back])
    if not (
        len(back) == len(frames)
        and np.allclose(energies, dataset.energies, rtol=0, atol=1e-6)
        and np.allclose(forces, np.concatenate(dataset.forces), rtol=0, atol=1e-6)
    ):
        raise RuntimeError(f"{path}: energies or forces did not survive extxyz")


def dataset_section(xyz_name: str) -> Dict[str, Any]:
    """The metatrain dataset section reading energies and forces from one file."""
    return {
        "systems": {"read_from": xyz_name, "reader": "ase", "length_unit": "angstrom"},
        "targets": {
            "energy": {
                "quantity": "energy",
                "read_from": xyz_name,
                "reader": "ase",
                "key": ENERGY_KEY,
                "unit": "eV",
                "forces": {"read_from": xyz_name, "reader": "ase", "key": FORCES_KEY},
                # the data has no stress; metatrain would look for one by default
                "stress": False,
            }
        },
    }


def metatrain_options(epochs: int, seed: int) -> Dict[str, Any]:
    """``options.yaml`` content: SOAP-BPNN defaults except the epoch count."""
    return {
        "seed": seed,
        "device": "cpu",
        "final_eval": False,
        "architecture": {"name": "soap_bpnn", "training": {"num_epochs": epochs}},
        "training_set": dataset_section("train.xyz"),
        "validation_set": dataset_section("validation.xyz"),
        "test_set": dataset_section("test.xyz"),
    }


# ---------------------------------------------------------------------------
# training


def training_env(threads: Optional[int]) -> Dict[str, str]:
    """The environment of the metatrain subprocesses."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # keep the main environment's packages out
    if threads is not None:
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[name] = str(threads)
    return env


def run_training(venv: Path, workdir: Path, threads: Optional[int]) -> float:
    """Run ``mtt train options.yaml`` in ``workdir``; the log goes to
    ``train.log``.

    :returns: the wall-clock seconds of the command
    :raises RuntimeError: if the training fails or finds no forces
    """
    for stale in ("model.pt", "model.ckpt", "extensions"):
        path = workdir / stale
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    log_path = workdir / "train.log"
    command = [str(venv / "bin" / "mtt"), "train", "options.yaml"]
    with open(log_path, "w") as log:
        start = time.perf_counter()
        result = subprocess.run(
            command,
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=training_env(threads),
            check=False,
        )
        wall = time.perf_counter() - start
    log_text = log_path.read_text()
    if result.returncode != 0 or not (workdir / "model.pt").exists():
        tail = "\n".join(log_text.splitlines()[-30:])
        raise RuntimeError(f"mtt train failed (exit {result.returncode}) in {workdir}:\n{tail}")
    # metatrain only warns when it cannot read the forces and then trains on
    # energies alone
    if "Forces found in section" not in log_text or "No forces found" in log_text:
        raise RuntimeError(f"metatrain did not read the forces; see {log_path}")
    return wall


_LOG_LINE = re.compile(r"^\[(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})\]\[\w+\] - (.*)$", re.MULTILINE)


def logged_training_times(log_text: str) -> Dict[str, Optional[float]]:
    """Times read from metatrain's log (one-second resolution).

    ``training_loop_s``: from ``Starting training`` to ``Training finished!``
    (the epochs with their validation passes, without data loading, baseline
    fitting and export). ``s_per_epoch``: the mean time per epoch between the
    first and last ``Epoch:`` lines (logged every ``log_interval`` epochs).
    Either is ``None`` when the log does not give it.
    """
    start = finish = None
    epochs = []
    for stamp, message in _LOG_LINE.findall(log_text):
        when = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S")
        if message.startswith("Starting training"):
            start = when
        elif message.startswith("Training finished"):
            finish = when
        else:
            epoch = re.match(r"Epoch:\s+(\d+)", message)
            if epoch:
                epochs.append((when, int(epoch.group(1))))
    loop = None if start is None or finish is None else (finish - start).total_seconds()
    per_epoch = None
    if len(epochs) >= 2 and epochs[-1][1] > epochs[0][1]:
        (t0, e0), (t1, e1) = epochs[0], epochs[-1]
        per_epoch = (t1 - t0).total_seconds() / (e1 - e0)
    return {"training_loop_s": loop, "s_per_epoch": per_epoch}


# ---------------------------------------------------------------------------
# evaluation (runs in the metatrain environment)

# ``import sphericart.torch`` must come before loading the model: its autograd
# kernels register from Python, and without them the exported SOAP-BPNN gives
# wrong forces in a fresh process, silently.
#
# The force check: the exported model computes in float32, whose total energy
# (hundreds of eV) is too coarse for a finite difference at the 1e-3 level
# (about 1e-4 eV/Å of noise). So the same checkpoint is also exported in
# float64 (the "twin", saved and reloaded like model.pt); the twin's forces
# are checked against a central finite difference of its energy, and
# model.pt's forces against the twin's on the whole frame.
EVALUATION_SNIPPET = r"""
import json, sys, warnings
import numpy as np
import sphericart.torch  # noqa: F401  (must precede loading the model)
import ase, ase.io
import torch
from metatomic_ase import MetatomicCalculator
from metatrain.utils.io import load_model

warnings.filterwarnings("ignore", category=UserWarning)
warnings.filterwarnings("ignore", category=DeprecationWarning)
request = json.loads(sys.argv[1])

def bare(atoms):
    return ase.Atoms(numbers=atoms.numbers, positions=atoms.positions,
                     cell=atoms.cell.array, pbc=atoms.pbc)

calculator = MetatomicCalculator(
    request["model"], extensions_directory=request["extensions"], device="cpu"
)
out = {}
for split, path in request["files"].items():
    energies, forces, n_atoms = [], [], []
    for atoms in ase.io.read(path, ":", format="extxyz"):
        atoms = bare(atoms)
        atoms.calc = calculator
        energies.append(atoms.get_potential_energy())
        forces.append(np.array(atoms.get_forces()))
        n_atoms.append(len(atoms))
    out[split + "_energy"] = np.array(energies)
    out[split + "_forces"] = np.concatenate(forces)
    out[split + "_n_atoms"] = np.array(n_atoms)

twin = load_model(request["checkpoint"]).to(torch.float64).export()
twin.save(request["twin"], collect_extensions=request["twin_extensions"])
twin_calculator = MetatomicCalculator(
    request["twin"], extensions_directory=request["twin_extensions"], device="cpu"
)
atoms = bare(ase.io.read(request["fd_file"], 0, format="extxyz"))
atoms.calc = calculator
out["fd_model_forces"] = np.array(atoms.get_forces())
out["fd_model_energy"] = np.array(atoms.get_potential_energy())
atoms.calc = twin_calculator
twin_forces = np.array(atoms.get_forces())
out["fd_twin_forces"] = twin_forces
out["fd_twin_energy"] = np.array(atoms.get_potential_energy())

flat = np.argsort(-np.abs(twin_forces).ravel())[: request["fd_components"]]
step = request["fd_step"]
finite = []
for index in flat:
    atom, axis = divmod(int(index), 3)
    values = []
    for sign in (1, -1):
        moved = atoms.copy()
        moved.positions[atom, axis] += sign * step
        moved.calc = twin_calculator
        values.append(moved.get_potential_energy())
    finite.append(-(values[0] - values[1]) / (2 * step))
out["fd_atom_axis"] = np.array([divmod(int(i), 3) for i in flat])
out["fd_finite"] = np.array(finite)
np.savez(request["output"], **out)
"""


def run_evaluation(
    venv: Path, workdir: Path, files: Mapping[str, Path], threads: Optional[int]
) -> Dict[str, np.ndarray]:
    """Predictions of ``workdir/model.pt`` on ``files``, and the force check
    on the first validation frame."""
    output = workdir / "predictions.npz"
    twin_dir = workdir / "float64_twin"
    if twin_dir.exists():
        shutil.rmtree(twin_dir)
    twin_dir.mkdir()
    request = {
        "model": str(workdir / "model.pt"),
        "extensions": str(workdir / "extensions"),
        "checkpoint": str(workdir / "model.ckpt"),
        "twin": str(twin_dir / "model.pt"),
        "twin_extensions": str(twin_dir / "extensions"),
        "files": {split: str(path) for split, path in files.items()},
        "fd_file": str(files["validation"]),
        "fd_step": FD_STEP,
        "fd_components": FD_COMPONENTS,
        "output": str(output),
    }
    result = subprocess.run(
        [str(venv_python(venv)), "-c", EVALUATION_SNIPPET, json.dumps(request)],
        cwd=workdir,
        capture_output=True,
        text=True,
        env=training_env(threads),
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"evaluation failed:\n{result.stderr[-3000:]}")
    with np.load(output) as data:
        return {key: data[key] for key in data.files}


def error_metrics(
    reference: Dataset, energies: np.ndarray, forces: np.ndarray, n_atoms: np.ndarray
) -> Dict[str, float]:
    """Energy errors per atom (meV/atom) and force errors per component (eV/Å)."""
    assert reference.energies is not None and reference.forces is not None
    expected_atoms = np.array([len(frame) for frame in reference.frames])
    if not np.array_equal(expected_atoms, n_atoms):
        raise RuntimeError("predictions and reference frames do not match")
    # the same definitions as equilens's own metrics.json
    return energy_force_metrics(
        energies, reference.energies, n_atoms, forces, np.concatenate(reference.forces)
    )


def check_forces(predictions: Mapping[str, np.ndarray]) -> Dict[str, Any]:
    """Check the model's forces on one frame and print the agreement.

    Two checks, each at :data:`FD_RTOL`: the float64 twin's autograd forces
    against the central finite difference of its energy (relative to each
    component), and model.pt's forces against the twin's (over all components,
    relative to the largest twin force).

    :raises RuntimeError: if either check fails
    """
    twin = predictions["fd_twin_forces"]
    autograd = twin.ravel()[
        [3 * int(atom) + int(axis) for atom, axis in predictions["fd_atom_axis"]]
    ]
    finite = predictions["fd_finite"]
    relative = np.abs(autograd - finite) / np.maximum(np.abs(finite), 1e-12)
    rows = [
        {
            "atom": int(atom),
            "axis": "xyz"[int(axis)],
            "autograd": float(a),
            "finite_difference": float(f),
            "relative_difference": float(r),
        }
        for (atom, axis), a, f, r in zip(predictions["fd_atom_axis"], autograd, finite, relative)
    ]
    for row in rows:
        print(
            f"  force check (float64 twin) atom {row['atom']} {row['axis']}: "
            f"autograd {row['autograd']:+.8f}, finite difference "
            f"{row['finite_difference']:+.8f} eV/Å "
            f"(relative {row['relative_difference']:.1e})"
        )
    model_vs_twin = float(
        np.abs(predictions["fd_model_forces"] - twin).max() / max(float(np.abs(twin).max()), 1e-12)
    )
    n_atoms = len(twin)
    energy_gap = float(
        1000 * abs(predictions["fd_model_energy"] - predictions["fd_twin_energy"]) / n_atoms
    )
    print(
        f"  force check model.pt (float32) vs twin: max force difference "
        f"{model_vs_twin:.1e} of the largest force; energy difference "
        f"{energy_gap:.1e} meV/atom"
    )
    if np.any(relative > FD_RTOL):
        raise RuntimeError(
            f"the model's forces disagree with the finite difference of its energy "
            f"by up to {relative.max():.2e} relative (tolerance {FD_RTOL:.0e})"
        )
    if model_vs_twin > FD_RTOL:
        raise RuntimeError(
            f"model.pt's forces differ from the float64 export of the same "
            f"checkpoint by {model_vs_twin:.2e} of the largest force "
            f"(tolerance {FD_RTOL:.0e}): was sphericart.torch imported?"
        )
    return {
        "step_A": FD_STEP,
        "rtol": FD_RTOL,
        "twin_finite_difference": rows,
        "model_vs_twin_max_relative_force_difference": model_vs_twin,
        "model_vs_twin_energy_difference_meV_per_atom": energy_gap,
    }


# ---------------------------------------------------------------------------
# driver


def run_dataset(
    spec: BenchmarkDataset,
    venv: Path,
    workdir: Path,
    epochs: int,
    max_frames: Optional[int],
    threads: Optional[int],
    versions: Mapping[str, str],
) -> Dict[str, Any]:
    """Train and evaluate on one dataset; return and save its figures."""
    workdir.mkdir(parents=True, exist_ok=True)
    splits = load_benchmark_splits(spec, max_frames)
    files = {name: workdir / f"{name}.xyz" for name in SPLIT_NAMES}
    for name, path in files.items():
        write_extxyz(splits[name], path)
    options = metatrain_options(epochs, SEED)
    (workdir / "options.yaml").write_text(yaml.safe_dump(options, sort_keys=False))

    print(
        f"{spec.name}: training metatrain soap_bpnn for {epochs} epochs on "
        + ", ".join(f"{len(splits[n])} {n}" for n in SPLIT_NAMES)
        + f" frames in {workdir}",
        flush=True,
    )
    wall = run_training(venv, workdir, threads)
    logged = logged_training_times((workdir / "train.log").read_text())

    predictions = run_evaluation(
        venv, workdir, {name: files[name] for name in EVALUATED_SPLITS}, threads
    )
    fd_check = check_forces(predictions)
    errors = {
        name: error_metrics(
            splits[name],
            predictions[f"{name}_energy"],
            predictions[f"{name}_forces"],
            predictions[f"{name}_n_atoms"],
        )
        for name in EVALUATED_SPLITS
    }
    metrics = {
        "dataset": spec.name,
        "architecture": "soap_bpnn",
        "metatrain_version": versions["metatrain"],
        "torch_version": versions["torch"],
        "epochs": epochs,
        "seed": SEED,
        "threads": threads,
        "cpu_count": os.cpu_count(),
        "max_frames": max_frames,
        "n_frames": {name: len(splits[name]) for name in SPLIT_NAMES},
        "split_config": {
            "train": spec.splits.train,
            "validation": spec.splits.validation,
            "test": spec.splits.test,
            "validation_fraction": spec.splits.validation_fraction,
            "seed": spec.splits.seed,
        },
        "options": options,
        "training_wall_s": wall,
        "training_wall_s_per_epoch": wall / epochs,
        "logged": logged,
        "errors": errors,
        "force_check": fd_check,
    }
    (workdir / "metatrain_metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def summary_line(metrics: Mapping[str, Any]) -> str:
    """One line with the figures of one dataset."""
    parts = [
        f"{name} energy RMSE {e['energy_rmse_meV_per_atom']:.2f} meV/atom "
        f"(MAE {e['energy_mae_meV_per_atom']:.2f}), force RMSE "
        f"{e['force_rmse_eV_per_A']:.4f} eV/Å (MAE {e['force_mae_eV_per_A']:.4f})"
        for name, e in metrics["errors"].items()
    ]
    return (
        f"metatrain soap_bpnn {metrics['dataset']}: "
        + "; ".join(parts)
        + f"; training wall time {metrics['training_wall_s']:.1f} s "
        f"({metrics['training_wall_s_per_epoch']:.2f} s/epoch)"
    )


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The command line."""
    choices = list(benchmark_datasets())
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", choices=choices, default=choices)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument(
        "--workdir",
        type=Path,
        default=REPO_ROOT / "results" / "metatrain",
        help="one sub-folder per dataset (default: %(default)s)",
    )
    parser.add_argument(
        "--venv",
        type=Path,
        default=REPO_ROOT / ".venv-metatrain",
        help="metatrain's virtual environment, made if missing (default: %(default)s)",
    )
    parser.add_argument(
        "--max-frames",
        type=int,
        default=None,
        help="keep only the first N frames of each split, for quick smoke runs "
        f"(at least {METATRAIN_BATCH_SIZE}, metatrain's default batch size)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="OMP/MKL threads of the metatrain processes (default: torch's own)",
    )
    parser.add_argument("--metatrain-version", default=METATRAIN_VERSION)
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error("--epochs must be at least 1")
    if args.max_frames is not None and args.max_frames < METATRAIN_BATCH_SIZE:
        parser.error(
            f"--max-frames must be at least {METATRAIN_BATCH_SIZE}: metatrain "
            "refuses a training set smaller than its batch size"
        )
    return args


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    venv = args.venv.resolve()
    versions = ensure_venv(venv, args.metatrain_version)
    print(f"metatrain {versions['metatrain']}, torch {versions['torch']} in {venv}")
    specs = benchmark_datasets()
    lines: List[str] = []
    for name in args.datasets:
        metrics = run_dataset(
            specs[name],
            venv,
            (args.workdir / name).resolve(),
            args.epochs,
            args.max_frames,
            args.threads,
            versions,
        )
        lines.append(summary_line(metrics))
        print(lines[-1], flush=True)
    if len(lines) > 1:
        print("\n".join(lines))


if __name__ == "__main__":
    main()
