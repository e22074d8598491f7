"""chemiscope export: content, validation by chemiscope, and rendering in Chromium."""

import numpy as np
import pytest

from equilens.data import Dataset
from equilens.data.examples import iron_water_example
from equilens.errors import EquilensError
from equilens.export.chemiscope import export_chemiscope, validate_chemiscope
from equilens.export.potential import export_potential


@pytest.fixture(scope="module")
def dataset():
    frames = iron_water_example(n_frames=3, seed=2)
    rng = np.random.default_rng(0)
    return Dataset(
        frames=frames,
        energies=rng.normal(size=len(frames)),
        forces=[rng.normal(size=(len(f), 3)) for f in frames],
    )


@pytest.fixture(scope="module")
def potential(make_potential):
    return make_potential(8, (16, 16))


@pytest.fixture(scope="module")
def exported(tmp_path_factory, potential, dataset):
    path = tmp_path_factory.mktemp("chemiscope") / "example.json.gz"
    export_potential(path, potential, dataset, projections=("pca", "pcovr"))
    return path


def test_export_contents(exported, potential, dataset):
    from sklearn.decomposition import PCA

    from equilens.analysis.latents import latents
    from equilens.tensormaps import stack_blocks

    data = validate_chemiscope(exported)  # chemiscope's own checks pass
    n_atoms = dataset.n_atoms
    assert len(data["structures"]) == len(dataset)
    assert len(data["environments"]) == n_atoms
    atom = {k: v for k, v in data["properties"].items() if v["target"] == "atom"}
    structure = {k: v for k, v in data["properties"].items() if v["target"] == "structure"}
    assert all(len(v["values"]) == n_atoms for v in atom.values())
    assert all(len(v["values"]) == len(dataset) for v in structure.values())
    for layer in ("input", "hidden_1", "hidden_2"):
        for method in ("PCA", "PCOVR"):
            assert f"{layer} {method}[1]" in atom and f"{layer} {method}[2]" in atom
    assert {"species", "atomic energy", "force error", "predicted force"} <= set(atom)
    assert {"reference energy", "predicted energy", "energy error"} <= set(structure)
    assert set(data["shapes"]) == {"reference forces", "predicted forces"}
    assert data["settings"]["map"]["x"]["property"] == "input PCA[1]"
    assert data["settings"]["map"]["color"]["property"] == "species"
    assert data["settings"]["structure"][0]["environments"]["activated"]
    assert "Hyper-parameters" in data["meta"]["description"]

    # the map is the PCA of the layer (up to the sign of each axis and rounding)
    layer, _ = stack_blocks(latents(potential, dataset.frames, per_species=False)["hidden_1"], "h")
    centred = (layer - layer.mean(0)) / np.sqrt(((layer - layer.mean(0)) ** 2).sum(1).mean())
    expected = PCA(n_components=2).fit_transform(centred)
    for axis in range(2):
        ours = np.array(atom[f"hidden_1 PCA[{axis + 1}]"]["values"])
        sign = np.sign(ours @ expected[:, axis])
        assert np.allclose(sign * ours, expected[:, axis], atol=2e-3 * np.abs(ours).max())

    # atomic energies add up to the predicted energy of each structure
    sizes = np.array([len(f) for f in dataset.frames])
    atomic = np.array(atom["atomic energy"]["values"])
    summed = np.add.reduceat(atomic, np.concatenate([[0], np.cumsum(sizes)[:-1]]))
    predicted = np.array(structure["predicted energy"]["values"]) * sizes
    assert np.allclose(summed, predicted, atol=1e-3 * np.abs(atomic).max() * sizes.max())

    # force error = |predicted - reference| for the first atom
    first = data["shapes"]["reference forces"]["parameters"]["atom"][0]["vector"]
    assert np.allclose(first, dataset.forces[0][0], atol=1e-3)
    # positions rounded to 1e-4 Å
    x = np.array(data["structures"][0]["x"])
    assert np.allclose(x, np.round(x, 4)) and np.allclose(
        x, dataset.frames[0].positions[:, 0], atol=1e-4
    )


def test_species_selection(tmp_path, potential, dataset):
    path = export_potential(
        tmp_path / "oxygen.json", potential, dataset, species=[8], forces=False, cutoff=4.0
    )
    data = validate_chemiscope(path)
    n_oxygen = sum(int((f.numbers == 8).sum()) for f in dataset.frames)
    assert len(data["environments"]) == n_oxygen
    assert {e["cutoff"] for e in data["environments"]} == {4.0}
    assert set(data["properties"]["species"]["values"]) == {"O"}
    assert all(
        len(v["values"]) == n_oxygen for v in data["properties"].values() if v["target"] == "atom"
    )
    assert "shapes" not in data or not data["shapes"]


def test_dipole_arrows_and_polarizability_ellipsoids(tmp_path):
    from ase.build import molecule

    frames = []
    rng = np.random.default_rng(1)
    for _ in range(4):
        water = molecule("H2O")
        water.rattle(0.05, seed=int(rng.integers(1000)))
        frames.append(water)
    dipoles = rng.normal(size=(4, 3))
    a = rng.normal(size=(4, 3, 3))
    polarizabilities = a @ a.transpose(0, 2, 1) + 3 * np.eye(3)
    path = export_chemiscope(
        tmp_path / "tensors.json.gz",
        frames,
        structure_properties={"dipole norm": np.linalg.norm(dipoles, axis=1)},
        structure_arrows={"dipole": dipoles},
        structure_ellipsoids={"polarizability": polarizabilities},
        units={"dipole norm": "e Å"},
    )
    data = validate_chemiscope(path)
    assert data["shapes"]["dipole"]["kind"] == "arrow"
    assert np.allclose(
        data["shapes"]["dipole"]["parameters"]["structure"][2]["vector"], dipoles[2], atol=1e-3
    )
    ellipsoid = data["shapes"]["polarizability"]
    assert ellipsoid["kind"] == "ellipsoid" and len(ellipsoid["parameters"]["structure"]) == 4
    assert data["properties"]["dipole norm"]["units"] == "e Å"
    # without layers the map falls back to the species
    assert data["settings"]["map"]["x"]["property"] == "species"


def test_bad_inputs_are_named(tmp_path, dataset):
    frames = dataset.frames
    with pytest.raises(EquilensError, match="must end in"):
        export_chemiscope(tmp_path / "out.txt", frames)
    with pytest.raises(EquilensError, match="frame 1 has 2 values"):
        export_chemiscope(
            tmp_path / "a.json",
            frames,
            atom_properties={"q": [np.zeros(len(frames[0])), [0, 1], np.zeros(len(frames[2]))]},
        )
    with pytest.raises(EquilensError, match="'q' contains NaN"):
        values = np.zeros(dataset.n_atoms)
        values[3] = np.nan
        export_chemiscope(tmp_path / "a.json", frames, atom_properties={"q": values})
    with pytest.raises(EquilensError, match="species \\[79\\]"):
        export_chemiscope(tmp_path / "a.json", frames, species=[79])
    with pytest.raises(EquilensError, match="not symmetric"):
        tensors = np.tile(np.arange(9.0).reshape(3, 3), (len(frames), 1, 1))
        export_chemiscope(tmp_path / "a.json", frames, structure_ellipsoids={"alpha": tensors})
    with pytest.raises(EquilensError, match="frame 0 needs finite"):
        export_chemiscope(tmp_path / "a.json", frames, atom_arrows={"f": [np.zeros((2, 3))] * 3})
    with pytest.raises(EquilensError, match="no such atom property"):
        export_chemiscope(tmp_path / "a.json", frames, color="charge")
    with pytest.raises(EquilensError, match="property 'u' is given twice"):
        export_chemiscope(
            tmp_path / "a.json",
            frames,
            atom_properties={"u": np.zeros(dataset.n_atoms)},
            structure_properties={"u": np.zeros(len(frames))},
        )
    assert not list(tmp_path.glob("*.json"))  # nothing half-written


def test_cli_export(tmp_path, potential, dataset):
    import ase.io

    from equilens.cli import main

    model = potential.save(tmp_path / "model.pt")
    frames = [f.copy() for f in dataset.frames]
    ase.io.write(tmp_path / "frames.xyz", frames)
    output = tmp_path / "out" / "frames.json.gz"
    code = main(
        ["export", str(model), str(tmp_path / "frames.xyz"), "--output", str(output), "--html"]
    )
    assert code == 0
    data = validate_chemiscope(output)
    assert len(data["environments"]) == dataset.n_atoms
    assert (tmp_path / "out" / "frames.html").stat().st_size > 1000


def test_renders_in_headless_chromium(chromium, exported, dataset, tmp_path):
    """The exported file loads in chemiscope's own viewer, offline, with WebGL."""
    from matplotlib.image import imread

    from equilens.export.page import standalone_html

    page = standalone_html(exported, tmp_path / "page.html")
    screenshot = tmp_path / "screenshot.png"
    status = chromium(page, screenshot)
    assert status.get("loaded"), status
    assert status["points"] == dataset.n_atoms
    assert status["structures"] == len(dataset)
    assert status["structure"] == 0 and status["active"] == 0
    assert status["info"].endswith(" 0")
    image = imread(screenshot)[..., :3]
    assert image.shape[0] > 500 and image.shape[1] > 1000
    ink = np.any(image < 0.95, axis=2)
    assert ink.mean() > 0.05  # not a blank page
    # both panels drew something: the map (left) and the 3D viewer (right)
    assert ink[:, : image.shape[1] // 2].mean() > 0.02
    assert ink[:, image.shape[1] // 2 :].mean() > 0.02
    assert len(np.unique((image * 255).astype(np.uint8).reshape(-1, 3), axis=0)) > 100
