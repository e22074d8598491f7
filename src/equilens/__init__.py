"""equilens: look inside equivariant atomistic models.

The subpackages follow the flow of data, and each imports only from those
below it (an import-linter contract in CI keeps it so):

- :mod:`equilens.cli` (the ``equilens`` command) and :mod:`equilens.study`
  (the latent-space study that runs every stage);
- :mod:`equilens.export`: chemiscope files, the offline page, figures;
- :mod:`equilens.analysis`: every layer as TensorMaps, reconstruction
  measures (GFRE, GFRD, LFRE, equivariant GFRE), projections, labels,
  scorecard;
- :mod:`equilens.training`: one loop and one configuration shape for the
  ``potential`` and ``tensor`` tasks;
- :mod:`equilens.models`: the model protocol (:class:`equilens.models.Model`)
  implemented by the BPNN potential and the equivariant tensor model, and
  :func:`equilens.models.load`;
- :mod:`equilens.descriptors`: SOAP / lambda-SOAP (featomic), compressions,
  projected features with gradients;
- :mod:`equilens.data`: reading and validation, splits, reference and
  embedded datasets, generators;
- utilities: :mod:`equilens.errors`, :mod:`equilens.config`,
  :mod:`equilens.storage`, :mod:`equilens.tensormaps`, :mod:`equilens.so3`,
  :mod:`equilens.figures`, :mod:`equilens.provenance`.

``import equilens`` is cheap; subpackages are imported when used.
"""

from .errors import (
    ChecksumError,
    ConfigError,
    DataError,
    DatasetNotFoundError,
    DescriptorError,
    EquilensError,
    FileFormatError,
    ModelError,
)

__version__ = "0.2.0"

__all__ = [
    "ChecksumError",
    "ConfigError",
    "DataError",
    "DatasetNotFoundError",
    "DescriptorError",
    "EquilensError",
    "FileFormatError",
    "ModelError",
    "__version__",
]
