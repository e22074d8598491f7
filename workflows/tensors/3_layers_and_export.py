"""Step 3: read the equivariant layers, and export the models.

    python workflows/tensors/3_layers_and_export.py [--quick] [--output DIR]

For each model of step 2: every layer on the structures as
(o3_lambda, o3_sigma, center_type) TensorMaps (DIR/<target>/latents/
equivariant/, and their invariant summaries in .../invariant/); the
covariance of every block of every layer checked on rotated and inverted
copies (equilens.testing.check_model, printed);
a chemiscope file (DIR/<target>.json.gz: predicted and reference dipoles
as arrows, per-atom density coefficients as properties, PCA maps of the
layers); and a metatomic model (DIR/<target>/metatomic.pt, with
equilens::<target> and equilens::feature/<layer> outputs) that runs in ASE.
"""

import sys

import ase.io
from common import TARGETS, arguments, data_folder, model_folder

from equilens.cli import main
from equilens.models import load
from equilens.testing import CHECKS, check_model

if __name__ == "__main__":
    args = arguments(__doc__.splitlines()[0])
    structures = data_folder(args) / "structures.extxyz"
    frames = ase.io.read(structures, ":6")
    for target in TARGETS:
        folder = model_folder(args, target)
        model = str(folder / "model.pt")
        steps = [
            ["latents", model, str(structures), "--output", str(folder / "latents")],
            ["export", model, str(structures), "--output", f"{args.output}/{target}.json.gz",
             "--reference", str(data_folder(args) / f"{target}.mts")],
            ["export-metatomic", model, str(folder / "metatomic.pt")],
        ]  # fmt: skip
        for command in steps:
            code = main(command + ["--overwrite"])
            if code:
                sys.exit(code)
        # Wigner-D covariance of every block of every layer, and inversion
        wanted = ("metadata", "rotation", "inversion")
        report = check_model(load(model), frames, skip=[c for c in CHECKS if c not in wanted])
        print(f"{target}: " + ", ".join(f"{name} {report[name]}" for name in wanted))
