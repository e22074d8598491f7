"""Train a BPNN potential from a YAML config (default: the iron/water one).

python workflows/train_potential.py [workflows/configs/iron_water.yaml]
"""

import sys

from equilens.cli import main

if __name__ == "__main__":
    config = sys.argv[1] if len(sys.argv) > 1 else "workflows/configs/iron_water.yaml"
    sys.exit(main(["train", config, *sys.argv[2:]]))
