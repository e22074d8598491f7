"""The checks of the model contract that need only the model in this process
(see :mod:`equilens.testing`)."""

from __future__ import annotations

from typing import Dict, Optional

import ase
import numpy as np
import torch
from metatensor import TensorMap

from ..errors import ModelError
from ..so3 import random_rotation
from .symmetry import assert_covariant, block_error, key_dict, should_change, transformed


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
    assert changed or not should_change(context.layers, matrix), (
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
            other = permuted[name].block(key_dict(tensor, key))
            rows = {int(a): i for i, a in enumerate(other.samples.column("atom"))}
            atoms = [rows[int(position[a])] for a in block.samples.column("atom")]
            values = np.asarray(other.values)[atoms]
            error, tolerance = block_error(tensor, key, values, context.atol)
            assert error <= tolerance, f"permutation: layer {name} block {key.values}"
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


def energy(model, atoms: ase.Atoms) -> float:
    """The energy of one structure (eV)."""
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
                moved.append(energy(model, atoms))
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


def check_devices(context: Context) -> Optional[str]:
    model = context.model
    assert model.to("cpu") is model, "devices: to('cpu') does not return the model"
    assert model.device.type == "cpu", f"devices: on {model.device} after to('cpu')"
    if not torch.cuda.is_available():
        return "no CUDA GPU on this machine (the CPU path was checked)"
    try:
        model.to("cuda")
    except ModelError as error:
        assert "\n" not in str(error), "devices: the refusal is not one line"
        return f"CPU only ({error})"
    try:
        assert model.device.type == "cuda", f"devices: on {model.device} after to('cuda')"
        on_gpu = model.layers(context.frames)
        gpu_prediction = _prediction_values(model.predict(context.frames))
    finally:
        model.to("cpu")
    for name, tensor in context.layers.items():
        assert_covariant(tensor, on_gpu[name], np.eye(3), context.atol, f"layer {name} on cuda:")
    cpu_prediction = _prediction_values(model.predict(context.frames))
    for name, tensor in cpu_prediction.items():
        assert_covariant(tensor, gpu_prediction[name], np.eye(3), context.atol, f"{name} on cuda:")
    return None
