#!/usr/bin/env bash
# prodampi environment set-up: a real MPI, an MPI-enabled HDF5, and a virtual environment in which mpi4py and
# h5py are built against that same MPI.  Unattended and idempotent:
#   * first run on a fresh machine: apt packages (when root and missing), venv, wheel builds  (~5-6 min, 2 cores)
#   * later runs, same clone: a stamp check                                                       (~1 s)
#   * a fresh clone on the same machine: new venv from the wheel cache                             (~20-40 s)
#
# Variables (all optional):
#   PRODAMPI_VENV     venv location                       (default: <repo>/.venv)
#   PRODAMPI_CACHE    wheel cache, outside the clone      (default: ${XDG_CACHE_HOME:-~/.cache}/prodampi)
#   PYTHON            interpreter for the venv (>= 3.11)  (default: python3)
#   MPICC             MPI compiler wrapper                (default: mpicc.mpich if present, else mpicc)
#   MPIEXEC           MPI launcher recorded for tests     (default: mpiexec.mpich if present, else mpiexec)
#   HDF5_DIR          an MPI-enabled HDF5 install prefix (cluster modules); else pkg-config HDF5_PKGCONFIG_NAME
#   HDF5_PKGCONFIG_NAME  pkg-config name of the MPI HDF5 (default: hdf5-mpich when HDF5_DIR is unset)
#   PRODAMPI_NO_APT=1 never call apt-get (clusters: load your MPI/HDF5 modules first)
#   PRODAMPI_TORCH    torch requirement                   (default: torch==2.13.0, the CPU build here)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${PRODAMPI_VENV:-$repo/.venv}
cache=${PRODAMPI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/prodampi}
py=${PYTHON:-python3}
torch_req=${PRODAMPI_TORCH:-torch==2.13.0}
log() { printf '[setup_env] %s\n' "$*" >&2; }
t0=$(date +%s)

# ---------------------------------------------------------------- 1. system MPI + parallel HDF5
need_apt=0
command -v mpicc.mpich >/dev/null 2>&1 || command -v "${MPICC:-mpicc}" >/dev/null 2>&1 || need_apt=1
if [ -z "${HDF5_DIR:-}" ]; then
  pkg-config --exists "${HDF5_PKGCONFIG_NAME:-hdf5-mpich}" 2>/dev/null || need_apt=1
fi
if [ "$need_apt" = 1 ]; then
  if [ "${PRODAMPI_NO_APT:-0}" != 1 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing mpich + libhdf5-mpich-dev (Debian packages)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq mpich libhdf5-mpich-dev pkg-config >/dev/null
  else
    log "ERROR: no MPI compiler wrapper or MPI-enabled HDF5 found."
    log "  Load your site's MPI and parallel-HDF5 modules and set MPICC and HDF5_DIR (or HDF5_PKGCONFIG_NAME),"
    log "  or run this script as root on Debian/Ubuntu to install mpich + libhdf5-mpich-dev."
    exit 1
  fi
fi
if [ -z "${MPICC:-}" ]; then
  if command -v mpicc.mpich >/dev/null 2>&1; then MPICC=mpicc.mpich; else MPICC=mpicc; fi
fi
if [ -z "${MPIEXEC:-}" ]; then
  if command -v mpiexec.mpich >/dev/null 2>&1; then MPIEXEC=mpiexec.mpich; else MPIEXEC=mpiexec; fi
fi
if [ -z "${HDF5_DIR:-}" ]; then
  export HDF5_PKGCONFIG_NAME=${HDF5_PKGCONFIG_NAME:-hdf5-mpich}
  hdf5_id="pc:$HDF5_PKGCONFIG_NAME:$(pkg-config --modversion "$HDF5_PKGCONFIG_NAME")"
else
  unset HDF5_PKGCONFIG_NAME || true
  hdf5_id="dir:$HDF5_DIR"
fi
mpi_id=$("$MPICC" -show 2>/dev/null | tr ' ' '\n' | grep -E '^-I|^-L' | sort -u | tr '\n' ' ')
mpi_ver=$("$MPIEXEC" --version 2>/dev/null | head -3 | tr '\n' ' ' || true)
py_ver=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
"$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || { log "ERROR: Python >= 3.11 needed ($py is $py_ver)"; exit 1; }
key=$(printf '%s|%s|%s|%s|%s|%s' "$MPICC" "$mpi_id" "$mpi_ver" "$hdf5_id" "$py_ver" "$(uname -m)" | sha256sum | cut -c1-16)
wheels=$cache/wheels-$key
reqs="numpy scipy pyyaml netCDF4 h5netcdf xarray arviz matplotlib global-land-mask $torch_req pytest pytest-mpi hypothesis ruff import-linter"
stamp_val=$(printf '%s|%s|%s' "$key" "$reqs" "$(sha256sum "$repo/pyproject.toml" "$repo/setup.cfg" 2>/dev/null | cut -c1-64 | tr '\n' ' ')" | sha256sum | cut -c1-32)

# ---------------------------------------------------------------- 2. fast path: nothing to do
if [ -x "$venv/bin/python" ] && [ "$(cat "$venv/.prodampi-stamp" 2>/dev/null)" = "$stamp_val" ] \
   && "$venv/bin/python" -c 'import mpi4py, h5py, netCDF4, torch, yaml, global_land_mask, importlinter, prodampi; assert h5py.get_config().mpi' 2>/dev/null; then
  log "environment up to date ($venv)"
  exit 0
fi

# ---------------------------------------------------------------- 3. venv
if [ ! -x "$venv/bin/python" ]; then
  log "creating venv $venv"
  "$py" -m venv "$venv"
fi
pip_() {  # quiet pip; drop the noise of find-links folders that a machine's pip config names but lacks
  "$venv/bin/python" -m pip --disable-pip-version-check -q "$@" 2> >(grep -v '^WARNING: Location .* is ignored' >&2)
}
pip=(pip_)
mkdir -p "$wheels"
if ! ls "$wheels"/mpi4py-*.whl >/dev/null 2>&1 || ! ls "$wheels"/h5py-*.whl >/dev/null 2>&1; then
  log "building mpi4py and h5py against $MPICC / $hdf5_id (several minutes, cached in $wheels)"
  "${pip[@]}" install -U pip wheel setuptools cython pkgconfig numpy
  tmpw=$(mktemp -d "$cache/build.XXXXXX")
  # h5py's MPI build imports mpi4py, so mpi4py is built and installed first.
  CC=$MPICC MPICC=$MPICC \
    "${pip[@]}" wheel --no-binary=mpi4py --no-build-isolation --no-cache-dir --no-deps -w "$tmpw" mpi4py
  "${pip[@]}" install --no-index --no-deps "$tmpw"/mpi4py-*.whl
  CC=$MPICC MPICC=$MPICC HDF5_MPI=ON \
    "${pip[@]}" wheel --no-binary=h5py --no-build-isolation --no-cache-dir --no-deps -w "$tmpw" h5py
  mv "$tmpw"/*.whl "$wheels"/ && rmdir "$tmpw"
fi
# Binary wheels of the rest, cached beside them (a fresh clone installs from the cache, no network needed).
if [ ! -f "$wheels/.reqs" ] || [ "$(cat "$wheels/.reqs")" != "$reqs" ]; then
  log "fetching binary wheels: $reqs"
  # shellcheck disable=SC2086
  "${pip[@]}" download --only-binary=:all: -d "$wheels" $reqs setuptools wheel
  echo "$reqs" > "$wheels/.reqs"
fi
# Dependencies (h5netcdf -> h5py) bring PyPI's binary h5py/mpi4py wheels, built without our MPI; pip would
# prefer their manylinux tag over the local build, so only the wheels built above may stay in the cache.
find "$wheels" -maxdepth 1 \( -name 'h5py-*linux*.whl' -o -name 'mpi4py-*linux*.whl' \) \
  \( -name '*manylinux*' -o -name '*musllinux*' \) -delete
log "installing into venv from $wheels"
# shellcheck disable=SC2086
"${pip[@]}" install --no-index --find-links "$wheels" setuptools wheel mpi4py h5py $reqs
"${pip[@]}" install --no-index --find-links "$wheels" --no-build-isolation --no-deps -e "$repo"

# ---------------------------------------------------------------- 4. checks
"$venv/bin/python" - <<'PY'
import global_land_mask, h5py, importlinter, mpi4py, netCDF4, torch, yaml  # noqa: F401  (netCDF4 and MPI h5py in one process)
assert h5py.get_config().mpi, "h5py was not built with MPI"
PY
printf '%s\n' "$MPIEXEC" > "$venv/.prodampi-mpiexec"
echo "$stamp_val" > "$venv/.prodampi-stamp"
log "done in $(( $(date +%s) - t0 )) s: venv=$venv mpiexec=$MPIEXEC"
