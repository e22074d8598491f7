"""Figures of training runs: parity plots and learning curves."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Union

import numpy as np

from ..figures import diagonal, pyplot, save_figure

PathLike = Union[str, "os.PathLike[str]"]


def plot_parity(
    energy_pred: np.ndarray,
    energy_ref: np.ndarray,
    forces_pred: np.ndarray,
    forces_ref: np.ndarray,
    numbers: np.ndarray,
    path: PathLike,
    title: str = "",
) -> Path:
    """Predicted vs reference energies per atom (meV/atom from the mean) and
    force components (eV/Å, by species), with RMSEs in the legends."""
    from ase.data import chemical_symbols

    plt = pyplot()
    fig, (ax_e, ax_f) = plt.subplots(1, 2, figsize=(10, 4.5), dpi=120)
    shift = np.mean(energy_ref)
    e_ref = 1000 * (np.asarray(energy_ref) - shift)
    e_pred = 1000 * (np.asarray(energy_pred) - shift)
    rmse = np.sqrt(np.mean((e_pred - e_ref) ** 2))
    ax_e.scatter(e_ref, e_pred, s=8, alpha=0.7, label=f"RMSE {rmse:.2f} meV/atom")
    diagonal(ax_e, e_ref, e_pred)
    ax_e.set_xlabel("reference energy - mean (meV/atom)")
    ax_e.set_ylabel("predicted energy - mean (meV/atom)")
    ax_e.legend()
    for z in np.unique(numbers):
        mask = numbers == z
        ref, pred = forces_ref[mask].ravel(), forces_pred[mask].ravel()
        error = np.sqrt(np.mean((pred - ref) ** 2))
        ax_f.scatter(
            ref, pred, s=2, alpha=0.4, label=f"{chemical_symbols[z]}: RMSE {error:.3f} eV/Å"
        )
    diagonal(ax_f, forces_ref.ravel(), forces_pred.ravel())
    ax_f.set_xlabel("reference force component (eV/Å)")
    ax_f.set_ylabel("predicted force component (eV/Å)")
    ax_f.legend(markerscale=4)
    fig.suptitle(title)
    return save_figure(fig, path)


def plot_learning_curve(history, path: PathLike, loss: str = "loss (normalised MSE)") -> Path:
    """Training and validation loss, and the learning rate where the history
    has it, per epoch (``loss``: the label of the loss axis)."""
    epochs = [row["epoch"] for row in history]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=120)
    ax.semilogy(epochs, [row["train_loss"] for row in history], label="training loss")
    ax.semilogy(epochs, [row["validation_loss"] for row in history], label="validation loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel(loss)
    lines, labels = ax.get_legend_handles_labels()
    if all("learning_rate" in row for row in history):
        twin = ax.twinx()
        rates = [row["learning_rate"] for row in history]
        twin.semilogy(epochs, rates, color="grey", ls=":", label="learning rate")
        twin.set_ylabel("learning rate")
        extra = twin.get_legend_handles_labels()
        lines, labels = lines + extra[0], labels + extra[1]
    ax.legend(lines, labels)
    return save_figure(fig, path)


def plot_tensor_parity(
    predicted: Mapping[tuple, np.ndarray],
    reference: Mapping[tuple, np.ndarray],
    path: PathLike,
    title: str = "",
) -> Path:
    """Predicted vs reference entries of every block of a tensorial target."""
    plt = pyplot()
    keys = list(reference)
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 3.2), squeeze=False)
    for ax, key in zip(axes[0], keys):
        ref, pred = np.asarray(reference[key]).ravel(), np.asarray(predicted[key]).ravel()
        ax.scatter(ref, pred, s=4, alpha=0.6)
        diagonal(ax, ref, pred)
        ax.set_title(f"block {key}", fontsize=9)
        ax.set_xlabel("reference")
        ax.set_ylabel("predicted")
    fig.suptitle(title)
    return save_figure(fig, path)
