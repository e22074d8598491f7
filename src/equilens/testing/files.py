"""The checks of the model contract that leave the process or the model
class: reload in a fresh process, and the metatomic export (see
:mod:`equilens.testing`)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, Optional

import ase
import ase.io
import numpy as np
from metatensor import TensorMap

from ..errors import ModelError
from .checks import Context
from .symmetry import block_error, key_dict

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
            for index, key in enumerate(tensor.keys):
                values = fresh[f"{name}/{index}"]
                error, tolerance = block_error(tensor, key, values, context.atol)
                assert error <= tolerance, (
                    f"reload: layer {name} block {key_dict(tensor, key)}: differs by {error:.3g} "
                    f"(tolerance {tolerance:.3g})"
                )
    return None


def check_export(context: Context) -> Optional[str]:
    import torch
    from metatomic.torch import ModelOutput

    from ..models.calculator import atoms_to_system
    from ..models.registry import family, metatomic_model

    model = context.model
    if family(model.kind).export is None:
        return f"{model.kind} models are not exported"
    # compiled as metatomic saves it (what ASE and MD engines run)
    module = torch.jit.script(metatomic_model(model).module)
    for index, atoms in enumerate(context.frames):
        native = model.layers([atoms])
        names = {_layer_output(n, t): ModelOutput(sample_kind="atom") for n, t in native.items()}
        targets = [t for t in model.outputs if t != "forces"]
        for target in targets:
            names[_target_output(target)] = ModelOutput(sample_kind="system")
        system = atoms_to_system(atoms, module, torch.float64)
        outputs = _to_numpy(module([system], names, None))
        for target, tensor in model.predict([atoms], outputs=targets).items():
            exported = outputs[_target_output(target)]
            if target == "energy":  # summed over the atoms by the module
                exported = _energy_map(exported)
            _assert_same(tensor, exported, context.atol, f"export: frame {index} {target}")
        for name, tensor in native.items():
            exported = outputs[_layer_output(name, tensor)]
            if "o3_lambda" not in tensor.keys.names:  # one block over all atoms
                exported = _by_center(exported, atoms)
            _assert_same(tensor, exported, context.atol, f"export: frame {index} layer {name}")
    return None


def _layer_output(name: str, tensor: TensorMap) -> str:
    """The exported output of a layer: ``feature/<layer>`` for an invariant
    layer, ``equilens::feature/<layer>`` for its equivariant blocks."""
    return ("equilens::" if "o3_lambda" in tensor.keys.names else "") + f"feature/{name}"


def _target_output(target: str) -> str:
    return target if target == "energy" else f"equilens::{target}"


def _to_numpy(outputs) -> Dict[str, TensorMap]:
    from ..tensormaps import to_metatensor_numpy

    return {name: to_metatensor_numpy(tensor) for name, tensor in outputs.items()}


def _energy_map(tensor: TensorMap) -> TensorMap:
    from ..models.base import energy_map

    return energy_map(np.array([float(np.asarray(tensor.block().values).sum())]))


def _by_center(tensor: TensorMap, atoms: ase.Atoms) -> TensorMap:
    from ..tensormaps import atom_tensormap

    block = tensor.block()
    atom = np.asarray(block.samples.column("atom"))
    return atom_tensormap(np.asarray(block.values), np.zeros_like(atom), atom, atoms.numbers[atom])


def _assert_same(expected: TensorMap, actual: TensorMap, atol: float, where: str) -> None:
    """Same values block by block (by key, rows matched by sample)."""
    for key, block in expected.items():
        other = actual.block(key_dict(expected, key))
        rows = {tuple(int(v) for v in s): i for i, s in enumerate(other.samples.values)}
        order = [rows[tuple(int(v) for v in s)] for s in block.samples.values]
        values = np.asarray(other.values)[order]
        error, tolerance = block_error(expected, key, values, atol)
        assert error <= tolerance, (
            f"{where} block {key_dict(expected, key)}: differs by {error:.3g} "
            f"(tolerance {tolerance:.3g})"
        )
