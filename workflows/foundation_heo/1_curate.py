"""Step 1: curate a multi-element set and split it by cation arrangement.

    python workflows/foundation_heo/1_curate.py [--quick] [--output DIR]

The pool mixes the GFN1-xTB high-entropy oxides with random cells of 58
elements (data/heo_xtb.extxyz, data/elements_xtb.extxyz); composition
filters keep the equimolar five-cation oxides (equilens data filter:
DIR/data/curated.extxyz, and why every other frame was dropped in
curated.extxyz.dropped.csv); an overview shows what is left (equilens data
overview: DIR/overview/ with the element table, size and energy
distributions, UMAP maps, exemplars and a chemiscope file). Whole starts are
then held out: DIR/data/{train,test,minima,parents}.extxyz.
"""

import sys

import ase.io
from common import DATA, arguments, data_folder, settings, write_config

from equilens.cli import main
from equilens.data.generate.heo import held_out_starts
from equilens.errors import EquilensError
from equilens.storage import check_outputs

POOL = ("heo_xtb.extxyz", "elements_xtb.extxyz")

if __name__ == "__main__":
    args = arguments(__doc__.splitlines()[0])
    folder = data_folder(args)
    folder.mkdir(parents=True, exist_ok=True)
    pool = [atoms for name in POOL for atoms in ase.io.read(DATA / name, ":")]
    ase.io.write(folder / "pool.extxyz", pool)
    curated = folder / "curated.extxyz"
    steps = [
        ["data", "filter", str(folder / "pool.extxyz"), str(curated),
         "--config", str(write_config(args, "curate"))],
        ["data", "overview", str(curated), "--output", f"{args.output}/overview",
         "--exemplars", "4"],
    ]  # fmt: skip
    for command in steps:
        # a rerun of the same mode passes; other settings are refused unless --overwrite
        code = main(command + (["--overwrite"] if args.overwrite else []))
        if code:
            sys.exit(code)

    split = settings(args)["split"]
    minima = ase.io.read(DATA / "heo_xtb.minima.extxyz", ":")
    parts = held_out_starts(ase.io.read(curated, ":"), minima, split["held_out_starts"])
    parts["train"] = parts["train"][:: split["train_every"]]
    parts["test"] = parts["test"][:: split["test_every"]]
    outputs = [folder / f"{name}.extxyz" for name in parts]
    try:  # the split of another mode or setting is not silently replaced
        marker = folder / ".split.run.json"
        check_outputs(marker, split, outputs, args.overwrite, str(folder))()
    except EquilensError as error:
        print(f"equilens: error: {error}", file=sys.stderr)
        sys.exit(2)
    for name, frames in parts.items():
        ase.io.write(folder / f"{name}.extxyz", frames)
    print(
        f"curated {len(ase.io.read(curated, ':'))} of {len(pool)} frames; "
        + ", ".join(f"{name} {len(frames)}" for name, frames in parts.items())
    )
