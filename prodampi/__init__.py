"""prodampi: PRODA (Tao et al. 2024, Global Change Biology 30:e17297) as an MPI-parallel batch application."""

__version__ = "0.1.0"
