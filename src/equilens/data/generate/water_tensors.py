"""Tensorial targets of water monomers and clusters with PySCF.

For each structure (monomers from ``water_molecule``, dimers and trimers cut
from liquid ``water`` frames) one Kohn-Sham calculation gives

- the dipole moment (``o3_lambda = 1``), in e·bohr (atomic units);
- the static polarizability by finite fields (central differences of the
  dipole in fields of ``field`` a.u. along x, y, z), split into
  ``o3_lambda = 0`` and ``2``, in bohr³ (atomic units);
- the coefficients of the electron density fitted in an auxiliary basis with
  the Coulomb metric, ``c = J⁻¹ (P|ρ)`` with ``J_PQ = (P|Q)`` (as in SALTED
  and rho_learn), per atom and per ``o3_lambda``; the auxiliary overlap
  matrix for an overlap-aware loss comes from :func:`auxiliary_overlap`.

Conventions: PySCF orders p functions ``(x, y, z)`` and uses its own signs
for real spherical harmonics. :func:`pyscf_to_featomic` measures, for each
angular momentum, the signed permutation that maps PySCF's functions onto
the real harmonics featomic uses (by evaluating both on points of the
sphere), and every coefficient and overlap is converted with it; the
rotation test in ``tests/test_water_tensors.py`` proves the result
transforms with :func:`equilens.so3.wigner_d_real`.

Level of theory (default): B3LYP/cc-pVDZ with density fitting of the
Coulomb and exchange integrals (cc-pVDZ-JKFIT), the same JKFIT basis for
the density coefficients. Each structure is written to ``partial/`` as soon
as it is done, so an interrupted run resumes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

import ase
import ase.io
import numpy as np
from metatensor import Labels, TensorBlock, TensorMap
from tqdm.auto import tqdm

from ...errors import ConfigError, EquilensError
from ...provenance import package_versions
from ...so3 import symmetric_tensor_to_spherical, vector_to_spherical
from ...storage import atomic_write, save_json, save_tensormap
from ..basis import _auxiliary_layout, _conversion, _pyscf, check_basis, molecule
from ..geometry import check_geometry
from ..io import ReadOptions, read_dataset
from ..splits import resolve_path
from .common import Checkpoint, fingerprint

BOHR = 0.529177210903  # Å


@dataclass
class WaterTensorsConfig:
    """Settings of ``equilens generate water-tensors``.

    :param monomers: water molecules taken from ``monomer_source``
    :param dimers: dimers cut from ``cluster_source``
    :param trimers: trimers cut from ``cluster_source``
    :param xc: exchange-correlation functional (PySCF name)
    :param basis: orbital basis
    :param auxbasis: auxiliary basis of the density fit (and of RI-JK)
    :param field: finite-field strength (a.u.)
    :param seed: choice of the structures
    :param monomer_source: the frames the monomers are taken from
    :param cluster_source: the liquid-water frames dimers and trimers are cut from
    """

    monomers: int = 60
    dimers: int = 30
    trimers: int = 12
    xc: str = "b3lyp"
    basis: str = "cc-pvdz"
    auxbasis: str = "cc-pvdz-jkfit"
    field: float = 1e-3
    seed: int = 0
    monomer_source: str = "reference:water_molecule/train"
    cluster_source: str = "reference:water/train"

    def __post_init__(self):
        for name in ("monomers", "dimers", "trimers"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0")
        if self.monomers + self.dimers + self.trimers == 0:
            raise ConfigError("nothing to compute: monomers, dimers and trimers are all 0")
        if not 0 < self.field < 0.05:
            raise ConfigError("field must be in (0, 0.05) a.u.")


def compute_targets(atoms: ase.Atoms, config: WaterTensorsConfig) -> dict:
    """Dipole, polarizability and density coefficients of one structure."""
    gto, dft, df = _pyscf()
    mol = molecule(atoms, config.basis)
    mf = dft.RKS(mol)
    mf.xc = config.xc
    mf = mf.density_fit(auxbasis=config.auxbasis)
    mf.conv_tol = 1e-10
    energy = mf.kernel()
    if not mf.converged:
        raise EquilensError(f"SCF did not converge ({len(atoms)} atoms)")
    dm = mf.make_rdm1()
    dipole = mf.dip_moment(unit="AU", verbose=0)

    # finite-field polarizability: H' = H + E.r for electrons (charge -1)
    h0 = mf.get_hcore()
    charges = mol.atom_charges()
    centre = charges @ mol.atom_coords() / charges.sum()
    with mol.with_common_orig(centre):
        r = mol.intor_symmetric("int1e_r", comp=3)
    polarizability = np.zeros((3, 3))
    for j in range(3):
        dipoles = []
        for sign in (1, -1):
            field = np.zeros(3)
            field[j] = sign * config.field
            perturbed = dft.RKS(mol)
            perturbed.xc = config.xc
            perturbed = perturbed.density_fit(auxbasis=config.auxbasis)
            perturbed.conv_tol = 1e-11
            perturbed.get_hcore = lambda *args, f=field: h0 + np.einsum("x,xij->ij", f, r)
            perturbed.kernel(dm0=dm)
            if not perturbed.converged:
                raise EquilensError(f"finite-field SCF did not converge ({len(atoms)} atoms)")
            dipoles.append(perturbed.dip_moment(unit="AU", verbose=0))
        polarizability[:, j] = (dipoles[0] - dipoles[1]) / (2 * config.field)
    polarizability = 0.5 * (polarizability + polarizability.T)

    auxmol = df.addons.make_auxmol(mol, config.auxbasis)
    j3c = df.incore.aux_e2(mol, auxmol, intor="int3c2e", aosym="s1")
    projection = np.einsum("ijP,ij->P", j3c.reshape(mol.nao, mol.nao, -1), dm)
    j2c = auxmol.intor("int2c2e")
    coefficients = np.linalg.solve(j2c, projection)
    layout = _auxiliary_layout(auxmol)
    coefficients = _conversion(layout) @ coefficients
    return {
        "energy": float(energy),
        "dipole": np.asarray(dipole, dtype=np.float64),
        "polarizability": polarizability,
        "coefficients": coefficients,
        "layout": layout,
    }


def select_structures(config: WaterTensorsConfig) -> List[ase.Atoms]:
    """Monomers, then dimers, then trimers (seeded choice)."""
    rng = np.random.default_rng(config.seed)
    structures: List[ase.Atoms] = []
    if config.monomers:
        monomers = read_dataset(
            resolve_path(config.monomer_source), ReadOptions(require_energy=False)
        ).frames
        if config.monomers > len(monomers):
            raise ConfigError(f"only {len(monomers)} monomers available, asked {config.monomers}")
        for index in np.sort(rng.choice(len(monomers), config.monomers, replace=False)):
            frame = monomers[int(index)]
            structures.append(ase.Atoms(frame.numbers, frame.positions))
    if config.dimers or config.trimers:
        liquid = read_dataset(
            resolve_path(config.cluster_source), ReadOptions(require_energy=False)
        ).frames
        for size, count in ((2, config.dimers), (3, config.trimers)):
            for _ in range(count):
                frame = liquid[int(rng.integers(len(liquid)))]
                structures.append(cut_cluster(frame, size, rng))
    return structures


def cut_cluster(frame: ase.Atoms, n_molecules: int, rng) -> ase.Atoms:
    """``n_molecules`` whole waters around a random oxygen, unwrapped, no cell."""
    oxygens = np.nonzero(frame.numbers == 8)[0]
    hydrogens = np.nonzero(frame.numbers == 1)[0]
    centre = int(rng.choice(oxygens))
    to_oxygens = frame.get_distances(centre, oxygens, mic=True, vector=True)
    order = np.argsort(np.linalg.norm(to_oxygens, axis=1))[:n_molecules]
    origin = frame.positions[centre]
    numbers, positions = [], []
    for index in order:
        oxygen = origin + to_oxygens[index]
        to_h = frame.get_distances(int(oxygens[index]), hydrogens, mic=True, vector=True)
        nearest = np.argsort(np.linalg.norm(to_h, axis=1))[:2]
        numbers += [8, 1, 1]
        positions += [oxygen, *(oxygen + to_h[nearest])]
    cluster = ase.Atoms(numbers, np.array(positions) - origin)
    check_geometry(cluster, "cluster cut from the liquid", min_distance=0.7)
    return cluster


def generate_water_tensors(
    output, config: Optional[WaterTensorsConfig] = None, progress: bool = True
) -> Path:
    """Compute (or resume) every structure and write the dataset to ``output/``.

    Writes ``structures.extxyz`` (structures with energy, dipole and
    polarizability in ``info``), ``dipole.mts``, ``polarizability.mts``,
    ``density.mts`` and ``provenance.json``.
    """
    config = config or WaterTensorsConfig()
    check_basis(config.basis, "basis")
    check_basis(config.auxbasis, "auxbasis")
    output = Path(output)
    partial = output / "partial"
    partial.mkdir(parents=True, exist_ok=True)
    checkpoint = Checkpoint.open(partial / "progress.state", fingerprint(config))
    structures = select_structures(config)
    results = []
    for index, atoms in enumerate(
        tqdm(structures, desc="PySCF", unit="structure", disable=not progress)
    ):
        path = partial / f"{index:05d}.npz"
        if index < checkpoint.done:
            with np.load(path) as stored:
                results.append({k: stored[k] for k in stored.files})
            continue
        result = compute_targets(atoms, config)
        with atomic_write(path) as handle:
            np.savez(handle, **result)
        checkpoint.save(index + 1)
        results.append(result)
    write_dataset(output, structures, results, config)
    return output


def write_dataset(output: Path, structures, results, config: WaterTensorsConfig) -> None:
    frames = []
    for atoms, result in zip(structures, results):
        frame = atoms.copy()
        frame.info["energy_hartree"] = float(result["energy"])
        frame.info["dipole"] = np.asarray(result["dipole"])
        frame.info["polarizability"] = np.asarray(result["polarizability"]).reshape(9)
        frames.append(frame)
    with atomic_write(output / "structures.extxyz", "w") as handle:
        ase.io.write(handle, frames, format="extxyz")
    dipoles = np.stack([r["dipole"] for r in results])
    alphas = np.stack([r["polarizability"] for r in results])
    save_tensormap(output / "dipole.mts", structure_tensor({1: vector_to_spherical(dipoles)}))
    lambda0, lambda2 = symmetric_tensor_to_spherical(alphas)
    save_tensormap(output / "polarizability.mts", structure_tensor({0: lambda0, 2: lambda2}))
    save_tensormap(output / "density.mts", density_tensor(structures, results))
    save_json(
        output / "provenance.json",
        {
            "config": dataclasses.asdict(config),
            "units": {"dipole": "e bohr", "polarizability": "bohr^3", "energy": "hartree"},
            "structures": len(structures),
            "versions": package_versions(["equilens", "pyscf", "ase", "metatensor-core"]),
        },
    )


def structure_tensor(blocks: Dict[int, np.ndarray]) -> TensorMap:
    """Per-structure spherical components ``{lambda: (n, 2l+1)}`` as a TensorMap."""
    keys, values = [], []
    for ell, array in sorted(blocks.items()):
        array = np.asarray(array, dtype=np.float64)
        keys.append([ell, 1])
        values.append(
            TensorBlock(
                array[:, :, None],
                Labels(["system"], np.arange(len(array), dtype=np.int32)[:, None]),
                [Labels(["o3_mu"], np.arange(-ell, ell + 1, dtype=np.int32)[:, None])],
                Labels(["n"], np.zeros((1, 1), dtype=np.int32)),
            )
        )
    return TensorMap(Labels(["o3_lambda", "o3_sigma"], np.array(keys, dtype=np.int32)), values)


def density_tensor(structures, results) -> TensorMap:
    """Per-atom density coefficients, keys (o3_lambda, o3_sigma, center_type)."""
    entries: Dict[tuple, Dict[tuple, Dict[int, np.ndarray]]] = {}
    for system, (atoms, result) in enumerate(zip(structures, results)):
        layout, coefficients = result["layout"], result["coefficients"]
        start = 0
        while start < len(layout):
            atom, ell, n, _ = (int(v) for v in layout[start])
            key = (ell, 1, int(atoms.numbers[atom]))
            values = coefficients[start : start + 2 * ell + 1]
            entries.setdefault(key, {}).setdefault((system, atom), {})[n] = values
            start += 2 * ell + 1
    keys, blocks = [], []
    for key in sorted(entries):
        rows = entries[key]
        n_max = max(max(r) for r in rows.values()) + 1
        samples = sorted(rows)
        values = np.zeros((len(samples), 2 * key[0] + 1, n_max))
        for i, sample in enumerate(samples):
            for n, vector in rows[sample].items():
                values[i, :, n] = vector
        keys.append(list(key))
        blocks.append(
            TensorBlock(
                values,
                Labels(["system", "atom"], np.array(samples, dtype=np.int32)),
                [Labels(["o3_mu"], np.arange(-key[0], key[0] + 1, dtype=np.int32)[:, None])],
                Labels(["n"], np.arange(n_max, dtype=np.int32)[:, None]),
            )
        )
    names = ["o3_lambda", "o3_sigma", "center_type"]
    return TensorMap(Labels(names, np.array(keys, dtype=np.int32)), blocks)
