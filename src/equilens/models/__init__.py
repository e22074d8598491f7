"""Models: per-species networks on SOAP (BPNN) and, later, equivariant nets."""

from .bpnn import BPNN, BPNNConfig  # noqa: F401
