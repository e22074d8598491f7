"""GFRE, GFRD and CKA from chunked statistics equal the in-memory values."""

import json

import numpy as np
import pytest
from sklearn.model_selection import KFold
from skmatter.metrics import global_reconstruction_distortion, global_reconstruction_error

from equilens.analysis.estimators import SKMATTER_RANDOM_STATE, default_estimator
from equilens.analysis.measures import linear_cka
from equilens.analysis.reconstruction import global_reconstruction_distortion_thin
from equilens.analysis.streaming import (
    StreamingComparison,
    assign_parts,
    compare_streaming,
    split_indices,
)
from equilens.errors import EquilensError


def _sets(n=1200, seed=1):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, 10))
    b = np.tanh(a @ rng.normal(size=(10, 6))) + 0.05 * rng.normal(size=(n, 6))
    # nearly collinear columns and a large offset: the cutoff and centring matter
    c = np.hstack([a[:, :3] + 1e-7 * rng.normal(size=(n, 3)), rng.normal(size=(n, 9))]) + 40.0
    return {"a": a, "b": b, "c": c}


def _skmatter_parts(n, train):
    """Parts reproducing scikit-matter's split: its 2 folds of the training rows."""
    fold1, fold2 = next(KFold(2, shuffle=True, random_state=SKMATTER_RANDOM_STATE).split(train))
    parts = np.full(n, 2)
    parts[train[fold1]], parts[train[fold2]] = 0, 1
    return parts


def test_equal_to_scikit_matter_in_memory():
    sets = _sets()
    n = len(sets["a"])
    train = np.sort(np.random.default_rng(0).permutation(n)[: n // 2])
    test = np.setdiff1d(np.arange(n), train)
    parts = _skmatter_parts(n, train)
    streaming = StreamingComparison(buffer_rows=100)
    for start in range(0, n, 250):
        rows = slice(start, start + 250)
        streaming.partial_fit({k: v[rows] for k, v in sets.items()}, parts=parts[rows])
    result = streaming.result()
    assert (result.n_train, result.n_test, result.n_samples) == (len(train), len(test), n)
    arrays = list(sets.values())
    for i, x in enumerate(arrays):
        for j, y in enumerate(arrays):
            split = dict(train_idx=train, test_idx=test)
            gfre = global_reconstruction_error(x, y, **split)  # scikit-matter's own ridge
            gfrd = global_reconstruction_distortion_thin(
                x, y, estimator=default_estimator(), **split
            )
            assert result.matrices["gfre"][i, j] == pytest.approx(gfre, rel=1e-7, abs=1e-9)
            assert result.matrices["gfrd"][i, j] == pytest.approx(gfrd, rel=1e-6, abs=1e-6)
            assert result.matrices["cka"][i, j] == pytest.approx(linear_cka(x, y), rel=1e-6)
    # and scikit-matter's padded GFRD on one pair
    padded = global_reconstruction_distortion(arrays[1], arrays[0], train_idx=train, test_idx=test)
    assert result.matrices["gfrd"][1, 0] == pytest.approx(padded, rel=1e-6)
    # the measures see the difference between related and unrelated sets
    assert result.matrices["gfre"][0, 1] < 0.5 < result.matrices["gfre"][1, 2]


def test_chunking_and_merging_do_not_change_the_values():
    sets = _sets(n=900, seed=3)
    whole = compare_streaming([sets], seed=5)
    small = compare_streaming(
        ({k: v[s : s + 37] for k, v in sets.items()} for s in range(0, 900, 37)), seed=5
    )
    first = StreamingComparison(seed=5).partial_fit({k: v[:400] for k, v in sets.items()})
    second = StreamingComparison(seed=5)  # the rows' global positions decide their part
    second.partial_fit({k: v[400:] for k, v in sets.items()}, start=400)
    merged = first.merge(second).result()
    for other in (small, merged):
        for measure in whole.matrices:
            np.testing.assert_allclose(
                other.matrices[measure], whole.matrices[measure], rtol=1e-8, atol=1e-7
            )
    # the seeded split: a function of the row, about half of the rows train
    parts = assign_parts(0, 900, 0.5, 5)
    train, test = split_indices(parts)
    assert abs(len(train) - 450) < 60 and len(train) + len(test) == 900
    assert np.array_equal(parts[100:200], assign_parts(100, 200, 0.5, 5))
    assert not np.array_equal(parts, assign_parts(0, 900, 0.5, 6))


def test_bad_chunks_are_named():
    streaming = StreamingComparison()
    streaming.partial_fit({"a": np.ones((5, 2)), "b": np.zeros((5, 3))})
    with pytest.raises(EquilensError, match="feature set 'b': chunk of shape"):
        streaming.partial_fit({"a": np.ones((5, 2)), "b": np.zeros((5, 4))})
    with pytest.raises(EquilensError, match="chunk has sets"):
        streaming.partial_fit({"b": np.zeros((5, 3)), "a": np.ones((5, 2))})
    with pytest.raises(EquilensError, match="'a' contains NaN"):
        streaming.partial_fit({"a": np.full((5, 2), np.nan), "b": np.zeros((5, 3))})
    constant = StreamingComparison()
    rng = np.random.default_rng(0)
    constant.partial_fit({"a": rng.normal(size=(40, 2)), "b": np.ones((40, 3))})
    with pytest.raises(EquilensError, match="feature set 'b' is constant"):
        constant.result()
    with pytest.raises(EquilensError, match="unknown streaming measures"):
        StreamingComparison(measures=("lfre",))


def test_chunked_latents_and_streaming_compare(make_potential, tmp_path, capsys):
    import ase.io

    from equilens.analysis.latents import latents, load_latents
    from equilens.cli import main
    from equilens.data.examples import iron_water_example

    potential = make_potential(8, (6, 5), seed=1)
    frames = iron_water_example(n_frames=7, seed=4)
    potential.save(tmp_path / "model.pt")
    ase.io.write(tmp_path / "frames.extxyz", frames)
    command = ["latents", str(tmp_path / "model.pt"), str(tmp_path / "frames.extxyz")]
    assert main(command + ["--output", str(tmp_path / "lat"), "--chunk-frames", "3"]) == 0
    assert "in 3 chunks" in capsys.readouterr().out
    index = json.loads((tmp_path / "lat" / "layers.json").read_text())
    assert index["chunks"] == ["chunk-00000", "chunk-00001", "chunk-00002"]
    # joined, the chunks are the latents of all frames at once (global system indices)
    joined, direct = load_latents(tmp_path / "lat"), latents(potential, frames)
    for name, tensor in direct.items():
        for key, block in tensor.items():
            other = joined[name].block(key)
            assert other.samples == block.samples
            # float32: a chunk's SOAP and matrix products run on fewer rows, so
            # BLAS may sum in another order (a few ulps of values of order 1)
            np.testing.assert_allclose(other.values, block.values, rtol=1e-5, atol=1e-6)

    out = tmp_path / "cmp"
    assert main(["compare", str(tmp_path / "lat"), "--streaming", "--per-species",
                 "--output", str(out)]) == 0  # fmt: skip
    matrices = json.loads((out / "center_type_8" / "matrices.json").read_text())
    assert matrices["names"] == ["lat/input", "lat/hidden_1", "lat/hidden_2", "lat/output"]
    assert set(matrices["matrices"]) == {"gfre", "gfrd", "cka"}
    # the same species-8 CKA as in memory over all its atoms
    oxygen = {n: t.block({"center_type": 8}).values for n, t in direct.items()}
    cka = np.array(matrices["matrices"]["cka"])
    assert cka[0, 1] == pytest.approx(linear_cka(oxygen["input"], oxygen["hidden_1"]), rel=1e-6)
    assert np.allclose(np.diag(np.array(matrices["matrices"]["gfre"])), 0.0, atol=1e-6)
    # one-line refusals (exit code 2)
    capsys.readouterr()
    refused = ["compare", str(tmp_path / "lat"), "--streaming", "--measures", "lfre"]
    assert main(refused + ["--output", str(tmp_path / "x")]) == 2
    assert "--streaming computes gfre, gfrd, cka only" in capsys.readouterr().err
    streaming = ["compare", str(tmp_path / "lat"), "--streaming", "--scheduler", "local:2"]
    assert main(streaming + ["--output", str(tmp_path / "y")]) == 2
    assert "--streaming computes no LFRE" in capsys.readouterr().err
    files = ["compare", str(tmp_path / "model.pt"), str(tmp_path / "lat"), "--streaming"]
    assert main(files + ["--output", str(tmp_path / "y")]) == 2
    assert "reads latents folders, not files" in capsys.readouterr().err


def _chunk_values(folder):
    from equilens.analysis.latents import load_latents

    return {
        (name, int(key.values[0])): block.values.copy()
        for name, tensor in load_latents(folder).items()
        for key, block in tensor.items()
    }


def test_chunked_latents_resume_where_they_stopped(make_potential, tmp_path, capsys):
    """A chunk already written for the same frames is kept: after a chunk
    is lost (an interrupted run), a rerun writes that chunk alone, and the
    latents are those of one uninterrupted run."""
    import ase.io

    from equilens.cli import main
    from equilens.data.examples import iron_water_example

    make_potential(8, (6,), seed=2).save(tmp_path / "model.pt")
    ase.io.write(tmp_path / "frames.extxyz", iron_water_example(n_frames=7, seed=5))
    command = ["latents", str(tmp_path / "model.pt"), str(tmp_path / "frames.extxyz"),
               "--chunk-frames", "3", "--output", str(tmp_path / "lat")]  # fmt: skip
    assert main(command) == 0
    whole = _chunk_values(tmp_path / "lat")
    kept = {p: p.stat().st_mtime_ns for p in (tmp_path / "lat").glob("chunk-0000[02]/*.mts")}
    for path in (tmp_path / "lat" / "chunk-00001").iterdir():
        path.unlink()  # lost before its layers.json was written
    assert main(command) == 0
    assert {p: p.stat().st_mtime_ns for p in kept} == kept  # not evaluated again
    assert (tmp_path / "lat" / "chunk-00001" / "layers.json").is_file()
    resumed = _chunk_values(tmp_path / "lat")
    assert resumed.keys() == whole.keys()
    assert all(np.array_equal(resumed[k], whole[k]) for k in whole)
    capsys.readouterr()
    alone = ["latents", str(tmp_path / "model.pt"), str(tmp_path / "frames.extxyz"),
             "--scheduler", "local:2", "--output", str(tmp_path / "x")]  # fmt: skip
    assert main(alone) == 2
    assert "--scheduler runs chunks of frames as tasks: add --chunk-frames N" in (
        capsys.readouterr().err
    )
