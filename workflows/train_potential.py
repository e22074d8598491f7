"""Train a potential or a tensor model from a configuration (default: the
built-in iron/water potential, which reads ../shared/data).

    python workflows/train_potential.py [CONFIG.yaml | built-in name] [--epochs N ...]

Built-in configurations: iron_water, water, tensor_dipole,
tensor_polarizability, tensor_density (``equilens data list`` shows the data).
"""

import sys

from equilens.cli import main

if __name__ == "__main__":
    config = sys.argv[1] if len(sys.argv) > 1 else "iron_water"
    sys.exit(main(["train", config, *sys.argv[2:]]))
