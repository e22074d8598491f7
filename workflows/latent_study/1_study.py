"""Step 1: train every architecture of the sweep with every seed, read every
layer, score it against physical labels, map it and compare the layers.

    python workflows/latent_study/1_study.py [--quick] [--output DIR] [--scheduler local:2]

Writes DIR/<name>/ (report.md, scorecard.csv, layer_maps.png, gfre/,
models/) and DIR/<name>.json.gz for chemiscope.org.
"""

from common import arguments, study_config

from equilens.study import run_study

if __name__ == "__main__":
    args = arguments(__doc__.splitlines()[0])
    folder = run_study(study_config(args), scheduler=args.scheduler)
    print(f"read {folder / 'report.md'} first")
