"""
Which layer reads best? The latent-space study
==============================================

``workflows/latent_study``: train several architectures with several seeds,
read and score every layer against physical labels, compare them, choose the
most readable layer, and train its architecture on its own.
"""

# %%
# The three steps, as a user runs them.
from _run import run_quick, show

output = run_quick("latent_study", ["1_study.py", "2_compare.py", "3_train_best.py"])
folder = output / "latent_study_quick"

# %%
# Step 2's figure: the candidate layers' maps of the oxygen atoms, coloured
# by water / hydroxyl / adatom, beside SOAP; which labels each layer exposes;
# how similar the layers are (CKA).
show(folder / "choice.png")
print((folder / "choice.md").read_text())

# %%
# Step 1's layer maps (every label that varies within the species plotted).
show(folder / "layer_maps.png")
