"""
GFRE between the layers of a potential
======================================

Train a small per-species BPNN on the embedded GFN1-xTB iron/water set, read
every layer as TensorMaps and compute the global feature reconstruction
error (GFRE) between the layers, species by species (a per-species network
has per-species coordinates).
"""

# %%
# Train briefly on 40 frames (a few seconds); the run folder keeps the
# model, its metrics and plots.
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from equilens.analysis import compare_by_species, latents
from equilens.config import from_mapping
from equilens.data.io import ReadOptions, read_dataset
from equilens.data.splits import resolve_path
from equilens.models.bpnn.config import PotentialConfig
from equilens.models.bpnn.task import train_potential

folder = Path(tempfile.mkdtemp())
config = from_mapping(
    PotentialConfig,
    {
        "name": "example",
        "data": {"train": "embedded:iron_water_xtb.extxyz", "validation_fraction": 0.2},
        "read": {"index": "0:40"},
        "descriptor": {"preset": "small"},
        "compression": {"n_components": 16},
        "model": {"hidden": [16, 16]},
        "training": {"epochs": 3, "batch_size": 8, "learning_rate": 0.005},
        "output_dir": str(folder / "run"),
        "cache_dir": str(folder / "cache"),
    },
)
model, summary = train_potential(config, progress=False)
print(model.layer_names)
print(summary["metrics"]["validation"]["force_rmse_eV_per_A"], "eV/Å validation force RMSE")

# %%
# Every layer of every atom of 80 frames, one block per species.
frames = read_dataset(resolve_path("embedded:iron_water_xtb.extxyz"), ReadOptions(index="0:80"))
layers = latents(model, frames.frames)
for name, tensor in layers.items():
    print(name, [block.values.shape for block in tensor.blocks()])

# %%
# GFRE from each layer (rows) to each other layer (columns), for the hydrogen
# atoms (the most numerous: the GFRE is computed on a held-out half of them):
# how much of the column layer a linear map from the row layer cannot
# reconstruct. Information is lost on the way to the output: the output is
# read from every layer, the input from none of the later ones.
result = compare_by_species(layers, measures=("gfre",), seed=0)[1]
gfre = result.matrices["gfre"]
fig, ax = plt.subplots(figsize=(4.5, 4))
image = ax.imshow(gfre, vmin=0, vmax=1, cmap="viridis")
ax.set_xticks(range(len(result.names)), result.names, rotation=30)
ax.set_yticks(range(len(result.names)), result.names)
ax.set_xlabel("target layer")
ax.set_ylabel("source layer")
for i in range(len(gfre)):
    for j in range(len(gfre)):
        ax.text(j, i, f"{gfre[i, j]:.2f}", ha="center", va="center", color="white", fontsize=8)
fig.colorbar(image, label="GFRE (H atoms)")
fig.tight_layout()
print(np.round(gfre, 3))
