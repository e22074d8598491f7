"""equilens: look inside equivariant atomistic models.

The public API, one module per step of the flow (see ``DESIGN.md``):

- :mod:`equilens.data` reads and validates ASE datasets, splits them, and
  locates the reference datasets;
- :mod:`equilens.descriptors` computes SOAP and lambda-SOAP TensorMaps;
- :mod:`equilens.so3` gives rotations and real Wigner-D matrices in
  featomic's convention;
- :mod:`equilens.storage` writes files atomically and caches TensorMaps.
"""

from .errors import (  # noqa: F401
    ChecksumError,
    ConfigError,
    DataError,
    DatasetNotFoundError,
    DescriptorError,
    EquilensError,
)

__version__ = "0.1.0"
