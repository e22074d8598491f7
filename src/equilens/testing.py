"""The contract every model keeps, and the symmetry checks the tests share.

:func:`check_model` runs the checks of the model protocol on one model and a
few frames, as scikit-learn's ``check_estimator`` does for estimators and
e3nn's ``assert_equivariant`` for layers. It is parametrised over every
family and adapter in the test suite (``tests/test_contract.py``); a new
family passes it before it is registered. Each check raises an
``AssertionError`` naming the check, the layer, block or frame; a check that
does not apply is skipped with its reason in the returned report.

- ``metadata``: layers in :attr:`~equilens.models.base.Model.layer_names`
  order, with the conventions of :mod:`equilens.models.base`;
- ``batches``: the same layers whatever the batch size;
- ``rotation`` / ``inversion``: every ``lambda > 0`` block transforms with
  featomic's real Wigner-D matrix (:func:`equilens.so3.wigner_d_real`),
  invariant blocks and energies do not change, forces and tensor targets
  rotate; under inversion a block picks ``o3_sigma * (-1)^lambda`` (models
  built without parity are checked under rotations only);
- ``permutation``: reordering the atoms of a frame reorders its per-atom
  layers and leaves its energy unchanged;
- ``predictions``: every output has the documented shape;
- ``forces``: forces are minus the central finite differences of the energy;
- ``stress``: the calculator's stress is the strain derivative of the energy
  over the volume (periodic frames, calculators that give stress);
- ``unknown element``: a frame with an element the model does not know is
  refused in one line naming the frame and the element;
- ``reload``: the same layers from the model saved (or reopened from its
  source) in a fresh process;
- ``export``: the metatomic export of the family gives the model's energies
  and layers (families that export).

:func:`transformed` and :func:`assert_covariant` are the symmetry checks the
descriptor and adapter tests use too.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import ase
import ase.io
import numpy as np
from metatensor import TensorMap

from .errors import ModelError
from .so3 import random_rotation, wigner_d_real


def transformed(atoms: ase.Atoms, matrix: np.ndarray) -> ase.Atoms:
    """``atoms`` with positions and cell mapped by ``r -> matrix @ r`` (a
    rotation, or an improper rotation such as ``-identity``)."""
    moved = atoms.copy()
    moved.positions = atoms.positions @ np.asarray(matrix).T
    if atoms.pbc.any():
        moved.cell = atoms.cell.array @ np.asarray(matrix).T
    return moved


def _key(tensor: TensorMap, key) -> Dict[str, int]:
    return dict(zip(tensor.keys.names, (int(v) for v in key.values)))


def assert_covariant(
    original: TensorMap,
    moved: TensorMap,
    matrix: np.ndarray,
    atol: float = 1e-6,
    where: str = "",
) -> int:
    """Assert that ``moved`` (computed on frames mapped by ``matrix``) is
    ``original`` transformed as its keys say: blocks without ``o3_lambda``
    are invariant; a block ``(o3_lambda, o3_sigma)`` is multiplied by the
    Wigner-D matrix of ``matrix``'s rotation on its ``o3_mu`` axis (axis 1),
    and by ``o3_sigma (-1)^lambda`` when ``matrix`` is improper. The
    tolerance is relative to the largest value of the tensor.

    :returns: the number of blocks that did change (so a caller can refuse a
        vacuous check)
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    improper = np.linalg.det(matrix) < 0
    rotation = -matrix if improper else matrix
    changed = 0
    sizes = [float(np.abs(block.values).max()) for block in original.blocks() if block.values.size]
    scale = max(sizes + [1e-12])
    for key, block in original.items():
        selection = _key(original, key)
        values = np.asarray(block.values)
        actual = np.asarray(moved.block(selection).values)
        assert actual.shape == values.shape, f"{where} block {selection}: shapes differ"
        ell = selection.get("o3_lambda", 0)
        expected = values
        if ell > 0:
            expected = np.einsum("mn,snp->smp", wigner_d_real(ell, rotation), values)
        if improper:
            expected = expected * selection.get("o3_sigma", 1) * (-1) ** ell
        error = float(np.abs(actual - expected).max()) if values.size else 0.0
        assert error <= atol * scale, (
            f"{where} block {selection}: differs from its transform by {error:.3g} "
            f"(tolerance {atol * scale:.3g})"
        )
        if values.size and np.abs(actual - values).max() > 1e-3 * scale:
            changed += 1
    return changed


class Context:
    """What the checks share: the model, the frames, tolerances, caches."""

    def __init__(self, model, frames, atol, force_atol, fd_step, seed):
        self.model = model
        self.frames = [atoms.copy() for atoms in frames]
        self.atol = atol
        self.force_atol = force_atol
        self.fd_step = fd_step
        self.rng = np.random.default_rng(seed)
        self.seed = seed
        self._layers: Optional[Dict[str, TensorMap]] = None

    @property
    def layers(self) -> Dict[str, TensorMap]:
        if self._layers is None:
            self._layers = self.model.layers(self.frames)
        return self._layers

    @property
    def energy(self) -> bool:
        return "energy" in self.model.outputs


def check_metadata(context: Context) -> Optional[str]:
    model, layers = context.model, context.layers
    assert list(layers) == list(model.layer_names), f"layers {list(layers)}"
    n_atoms = sum(len(f) for f in context.frames)
    for name, tensor in layers.items():
        equivariant = "o3_lambda" in tensor.keys.names
        keys = ["o3_lambda", "o3_sigma", "center_type"] if equivariant else ["center_type"]
        assert tensor.keys.names == keys, f"layer {name}: keys {tensor.keys.names}"
        for block in tensor.blocks():
            assert block.samples.names == ["system", "atom"], f"layer {name}: samples"
            assert isinstance(block.values, np.ndarray), f"layer {name}: not numpy"
            assert block.values.dtype == np.float64, f"layer {name}: {block.values.dtype}"
            components = [c.names for c in block.components]
            assert components == ([["o3_mu"]] if equivariant else []), f"layer {name}"
            assert block.properties.names == ["feature"], f"layer {name}: properties"
        if not equivariant:
            total = sum(len(b.samples) for b in tensor.blocks())
            assert total == n_atoms, f"layer {name}: {total} atoms for {n_atoms}"
        systems = {int(s) for b in tensor.blocks() for s in b.samples.column("system")}
        assert systems == set(range(len(context.frames))), f"layer {name}: systems {systems}"
    return None


def check_batches(context: Context) -> Optional[str]:
    if len(context.frames) < 2:
        return "needs two frames"
    one_by_one = context.model.layers(context.frames, batch_size=1)
    for name, tensor in context.layers.items():
        assert_covariant(tensor, one_by_one[name], np.eye(3), context.atol, f"layer {name}:")
    return None


def _prediction_values(prediction: Dict[str, TensorMap]) -> Dict[str, TensorMap]:
    return {name: tensor for name, tensor in prediction.items() if name != "forces"}


def _check_transform(context: Context, matrix: np.ndarray, label: str) -> None:
    model = context.model
    moved = [transformed(atoms, matrix) for atoms in context.frames]
    layers = model.layers(moved)
    changed = 0
    for name, tensor in context.layers.items():
        changed += assert_covariant(tensor, layers[name], matrix, context.atol, f"{label} {name}")
    assert changed or not _should_change(context.layers, matrix), (
        f"{label}: no block changed although some should (vacuous)"
    )
    before = model.predict(context.frames)
    after = model.predict(moved)
    for name, tensor in _prediction_values(before).items():
        assert_covariant(tensor, after[name], matrix, context.atol, f"{label} prediction {name}")
    if "forces" in before:
        expected = np.einsum("ij,nj->ni", matrix, before["forces"].block().values[:, :, 0])
        actual = after["forces"].block().values[:, :, 0]
        scale = max(float(np.abs(expected).max()), 1.0)
        assert np.abs(actual - expected).max() <= context.force_atol * scale, f"{label}: forces"


def _should_change(layers: Dict[str, TensorMap], matrix: np.ndarray) -> bool:
    """Whether some block of ``layers`` is not invariant under ``matrix``."""
    improper = np.linalg.det(matrix) < 0
    for tensor in layers.values():
        for key in tensor.keys:
            selection = _key(tensor, key)
            ell, sigma = selection.get("o3_lambda", 0), selection.get("o3_sigma", 1)
            if (ell > 0 and not improper) or (improper and sigma * (-1) ** ell < 0):
                return True
    return False


def check_rotation(context: Context) -> Optional[str]:
    for index in range(2):
        _check_transform(context, random_rotation(context.seed + index), f"rotation {index}")
    return None


def check_inversion(context: Context) -> Optional[str]:
    if not context.model.parity_equivariant:
        return "the model is built without parity (rotations only)"
    _check_transform(context, -np.eye(3), "inversion")
    return None


def check_permutation(context: Context) -> Optional[str]:
    model = context.model
    frame = context.frames[0]
    order = context.rng.permutation(len(frame))
    permuted = model.layers([frame[order]])
    original = model.layers([frame])
    position = np.argsort(order)  # atom a of the frame is atom position[a] of the permuted one
    for name, tensor in original.items():
        for key, block in tensor.items():
            other = permuted[name].block(_key(tensor, key))
            rows = {int(a): i for i, a in enumerate(other.samples.column("atom"))}
            atoms = [rows[int(position[a])] for a in block.samples.column("atom")]
            values = np.asarray(other.values)[atoms]
            scale = max(float(np.abs(block.values).max()) if block.values.size else 0, 1e-12)
            error = float(np.abs(values - block.values).max()) if block.values.size else 0.0
            assert error <= context.atol * scale, f"permutation: layer {name} block {key.values}"
    if context.energy:
        before = model.predict([frame], outputs=["energy"])["energy"].block().values
        after = model.predict([frame[order]], outputs=["energy"])["energy"].block().values
        assert np.allclose(before, after, rtol=context.atol, atol=context.atol), "energy"
    return None


def check_predictions(context: Context) -> Optional[str]:
    model = context.model
    prediction = model.predict(context.frames)
    assert set(prediction) == set(model.outputs), f"predicts {set(prediction)}"
    n_frames = len(context.frames)
    if "energy" in prediction:
        block = prediction["energy"].block()
        assert block.values.shape == (n_frames, 1) and block.samples.names == ["system"]
        assert np.isfinite(block.values).all(), "energy is not finite"
    if "forces" in prediction:
        block = prediction["forces"].block()
        assert block.values.shape == (sum(len(f) for f in context.frames), 3, 1)
        assert block.components[0].names == ["xyz"] and block.samples.names == ["system", "atom"]
    for name, tensor in _prediction_values(prediction).items():
        for block in tensor.blocks():
            assert np.isfinite(block.values).all(), f"{name} is not finite"
    return None


def _energy(model, atoms: ase.Atoms) -> float:
    return float(model.predict([atoms], outputs=["energy"])["energy"].block().values[0, 0])


def check_forces(context: Context) -> Optional[str]:
    model = context.model
    if "forces" not in model.outputs:
        return "the model predicts no forces"
    frame = context.frames[0]
    forces = model.predict([frame], outputs=["forces"])["forces"].block().values[:, :, 0]
    h = context.fd_step
    for atom in context.rng.choice(len(frame), size=min(3, len(frame)), replace=False):
        for axis in range(3):
            moved = []
            for sign in (1, -1):
                atoms = frame.copy()
                atoms.positions[atom, axis] += sign * h
                moved.append(_energy(model, atoms))
            numeric = -(moved[0] - moved[1]) / (2 * h)
            error = abs(numeric - forces[atom, axis])
            tolerance = context.force_atol * max(1.0, abs(numeric))
            assert error <= tolerance, (
                f"forces: atom {atom} axis {axis}: {forces[atom, axis]:.6g} against "
                f"-dE/dx {numeric:.6g}"
            )
    return None


def check_stress(context: Context) -> Optional[str]:
    from ase.calculators.calculator import PropertyNotImplementedError

    periodic = [atoms for atoms in context.frames if atoms.pbc.all()]
    if not context.energy or not periodic:
        return "needs an energy model and a periodic frame"
    atoms = periodic[0].copy()
    atoms.calc = context.model.calculator()
    try:
        stress = atoms.get_stress(voigt=False)
    except PropertyNotImplementedError:
        return "the calculator gives no stress"
    h = context.fd_step
    volume = atoms.get_volume()
    for i, j in ((0, 0), (1, 2), (2, 1)):
        energies = []
        for sign in (1, -1):
            strained = periodic[0].copy()
            deformation = np.eye(3)
            deformation[i, j] += sign * h
            strained.set_cell(strained.cell.array @ deformation.T, scale_atoms=True)
            strained.calc = context.model.calculator()
            energies.append(strained.get_potential_energy())
        numeric = (energies[0] - energies[1]) / (2 * h) / volume
        symmetric = 0.5 * (stress[i, j] + stress[j, i])
        assert abs(numeric - symmetric) <= context.force_atol * max(1e-3, abs(numeric)), (
            f"stress {i}{j}: {symmetric:.6g} against dE/dstrain / V {numeric:.6g}"
        )
    return None


def check_unknown_element(context: Context) -> Optional[str]:
    known = set(context.model.species)
    z = next(z for z in range(118, 0, -1) if z not in known)
    strange = context.frames[0].copy()
    strange.numbers[0] = z
    try:
        context.model.layers([strange])
    except ModelError as error:
        message = str(error)
        assert "frame 0" in message and f"Z={z}" in message, f"unknown element: {message}"
        assert "\n" not in message, "unknown element: the message is not one line"
        return None
    raise AssertionError(f"unknown element: a frame with Z={z} was not refused")


_RELOAD = """
import sys, numpy as np, ase.io
from equilens.models import load
model = load(sys.argv[1])
layers = model.layers(ase.io.read(sys.argv[2], ":"))
np.savez(sys.argv[3], **{
    f"{n}/{i}": b.values for n, t in layers.items() for i, b in enumerate(t.blocks())
})
"""


def check_reload(context: Context) -> Optional[str]:
    model = context.model
    with tempfile.TemporaryDirectory() as folder:
        source = model.describe().source
        if source is None:
            try:
                source = str(model.save(Path(folder) / "model.pt"))
            except ModelError:
                return "the model is neither saved by equilens nor reopened from a source"
        structures = Path(folder) / "frames.extxyz"
        ase.io.write(structures, context.frames)
        values = Path(folder) / "fresh.npz"
        done = subprocess.run(
            [sys.executable, "-c", _RELOAD, source, str(structures), str(values)],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, f"reload: {done.stderr.strip()[-1500:]}"
        fresh = np.load(values)
        for name, tensor in context.layers.items():
            for index, block in enumerate(tensor.blocks()):
                scale = max(float(np.abs(block.values).max()) if block.values.size else 0, 1e-12)
                error = np.abs(fresh[f"{name}/{index}"] - block.values).max(initial=0.0)
                assert error <= context.atol * scale, f"reload: layer {name} block {index}"
    return None


def check_export(context: Context) -> Optional[str]:
    import torch
    from metatomic.torch import ModelOutput

    from .models.calculator import atoms_to_system
    from .models.registry import family, metatomic_model

    model = context.model
    if family(model.kind).export is None:
        return f"{model.kind} models are not exported"
    module = metatomic_model(model).module
    prefix = "" if context.energy else "equilens::"
    for index, atoms in enumerate(context.frames):
        names = {f"{prefix}feature/{n}": ModelOutput(sample_kind="atom") for n in model.layer_names}
        for target in model.outputs:
            if target != "forces":
                names[prefix + target] = ModelOutput(sample_kind="system")
        system = atoms_to_system(atoms, module, torch.float64)
        outputs = _to_numpy(module([system], names, None))
        prediction = model.predict([atoms], outputs=[t for t in model.outputs if t != "forces"])
        for target, tensor in prediction.items():
            exported = outputs[prefix + target]
            if target == "energy":  # summed over the atoms by the module
                exported = _energy_map(exported)
            _assert_same(tensor, exported, context.atol, f"export: frame {index} {target}")
        for name, tensor in model.layers([atoms]).items():
            exported = outputs[f"{prefix}feature/{name}"]
            if "o3_lambda" not in tensor.keys.names:  # one block over all atoms
                exported = _by_center(exported, atoms)
            _assert_same(tensor, exported, context.atol, f"export: frame {index} layer {name}")
    return None


def _to_numpy(outputs) -> Dict[str, TensorMap]:
    from .tensormaps import to_metatensor_numpy

    return {name: to_metatensor_numpy(tensor) for name, tensor in outputs.items()}


def _energy_map(tensor: TensorMap) -> TensorMap:
    from .models.base import energy_map

    return energy_map([float(np.asarray(tensor.block().values).sum())])


def _by_center(tensor: TensorMap, atoms: ase.Atoms) -> TensorMap:
    from .tensormaps import atom_tensormap

    block = tensor.block()
    atom = np.asarray(block.samples.column("atom"))
    return atom_tensormap(np.asarray(block.values), np.zeros_like(atom), atom, atoms.numbers[atom])


def _assert_same(expected: TensorMap, actual: TensorMap, atol: float, where: str) -> None:
    """Same values block by block (by key, rows matched by sample)."""
    for key, block in expected.items():
        other = actual.block(_key(expected, key))
        rows = {tuple(int(v) for v in s): i for i, s in enumerate(other.samples.values)}
        order = [rows[tuple(int(v) for v in s)] for s in block.samples.values]
        values = np.asarray(other.values)[order]
        scale = max(float(np.abs(block.values).max()) if block.values.size else 0, 1e-12)
        error = float(np.abs(values - block.values).max()) if block.values.size else 0.0
        assert error <= atol * scale, f"{where} block {_key(expected, key)}: differs by {error:.3g}"


#: the checks of :func:`check_model`, in order
CHECKS: Dict[str, Callable[[Context], Optional[str]]] = {
    "metadata": check_metadata,
    "batches": check_batches,
    "rotation": check_rotation,
    "inversion": check_inversion,
    "permutation": check_permutation,
    "predictions": check_predictions,
    "forces": check_forces,
    "stress": check_stress,
    "unknown element": check_unknown_element,
    "reload": check_reload,
    "export": check_export,
}


def check_model(
    model,
    frames: Sequence[ase.Atoms],
    *,
    atol: float = 1e-6,
    force_atol: float = 1e-4,
    fd_step: float = 1e-4,
    seed: int = 0,
    skip: Sequence[str] = (),
) -> Dict[str, str]:
    """Run every check of the model contract on ``model`` and ``frames``.

    :param atol: tolerance of layers and predictions, relative to the largest
        value of each block (``1e-4`` suits float32 models)
    :param force_atol: tolerance of forces and stress against finite
        differences, relative to their size (at least 1 eV/Å)
    :param fd_step: displacement (Å) and strain of the finite differences
    :param seed: seeds the rotations, the permutation and the moved atoms
    :param skip: names of checks not to run (see :data:`CHECKS`)
    :returns: ``{check: "ok" or "skipped: <reason>"}``
    :raises AssertionError: at the first broken check, naming it
    """
    unknown = [name for name in skip if name not in CHECKS]
    if unknown:
        raise ValueError(f"unknown checks {unknown}; the checks are {list(CHECKS)}")
    context = Context(model, frames, atol, force_atol, fd_step, seed)
    report: Dict[str, str] = {}
    for name, check in CHECKS.items():
        if name in skip:
            report[name] = "skipped: asked"
            continue
        try:
            reason = check(context)
        except AssertionError as error:
            raise AssertionError(f"{model.kind} model, check '{name}': {error}") from None
        report[name] = "ok" if reason is None else f"skipped: {reason}"
    return report


__all__: List[str] = ["CHECKS", "assert_covariant", "check_model", "transformed"]
