"""Gaussian basis sets through PySCF, in featomic's conventions.

Density-fitting coefficients are stored per ``(o3_lambda, o3_sigma,
center_type)`` block with components in featomic's real-harmonic order
(:mod:`equilens.so3`); PySCF orders and signs the ``m`` components of each
shell its own way. :func:`pyscf_to_featomic` measures the conversion, and
:func:`auxiliary_basis` gives the overlap matrix and the layout of an
auxiliary basis in featomic's convention: what the density generator writes
and what the overlap-metric loss of tensor training reads. Needs the
``pyscf`` extra.
"""

from __future__ import annotations

from functools import cache
from typing import Dict

import ase
import numpy as np

from ..errors import EquilensError
from ..so3 import real_spherical_harmonics
from .geometry import check_geometry


def _pyscf():
    try:
        import pyscf  # noqa: F401
    except ImportError as error:
        raise EquilensError("tensor targets need PySCF: pip install 'equilens[pyscf]'") from error
    from pyscf import df, dft, gto

    return gto, dft, df


def check_basis(name: str, field: str, elements=("H", "O")) -> None:
    """Refuse, before any calculation, a basis PySCF does not know for
    ``elements`` (a one-line :class:`ConfigError` naming ``field``)."""
    from ..errors import ConfigError

    gto, _, _ = _pyscf()
    for element in elements:
        try:
            found = gto.basis.load(name, element)
        except Exception as error:  # PySCF raises several types for an unknown name
            text = str(error).strip().splitlines()
            reason = text[0][:120] if text else type(error).__name__
            raise ConfigError(
                f"{field}: PySCF has no basis '{name}' for {element} ({reason}); use a name "
                "from pyscf.gto.basis (e.g. cc-pvdz, def2-svp, cc-pvdz-jkfit)"
            ) from None
        if not found:
            raise ConfigError(f"{field}: PySCF's basis '{name}' has no functions for {element}")


def molecule(atoms: ase.Atoms, basis: str):
    """A PySCF ``Mole`` of ``atoms`` (positions in Å)."""
    gto, _, _ = _pyscf()
    check_geometry(atoms, "structure")
    spec = [
        (symbol, tuple(position))
        for symbol, position in zip(atoms.get_chemical_symbols(), atoms.positions)
    ]
    return gto.M(atom=spec, basis=basis, unit="Angstrom", verbose=0)


@cache
def pyscf_to_featomic(o3_lambda: int) -> np.ndarray:
    """Orthogonal ``(2l+1, 2l+1)`` matrix ``T`` with ``c_featomic = T @ c_pyscf``.

    Measured by evaluating one PySCF shell of angular momentum ``l`` and the
    real harmonics of :func:`equilens.so3.real_spherical_harmonics` on points
    of the unit sphere; it is a signed permutation (checked).
    """
    gto, _, _ = _pyscf()
    mol = gto.M(atom=[("He", (0.0, 0.0, 0.0))], basis={"He": [[o3_lambda, (1.0, 1.0)]]})
    points = np.random.default_rng(11).normal(size=(8 * (2 * o3_lambda + 1), 3))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    pyscf_values = mol.eval_gto("GTOval_sph", points)  # same radius: same radial factor
    ours = real_spherical_harmonics(o3_lambda, points)
    # pyscf_values = ours @ M  ->  density sum_k c_k f_k = sum_m Y_m (M c)_m
    m, *_ = np.linalg.lstsq(ours, pyscf_values, rcond=None)
    m /= np.linalg.norm(m, axis=0, keepdims=True)
    if not np.allclose(np.abs(m).round(8) % 1, 0, atol=1e-6) or not np.allclose(
        m @ m.T, np.eye(2 * o3_lambda + 1), atol=1e-8
    ):
        raise EquilensError(f"PySCF's l={o3_lambda} harmonics are not a signed permutation of ours")
    return np.asarray(np.round(m))


def _auxiliary_layout(auxmol):
    """For each auxiliary function: (atom, l, n, pyscf m index), in PySCF order."""
    layout = []
    counters: Dict[tuple, int] = {}
    for shell in range(auxmol.nbas):
        atom, ell = auxmol.bas_atom(shell), auxmol.bas_angular(shell)
        for _ in range(auxmol.bas_nctr(shell)):
            n = counters.get((atom, ell), 0)
            counters[(atom, ell)] = n + 1
            layout.extend((atom, ell, n, k) for k in range(2 * ell + 1))
    return np.array(layout, dtype=np.int64)


def _conversion(layout: np.ndarray) -> np.ndarray:
    """Block-diagonal matrix converting PySCF-ordered coefficients to featomic's."""
    size = len(layout)
    t = np.zeros((size, size))
    start = 0
    while start < size:
        ell = int(layout[start, 1])
        width = 2 * ell + 1
        t[start : start + width, start : start + width] = pyscf_to_featomic(ell)
        start += width
    return t


def auxiliary_overlap(atoms: ase.Atoms, auxbasis: str = "cc-pvdz-jkfit") -> np.ndarray:
    """Overlap matrix of the auxiliary basis in featomic's convention and order.

    The order is PySCF's shell order with the ``m`` components converted, i.e.
    the order of the flat coefficient vector of :func:`compute_targets`.
    """
    return auxiliary_basis(atoms, auxbasis)[0]


def auxiliary_basis(atoms: ase.Atoms, auxbasis: str = "cc-pvdz-jkfit"):
    """Overlap matrix and layout of the auxiliary basis of ``atoms``.

    :returns: ``(overlap, layout)``; ``layout[k] = (atom, l, n, m_index)``
        names the function of position ``k`` (``m_index = o3_mu + l``, in
        featomic's convention), the order of :func:`auxiliary_overlap`
    """
    gto, _, df = _pyscf()
    auxmol = df.addons.make_auxmol(molecule(atoms, "sto-3g"), auxbasis)
    layout = _auxiliary_layout(auxmol)
    t = _conversion(layout)
    return t @ auxmol.intor("int1e_ovlp") @ t.T, layout
