"""Compute SOAP and lambda-SOAP for a dataset (default: the iron/water
reference training set) and write them next to a summary and PCA plots.

    python workflows/compute_descriptors.py [FILE] [--config descriptors]
"""

import argparse
import dataclasses

from equilens.config import from_yaml
from equilens.data import ReadOptions, read_dataset, reference_path
from equilens.descriptors import DescriptorConfig
from equilens.export.descriptors import descriptor_job


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?", help="dataset (default: iron_water/train)")
    parser.add_argument("--config", default="descriptors", help="YAML file or built-in name")
    parser.add_argument("--output", default="results/descriptors")
    args = parser.parse_args()

    path = args.file or reference_path("iron_water/train")
    dataset = read_dataset(path, ReadOptions(require_energy=False))
    base = from_yaml(DescriptorConfig, args.config)
    configs = [
        dataclasses.replace(base, kind="soap"),
        dataclasses.replace(base, kind="lambda_soap", gradients=False),
    ]
    summary = descriptor_job(
        dataset.frames,
        "descriptors",
        configs,
        args.output,
        cache_dir=".equilens_cache/descriptors",
        source=str(path),
    )
    for kind, entry in summary["descriptors"].items():
        print(f"{kind}: {entry['file']} ({entry['seconds']:.1f} s)")


if __name__ == "__main__":
    main()
