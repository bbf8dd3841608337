"""permeability: a guide value for packaging-film water-vapour permeability, and the MLOps loop behind it."""

__version__ = "0.1.0"
