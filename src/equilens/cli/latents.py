"""``equilens latents MODEL FILE``: every layer of a model as TensorMaps."""

from __future__ import annotations

import argparse

from .common import (
    add_device_argument,
    add_overwrite_argument,
    add_read_arguments,
    add_scheduler_argument,
)


def register(commands) -> None:
    parser = commands.add_parser(
        "latents",
        help="every layer of a model as TensorMaps",
        description=(
            "Evaluate every layer of MODEL (a model.pt from `equilens train`) on the "
            "frames of FILE and write one .mts per layer plus layers.json (layer order, "
            "fingerprint of the structures) to --output. Equivariant layers are written "
            "as they are to OUTPUT/equivariant and as invariant summaries to "
            "OUTPUT/invariant."
        ),
    )
    parser.add_argument("model", help="model file written by `equilens train`")
    parser.add_argument("file", help="dataset file (any ASE-readable format)")
    add_read_arguments(parser)
    parser.add_argument(
        "--single-block",
        action="store_true",
        help="one block over all atoms (center_type in the samples) instead of one per species",
    )
    parser.add_argument(
        "--pooling",
        choices=["mean", "sum", "cumulants"],
        help="one row per structure: mean, sum, or mean + variance + third cumulant",
    )
    parser.add_argument("--batch-size", type=int, help="frames per forward pass")
    add_device_argument(parser, "the model's layers")
    parser.add_argument(
        "--chunk-frames",
        type=int,
        help="evaluate and write N frames at a time (OUTPUT/chunk-00000/, ...; equivariant "
        "layers as invariant summaries), for datasets whose latents do not fit in memory; "
        "`equilens compare --streaming` reads them chunk by chunk; chunks already written "
        "for the same frames are kept (a rerun resumes)",
    )
    add_scheduler_argument(parser, "the chunks (with --chunk-frames)")
    parser.add_argument(
        "--output", default="results/latents", help="output folder (default: %(default)s)"
    )
    add_overwrite_argument(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..analysis.latents import arrange_layers, save_latents
    from ..analysis.latents import latents as latents_of
    from ..devices import model_on_device
    from ..errors import ConfigError
    from ..models import load
    from ..storage import check_outputs
    from .common import fingerprint_of_inputs, library_defaults, read_frames

    library_defaults(args, latents_of, ("batch_size",))
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.scheduler is not None and args.chunk_frames is None:
        raise ConfigError("--scheduler runs chunks of frames as tasks: add --chunk-frames N")
    model = model_on_device(load(args.model), args.device or "auto")
    dataset = read_frames(args, species=model.species)
    frames = dataset.frames
    source = {"model": str(args.model), "file": str(args.file), "index": args.index}
    options = dict(per_species=not args.single_block, pooling=args.pooling)
    output = Path(args.output)
    fingerprint = fingerprint_of_inputs(
        args, ("index", "single_block", "pooling", "chunk_frames"), [args.model, args.file]
    )
    outputs = [output / "layers.json", output / "equivariant", output / "invariant"]
    outputs += sorted(output.glob("*.mts")) + sorted(output.glob("chunk-*"))
    record = check_outputs(output / "run.json", fingerprint, outputs, args.overwrite)
    if args.chunk_frames is not None:
        return _write_chunks(model, frames, args, source, options, record)
    layers = model.layers(frames, batch_size=args.batch_size)
    record()
    if any("o3_lambda" in t.keys.names for t in layers.values()):
        folder = save_latents(output / "equivariant", layers, frames, source)
        for name, tensor in layers.items():
            lambdas = sorted({int(k.values[0]) for k in tensor.keys})
            print(f"  {name:16s} {len(tensor.keys)} blocks, o3_lambda {lambdas}")
        invariant = arrange_layers(layers, **options)
        save_latents(output / "invariant", invariant, frames, source)
        print(
            f"{len(layers)} layers of {len(frames)} frames -> {folder} and {output / 'invariant'}"
        )
        return 0
    layers = arrange_layers(layers, **options)
    folder = save_latents(output, layers, frames, source)
    for name, tensor in layers.items():
        block = tensor.block(0)
        print(f"  {name:16s} {len(tensor.keys)} block(s), {block.values.shape[1]} features")
    print(f"{len(layers)} layers of {len(dataset)} frames -> {folder}")
    return 0


def _write_chunks(model, frames, args: argparse.Namespace, source, options, record) -> int:
    from ..analysis.chunks import save_latent_chunks
    from ..errors import ConfigError
    from ..study.cluster import dask_client

    if args.chunk_frames < 1:
        raise ConfigError(f"--chunk-frames must be >= 1, got {args.chunk_frames}")
    with dask_client(args.scheduler) as client:  # refused here when nothing answers
        record()
        folder = save_latent_chunks(
            args.output,
            model,
            frames,
            args.chunk_frames,
            args.batch_size,
            source,
            client=client,
            **options,
        )
    count = -(-len(frames) // args.chunk_frames)
    print(f"{len(model.layer_names)} layers of {len(frames)} frames in {count} chunks -> {folder}")
    return 0
