#!/usr/bin/env bash
# The whole prodampi test suite, as CI runs it.  Installs what is missing first (tools/setup_env.sh), then:
#   0. the layer contract of ARCHITECTURE.md (import-linter, contracts in .importlinter)
#   1. serial tests (tests/unit, tests/e2e; the e2e tests spawn real `mpiexec -n 3` jobs themselves)
#   2. the MPI suite tests/mpi under a real mpiexec with 1, 2 and 3 ranks (pytest-mpi, --with-mpi)
# Extra arguments go to the serial pytest run (e.g. -x, -k name).  Exit status non-zero if anything failed
# or if a run collected no tests or the layer contract is broken.  The last line is the total:
# "tests: N passed, N failed, N skipped" (+ "; layer contract BROKEN (lint-imports)" when it is).
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
bash tools/setup_env.sh || { echo "tests: environment set-up failed"; exit 1; }
venv=${PRODAMPI_VENV:-$repo/.venv}
py=$venv/bin/python
mpiexec=$(cat "$venv/.prodampi-mpiexec")
export PRODAMPI_MPIEXEC=$mpiexec
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
junit=$(mktemp -d -t prodampi-junit.XXXXXX)
export PRODAMPI_JUNIT_DIR=$junit
status=0
lint_failed=0

run() {  # run a pytest command; exit 5 (no tests collected) counts as a failure
  echo "+ $*"
  "$@"
  local rc=$?
  if [ $rc -eq 5 ]; then echo "tests: no tests collected by: $*"; status=1
  elif [ $rc -ne 0 ]; then status=1; fi
}

echo "+ lint-imports --no-cache  (layer contract, .importlinter)"
if ! "$venv/bin/lint-imports" --no-cache; then
  echo "tests: layer contract broken (lint-imports, see above)"
  status=1
  lint_failed=1
fi
run "$py" -m pytest -q -p no:cacheprovider tests/unit tests/e2e --junitxml="$junit/serial.xml" "$@"
for n in 1 2 3; do
  # every rank runs the same suite; rank 0's JUnit file is the one counted (PMI_RANK is set by mpiexec)
  run timeout -k 10 900 "$mpiexec" -n "$n" bash -c '"$0" -m pytest -q -p no:cacheprovider --with-mpi tests/mpi \
      --junitxml="$1/mpi-n$2-r${PMI_RANK:-${OMPI_COMM_WORLD_RANK:-0}}.xml"' "$py" "$junit" "$n"
done
"$py" - "$junit" "$lint_failed" <<'PY'
import glob, sys, xml.etree.ElementTree as ET
tot = dict(tests=0, failures=0, errors=0, skipped=0)
for f in sorted(glob.glob(sys.argv[1] + "/serial.xml") + glob.glob(sys.argv[1] + "/mpi-n*-r0.xml")):
    for s in ET.parse(f).getroot().iter("testsuite"):
        for k in tot:
            tot[k] += int(s.get(k, 0))
passed = tot["tests"] - tot["failures"] - tot["errors"] - tot["skipped"]
lint = "; layer contract BROKEN (lint-imports)" if sys.argv[2] != "0" else ""
print(f"tests: {passed} passed, {tot['failures'] + tot['errors']} failed, {tot['skipped']} skipped{lint}")
sys.exit(0 if tot["tests"] > 0 else 1)
PY
[ $? -eq 0 ] || status=1
rm -rf "$junit"
exit $status
