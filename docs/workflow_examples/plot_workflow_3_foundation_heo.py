"""
Foundation model or from scratch: high-entropy oxides
=====================================================

``workflows/foundation_heo``: curate (Mg,Co,Ni,Cu,Zn)O oxides out of a
multi-element pool, fine-tune SevenNet-0 and train an equilens BPNN on the
same frames, relax rattled minima and parent crystals with each, and measure
how far fine-tuning moved SevenNet-0's layers.
"""

# %%
# The four steps, as a user runs them.
from _run import run_quick, show

output = run_quick("foundation_heo", ["1_curate.py", "2_train.py", "3_relax.py", "4_drift.py"])

# %%
# Step 1: what the filters kept (only the six elements of the oxides).
show(output / "overview" / "elements.png")

# %%
# Step 3: RMSD to the xTB minima, xTB energy above the minimum and steps of
# every relaxation, per model.
show(output / "relax" / "relaxation.png")

# %%
# Step 4: GFRE both ways and CKA between SevenNet-0 and its fine-tuned
# version, layer by layer, and the summary the workflow writes.
show(output / "drift.png")
print((output / "summary.md").read_text())
