"""
Calibrated uncertainties from the latent space
==============================================

Fit last-layer prediction rigidity (LLPR) and the latent distance of a small
potential on its training frames, calibrate each with one scale factor on
its validation frames, and check them on frames it never saw, and on
strongly rattled copies of them.
"""

# %%
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt

from equilens.config import from_mapping
from equilens.data.io import ReadOptions, read_dataset
from equilens.data.splits import load_splits, resolve_path
from equilens.models.bpnn.config import PotentialConfig
from equilens.models.bpnn.task import train_potential
from equilens.uncertainty import LLPR, LatentDistance, calibration_plot

folder = Path(tempfile.mkdtemp())
config = from_mapping(
    PotentialConfig,
    {
        "name": "example",
        "data": {"train": "embedded:iron_water_xtb.extxyz", "validation_fraction": 0.25},
        "read": {"index": "0:60"},
        "descriptor": {"preset": "small"},
        "compression": {"n_components": 16},
        "model": {"hidden": [16, 16]},
        "training": {"epochs": 8, "batch_size": 8, "learning_rate": 0.005},
        "output_dir": str(folder / "run"),
        "cache_dir": str(folder / "cache"),
    },
)
model, _ = train_potential(config, progress=False)
splits = load_splits(config.data, config.read)
unseen = read_dataset(resolve_path("embedded:iron_water_xtb.extxyz"), ReadOptions(index="60:120"))

# %%
# Fit on the training split, calibrate on the validation split, evaluate on
# the 60 unseen frames.
estimators = {
    "LLPR": LLPR(model),
    "distance hidden_1": LatentDistance(model, "hidden_1"),
}
sets = {}
for name, estimator in estimators.items():
    estimator.fit(splits["train"].frames)
    estimator.calibrate(splits["validation"].frames, splits["validation"].energies)
    metrics = estimator.evaluate(unseen.frames, unseen.energies)
    print(
        f"{name}: scale {estimator.scale:.3g}, miscalibration area "
        f"{metrics['miscalibration_area']:.3f}, Spearman {metrics['spearman']:.2f}"
    )
    result = estimator.predict(unseen.frames)
    sets[name] = (result.energy - unseen.energies, result.energy_uncertainty)

# %%
# Predicted against observed errors, and the coverage of the Gaussian
# intervals (the diagonal is a perfect calibration).
path = calibration_plot(sets, folder / "calibration.png", "unseen GFN1-xTB frames")
image = plt.imread(path)
fig = plt.figure(figsize=(10, 4.4))
ax = fig.add_axes((0, 0, 1, 1))
ax.imshow(image)
ax.axis("off")

# %%
# Frames far from the training set get larger uncertainties: the same frames
# rattled by 0.2 Å.
rattled = [atoms.copy() for atoms in unseen.frames[:10]]
for index, atoms in enumerate(rattled):
    atoms.rattle(0.2, seed=index)
for name, estimator in estimators.items():
    near = estimator.predict(unseen.frames[:10]).energy_uncertainty.mean()
    far = estimator.predict(rattled).energy_uncertainty.mean()
    print(f"{name}: mean uncertainty {near:.3f} eV unseen, {far:.3f} eV rattled")
