"""Stacked multilayer perceptrons: M independent PRODA networks evaluated and trained at once.

The paper's network (spec §5.1) maps ``in_dim`` (60) covariates through four ReLU hidden layers
(256, 512, 512, 256 units, dropout after each) to ``out_dim`` (P = 21 CLM5 / 23 COMPAS) normalised parameters.
:class:`StackedMLP` holds M such members with a leading member axis on every parameter, so a batch of
members is one ``torch.baddbmm`` per layer.

Determinism contract (issue 11): a member's initial weights depend only on its seed
(:meth:`StackedMLP.init_members`) and its dropout masks only on (seed, epoch, draws so far)
(:class:`DropoutStreams`), never on which other members share the stack, their order, the rank or the group.
Dropout masks are drawn outside :meth:`StackedMLP.forward` so that data-parallel replicas can take their rows
of the masks drawn for the global batch.

No global random state is used: every draw comes from an explicit ``torch.Generator``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["DEFAULT_HIDDEN", "StackedMLP", "DropoutStreams", "to_sequential", "from_sequential", "n_parameters",
           "member_seed_state"]

DEFAULT_HIDDEN: tuple[int, ...] = (256, 512, 512, 256)
_OUTPUTS = ("linear", "sigmoid")


def n_parameters(in_dim: int, out_dim: int, hidden: Sequence[int] = DEFAULT_HIDDEN) -> int:
    """Number of trainable parameters of ONE member (kernels plus biases).

    Parameters
    ----------
    in_dim, out_dim : int
        Input (covariate) and output (parameter) widths.
    hidden : sequence of int
        Hidden-layer widths.

    Returns
    -------
    int
        ``sum_l (fan_in_l + 1) * fan_out_l``; 546,581 for (60, 21) and 547,095 for (60, 23) (spec §5.1).
    """
    dims = [int(in_dim), *[int(h) for h in hidden], int(out_dim)]
    return sum((a + 1) * b for a, b in zip(dims[:-1], dims[1:]))


def member_seed_state(seed: int, epoch: int) -> int:
    """Seed of a member's dropout generator for one epoch: a hash-free mix of (seed, epoch).

    Parameters
    ----------
    seed : int
        Member seed, >= 0.
    epoch : int
        Epoch index, >= 0.

    Returns
    -------
    int
        ``SeedSequence([seed, epoch]).generate_state(1, uint64)[0] mod 2**63`` (a valid ``manual_seed`` value).
    """
    if seed < 0 or epoch < 0:
        raise ValueError(f"seed and epoch must be >= 0, got {seed}, {epoch}")
    state = np.random.SeedSequence([int(seed), int(epoch)]).generate_state(1, dtype=np.uint64)[0]
    return int(state) % (2 ** 63)


class StackedMLP(nn.Module):
    """M independent MLPs ``in_dim -> hidden... -> out_dim`` with stacked parameters.

    Parameters
    ----------
    n_members : int
        Number of members M in the stack.
    in_dim, out_dim : int
        Input and output widths.
    hidden : sequence of int
        Hidden widths; default (256, 512, 512, 256) (spec §5.1).
    dropout : float
        Dropout rate p after every hidden layer (only used to document the masks callers must draw and by
        :func:`to_sequential`); masks themselves come from :class:`DropoutStreams`.
    output : {"linear", "sigmoid"}
        Output activation; "linear" is the authors' code (unbounded output, spec §5.1).

    Attributes
    ----------
    weights : nn.ParameterList
        Per layer l a Parameter of shape (M, fan_in_l, fan_out_l) (Keras kernel layout, ``y = x @ W + b``).
    biases : nn.ParameterList
        Per layer l a Parameter of shape (M, fan_out_l).

    Notes
    -----
    The constructor initialises member m from seed m (``init_members(range(M))``); call
    :meth:`init_members` with the real member seeds. dtype float32 (``.double()`` works for tests).
    """

    def __init__(self, n_members: int, in_dim: int, out_dim: int, hidden: Sequence[int] = DEFAULT_HIDDEN,
                 dropout: float = 0.2, output: str = "linear") -> None:
        super().__init__()
        if n_members < 1:
            raise ValueError(f"n_members must be >= 1, got {n_members}")
        if output not in _OUTPUTS:
            raise ValueError(f"output must be one of {_OUTPUTS}, got {output!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.n_members = int(n_members)
        self.in_dim = int(in_dim)
        self.out_dim = int(out_dim)
        self.hidden = tuple(int(h) for h in hidden)
        self.dropout = float(dropout)
        self.output = output
        dims = self.dims
        self.weights = nn.ParameterList(
            [nn.Parameter(torch.zeros(self.n_members, a, b, dtype=torch.float32)) for a, b in zip(dims[:-1], dims[1:])])
        self.biases = nn.ParameterList(
            [nn.Parameter(torch.zeros(self.n_members, b, dtype=torch.float32)) for b in dims[1:]])
        self.init_members(range(self.n_members))

    @property
    def dims(self) -> list[int]:
        """Layer widths ``[in_dim, *hidden, out_dim]``."""
        return [self.in_dim, *self.hidden, self.out_dim]

    @torch.no_grad()
    def init_members(self, seeds: Sequence[int]) -> None:
        """Keras-default initialisation: Glorot-uniform kernels, zero biases, member m from ``seeds[m]`` only.

        Parameters
        ----------
        seeds : sequence of int, length M
            Member seeds. Member m's generator is ``torch.Generator().manual_seed(seeds[m])``; its kernels are
            drawn in layer order 0..L-1, each as ``U(-a, a)`` of shape (fan_in, fan_out) with
            ``a = sqrt(6 / (fan_in + fan_out))`` (drawn in float64, then cast to the parameter dtype).
        """
        seeds = [int(s) for s in seeds]
        if len(seeds) != self.n_members:
            raise ValueError(f"need {self.n_members} seeds, got {len(seeds)}")
        for m, seed in enumerate(seeds):
            gen = torch.Generator().manual_seed(seed)
            for w, b in zip(self.weights, self.biases):
                fan_in, fan_out = w.shape[1], w.shape[2]
                limit = math.sqrt(6.0 / (fan_in + fan_out))
                u = torch.rand(fan_in, fan_out, generator=gen, dtype=torch.float64)
                w[m].copy_((2.0 * u - 1.0) * limit)
                b[m].zero_()

    def forward(self, x: Tensor, masks: Sequence[Tensor] | None = None, members: Tensor | None = None) -> Tensor:
        """Evaluate all members.

        Parameters
        ----------
        x : Tensor, shape (M, B, in_dim)
            Inputs per member (scaled covariates; members may see different rows).
        masks : list of Tensor or None
            None: no dropout (evaluation). Otherwise one tensor per hidden layer, shape (M, B, h_l), already
            scaled (inverted dropout: entries 0 or 1/(1-p)), e.g. from :meth:`DropoutStreams.draw`.
        members : Tensor of int64, shape (m,), or None
            Evaluate only these members (x and masks then have m rows on their first axis): a stack whose
            other members are idle or stopped does not pay for them; their gradients are zero.

        Returns
        -------
        Tensor, shape (M, B, out_dim)
            Normalised parameter predictions.
        """
        n_m = self.n_members if members is None else int(members.numel())
        if x.dim() != 3 or x.shape[0] != n_m or x.shape[2] != self.in_dim:
            raise ValueError(f"x must be (M={n_m}, B, {self.in_dim}), got {tuple(x.shape)}")
        n_hidden = len(self.hidden)
        if masks is not None and len(masks) != n_hidden:
            raise ValueError(f"need {n_hidden} masks, got {len(masks)}")
        h = x
        for layer, (w, b) in enumerate(zip(self.weights, self.biases)):
            if members is not None:
                w, b = w.index_select(0, members), b.index_select(0, members)
            h = torch.baddbmm(b.unsqueeze(1), h, w)
            if layer < n_hidden:
                h = torch.relu(h)
                if masks is not None:
                    h = h * masks[layer]
        if self.output == "sigmoid":
            h = torch.sigmoid(h)
        return h


class DropoutStreams:
    """Per-member dropout-mask generators keyed by (member seed, epoch).

    Parameters
    ----------
    seeds : sequence of int, length M
        Member seeds (>= 0); use a seed distinct from the initialisation seed if independence matters.
    widths : sequence of int
        Hidden widths h_l (one mask per hidden layer).
    p : float
        Dropout rate in [0, 1).

    Notes
    -----
    Member m's generator is reseeded by :meth:`start_epoch` from :func:`member_seed_state` (seeds[m], epoch).
    Each :meth:`draw` call for an active member consumes, layer by layer, ``torch.rand(batch_rows, h_l)`` from
    that member's generator only; a unit is kept where the uniform is >= p. Inactive members draw nothing (their
    stream does not move), so a member's masks do not depend on the stack composition.
    A data-parallel replica that owns rows [a:b] of a global batch of B rows draws for all B rows and takes
    ``mask[:, a:b]``.
    """

    def __init__(self, seeds: Sequence[int], widths: Sequence[int], p: float) -> None:
        if not 0.0 <= p < 1.0:
            raise ValueError(f"p must be in [0, 1), got {p}")
        self.seeds = [int(s) for s in seeds]
        if any(s < 0 for s in self.seeds):
            raise ValueError("seeds must be >= 0")
        self.widths = tuple(int(w) for w in widths)
        self.p = float(p)
        self.epoch: int | None = None
        self._gens = [torch.Generator() for _ in self.seeds]

    @property
    def n_members(self) -> int:
        """Number of members M."""
        return len(self.seeds)

    def start_epoch(self, epoch: int) -> None:
        """Reseed every member's generator from (seeds[m], epoch).

        Parameters
        ----------
        epoch : int
            Epoch index (>= 0).
        """
        self.epoch = int(epoch)
        for gen, seed in zip(self._gens, self.seeds):
            gen.manual_seed(member_seed_state(seed, self.epoch))

    def draw(self, batch_rows: int, active: Sequence[bool] | None = None,
             dtype: torch.dtype = torch.float32) -> list[Tensor] | None:
        """Draw the scaled masks for one (global) batch.

        Parameters
        ----------
        batch_rows : int
            Rows B of the global batch.
        active : sequence of bool, length M, or None
            Members that draw; None means all. Inactive members get all-zero masks and draw nothing.
        dtype : torch.dtype
            Mask dtype.

        Returns
        -------
        list of Tensor, shape (M, batch_rows, h_l) each, or None
            Entries 0 or 1/(1-p). When p == 0 the method returns None (forward then applies no dropout, which
            is identical to all-ones masks) and no generator moves.
        """
        if self.epoch is None:
            raise RuntimeError("call start_epoch before draw")
        if self.p == 0.0:
            return None
        n = self.n_members
        act = [True] * n if active is None else [bool(a) for a in active]
        if len(act) != n:
            raise ValueError(f"active must have {n} entries, got {len(act)}")
        scale = 1.0 / (1.0 - self.p)
        out = [torch.zeros(n, int(batch_rows), w, dtype=dtype) for w in self.widths]
        for m in range(n):
            if not act[m]:
                continue
            for layer, w in enumerate(self.widths):
                u = torch.rand(int(batch_rows), w, generator=self._gens[m], dtype=torch.float64)
                out[layer][m] = (u >= self.p).to(dtype) * scale
        return out

    def get_state(self) -> dict[str, object]:
        """Resumable state: the epoch and each member's generator state (uint8 tensors)."""
        return {"epoch": self.epoch, "generators": [g.get_state() for g in self._gens]}

    def set_state(self, state: dict[str, object]) -> None:
        """Restore a state from :meth:`get_state` (continued draws are bit-identical)."""
        gens = state["generators"]
        if len(gens) != self.n_members:  # type: ignore[arg-type]
            raise ValueError("state has a different number of members")
        self.epoch = None if state["epoch"] is None else int(state["epoch"])  # type: ignore[arg-type]
        for g, s in zip(self._gens, gens):  # type: ignore[arg-type]
            g.set_state(s)


def to_sequential(stacked: StackedMLP, m: int) -> nn.Sequential:
    """Member m as a standard ``torch.nn.Sequential`` (Linear / ReLU / Dropout ..., Linear [, Sigmoid]).

    Parameters
    ----------
    stacked : StackedMLP
        The stack.
    m : int
        Member index.

    Returns
    -------
    nn.Sequential
        Copies of member m's weights (``Linear.weight = W[m].T``, shape (fan_out, fan_in)), same dtype; Dropout
        layers carry the stack's rate. In ``.eval()`` it computes the stacked eval forward of member m.
    """
    if not 0 <= m < stacked.n_members:
        raise IndexError(f"member {m} out of range for M={stacked.n_members}")
    layers: list[nn.Module] = []
    n_hidden = len(stacked.hidden)
    dtype = stacked.weights[0].dtype
    for layer, (w, b) in enumerate(zip(stacked.weights, stacked.biases)):
        lin = nn.Linear(w.shape[1], w.shape[2], dtype=dtype)
        with torch.no_grad():
            lin.weight.copy_(w[m].detach().t())
            lin.bias.copy_(b[m].detach())
        layers.append(lin)
        if layer < n_hidden:
            layers.append(nn.ReLU())
            layers.append(nn.Dropout(stacked.dropout))
    if stacked.output == "sigmoid":
        layers.append(nn.Sigmoid())
    return nn.Sequential(*layers)


def from_sequential(seqs: Sequence[nn.Sequential]) -> StackedMLP:
    """Stack members given in the :func:`to_sequential` form (exact inverse).

    Parameters
    ----------
    seqs : sequence of nn.Sequential
        Members with identical architecture.

    Returns
    -------
    StackedMLP
        M = len(seqs) members with exactly the given weights, dtype of the first member.
    """
    if not seqs:
        raise ValueError("need at least one member")
    specs = [_parse_sequential(s) for s in seqs]
    dims, dropout, output = specs[0][0], specs[0][1], specs[0][2]
    for d, p, o, _ in specs[1:]:
        if d != dims or p != dropout or o != output:
            raise ValueError("members differ in architecture")
    stacked = StackedMLP(len(seqs), dims[0], dims[-1], dims[1:-1], dropout=dropout, output=output)
    stacked.to(specs[0][3][0].weight.dtype)
    with torch.no_grad():
        for m, (_, _, _, lins) in enumerate(specs):
            for layer, lin in enumerate(lins):
                stacked.weights[layer][m].copy_(lin.weight.t())
                stacked.biases[layer][m].copy_(lin.bias)
    return stacked


def _parse_sequential(seq: nn.Sequential) -> tuple[list[int], float, str, list[nn.Linear]]:
    lins = [mod for mod in seq if isinstance(mod, nn.Linear)]
    drops = {float(mod.p) for mod in seq if isinstance(mod, nn.Dropout)}
    if not lins or len(drops) > 1:
        raise ValueError("not a to_sequential network")
    for mod in seq:
        if not isinstance(mod, nn.Linear | nn.ReLU | nn.Dropout | nn.Sigmoid):
            raise ValueError(f"unexpected layer {type(mod).__name__}")
    dims = [lins[0].in_features] + [lin.out_features for lin in lins]
    output = "sigmoid" if isinstance(seq[len(seq) - 1], nn.Sigmoid) else "linear"
    return dims, (drops.pop() if drops else 0.0), output, lins
