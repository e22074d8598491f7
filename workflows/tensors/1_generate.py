"""Step 1: compute the tensorial targets offline with PySCF.

    python workflows/tensors/1_generate.py [--quick] [--output DIR]

Water monomers (from the water-molecule reference data) and dimers and
trimers cut from liquid water, each with its dipole (lambda 1), its
polarizability by finite fields (lambda 0 and 2) and the density-fitting
coefficients of its electron density (every lambda of the auxiliary basis),
written to DIR/data/ (structures.extxyz and one .mts per target, metadata
the metatensor way). Resumes from its checkpoint when interrupted.
"""

import sys

from common import arguments, generated_folder

from equilens.cli import main

if __name__ == "__main__":
    args = arguments(__doc__.splitlines()[0])
    command = ["generate", "water-tensors", "--output", str(generated_folder(args))]
    if args.quick:  # 2 monomers (steps 2 and 3 then use the shipped set)
        command += ["--monomers", "2", "--dimers", "0", "--trimers", "0"]
    sys.exit(main(command + ["--quiet"]))
