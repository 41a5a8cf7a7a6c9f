"""DistributedDataParallel is real (mpiexec -n 1, 2, 3; one DDP group of all ranks, gloo): after every optimiser
step the replicas hold bit-identical weights, and the trained stack equals a single-process run on the same
global batches to float round-off -- also for the paper's loss, a product of batch means that plain gradient
averaging over replicas would get wrong (the batch sums are all-reduced before the loss)."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.mpi

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def group():
    from prodampi.parallel.comm import World
    from prodampi.stages.learn import _ddp_groups

    w = World()
    torch.set_num_threads(1)
    pg, gid, n_groups, sub = _ddp_groups(w, w.size, "cpu")
    assert n_groups == 1 and gid == 0
    yield w, pg
    sub.Free()


def _problem(loss: str, dropout: float):
    from prodampi.learn.train import MemberPlan, TrainConfig

    g = np.random.default_rng(3)
    n, k, p = 61, 6, 3
    x = torch.from_numpy(g.random((n, k)).astype(np.float32))
    y = torch.from_numpy((0.1 + 0.8 * g.random((n, p))).astype(np.float32))
    plans = [MemberPlan(name=f"m{i}", init_seed=10 + i, dropout_seed=20 + i, shuffle_seed=30 + i,
                        train=np.sort(g.integers(0, n, size=45 + 7 * i)), val=np.arange(50, 61))
             for i in range(2)]
    cfg = TrainConfig(epochs=3, patience=0, batch_size=8, lr=1.0, hidden=(8, 8), dropout=dropout, loss=loss,
                      ratio_eps=1e-6)
    return x, y, plans, cfg


def _flat(net) -> torch.Tensor:
    return torch.cat([q.detach().reshape(-1) for q in net.parameters()])


@pytest.mark.parametrize("loss,dropout", [("paper", 0.2), ("compas_code", 0.0), ("clm5_code", 0.2)])
def test_replicas_identical_every_step_and_equal_to_single_process(group, loss, dropout):
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from prodampi.learn.ddp import replica
    from prodampi.learn.train import init_stack, train_epoch

    w, pg = group
    x, y, plans, cfg = _problem(loss, dropout)
    state = init_stack(plans, cfg, x.shape[1], y.shape[1])
    ddp = DistributedDataParallel(state.net, process_group=pg, broadcast_buffers=False)
    steps = []

    def check(step: int) -> None:
        mine = _flat(state.net)
        got = [torch.empty_like(mine) for _ in range(dist.get_world_size(pg))]
        dist.all_gather(got, mine, group=pg)
        for other in got:
            assert torch.equal(other, mine), f"replicas differ after step {step}"
        steps.append(step)

    for _ in range(cfg.epochs):
        train_epoch(state, plans, x, y, cfg, group=replica(pg), ddp_module=ddp, on_step=check)
    assert len(steps) >= 3 * 7  # every step was compared

    ref = init_stack(plans, cfg, x.shape[1], y.shape[1])
    for _ in range(cfg.epochs):
        train_epoch(ref, plans, x, y, cfg)
    a, b = _flat(state.net), _flat(ref.net)
    assert not torch.equal(_flat(init_stack(plans, cfg, x.shape[1], y.shape[1]).net), b)  # it trained
    assert torch.allclose(a, b, rtol=1e-4, atol=1e-5), float((a - b).abs().max())
    assert np.allclose(state.train_loss, ref.train_loss, rtol=1e-4, equal_nan=True)
    assert np.allclose(state.val_loss, ref.val_loss, rtol=1e-4, equal_nan=True)
