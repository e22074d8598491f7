"""MACE models on the model protocol: every layer with all its irreps.

Spec: ``mace:PATH`` or a path ending in ``.model`` (what ``mace_run_train``
writes; MACE-MP-0 and MACE-OFF files are of that kind). Needs
``pip install 'equilens[mace]'``; mace-torch pins e3nn 0.4, which SevenNet
cannot use, so the two live in separate environments. The file is opened
without running anything it contains (``mace_loading``).

Layers, in order (``k`` = 1 ... number of interactions):

- ``embedding``: the linear species embedding (scalars);
- ``message_k``: the output of interaction ``k``, MACE's "A" features
  (neighbour messages after the linear mixing, up to ``max_ell``, e.g.
  l = 0 ... 3 for MACE-MP-0 even where the hidden features stop at l = 1);
- ``interaction_k``: the node features after the product basis of
  interaction ``k`` (MACE's "B" features, passed on and read out). MACE's own
  ``get_descriptors`` returns these as one unlabelled array, invariants only
  by default; the last one holds scalars only unless the model was trained
  with ``keep_last_layer_irreps``;
- ``readout_hidden``: the hidden layer of the non-linear readout;
- ``output``: the atomic energy (E0 plus the interaction energy).

Every irrep becomes a block ``(o3_lambda, o3_sigma, center_type)`` in
featomic's convention (:mod:`.e3nn`); MACE has parity, so pseudo-scalars and
pseudo-vectors get ``o3_sigma = -1``. Forward hooks capture the layers during
one forward pass; predictions use MACE's own forces.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import ase
import numpy as np
import torch
from metatensor import TensorMap

from ...errors import ModelError
from ..base import Model, ModelDescription, NetworkOnDevice, prediction_maps
from ..e3nn import Blocks, irreps_blocks, layers_tensormaps
from .loading import import_mace, load_mace


class MaceModel(NetworkOnDevice, Model):
    """A MACE ``.model`` file: node features of every layer as TensorMaps.

    :param path: the ``.model`` file
    :param head: the readout head of multi-head models (default: the first)
    """

    kind = "mace"

    def __init__(self, path: str, head: Optional[str] = None):
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelError(f"{path}: no such MACE model file")
        model: Any = load_mace(self.path)
        self.model = model
        heads = [str(h) for h in getattr(model, "heads", ["Default"])]
        if head is not None and head not in heads:
            raise ModelError(f"{path}: no head {head!r} (heads: {', '.join(heads)})")
        self.heads, self.head = heads, head or heads[0]
        self.cutoff = float(model.r_max)
        self.dtype = next(model.parameters()).dtype
        self._species = tuple(int(z) for z in model.atomic_numbers)
        from e3nn import o3

        # layer -> (submodule, index of its output holding the layer or None, irreps)
        embedding = model.node_embedding.linear.irreps_out
        layers: List[Tuple[str, str, Optional[int], Any]] = [
            ("embedding", "node_embedding", None, embedding)
        ]
        for k, (interaction, product) in enumerate(zip(model.interactions, model.products)):
            layers.append((f"message_{k + 1}", f"interactions.{k}", 0, interaction.target_irreps))
            irreps = product.linear.irreps_out
            layers.append((f"interaction_{k + 1}", f"products.{k}", None, irreps))
        last = len(model.readouts) - 1
        readout = model.readouts[last]
        if hasattr(readout, "non_linearity"):
            hidden = getattr(readout, "hidden_irreps", None) or readout.linear_1.irreps_out
            layers.append(("readout_hidden", f"readouts.{last}.non_linearity", None, hidden))
        self.hooks = {name: (module, index) for name, module, index, _ in layers}
        self.irreps = {name: o3.Irreps(str(irreps)) for name, _, _, irreps in layers}

    @property
    def species(self) -> Tuple[int, ...]:
        return self._species

    @property
    def layer_names(self) -> List[str]:
        return list(self.hooks) + ["output"]

    def _batch(self, frames: Sequence[ase.Atoms]) -> Dict[str, torch.Tensor]:
        """MACE's input: neighbour lists at the model's cutoff, one-hot species."""
        import_mace()
        from mace import data
        from mace.tools import torch_geometric
        from mace.tools.utils import AtomicNumberTable

        table = AtomicNumberTable(list(self._species))
        keys = data.KeySpecification(info_keys={}, arrays_keys={})
        previous = torch.get_default_dtype()
        torch.set_default_dtype(self.dtype)
        try:
            graphs = [
                data.AtomicData.from_config(
                    data.config_from_atoms(atoms, key_specification=keys, head_name=self.head),
                    z_table=table,
                    cutoff=self.cutoff,
                    heads=self.heads,
                )
                for atoms in frames
            ]
        finally:
            torch.set_default_dtype(previous)
        batch = torch_geometric.batch.Batch.from_data_list(graphs).to(self.device)
        return batch.to_dict()

    def _run(self, frames: Sequence[ase.Atoms], forces: bool) -> Tuple[dict, dict]:
        """MACE's output dictionary and the layers captured on the way."""
        captured: Dict[str, torch.Tensor] = {}
        handles = []
        for name, (module, index) in self.hooks.items():

            def hook(_module, _inputs, output, name=name, index=index):
                value = output[index] if index is not None else output
                captured[name] = value.detach().to("cpu", torch.float64).clone()

            handles.append(self.model.get_submodule(module).register_forward_hook(hook))
        try:
            batch = self._batch(frames)
            if forces:
                output = self.model(batch, compute_force=True)
            else:
                with torch.no_grad():
                    output = self.model(batch, compute_force=False)
        finally:
            for handle in handles:
                handle.remove()
        return output, captured

    def layers(self, frames: Sequence[ase.Atoms], batch_size: int = 8) -> Dict[str, TensorMap]:
        """Every layer for every atom: proper-scalar layers keyed
        ``center_type``, the others ``(o3_lambda, o3_sigma, center_type)``."""
        from e3nn import o3

        self.check_species(frames)
        frames = list(frames)
        pieces: Dict[str, List[Blocks]] = {name: [] for name in self.layer_names}
        for start in range(0, len(frames), batch_size):
            output, captured = self._run(frames[start : start + batch_size], False)
            for name, values in captured.items():
                pieces[name].append(irreps_blocks(values.numpy(), self.irreps[name]))
            energy = output["node_energy"].detach().to("cpu", torch.float64).reshape(-1, 1)
            pieces["output"].append(irreps_blocks(energy.numpy(), o3.Irreps("1x0e")))
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
            {"irreps": {name: str(irreps) for name, irreps in self.irreps.items()}},
            {"file": str(self.path), "head": self.head},
            source=f"mace:{self.path}" if self.head == self.heads[0] else None,
        )

    def predict(
        self,
        frames: Sequence[ase.Atoms],
        outputs: Optional[Sequence[str]] = None,
        batch_size: int = 4,
    ) -> Dict[str, TensorMap]:
        """``energy`` and ``forces`` from MACE itself (its own autograd)."""
        wanted = self.wanted_outputs(outputs)
        self.check_species(frames)
        frames = list(frames)
        energies: List[float] = []
        forces: List[np.ndarray] = []
        for start in range(0, len(frames), batch_size):
            chunk = frames[start : start + batch_size]
            output, _ = self._run(chunk, True)
            energies.extend(output["energy"].detach().cpu().double().reshape(-1).tolist())
            split = torch.split(output["forces"].detach().cpu().double(), [len(a) for a in chunk])
            forces.extend(f.numpy() for f in split)
        return prediction_maps(np.array(energies), forces, wanted)
