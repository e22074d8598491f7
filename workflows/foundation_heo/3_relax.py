"""Step 3: relax rattled minima and parent crystals with every model.

    python workflows/foundation_heo/3_relax.py [--quick] [--output DIR]

``equilens relax DIR/configs/relax.yaml``: rattled copies of the held-out
minima relaxed at fixed cell (in distribution) and the unrelaxed parent
crystals relaxed with their cell (out of distribution), by SevenNet-0,
SevenNet-0 fine-tuned and the BPNN, each result scored by a GFN1-xTB single
point against the xTB minimum: RMSD, energy above the minimum, steps,
convergence, time per step. Writes DIR/relax/ (relaxations.csv,
summary.json, relaxation.png, relaxed.json.gz for chemiscope).
"""

import math
from pathlib import Path

from common import arguments, data_folder, write_config

from equilens.config import from_yaml
from equilens.relax.config import RelaxConfig
from equilens.relax.run import run_relax

if __name__ == "__main__":
    args = arguments(__doc__.splitlines()[0])
    output = Path(args.output)
    path = write_config(
        args, "relax",
        minima=str(data_folder(args) / "minima.extxyz"),
        parents=str(data_folder(args) / "parents.extxyz"),
        calculators={
            "SevenNet-0": "sevenn:7net-0",
            "SevenNet-0 fine-tuned": f"sevenn:{output / 'sevenn' / 'model.pth'}",
            "BPNN from scratch": str(output / "bpnn" / "model.pt"),
        },
        output_dir=str(output / "relax"),
    )  # fmt: skip
    config = from_yaml(RelaxConfig, path)
    summary = run_relax(config, progress=not args.quick, overwrite=args.overwrite)
    for label, tasks in summary.items():
        for task, entry in tasks.items():
            above = entry.get("energy_above_minimum_median_meV_per_atom", math.nan)
            print(
                f"{label:22s} {task:20s} converged {entry['converged_fraction']:4.0%}, "
                f"RMSD {entry['rmsd_median_A']:.3f} A, E - E_min {above:8.1f} meV/atom, "
                f"{entry['steps_median']:.0f} steps, {1000 * entry['seconds_per_step_median']:.0f} "
                "ms/step"
            )
