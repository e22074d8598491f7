"""The report's families section: each sweep entry's best learned layer,
its input's rank, its accuracy and cost, whether it learned, and the answer
in words to whether equivariance helps readability and accuracy, with the
part of a readability gap that the entries' inputs already have."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Optional

import numpy as np

from .config import is_reference, layer_set_name

#: a model learned when its validation force error is below this fraction of
#: its composition baseline's (whose forces are zero: the RMS force)
LEARNED = 0.8


def force_ratio(summary: dict) -> float:
    """Validation force RMSE of a model over its composition baseline's."""
    model = summary["metrics"].get("validation", {}).get("force_rmse_eV_per_A", np.nan)
    base = summary.get("baselines", {}).get("composition", {}).get("validation", {})
    return float(model / base.get("force_rmse_eV_per_A", np.nan))


def families_section(config, aggregated, summaries) -> List[str]:
    """Per family (task) of the sweep: its best layer, its accuracy and cost,
    and whether it learned; then the answer in words."""
    places = {row["feature_set"]: place + 1 for place, row in enumerate(aggregated)}
    by_name = {row["feature_set"]: row for row in aggregated}
    rows = []
    for entry in config.sweep:
        keys = [f"{entry.name}/seed{seed}" for seed in config.seeds]
        forces = [summaries[k]["metrics"]["validation"]["force_rmse_eV_per_A"] for k in keys]
        cost = np.nanmean([summaries[k].get("seconds", np.nan) for k in keys])
        layers = [
            r
            for r in aggregated
            if r["feature_set"].startswith(f"{entry.name}/") and not is_reference(r["feature_set"])
        ]
        best = min(layers, key=lambda r: places[r["feature_set"]]) if layers else None
        learned = all(force_ratio(summaries[k]) < LEARNED for k in keys)
        source = by_name.get(layer_set_name(entry.name, "input", entry.task))
        rows.append(
            _Entry(
                entry, best, source, float(np.mean(forces)), float(np.std(forces)), float(cost),
                learned,
            )
        )  # fmt: skip
    lines = [
        "",
        "## Families",
        "",
        "| entry | task | best layer (place) | mean rank | its input's mean rank | validation "
        "force RMSE (mean ± spread over seeds, eV/Å) | training time per model (s) | learned |",
        "|---|---|---|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        best = row.best
        name = f"{best['feature_set']} ({places[best['feature_set']]})" if best else "-"
        rank = f"{best['mean_rank']:.2f}" if best else "-"
        source = f"{row.source['mean_rank']:.2f}" if row.source else "-"
        lines.append(
            f"| {row.entry.name} | {row.entry.task} | {name} | {rank} | {source} | "
            f"{row.force:.3f} ± {row.force_spread:.3f} | {row.seconds:.0f} | "
            f"{'yes' if row.learned else 'no'} |"
        )
    readable = [r for r in rows if r.learned and r.best is not None]
    if readable:
        top = min(readable, key=lambda r: places[r.best["feature_set"]])
        accurate = min(readable, key=lambda r: r.force)
        lines += [
            "",
            f"Among the models that learned, the most readable layer is "
            f"**{top.best['feature_set']}** ({top.entry.task}, place "
            f"{places[top.best['feature_set']]}); the most accurate entry is "
            f"**{accurate.entry.name}** ({accurate.entry.task}, {accurate.force:.3f} eV/Å, "
            f"{accurate.seconds:.0f} s per model).",
        ]
        tasks = {r.entry.task for r in readable}
        if "equivariant_potential" in tasks and "potential" in tasks:
            lines.append(_equivariance_sentence(readable, places, len(config.seeds)))
    return lines


@dataclass
class _Entry:
    """A sweep entry in the families table: its best learned layer's row,
    its input's row (its descriptor, learned by no model), its validation
    force RMSE over the seeds, its cost, whether it learned."""

    entry: Any
    best: Optional[dict]
    source: Optional[dict]
    force: float
    force_spread: float
    seconds: float
    learned: bool


def _versus(gap: float, spread: float, seeds: int, better: str, worse: str) -> str:
    """``better`` or ``worse`` by the sign of ``gap`` (positive: better), or
    neither when the gap is within the spread over seeds."""
    if seeds > 1 and abs(gap) <= spread:
        return f"neither {better} nor {worse} (the gap is within the spread over seeds)"
    return better if gap > 0 else worse


def _equivariance_sentence(readable: List[_Entry], places, seeds: int) -> str:
    """Whether the equivariant entries read and fit better than the BPNNs:
    the best learned layers' mean ranks and the best entries' force errors,
    each gap against the sum of the two spreads over seeds."""

    def best(task, key):
        return min((r for r in readable if r.entry.task == task), key=key)

    place = lambda r: places[r.best["feature_set"]]  # noqa: E731
    equivariant, bpnn = best("equivariant_potential", place), best("potential", place)
    fit_e, fit_b = (
        best("equivariant_potential", lambda r: r.force),
        best("potential", lambda r: r.force),
    )
    e, b = equivariant.best, bpnn.best
    readability = _versus(
        b["mean_rank"] - e["mean_rank"], e["mean_rank_std"] + b["mean_rank_std"], seeds,
        "more readable", "less readable",
    )  # fmt: skip
    accuracy = _versus(
        fit_b.force - fit_e.force, fit_e.force_spread + fit_b.force_spread, seeds,
        "more accurate", "less accurate",
    )  # fmt: skip
    spread = "" if seeds > 1 else " (one seed: no spread to judge the gaps by)"
    inputs = _inputs_sentence(equivariant, bpnn, seeds)
    return (
        f"The equivariant entry's best learned layer is {readability} here: "
        f"**{e['feature_set']}**, mean rank {e['mean_rank']:.2f} ± {e['mean_rank_std']:.2f} "
        f"(place {place(equivariant)}), "
        f"against {b['mean_rank']:.2f} ± {b['mean_rank_std']:.2f} for the best BPNN layer, "
        f"{b['feature_set']} (place {place(bpnn)}); and the model {accuracy}: "
        f"{fit_e.force:.3f} ± {fit_e.force_spread:.3f} against {fit_b.force:.3f} ± "
        f"{fit_b.force_spread:.3f} eV/Å, at {fit_e.seconds:.0f} s against {fit_b.seconds:.0f} s "
        f"of training per model{spread}.{inputs}"
    )


def _inputs_sentence(equivariant: _Entry, bpnn: _Entry, seeds: int) -> str:
    """How much of the readability gap the two entries' fixed inputs make
    (their descriptors, learned by no model), and whether the equivariant
    network's training moved its best layer further from its input's rank
    than the BPNN's did (each gap against the sum of the spreads involved)."""
    e, b, e_in, b_in = equivariant.best, bpnn.best, equivariant.source, bpnn.source
    if e is None or b is None or e_in is None or b_in is None:
        return ""
    inputs = _versus(
        b_in["mean_rank"] - e_in["mean_rank"], e_in["mean_rank_std"] + b_in["mean_rank_std"],
        seeds, "more readable", "less readable",
    )  # fmt: skip
    moved_e = e["mean_rank"] - e_in["mean_rank"]
    moved_b = b["mean_rank"] - b_in["mean_rank"]
    spreads = sum(row["mean_rank_std"] for row in (e, e_in, b, b_in))
    training = _versus(moved_b - moved_e, spreads, seeds, "more readable", "less readable")
    return (
        f" Their inputs, learned by no model, rank: **{e_in['feature_set']}** "
        f"{e_in['mean_rank']:.2f} ± {e_in['mean_rank_std']:.2f}, "
        f"**{b_in['feature_set']}** {b_in['mean_rank']:.2f} ± {b_in['mean_rank_std']:.2f}; "
        f"compared with the BPNN's input, the equivariant entry's input is {inputs}. "
        f"Training moved each best layer's mean rank from its own input's by {moved_e:+.2f} "
        f"(equivariant) and {moved_b:+.2f} (BPNN); a positive shift is a layer less readable "
        f"than its input. Measured from each one's input, compared with the BPNN's best "
        f"layer, the equivariant network's best layer came out {training}."
    )
