# ruff: noqa: E501  (a table of cases: one per line reads best)
"""A sweep of bad inputs over every verb: exit codes, one-line errors, memory.

Builds small bad inputs (broken frames, files that are not what they claim,
model files that would need unpickling, absurd settings) in a scratch
folder, runs ``equilens`` on each in its own process, and prints one row per
case: the exit code, whether a traceback was printed, the peak memory of the
process and the last line of its error. Every bad input must end with exit
code 2 and one line naming the culprit; the few valid-but-extreme inputs
(a frame in a huge periodic box) must succeed; no case may grow above
2 GB.

    python benchmarks/bad_inputs.py [--output results/bad_inputs] [--only SUBSTRING]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Tuple

import ase
import ase.io
import numpy as np
from ase.build import bulk, molecule
from ase.calculators.singlepoint import SinglePointCalculator

LIMIT_GB = 2.0

# one case in a child process; prints its peak memory after the command
_MEASURED = """
import resource, subprocess, sys
done = subprocess.run(sys.argv[1:], capture_output=True, text=True, timeout=300)
sys.stderr.write(done.stderr)
print("peak_kB", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(done.returncode)
"""


def _labelled(atoms: ase.Atoms, energy=None, forces=None) -> ase.Atoms:
    energy = -float(len(atoms)) if energy is None else energy
    forces = np.zeros((len(atoms), 3)) if forces is None else forces
    atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
    return atoms


def _inputs(root: Path) -> dict:
    """Good and bad files, a small model, and bad settings files."""
    from equilens.data.examples import iron_water_example

    files = {}
    good = [_labelled(a) for a in iron_water_example(n_frames=3, seed=2)]
    files["good"] = root / "good.extxyz"
    ase.io.write(files["good"], good)

    def variant(name, change):
        frames = [a.copy() for a in good]
        for a, b in zip(frames, good):
            a.calc = SinglePointCalculator(
                a, energy=b.get_potential_energy(), forces=b.get_forces()
            )
        change(frames)
        files[name] = root / f"{name}.extxyz"
        ase.io.write(files[name], frames)

    def nan_position(frames):
        frames[1].positions[2, 0] = np.nan

    def overlap(frames):
        frames[1].positions[4] = frames[1].positions[3] + 0.01

    def nan_energy(frames):
        frames[2].calc.results["energy"] = np.nan

    def inf_forces(frames):
        frames[1].calc.results["forces"][0, 0] = np.inf

    def singular_cell(frames):
        frames[0].cell[2] = frames[0].cell[1]

    def gold(frames):
        frames[2].numbers[0] = 79

    for name, change in [("nan_position", nan_position), ("overlap", overlap),
                         ("nan_energy", nan_energy), ("inf_forces", inf_forces),
                         ("singular_cell", singular_cell), ("gold", gold)]:  # fmt: skip
        variant(name, change)
    huge = bulk("Cu", cubic=True)
    huge.cell = [1e6, 1e6, 1e6]
    files["huge_cell"] = root / "huge_cell.extxyz"
    ase.io.write(files["huge_cell"], [_labelled(huge)])
    water = molecule("H2O")
    water.center(3.0)
    files["no_energy"] = root / "no_energy.extxyz"
    ase.io.write(files["no_energy"], [water, water.copy()])
    text = {"empty": "", "text": "hello\nworld\n", "truncated": good_text(files["good"])}
    for name, content in text.items():
        files[name] = root / f"{name}.extxyz"
        files[name].write_text(content)
    files["binary"] = root / "binary.extxyz"
    files["binary"].write_bytes(np.random.default_rng(0).bytes(4000))
    files["missing"] = root / "missing.extxyz"
    files["folder"] = root / "a_folder"
    files["folder"].mkdir()
    files["afile"] = root / "afile"
    files["afile"].write_text("a file where a folder is expected\n")
    files.update(_models(root))
    return files


def good_text(path: Path) -> str:
    text = path.read_text()
    return text[: len(text) // 2]  # cut in the middle of a frame


def _models(root: Path) -> dict:
    """A small BPNN potential, and model files that must be refused."""
    import torch

    from equilens.data.examples import iron_water_example
    from equilens.descriptors import PRESETS, compute_soap
    from equilens.descriptors.compression import SpeciesPCA
    from equilens.models.bpnn.config import BPNNConfig
    from equilens.models.bpnn.model import Potential

    hypers = PRESETS["small"].to_featomic()
    frames = iron_water_example(n_frames=3, seed=1)
    pca = SpeciesPCA(n_components=8).fit(compute_soap(frames, (1, 8, 26), hypers))
    torch.manual_seed(0)
    model = Potential.build(hypers, pca, BPNNConfig(hidden=(8,))).save(root / "model.pt")
    files = {"model": model}
    files["m_random"] = root / "random.pt"
    files["m_random"].write_bytes(np.random.default_rng(1).bytes(5000))
    files["m_text"] = root / "text.pt"
    files["m_text"].write_text("not a model\n")
    files["m_cut"] = root / "cut.pt"
    files["m_cut"].write_bytes(model.read_bytes()[:3000])
    files["m_list"] = root / "list.pt"
    torch.save([1, 2, 3], files["m_list"])
    files["m_module"] = root / "module.pt"
    torch.save({"equilens": {"kind": "equilens.potential"}, "x": torch.nn.Linear(2, 2)},
               files["m_module"])  # fmt: skip
    files["m_empty"] = root / "empty.pt"
    files["m_empty"].write_bytes(b"")
    return files


def _yaml(root: Path, name: str, text: str) -> str:
    path = root / f"{name}.yaml"
    path.write_text(text)
    return str(path)


def cases(root: Path, f: dict) -> List[Tuple[str, List[str], int]]:
    """``(name, arguments, expected exit code)`` of every case."""
    out: List[Tuple[str, List[str], int]] = []
    bad_data = ["nan_position", "overlap", "nan_energy", "inf_forces", "singular_cell",
                "empty", "text", "truncated", "binary", "missing", "folder"]  # fmt: skip
    for name in bad_data:
        data = str(f[name])
        o = str(root / "out" / name)
        out += [
            (f"data info {name}", ["data", "info", data], 2),
            (f"data filter {name}", ["data", "filter", data, f"{o}/kept.extxyz"], 2),
            (f"data overview {name}", ["data", "overview", data, "--output", f"{o}/ov"], 2),
            (
                f"descriptors {name}",
                ["descriptors", data, "--output", f"{o}/d", "--no-progress"],
                2,
            ),
            (f"latents {name}", ["latents", str(f["model"]), data, "--output", f"{o}/l"], 2),
            (f"export {name}", ["export", str(f["model"]), data, "--output", f"{o}/x.json.gz"], 2),
        ]
        train = _yaml(root, f"train_{name}", f"task: potential\ndata: {{train: {data}}}\n"
                      "training: {epochs: 1}\n")  # fmt: skip
        out.append((f"train {name}", ["train", train, "--output", f"{o}/t", "--no-progress"], 2))
    for name in ("gold",):
        data = str(f[name])
        out += [
            (f"latents {name}", ["latents", str(f["model"]), data, "--output", str(root / "lg")], 2),
            (f"export {name}", ["export", str(f["model"]), data, "--output", str(root / "g.json.gz")], 2),
        ]  # fmt: skip
    out.append(("data info no energy", ["data", "info", str(f["no_energy"])], 2))
    out.append(("data info huge cell (valid)", ["data", "info", str(f["huge_cell"])], 0))
    out.append(("descriptors huge cell (valid)", ["descriptors", str(f["huge_cell"]), "--output",
                str(root / "hc"), "--no-progress", "--species", "29"], 0))  # fmt: skip
    for name in (
        "m_random",
        "m_text",
        "m_cut",
        "m_list",
        "m_module",
        "m_empty",
        "folder",
        "missing",
    ):
        model = str(f[name])
        out += [
            (f"latents model {name}", ["latents", model, str(f["good"]), "--output", str(root / "lm")], 2),
            (f"export model {name}", ["export", model, str(f["good"]), "--output", str(root / "m.json.gz")], 2),
            (f"export-metatomic {name}", ["export-metatomic", model, str(root / "mt.pt")], 2),
            (f"sevenn spec {name}", ["latents", f"sevenn:{model}", str(f["good"]), "--output", str(root / "ls")], 2),
        ]  # fmt: skip
    good = str(f["good"])
    out += _config_cases(root, f, good)
    return out


def _config_cases(root: Path, f: dict, good: str) -> List[Tuple[str, List[str], int]]:
    out = []
    train = {
        "unknown task": "task: magic\n",
        "unknown key": "epochz: 3\n",
        "negative epochs": "training: {epochs: -1}\n",
        "nan learning rate": "training: {learning_rate: .nan}\n",
        "zero batch": "training: {batch_size: 0}\n",
        "components above features": "compression: {n_components: 100000000}\n",
        "validation fraction 1": "data: {validation_fraction: 1.0}\n",
        "empty species": "descriptor: {species: []}\n",
        "negative species": "descriptor: {species: [1, -3]}\n",
        "unknown preset": "descriptor: {preset: huge}\n",
        "hidden zero": "model: {hidden: [0]}\n",
        "unknown activation": "model: {activation: magic}\n",
        "not a mapping": "- 1\n- 2\n",
        "sevenn with model and base": "task: sevenn\nmodel: {channel: 4}\n",
        "metatrain missing mtt": "task: metatrain\nmtt: /nope/mtt\n",
        "mace without mace-torch": "task: mace\n",
        "equivariant lambda_max -1": "task: equivariant_potential\ndescriptor: {lambda_max: -1}\n",
    }
    for name, text in train.items():
        body = text if text.startswith("-") else f"data: {{train: {good}}}\n{text}"
        if "data:" in text and not text.startswith("-"):
            body = text.replace("data: {", f"data: {{train: {good}, ")
        config = _yaml(root, "t_" + name.replace(" ", "_"), body)
        out.append((f"train config {name}", ["train", config, "--output", str(root / "tc"),
                                             "--no-progress"], 2))  # fmt: skip
    finetune = {
        "no finetune section": "",
        "missing base": "finetune: {base_model: nope.pt}\n",
        "bad mode": f"finetune: {{base_model: {f['model']}, mode: bogus}}\n",
        "bad compression": f"finetune: {{base_model: {f['model']}, compression: bogus}}\n",
        "frozen beyond depth": f"finetune: {{base_model: {f['model']}, mode: frozen, frozen_layers: 9}}\n",
        "base refused": f"finetune: {{base_model: {f['m_module']}}}\n",
        "sevenn unknown base": "task: sevenn\nbase_model: 7net-nope\n",
        "sevenn bad loss": "task: sevenn\ntraining: {loss: bogus}\n",
    }  # fmt: skip
    for name, text in finetune.items():
        config = _yaml(root, "f_" + name.replace(" ", "_"), f"data: {{train: {good}}}\n{text}")
        out.append((f"finetune {name}", ["finetune", config, "--output", str(root / "fc"),
                                         "--no-progress"], 2))  # fmt: skip
    relax = {
        "no calculators": "calculators: {}\n",
        "negative fmax": "calculators: {e: xtb}\noptimizer: {fmax: -0.05}\n",
        "zero steps": "calculators: {e: xtb}\noptimizer: {steps: 0}\n",
        "nan rattle": "calculators: {e: xtb}\nrattle: {amplitude: .nan}\n",
        "emt lacks Fe": "calculators: {e: emt}\n",
        "unknown spec": "calculators: {e: magic:thing}\n",
        "refused model": f"calculators: {{e: {f['m_module']}}}\n",
        "empty reference": "calculators: {e: xtb}\nreference: ' '\n",
        "parents count": f"calculators: {{e: xtb}}\nparents: {f['no_energy']}\n",
    }
    for name, text in relax.items():
        config = _yaml(root, "r_" + name.replace(" ", "_"),
                       f"minima: {good}\n{text}output_dir: {root / 'rc'}\n")  # fmt: skip
        out.append((f"relax {name}", ["relax", config, "--no-progress"], 2))
    generate = {
        ("iron-water", "million waters"): "n_water: 1000000\n",
        ("iron-water", "no room for water"): "n_water: 40\n",
        ("iron-water", "huge slab"): "size: [1000, 1000, 10]\n",
        ("iron-water", "zero starts"): "starts: 0\n",
        ("iron-water", "unknown key"): "temperatur: 300\n",
        ("heo", "million cells"): "formula_units: 1000000\n",
        ("heo", "uneven cations"): "formula_units: 21\n",
        ("heo", "negative lattice"): "lattice: -4.0\n",
        ("elements", "million atoms"): "atoms: [8, 3000000]\n",
        ("elements", "unknown element"): "elements: [Xx]\n",
        ("water-tensors", "unknown basis"): "basis: nonsense\nmonomers: 1\ndimers: 0\ntrimers: 0\n",
        (
            "water-tensors",
            "unknown auxbasis",
        ): "auxbasis: nope\nmonomers: 1\ndimers: 0\ntrimers: 0\n",
        ("water-tensors", "nothing"): "monomers: 0\ndimers: 0\ntrimers: 0\n",
    }
    for (kind, name), text in generate.items():
        config = _yaml(root, "g_" + name.replace(" ", "_"), text)
        target = str(root / "gen" / name.replace(" ", "_") / "x.extxyz")
        out.append((f"generate {kind} {name}", ["generate", kind, "--config", config,
                                                "--output", target, "--quiet"], 2))  # fmt: skip
    out.append(("generate output under a file", ["generate", "heo", "--output",
                                                  str(f["afile"] / "x.extxyz")], 2))  # fmt: skip
    study = {
        "unknown model": "models: [sevenn:no-such-model]\n",
        "unknown task entry": "sweep: [{name: a, task: magic}]\n",
        "bad entry key": "sweep: [{name: a, model: {hiden: [8]}}]\n",
        "no seeds": "seeds: []\n",
        "refused external model": f"models: [{f['m_module']}]\n",
    }
    for name, text in study.items():
        config = _yaml(root, "s_" + name.replace(" ", "_"), f"name: bad\n{text}")
        out.append((f"study {name}", ["study", config, "--quiet", "--output", str(root / "sc")], 2))
    lemat = {"broken json": '{"a": 1\n', "not an object": "[1, 2]\n", "empty": ""}
    for name, text in lemat.items():
        source = root / f"lemat_{name.replace(' ', '_')}.jsonl"
        source.write_text(text)
        out.append((f"data lemat {name}", ["data", "lemat", str(root / "lm.extxyz"),
                                           "--source", str(source)], 2))  # fmt: skip
    out += [
        ("data lemat negative limit", ["data", "lemat", str(root / "lm.extxyz"), "--source",
                                       str(root / "lemat_empty.jsonl"), "--limit", "-1"], 2),
        ("data filter nan threshold", ["data", "filter", good, str(root / "k.extxyz"),
                                       "--min-entropy", "nan"], 2),
        ("data filter nothing kept", ["data", "filter", good, str(root / "k.extxyz"),
                                      "--contains", "Au"], 2),
        ("data filter output is a folder", ["data", "filter", good, str(f["folder"])], 2),
        ("data overview no exemplars", ["data", "overview", good, "--exemplars", "0",
                                        "--output", str(root / "ov0")], 2),
        ("descriptors output is a file", ["descriptors", good, "--output", str(f["afile"]),
                                          "--no-progress"], 2),
        ("latents output is a file", ["latents", str(f["model"]), good, "--output",
                                      str(f["afile"])], 2),
        ("train output is a file", ["train", "water", "--output", str(f["afile"])], 2),
        ("compare one input", ["compare", str(f["model"])], 2),
        ("compare missing file", ["compare", str(root / "a.mts"), str(root / "b.mts")], 2),
        ("compare not a tensormap", ["compare", f"a={f['binary']}", f"b={f['m_text']}"], 2),
        ("config show unknown", ["config", "show", "nope"], 2),
        ("train unknown builtin", ["train", "nope_config"], 2),
    ]  # fmt: skip
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="results/bad_inputs")
    parser.add_argument("--only", help="run the cases whose name contains this")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        files = _inputs(root)
        selected = [c for c in cases(root, files) if not args.only or args.only in c[0]]
        start = time.perf_counter()
        for name, arguments, expected in selected:
            command = [sys.executable, "-c", _MEASURED, sys.executable, "-m", "equilens.cli",
                       *arguments]  # fmt: skip
            done = subprocess.run(command, capture_output=True, text=True, cwd=root)
            lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
            errors = [line for line in lines if line.startswith("equilens ")]
            peak = int(done.stdout.rsplit("peak_kB", 1)[-1].split()[0]) / 2**20
            row = {
                "case": name,
                "exit": done.returncode,
                "expected": expected,
                "traceback": any("Traceback" in line for line in lines),
                "peak_GB": round(peak, 2),
                "error": (errors[-1] if errors else (lines[-1] if lines else ""))[:200],
            }
            row["ok"] = (
                row["exit"] == expected
                and not row["traceback"]
                and peak <= LIMIT_GB
                and (expected == 0 or len(errors) == 1)
            )
            rows.append(row)
            print(f"{'ok  ' if row['ok'] else 'FAIL'} exit {row['exit']} {row['peak_GB']:.2f} GB "
                  f"{name}: {row['error']}", flush=True)  # fmt: skip
        wall = time.perf_counter() - start
    bad = [r for r in rows if not r["ok"]]
    zero = [r for r in rows if r["expected"] == 2 and r["exit"] == 0]
    print(f"\n{len(rows)} cases in {wall:.0f} s: {len(rows) - len(bad)} as expected; "
          f"exit 0 on bad input {len(zero)}, tracebacks {sum(r['traceback'] for r in rows)}, "
          f"above {LIMIT_GB} GB {sum(r['peak_GB'] > LIMIT_GB for r in rows)}, "
          f"largest {max(r['peak_GB'] for r in rows):.2f} GB")  # fmt: skip
    Path(args.output).mkdir(parents=True, exist_ok=True)
    (Path(args.output) / "bad_inputs.json").write_text(json.dumps(rows, indent=1))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
