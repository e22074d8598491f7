"""SevenNet models (NequIP-style, e3nn) on the model protocol, every layer kept equivariant.

Specs: ``sevenn:7net-0`` (and the other checkpoints shipped in the ``sevenn``
wheel: ``7net-0_22may2024``, ``7net-l3i5``, ``7net-mf-0``) or
``sevenn:PATH`` to a checkpoint. Needs ``pip install 'equilens[sevenn]'``.

Safe loading: sevenn's own loader unpickles whatever the checkpoint holds.
Here the checkpoint is read with ``torch.load(weights_only=True)``, allowing
only numpy's array reconstruction (the shipped checkpoints store three
arrays; object arrays stay refused). The model is rebuilt from its
configuration with sevenn's builder, and the weights are loaded strictly.

Layers (SevenNet-0): ``embedding`` (the species embedding, 128x0e),
``interaction_1`` ... ``interaction_5`` (node features after each
interaction's gate; 128x0e+64x1e+32x2e, the last one 128x0e),
``readout_hidden`` (64x0e, linear), ``output`` (the atomic energy, eV).
Forward hooks copy the node features as each module finishes (sevenn
mutates its data dictionary in place).

Conventions: :mod:`equilens.models.e3nn` (featomic's real
harmonics through a fixed Wigner rotation). Every block has ``o3_sigma = 1``.
SevenNet-0 is built without parity (``is_parity = False``), so its features
are rotation-covariant but have no definite behaviour under inversion
(``parity_equivariant = False``).

Importing sevenn imports torch_geometric, which replaces ``torch.index_select``
and ``torch.select`` with Python wrappers that TorchScript cannot compile;
metatensor-operations scripts its functions when first imported, so any later
``import metatensor.torch`` (the metatomic export, the equilens calculator)
would fail in the same process. ``_sevenn`` puts torch's own functions
back after the import (SevenNet never passes torch_geometric's HashTensor).
"""

from __future__ import annotations

import copy
import os
from collections import OrderedDict
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import ase
import numpy as np
import torch
from metatensor import TensorMap

from ...errors import FileFormatError, ModelError
from ...storage import load_refusal
from ..base import Model, ModelDescription, NetworkOnDevice, prediction_maps
from ..e3nn import irreps_blocks, layers_tensormaps

PathLike = Union[str, "os.PathLike[str]"]
EXTRA = "pip install 'equilens[sevenn]'"
PRETRAINED = {
    "7net-0": "SevenNet_0__11Jul2024/checkpoint_sevennet_0.pth",
    "7net-0_22may2024": "SevenNet_0__22May2024/checkpoint_sevennet_0.pth",
    "7net-l3i5": "SevenNet_l3i5/checkpoint_l3i5.pth",
    "7net-mf-0": "SevenNet_MF_0/checkpoint_sevennet_mf_0.pth",
}


def _sevenn():
    """The sevenn package, imported leaving torch's functions as they were."""
    saved = (torch.index_select, torch.select)
    try:
        import sevenn
        import torch_geometric  # noqa: F401  (patches torch when first imported)
    except ImportError:
        raise ModelError(f"SevenNet models need the sevenn package: {EXTRA}") from None
    finally:
        torch.index_select, torch.select = saved
    return sevenn


def checkpoint_path(spec: str) -> Path:
    """The local file of a shipped checkpoint name, or ``spec`` as a path."""
    path = Path(spec)
    if path.is_file():
        return path
    sevenn = _sevenn()
    key = spec.lower().replace("sevennet", "7net")
    if key not in PRETRAINED:
        raise ModelError(
            f"sevenn:{spec}: not a checkpoint file nor a shipped model ({', '.join(PRETRAINED)})"
        )
    shipped = Path(sevenn.__file__).parent / "pretrained_potentials" / PRETRAINED[key]
    if not shipped.is_file():
        raise ModelError(f"sevenn:{spec}: {shipped} is missing from the installed sevenn")
    return shipped


def read_checkpoint(path: Path) -> dict:
    """A SevenNet checkpoint, read without unpickling anything but numpy arrays."""
    reconstruct = np._core.multiarray._reconstruct  # type: ignore[attr-defined]
    safe = [
        (reconstruct, "numpy.core.multiarray._reconstruct"),  # the name in the shipped files
        reconstruct,
        np.ndarray,
        np.dtype,
        np.dtypes.Float32DType,
        np.dtypes.Float64DType,
        np.dtypes.Int64DType,
    ]
    try:
        with torch.serialization.safe_globals(safe):
            content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types
        raise load_refusal(path, error, "SevenNet checkpoint") from None
    if not isinstance(content, dict) or "config" not in content:
        raise FileFormatError(f"{path}: not a SevenNet checkpoint (no 'config')")
    return content


def model_config(content: dict) -> dict:
    """The configuration of a checkpoint as sevenn completes and patches it
    before building (defaults filled in, old keys updated)."""
    _sevenn()
    from sevenn.checkpoint import _config_cp_routine

    return _config_cp_routine(copy.deepcopy(dict(content["config"])))


def build_model(content: dict, where: str):
    """The ``AtomGraphSequential`` of a checkpoint, built by sevenn from its config."""
    _sevenn()
    import sevenn.scripts.backward_compatibility as compat
    from sevenn.model_build import build_E3_equivariant_model

    config = model_config(content)
    config["_flash_lammps"] = False
    config["use_oeq"] = False
    if config.get("cuequivariance_config", {}).get("use", False) or config.get("use_flash_tp"):
        raise ModelError(f"{where}: checkpoints of the cuEquivariance backend are not read yet")
    model = build_E3_equivariant_model(config)
    state = compat.patch_state_dict_if_old(content["model_state_dict"], config, model)
    model.load_state_dict(state, strict=True)
    return model.eval(), config


class SevenNetModel(NetworkOnDevice, Model):
    """A SevenNet checkpoint: node features of every layer as TensorMaps.

    :param spec: a shipped checkpoint name (``7net-0``) or a checkpoint path
    :param modal: the fidelity of multi-fidelity models (``7net-mf-0``)
    """

    kind = "sevenn"
    parity_equivariant = False

    def __init__(self, spec: str = "7net-0", modal: Optional[str] = None):
        path = checkpoint_path(spec)
        self.spec = spec
        self.model, self.config = build_model(read_checkpoint(path), f"sevenn:{spec}")
        if self.model.modal_map and modal is None:
            raise ModelError(
                f"sevenn:{spec} is multi-fidelity: choose a modal ({list(self.model.modal_map)})"
            )
        self.modal = modal
        self.cutoff = float(self.config["cutoff"])
        self._species = tuple(sorted(int(z) for z in self.model.type_map))
        n_layers = int(self.config["num_convolution_layer"])
        # layer -> (module whose output holds it, key of the data dictionary)
        self.modules = OrderedDict(
            [("embedding", ("onehot_to_feature_x", "x"))]
            + [(f"interaction_{t + 1}", (f"{t}_equivariant_gate", "x")) for t in range(n_layers)]
            + [("readout_hidden", ("reduce_input_to_hidden", "x"))]
            + [("output", ("rescale_atomic_energy", "atomic_energy"))]
        )
        children = dict(self.model.named_children())
        self.irreps: Dict[str, str] = {}
        for name, (module, _) in self.modules.items():
            child = children[module]
            irreps = child.gate.irreps_out if module.endswith("gate") else None
            irreps = irreps if irreps is not None else getattr(child, "irreps_out", None)
            self.irreps[name] = str(irreps) if irreps is not None else "1x0e"
        # the same modules without the force output: features without autograd
        from sevenn.nn.sequential import AtomGraphSequential

        self.features_model = AtomGraphSequential(
            OrderedDict((n, m) for n, m in self.model.named_children() if n != "force_output"),
            cutoff=self.cutoff,
            type_map=self.model.type_map,
            modal_map=self.model.modal_map,
            eval_modal_map=bool(self.model.modal_map),
            data_key_grad=None,
        ).eval()

    @property
    def species(self) -> Tuple[int, ...]:
        return self._species

    @property
    def layer_names(self) -> List[str]:
        return list(self.modules)

    def _batch(self, frames: Sequence[ase.Atoms]):
        from sevenn.atom_graph_data import AtomGraphData
        from sevenn.train.dataload import unlabeled_atoms_to_graph
        from torch_geometric.data import Batch

        graphs = []
        for atoms in frames:
            graph = AtomGraphData.from_numpy_dict(unlabeled_atoms_to_graph(atoms, self.cutoff))
            if self.modal is not None:
                graph["data_modality"] = self.modal
            graphs.append(graph)
        return Batch.from_data_list(graphs)

    def _run(self, frames, names: Sequence[str], forces: bool):
        """The model's output dictionary and the captured layers."""
        captured: Dict[str, torch.Tensor] = {}
        handles = []
        model = self.model if forces else self.features_model
        children = dict(model.named_children())
        for name in names:
            module, key = self.modules[name]

            def hook(_module, _inputs, output, name=name, key=key):
                captured[name] = output[key].detach().clone()

            handles.append(children[module].register_forward_hook(hook))
        try:
            data = self._batch(frames).to(self.device)
            if forces:
                output = model(data)
            else:
                with torch.inference_mode():
                    output = model(data)
        finally:
            for handle in handles:
                handle.remove()
        return output, captured

    def layers(self, frames: Sequence[ase.Atoms], batch_size: int = 8) -> Dict[str, TensorMap]:
        """Every layer for every atom: invariant layers keyed ``center_type``,
        covariant ones ``(o3_lambda, o3_sigma, center_type)``."""
        self.check_species(frames)
        frames = list(frames)
        from e3nn.o3 import Irreps

        pieces: Dict[str, List[dict]] = {name: [] for name in self.modules}
        for start in range(0, len(frames), batch_size):
            _, captured = self._run(frames[start : start + batch_size], list(self.modules), False)
            for name, values in captured.items():
                values = values.reshape(len(values), -1).cpu().numpy()
                pieces[name].append(irreps_blocks(values, Irreps(self.irreps[name]), parity=False))
        return layers_tensormaps(pieces, frames)

    @property
    def outputs(self) -> Tuple[str, ...]:
        return ("energy", "forces")

    def describe(self) -> ModelDescription:
        return ModelDescription(
            self.kind,
            self.species,
            self.cutoff,
            tuple(self.layer_names),
            self.outputs,
            {
                "irreps": dict(self.irreps),
                "model": {k: v for k, v in self.config.items() if _plain(v)},
            },
            {"spec": f"sevenn:{self.spec}", "modal": self.modal},
            source=None if self.modal else f"sevenn:{self.spec}",
        )

    def predict(
        self,
        frames: Sequence[ase.Atoms],
        outputs: Optional[Sequence[str]] = None,
        batch_size: int = 1,
    ) -> Dict[str, TensorMap]:
        """``energy`` and ``forces`` from the full model (its own autograd)."""
        wanted = self.wanted_outputs(outputs)
        self.check_species(frames)
        energies: List[float] = []
        forces: List[np.ndarray] = []
        frames = list(frames)
        for start in range(0, len(frames), batch_size):
            chunk = frames[start : start + batch_size]
            output, _ = self._run(chunk, [], True)
            energies.extend(output["inferred_total_energy"].detach().cpu().reshape(-1).tolist())
            counts = [len(a) for a in chunk]
            forces.extend(
                f.numpy().astype(np.float64)
                for f in torch.split(output["inferred_force"].detach().cpu(), counts)
            )
        return prediction_maps(np.array(energies), forces, wanted)

    def calculator(self):
        """An ASE calculator: energy, forces and (periodic cells) stress from
        one forward and backward pass of the model."""
        from ase.calculators.calculator import Calculator, all_changes

        model = self

        class SevenNetASE(Calculator):
            implemented_properties = ["energy", "free_energy", "forces", "stress"]

            def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
                super().calculate(atoms, properties, system_changes)
                model.check_species([self.atoms])
                output, _ = model._run([self.atoms], [], True)
                energy = float(output["inferred_total_energy"].detach().cpu().reshape(-1)[0])
                self.results = {
                    "energy": energy,
                    "free_energy": energy,
                    "forces": output["inferred_force"].detach().cpu().numpy().astype(np.float64),
                }
                if self.atoms.pbc.all():  # sevenn's stress: -(xx yy zz xy yz zx) -> Voigt
                    stress = -output["inferred_stress"].detach().cpu().reshape(-1).numpy()
                    self.results["stress"] = stress[[0, 1, 2, 4, 5, 3]].astype(np.float64)

        return SevenNetASE()


def _plain(value) -> bool:
    """Whether a checkpoint setting is plain data (numbers, text, lists of them)."""
    if isinstance(value, (bool, int, float, str)):
        return True
    return isinstance(value, (list, tuple)) and all(_plain(v) for v in value)
