"""Step 2: train an equivariant network on lambda-SOAP for each target.

    python workflows/tensors/2_train.py [--quick] [--output DIR]

The built-in configurations tensor_dipole, tensor_polarizability and
tensor_density, on the data of step 1: each model's hidden layers are
(o3_lambda, o3_sigma, center_type) blocks, next to a per-block ridge on the
same features (the baseline in metrics.json). Writes DIR/<target>/.
"""

import dataclasses

from common import TARGETS, arguments, data_folder, model_folder

from equilens.models import load_run_config, train
from equilens.training import headline

if __name__ == "__main__":
    args = arguments(__doc__.splitlines()[0])
    data = data_folder(args)
    for target in TARGETS:
        config = load_run_config(f"tensor_{target}")
        sections = dict(
            data=dataclasses.replace(config.data, train=str(data / "structures.extxyz")),
            target=dataclasses.replace(config.target, file=str(data / f"{target}.mts")),
            output_dir=str(model_folder(args, target)),
            cache_dir=str(args.output + "/cache"),
        )
        if args.quick:
            sections["training"] = dataclasses.replace(config.training, epochs=15)
            sections["model"] = dataclasses.replace(config.model, n_components=12, hidden=(16,))
            sections["descriptor"] = dataclasses.replace(config.descriptor, preset="small")
        config = dataclasses.replace(config, **sections)
        _, summary = train(config, progress=not args.quick)
        print(f"{target}: {headline(summary['metrics']['test'])}")
        ridge = summary["baselines"].get("ridge", {}).get("test")
        if ridge:
            print(f"{'':{len(target)}s}  ridge baseline: {headline(ridge)}")
