"""The MACE adapter, run inside the MACE environment (mace-torch pins e3nn 0.4).

``tests/test_mace.py`` makes that environment and runs this module in it;
the main environment does not collect it (``tests/conftest.py``). Models are
built here from ``mace.modules`` with seeded weights and saved the way users
save theirs (``torch.save(model, "x.model")``): no file is downloaded.
"""

from __future__ import annotations

import os

import ase
import numpy as np
import pytest
import torch

from equilens.errors import FileFormatError, ModelError
from equilens.models import load
from equilens.models.mace.loading import import_mace
from equilens.so3 import random_rotation
from equilens.testing import assert_covariant, check_model

SPECIES = [1, 8, 26]


def build(hidden: str, max_ell: int, keep_last: bool, dtype=torch.float32, plain: bool = False):
    """A small two-interaction MACE with seeded weights on H, O, Fe."""
    modules = import_mace()
    from e3nn import o3

    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        block = modules.interaction_classes["RealAgnosticResidualInteractionBlock"]
        config = dict(
            r_max=4.5,
            num_bessel=6,
            num_polynomial_cutoff=5,
            max_ell=max_ell,
            interaction_cls=block,
            interaction_cls_first=block,
            num_interactions=2,
            num_elements=3,
            hidden_irreps=o3.Irreps(hidden),
            MLP_irreps=o3.Irreps("8x0e"),
            atomic_energies=np.array([-13.6, -2041.8, -3412.0]),
            avg_num_neighbors=20.0,
            atomic_numbers=SPECIES,
            correlation=2,
            gate=torch.nn.functional.silu,
            radial_MLP=[16, 16],
            keep_last_layer_irreps=keep_last,
        )
        if not plain:
            config.update(atomic_inter_scale=1.0, atomic_inter_shift=0.0)
        model = (modules.MACE if plain else modules.ScaleShiftMACE)(**config)
        with torch.no_grad():  # e3nn zero-initialises some paths: give every path signal
            for parameter in model.parameters():
                if torch.count_nonzero(parameter) == 0:
                    parameter.normal_(0, 0.1)
    finally:
        torch.set_default_dtype(previous)
    return model.eval()


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    model = build("4x0e+4x0o+4x1o+4x1e+4x2e", 2, keep_last=True)
    path = tmp_path_factory.mktemp("mace") / "small.model"
    torch.save(model, path)
    return path


def cell(seed: int = 0) -> ase.Atoms:
    """A periodic 12-atom H/O/Fe cell (a skewed box, random positions)."""
    rng = np.random.default_rng(seed)
    box = np.diag([5.5, 6.0, 6.5]) + rng.normal(0, 0.3, (3, 3))
    positions = rng.uniform(0, 1, (12, 3)) @ box
    return ase.Atoms(numbers=[1, 1, 8, 26] * 3, positions=positions, cell=box, pbc=True)


def moved(atoms: ase.Atoms, matrix: np.ndarray) -> ase.Atoms:
    result = atoms.copy()
    result.positions = atoms.positions @ matrix.T
    result.cell = atoms.cell.array @ matrix.T
    return result


def test_layers_equal_the_unpickled_model(model_file):
    """The model rebuilt from installed code gives the layers and energies
    of mace's own (unsafe) unpickling, bit for bit."""
    from equilens.models.mace.model import MaceModel

    model = load(model_file)
    assert isinstance(model, MaceModel)
    assert model.layer_names == [
        "embedding",
        "message_1",
        "interaction_1",
        "message_2",
        "interaction_2",
        "readout_hidden",
        "output",
    ]
    frames = [cell(0), cell(1)]
    ours = model.layers(frames)
    model.model = torch.load(model_file, weights_only=False)  # our own file: trusted here
    theirs = model.layers(frames)
    for name in model.layer_names:
        assert ours[name].keys == theirs[name].keys, name
        for a, b in zip(ours[name].blocks(), theirs[name].blocks()):
            np.testing.assert_array_equal(a.values, b.values)
    keys = ours["interaction_1"].keys
    assert set(keys.names) == {"o3_lambda", "o3_sigma", "center_type"}
    assert {(int(k["o3_lambda"]), int(k["o3_sigma"])) for k in keys} == {
        (0, 1),
        (0, -1),
        (1, 1),
        (1, -1),
        (2, 1),
    }
    assert ours["interaction_1"].block(0).samples.names == ["system", "atom"]


@pytest.mark.parametrize("seed", [1, 2])
def test_layers_rotate_and_invert_with_wigner_d(model_file, seed):
    """Rotating the input rotates every lambda > 0 block with featomic's
    Wigner-D; inversion multiplies a block by sigma (-1)^lambda."""
    model = load(model_file)
    atoms = cell(seed)
    rotation = random_rotation(seed)
    reference = model.layers([atoms])
    for transform, label in ((rotation, "rotation"), (-np.eye(3), "inversion")):
        changed = model.layers([moved(atoms, transform)])
        for name in model.layer_names:
            assert_covariant(reference[name], changed[name], transform, 1e-4, f"{label} {name}")


def test_a_float64_mace_keeps_the_model_contract(tmp_path):
    """equilens.testing.check_model, as for every family and adapter."""
    path = tmp_path / "f64.model"
    torch.save(build("4x0e+4x1o+4x1e", 2, False, torch.float64), path)
    report = check_model(load(path), [cell(0), cell(1)])
    ran = {name for name, result in report.items() if result == "ok"}
    expected = {"metadata", "batches", "rotation", "inversion", "permutation", "predictions"}
    assert expected | {"forces", "unknown element", "reload"} <= ran, report


def test_predictions_and_protocol(model_file, tmp_path):
    """Energies are invariant, forces are minus the energy gradient, and the
    per-atom output sums to the energy."""
    model = load(model_file)
    atoms = cell(3)
    prediction = model.predict([atoms])
    energy = prediction["energy"].block().values[0, 0]
    forces = prediction["forces"].block().values[:, :, 0]
    rotation = random_rotation(5)
    rotated = model.predict([moved(atoms, rotation)])
    assert rotated["energy"].block().values[0, 0] == pytest.approx(energy, rel=1e-6)
    np.testing.assert_allclose(
        rotated["forces"].block().values[:, :, 0], forces @ rotation.T, atol=1e-3
    )
    output = model.layers([atoms])["output"]
    assert sum(b.values.sum() for b in output.blocks()) == pytest.approx(energy, rel=1e-5)
    torch.save(build("4x0e+4x1o", 2, False, torch.float64), tmp_path / "f64.model")
    double = load(tmp_path / "f64.model")
    step, (atom, axis) = 1e-4, (4, 1)
    energies = []
    for sign in (1, -1):
        shifted = atoms.copy()
        shifted.positions[atom, axis] += sign * step
        energies.append(double.predict([shifted])["energy"].block().values[0, 0])
    force = double.predict([atoms])["forces"].block().values[atom, axis, 0]
    assert force == pytest.approx(-(energies[0] - energies[1]) / (2 * step), abs=1e-6)


def test_plain_mace_and_last_layer_scalars(tmp_path):
    """A plain MACE (no scale/shift) with MACE's default last layer: the
    last interaction holds scalars only, keyed by center_type."""
    path = tmp_path / "plain.model"
    torch.save(build("4x0e+4x1o", 2, keep_last=False, plain=True), path)
    layers = load(f"mace:{path}").layers([cell(0)])
    assert layers["interaction_2"].keys.names == ["center_type"]
    assert "o3_lambda" in layers["interaction_1"].keys.names
    assert layers["message_2"].keys.names[0] == "o3_lambda"  # messages keep max_ell


def test_files_that_would_run_code_are_refused(tmp_path):
    """A file whose unpickling would execute code is refused before it runs,
    including through the fx GraphModule path that MACE files use."""
    from torch.fx.graph_module import reduce_graph_module

    marker = tmp_path / "PWNED"

    class GraphPayload:
        def __reduce__(self):
            source = f"open({str(marker)!r}, 'w').close()\ndef forward(self):\n    return 0\n"
            return (reduce_graph_module, ({"_code": source}, ""))

    class SystemPayload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    for payload in (GraphPayload(), SystemPayload()):
        path = tmp_path / "evil.model"
        torch.save({"model": payload}, path)
        with pytest.raises((FileFormatError, ModelError)) as error:
            load(path)
        assert str(path) in str(error.value) and "\n" not in str(error.value)
        assert not marker.exists()
    torch.save([1, 2, 3], tmp_path / "list.model")
    with pytest.raises(FileFormatError, match="holds a list, not a MACE model"):
        load(tmp_path / "list.model")
    (tmp_path / "text.model").write_text("not a model\n")
    with pytest.raises(FileFormatError, match="text.model: not a readable MACE model file"):
        load(tmp_path / "text.model")
    assert os.environ.get("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD") is None


def test_unknown_element_is_named(model_file):
    strange = cell(0)
    strange.numbers[5] = 29
    with pytest.raises(ModelError, match=r"frame 0 contains Cu"):
        load(model_file).layers([strange])
