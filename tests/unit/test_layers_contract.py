"""The layer contract of ``ARCHITECTURE.md``, checked by parsing every module's imports (``ast``).

1. Kernels — ``prodampi.soil``, ``prodampi.inference`` and the pure parts of ``prodampi.learn`` — import no
   mpi4py, h5py or torch.distributed, directly or through another prodampi module.
2. Nothing below ``prodampi.stages`` imports ``prodampi.stages`` or ``prodampi.cli``.

Every import counts: module level, inside functions, ``from x import y`` (``y`` may itself be a module),
relative imports and ``importlib.import_module("...")`` / ``__import__("...")`` with a literal name.
``tools/test.sh`` runs import-linter on the same contracts (``.importlinter``); this test needs nothing but
the standard library and also covers torch.distributed, which import-linter cannot name.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterable
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[2] / "prodampi"

#: kernel packages (rule 1)
KERNELS = ("prodampi.soil", "prodampi.inference", "prodampi.learn")
#: modules of ``prodampi.learn`` that are glue, not kernel, and may use torch.distributed (DDP set-up);
#: keep this list short and name each module
LEARN_GLUE: tuple[str, ...] = ("prodampi.learn.ddp", "prodampi.learn.distributed")
#: what kernels must not import (a name and everything below it)
KERNEL_FORBIDDEN = ("mpi4py", "h5py", "torch.distributed")
#: the top of the stack (rule 2): everything else is "below stages"
TOP = ("prodampi.stages", "prodampi.cli", "prodampi.__main__")
UPWARD = ("prodampi.stages", "prodampi.cli")


def _under(name: str, prefixes: Iterable[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def module_names(package_dir: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of the package (``__init__`` names the package)."""
    out = {}
    for f in sorted(package_dir.rglob("*.py")):
        parts = [package, *f.relative_to(package_dir).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = f
    return out


def imports_of(path: Path, module: str) -> list[tuple[str, int]]:
    """Absolute names a module imports, with line numbers (``from a import b`` gives ``a`` and ``a.b``)."""
    is_pkg = path.name == "__init__.py"
    base = module.split(".") if is_pkg else module.split(".")[:-1]
    tree = ast.parse(path.read_text(), filename=str(path))
    out: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                mod = ".".join(anchor + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.append((mod, node.lineno))
            out += [(f"{mod}.{a.name}", node.lineno) for a in node.names if a.name != "*"]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            fn = node.func
            name = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", "")
            if name in ("import_module", "__import__"):
                out.append((node.args[0].value, node.lineno))
    return out


def _parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def violations(package_dir: Path, package: str = "prodampi") -> list[str]:
    """Every breach of the two rules, one line each (module, line, what, and the chain for indirect ones)."""
    mods = module_names(package_dir, package)
    graph: dict[str, list[tuple[str, int]]] = {m: imports_of(p, m) for m, p in mods.items()}

    def internal_edges(m: str) -> set[str]:
        """prodampi modules that importing ``m`` executes (the imported modules and their parent packages)."""
        out = set()
        for name, _ in graph[m]:
            for cand in (*_parents(name), name):
                if cand in mods and cand != m:
                    out.add(cand)
        out.update(p for p in _parents(m) if p in mods)
        return out

    bad: list[str] = []
    kernel_forbidden = tuple(f.replace("prodampi", package, 1) for f in KERNEL_FORBIDDEN)
    kernels = tuple(k.replace("prodampi", package, 1) for k in KERNELS)
    glue = tuple(g.replace("prodampi", package, 1) for g in LEARN_GLUE)
    kernel_mods = [m for m in mods if _under(m, kernels) and not _under(m, glue)]
    for start in kernel_mods:
        # breadth-first over internal imports; report the first chain to each forbidden import
        seen, queue = {start: [start]}, [start]
        while queue:
            m = queue.pop(0)
            for name, line in graph[m]:
                if _under(name, kernel_forbidden):
                    chain = " -> ".join(seen[m])
                    bad.append(f"kernel {start} imports {name} ({mods[m].name}:{line}; via {chain})")
            for nxt in sorted(internal_edges(m)):
                if nxt not in seen:
                    seen[nxt] = seen[m] + [nxt]
                    queue.append(nxt)
    top = tuple(t.replace("prodampi", package, 1) for t in TOP)
    upward = tuple(u.replace("prodampi", package, 1) for u in UPWARD)
    for m in mods:
        if _under(m, top):
            continue
        for name, line in graph[m]:
            if _under(name, upward):
                bad.append(f"{m} (below stages) imports {name} ({mods[m].relative_to(package_dir)}:{line})")
    return sorted(set(bad))


def test_prodampi_keeps_the_layer_contract():
    assert PACKAGE_DIR.is_dir()
    found = violations(PACKAGE_DIR)
    assert not found, "layer contract broken:\n  " + "\n  ".join(found)


def test_every_kind_of_breach_is_found(tmp_path):
    """The checker itself: each way of breaking the contract is reported, allowed imports are not."""
    pkg = tmp_path / "prodampi"
    files = {
        "__init__.py": "",
        "cli.py": "from .stages import prepare\n",
        "stages/__init__.py": "",
        "stages/prepare.py": "import h5py\nfrom ..soil import ok\n",
        "parallel/__init__.py": "",
        "parallel/comm.py": "def f():\n    from mpi4py import MPI\n",
        "soil/__init__.py": "",
        "soil/ok.py": "import numpy as np\nimport torch\n",
        "soil/direct.py": "def f():\n    import mpi4py\n",
        "soil/fromimport.py": "from torch import distributed\n",
        "soil/dynamic.py": "import importlib\nh = importlib.import_module('h5py.h5s')\n",
        "soil/indirect.py": "from ..parallel import comm\n",
        "inference/__init__.py": "from ..data.clean import x\n",
        "data/__init__.py": "",
        "data/clean.py": "import numpy\nx = 1\n",
        "data/up.py": "from prodampi.cli import main\nx = 1\n",
        "learn/__init__.py": "",
        "learn/ddp.py": "import torch.distributed as dist\n",
        "learn/net.py": "from . import ddp\n",
    }
    for rel, text in files.items():
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text(text)
    found = "\n".join(violations(pkg))
    assert "kernel prodampi.soil.direct imports mpi4py" in found
    assert "kernel prodampi.soil.fromimport imports torch.distributed" in found
    assert "kernel prodampi.soil.dynamic imports h5py.h5s" in found
    assert "kernel prodampi.soil.indirect imports mpi4py.MPI" in found
    assert "prodampi.soil.indirect -> prodampi.parallel.comm" in found
    assert "prodampi.data.up (below stages) imports prodampi.cli" in found
    assert "kernel prodampi.learn.net imports torch.distributed" in found  # glue does not launder imports
    for allowed in ("soil.ok ", "kernel prodampi.stages", "kernel prodampi.learn.ddp", "prodampi.cli (below",
                    "kernel prodampi.inference", "prodampi.data.clean"):
        assert allowed not in found, allowed


@pytest.mark.parametrize("module", ["prodampi.soil", "prodampi.inference"])
def test_kernel_packages_exist(module):
    mods = module_names(PACKAGE_DIR, "prodampi")
    assert any(_under(m, (module,)) for m in mods)


# ------------------------------------------------------------------------------------------------ dependencies
#: import name -> distribution where they differ and the package may not be installed here
_DIST_OF_IMPORT = {"yaml": "pyyaml", "global_land_mask": "global-land-mask"}
#: third-party packages the package may import only lazily, from these modules, as an ``extras_require`` extra
OPTIONAL_IMPORTS = {"matplotlib": ("prodampi.stages.assimilate_report",)}


def _requirements() -> tuple[set[str], dict[str, set[str]]]:
    """``install_requires`` and ``extras_require`` of setup.cfg as normalised distribution names."""
    import configparser
    import re

    cfg = configparser.ConfigParser()
    cfg.read(PACKAGE_DIR.parent / "setup.cfg")

    def names(text: str, sep: str) -> set[str]:
        items = [x.strip() for x in re.split(sep, text) if x.strip() and not x.strip().startswith("#")]
        return {re.split(r"[<>=!~\[; ]", x)[0].lower().replace("_", "-") for x in items}

    required = names(cfg.get("options", "install_requires"), r"\n")
    extras = {k: names(v, r"[;\n]") for k, v in cfg.items("options.extras_require")}
    return required, extras


@functools.cache
def _packages_distributions() -> dict[str, list[str]]:
    import importlib.metadata

    return importlib.metadata.packages_distributions()


def _distribution(import_name: str) -> str:
    dists = _packages_distributions().get(import_name)
    name = dists[0] if dists else _DIST_OF_IMPORT.get(import_name, import_name)
    return name.lower().replace("_", "-")


def test_install_requires_lists_every_runtime_import():
    """``pip install .`` gives a working package: each third-party import is a declared requirement."""
    import sys

    required, extras = _requirements()
    mods = module_names(PACKAGE_DIR, "prodampi")
    missing, misplaced = [], []
    for m, path in mods.items():
        tree = ast.parse(path.read_text())
        top_level = {id(n) for n in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in ("prodampi", "__future__"):
                    continue
                dist = _distribution(top)
                if top in OPTIONAL_IMPORTS:
                    if not any(dist in e for e in extras.values()):
                        missing.append(f"{dist} (extra) for {m}")
                    if not _under(m, OPTIONAL_IMPORTS[top]) or id(node) in top_level:
                        misplaced.append(f"{m}:{node.lineno} imports optional {name}")
                elif dist not in required:
                    missing.append(f"{dist} for {m}:{node.lineno}")
    assert not missing, f"not in setup.cfg install_requires: {sorted(set(missing))}"
    assert not misplaced, f"optional packages imported outside their modules or at import time: {misplaced}"
