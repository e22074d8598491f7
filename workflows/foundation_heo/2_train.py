"""Step 2: fine-tune SevenNet-0 and train an equilens potential on the same frames.

    python workflows/foundation_heo/2_train.py [--quick] [--output DIR]

SevenNet-0 (the foundation model shipped in the sevenn wheel) fine-tuned by
sevenn's own trainer, its per-element energy offsets refitted first
(DIR/sevenn/, as ``equilens finetune DIR/configs/sevenn.yaml``), and an
equilens BPNN trained from scratch (DIR/bpnn/, as ``equilens train
DIR/configs/potential.yaml``); both validated on 15 % of the training
frames and tested on the held-out arrangements. Prints the test errors of
SevenNet-0 zero-shot, fine-tuned, and of the BPNN; writes DIR/errors.json.
"""

import json
from pathlib import Path

from common import arguments, data_folder, write_config

from equilens.models import load_run_config, train

if __name__ == "__main__":
    args = arguments(__doc__.splitlines()[0])
    data = {"train": str(data_folder(args) / "train.extxyz"),
            "test": str(data_folder(args) / "test.extxyz")}  # fmt: skip
    output = Path(args.output)
    summaries = {}
    for section, folder in (("sevenn", "sevenn"), ("potential", "bpnn")):
        path = write_config(
            args, section, data=data, output_dir=str(output / folder),
            **({"cache_dir": str(output / "cache")} if section == "potential" else {}),
        )  # fmt: skip
        config = load_run_config(path)
        _, summaries[section] = train(config, progress=not args.quick, overwrite=args.overwrite)
    errors = {
        "SevenNet-0": summaries["sevenn"]["baselines"]["zero_shot"]["test"],
        "SevenNet-0 fine-tuned": summaries["sevenn"]["metrics"]["test"],
        "BPNN from scratch": summaries["potential"]["metrics"]["test"],
    }
    for label, values in errors.items():
        print(
            f"{label:22s} held-out: {values['energy_rmse_meV_per_atom']:7.1f} meV/atom, "
            f"{values['force_rmse_eV_per_A']:.3f} eV/A"
        )
    (output / "errors.json").write_text(json.dumps(errors, indent=2))
