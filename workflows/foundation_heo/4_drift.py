"""Step 4: how far fine-tuning moved the foundation model's layers, and the summary.

    python workflows/foundation_heo/4_drift.py [--quick] [--output DIR]

Every layer of SevenNet-0 and of its fine-tuned version on the same
held-out frames, compared species by species (GFRE both ways, CKA;
:func:`equilens.analysis.drift.latent_drift`): DIR/drift.png, drift.json.
Then DIR/summary.md, the step 2 and 3 figures side by side in one table
with what they say.
"""

import json
import math
from pathlib import Path

import ase.io
from common import arguments, data_folder, settings

from equilens.analysis.drift import latent_drift
from equilens.export.plots import plot_drift
from equilens.models import load


def verdict(errors, relax, rows):
    """What the figures say, in sentences computed from them."""
    forces = {label: values["force_rmse_eV_per_A"] for label, values in errors.items()}
    best = min(forces, key=forces.get)
    gain = forces["SevenNet-0"] / forces["SevenNet-0 fine-tuned"]
    said = [
        f"- Held-out forces: {best} is the most accurate ({forces[best]:.3f} eV/Å); fine-tuning "
        f"changed SevenNet-0's force error by a factor {1 / gain:.2f} ({forces['SevenNet-0']:.3f} "
        f"-> {forces['SevenNet-0 fine-tuned']:.3f} eV/Å)."
    ]
    for task in sorted({task for tasks in relax.values() for task in tasks}):
        rmsd = {
            label: tasks[task]["rmsd_median_A"] for label, tasks in relax.items() if task in tasks
        }
        closest = min(rmsd, key=rmsd.get)
        converged = [label for label, tasks in relax.items()
                     if task in tasks and tasks[task]["converged_fraction"] < 1]  # fmt: skip
        said.append(
            f"- {task}: {closest} relaxes closest to the xTB minima (median RMSD "
            f"{rmsd[closest]:.3f} Å)"
            + (
                f"; not every relaxation converged for {', '.join(converged)}."
                if converged
                else "."
            )
        )
    moved = [row for row in rows if row.get("skipped") is None]
    if moved:
        key = "cka_fine-tuned_SevenNet-0"
        most = min(moved, key=lambda row: row[key])
        said.append(
            f"- Fine-tuning moved layer {most['layer']} the most (CKA {most[key]:.2f} with the "
            f"base; 1 is unchanged up to rotation and scale); CKA per layer: "
            + ", ".join(f"{row['layer']} {row[key]:.2f}" for row in moved)
            + "."
        )
    return said


if __name__ == "__main__":
    args = arguments(__doc__.splitlines()[0])
    output = Path(args.output)
    frames = ase.io.read(data_folder(args) / "test.extxyz", f":{settings(args)['drift']['frames']}")
    models = {"SevenNet-0": load("sevenn:7net-0"),
              "fine-tuned": load(f"sevenn:{output / 'sevenn' / 'model.pth'}")}  # fmt: skip
    pairs = [("fine-tuned", "SevenNet-0")]
    rows = latent_drift(models, frames, pairs)
    title = f"SevenNet-0 fine-tuned on the oxides vs SevenNet-0 ({len(frames)} held-out frames)"
    plot_drift(rows, pairs, output / "drift.png", title)
    (output / "drift.json").write_text(json.dumps(rows, indent=2))

    errors = json.loads((output / "errors.json").read_text())
    relax = json.loads((output / "relax" / "summary.json").read_text())
    lines = [
        "# Foundation model or from scratch: high-entropy oxides (GFN1-xTB)", "",
        "| model | held-out energy (meV/atom) | forces (eV/Å) | task | converged | RMSD (Å) "
        "| xTB E - E_min (meV/atom) | steps |",
        "|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for label, values in errors.items():
        for task, entry in relax.get(label, {}).items():
            above = entry.get("energy_above_minimum_median_meV_per_atom", math.nan)
            lines.append(
                f"| {label} | {values['energy_rmse_meV_per_atom']:.1f} | "
                f"{values['force_rmse_eV_per_A']:.3f} | {task} | "
                f"{entry['converged_fraction']:.0%} | {entry['rmsd_median_A']:.3f} | "
                f"{above:.1f} | {entry['steps_median']:.0f} |"
            )
    lines += ["", *verdict(errors, relax, rows), "",
              "Figures: relax/relaxation.png (RMSD, energies and steps per model), drift.png "
              "(GFRE and CKA per layer); chemiscope: relax/relaxed.json.gz, "
              "overview/overview.json.gz.", ""]  # fmt: skip
    (output / "summary.md").write_text("\n".join(lines))
    print("\n".join(lines[2:]))
    print(f"-> {output / 'summary.md'}, {output / 'drift.png'}")
