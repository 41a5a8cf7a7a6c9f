#!/usr/bin/env python
"""Benchmark the soil models' steady-state solvers on one core (thin wrapper of prodampi.soil.bench).

    python tools/bench_models.py --quick --json
    python tools/bench_models.py --models clm5 --batch-sizes 1,64,4096 --preset textbook
"""

import os
import sys
from pathlib import Path

# one core: single-threaded BLAS/OpenMP for the dense reference path (set before numpy is imported)
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prodampi.soil.bench import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
