"""prodampi.inference: the per-profile MCMC kernels (pure numpy: no MPI, no files, no clocks).

:data:`SAMPLER_MODES` owns the names of the sampler kernels; the deck's ``assimilate.mode`` takes its
choices from it.
"""

#: sampler kernels by name (``assimilate.mode``); the kernels themselves are built by the assimilate issue
SAMPLER_MODES: dict[str, str] = {
    "paper": "the authors' procedure as coded (test run, formal run, tempered acceptance, penalties)",
    "textbook": "adaptive Metropolis (Haario et al. 2001) on a Gaussian likelihood of log SOC",
}
