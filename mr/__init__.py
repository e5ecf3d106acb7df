"""mr: a distributed MapReduce service."""

__version__ = "0.1.0"
