"""The study's analysis stages with and without the potentials sharing
their features (:class:`equilens.models.energy.model.FeatureMemo`), A/B in
one process.

The default study is run in ``--folder`` (its models are trained there
first if they are not yet), then its analysis is run again twice, each
model reloaded from its folder: with every potential featurizing for
itself, with the features shared, and alone again. Prints the stage times
and whether the scorecards and the uncertainty tables are identical
(written beside the study as ``<run>_scorecard.csv``, ...).

    python benchmarks/shared_features.py --folder /tmp/shared
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from pathlib import Path


def _analysis(shared: bool) -> dict:
    import equilens.study.run as study_run
    from equilens.study.config import StudyConfig

    original = study_run.shared_features
    if not shared:
        study_run.shared_features = lambda models: contextlib.nullcontext()
    try:
        folder = study_run.run_study(StudyConfig(), progress=False, overwrite=True)
    finally:
        study_run.shared_features = original
    timings = json.loads((folder / "metrics.json").read_text())["timings_s"]
    tables = {name: (folder / name).read_text() for name in ("scorecard.csv", "uncertainty.csv")}
    return {"timings": timings, "tables": tables}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, required=True)
    args = parser.parse_args()
    args.folder.mkdir(parents=True, exist_ok=True)
    os.chdir(args.folder)
    _analysis(shared=True)  # trains the models (or reloads them)
    runs = {
        "alone": _analysis(shared=False),
        "shared": _analysis(shared=True),
        "alone again": _analysis(shared=False),
    }
    for name, run in runs.items():
        stages = ", ".join(f"{k} {v:.1f}" for k, v in run["timings"].items())
        print(f"{name}: {stages} s")
        for table, text in run["tables"].items():
            (args.folder / f"{name.replace(' ', '_')}_{table}").write_text(text)
    for table in ("scorecard.csv", "uncertainty.csv"):
        texts = [run["tables"][table] for run in runs.values()]
        print(
            f"{table}: shared == alone: {texts[1] == texts[0]}, "
            f"alone == alone again: {texts[2] == texts[0]}"
        )


if __name__ == "__main__":
    main()
