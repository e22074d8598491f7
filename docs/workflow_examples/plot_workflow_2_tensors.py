"""
Tensors on lambda-SOAP: dipoles, polarizabilities, densities
============================================================

``workflows/tensors``: PySCF targets for water clusters, equivariant
networks on lambda-SOAP, their equivariant layers with the covariance of
every block checked, chemiscope and metatomic exports.
"""

# %%
# The three steps, as a user runs them (step 1 computes its PySCF targets
# for two molecules; steps 2 and 3 use the set that ships with equilens).
from _run import run_quick, show

output = run_quick("tensors", ["1_generate.py", "2_train.py", "3_layers_and_export.py"])

# %%
# The dipole model's parity plot on its test molecules (quick mode: a few
# epochs; the ridge baseline printed by step 2 is the bar to beat).
show(output / "dipole" / "parity_test.png")
