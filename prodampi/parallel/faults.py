"""Fault injection for tests (pySDC style): raise, or SIGKILL this process, at a named point on a chosen rank.

Set ``PRODAMPI_FAULT`` to a comma-separated list of ``ACTION:WHERE[@RANK][#NTH]`` items, e.g.::

    PRODAMPI_FAULT=raise:selftest@1              # InjectedFault on rank 1 when selftest reaches that point
    PRODAMPI_FAULT=kill:ledger_before_replace#4  # SIGKILL in the 4th ledger update, half done (any rank)
    PRODAMPI_FAULT=term:assimilate_step#30       # send this process SIGTERM at its 30th sampler step

``#NTH`` counts the times this process reaches the point (1-based); without it the first time fires.

Unset (the default) the hooks cost one dictionary lookup.  Never set it in production runs.
"""

from __future__ import annotations

import os
import signal


class InjectedFault(RuntimeError):
    """The exception raised by ``raise:`` faults."""


_HITS: dict[str, int] = {}


ACTIONS = ("raise", "kill", "term", "usr1")


def _parse(spec: str) -> list[tuple[str, str, int | None, int]]:
    """Parse ``PRODAMPI_FAULT``; a malformed item raises :class:`ProdampiError` (one line, exit 2)."""
    from ..errors import ProdampiError

    out = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        action, colon, rest = item.partition(":")
        rest, _, nth = rest.partition("#")
        where, _, rank = rest.partition("@")
        if action not in ACTIONS or not colon or not where or (rank and not rank.isdigit()) \
                or (nth and (not nth.isdigit() or int(nth) < 1)):
            raise ProdampiError(f"PRODAMPI_FAULT = {spec!r}: bad item {item!r}; expected ACTION:WHERE[@RANK][#NTH] "
                                f"with ACTION one of {', '.join(ACTIONS)}, RANK >= 0, NTH >= 1")
        out.append((action, where, int(rank) if rank else None, int(nth) if nth else 1))
    return out


def check_fault_spec() -> None:
    """Refuse a malformed ``PRODAMPI_FAULT`` at once (call at the start of a stage), not at the first point."""
    spec = os.environ.get("PRODAMPI_FAULT")
    if spec:
        _parse(spec)


def fault_point(where: str, rank: int = 0) -> None:
    """Trigger an injected fault named ``where`` on ``rank`` if ``PRODAMPI_FAULT`` asks for one."""
    spec = os.environ.get("PRODAMPI_FAULT")
    if not spec:
        return
    _HITS[where] = hit = _HITS.get(where, 0) + 1
    for action, w, r, nth in _parse(spec):
        if w != where or (r is not None and r != rank) or hit != nth:
            continue
        if action == "raise":
            raise InjectedFault(f"injected fault at {where!r} on rank {rank}")
        if action == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if action == "term":
            os.kill(os.getpid(), signal.SIGTERM)
        if action == "usr1":
            os.kill(os.getpid(), signal.SIGUSR1)
