"""The training loop of stage learn: it learns, early stopping keeps the lowest-validation-loss weights, a
member's result does not depend on the stack it trains in, and a resumed stack continues to the same bits."""

from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from prodampi.learn.losses import batch_sums, loss_from_sums  # noqa: E402
from prodampi.learn.train import (  # noqa: E402
    MemberPlan,
    TrainConfig,
    best_network,
    init_stack,
    predict,
    train_epoch,
    validation_loss,
)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _data(n=120, k=5, p=3, seed=0):
    g = np.random.default_rng(seed)
    x = g.random((n, k)).astype(np.float32)
    w = g.normal(size=(k, p))
    y = 1 / (1 + np.exp(-(x - 0.5) @ w))  # a smooth function of the covariates, in (0, 1)
    return torch.from_numpy(x), torch.from_numpy(y.astype(np.float32))


def _plan(i: int, n: int, n_val: int = 20, n_train: int | None = None) -> MemberPlan:
    rows = np.random.default_rng(100 + i).permutation(n)
    nt = n - n_val if n_train is None else n_train
    return MemberPlan(name=f"m{i}", init_seed=1 + i, dropout_seed=2 + i, shuffle_seed=3 + i,
                      train=np.sort(rows[n_val:n_val + nt]), val=np.sort(rows[:n_val]))


def _flat(net) -> torch.Tensor:
    return torch.cat([q.detach().reshape(-1) for q in net.parameters()])


def test_it_learns_a_smooth_map():
    x, y = _data()
    plans = [_plan(0, 120)]
    cfg = TrainConfig(epochs=60, patience=0, batch_size=16, lr=1.0, hidden=(32, 32), dropout=0.0, loss="mse")
    st = init_stack(plans, cfg, 5, 3)
    first = None
    for _ in range(cfg.epochs):
        train_epoch(st, plans, x, y, cfg)
        first = st.train_loss[0, 0] if first is None else first
    assert st.train_loss[0, -1] < 0.2 * first
    pred = predict(best_network(st), x)[0]
    v = plans[0].val
    r = [np.corrcoef(pred[v, j], y.numpy()[v, j])[0, 1] for j in range(3)]
    assert min(r) > 0.8, r  # held-out rows too


def test_validation_loss_is_keras_batchwise_size_weighted():
    x, y = _data()
    plans = [_plan(0, 120, n_val=37)]
    cfg = TrainConfig(epochs=1, batch_size=16, hidden=(8,), dropout=0.0, loss="paper", ratio_eps=1e-6)
    st = init_stack(plans, cfg, 5, 3)
    got = validation_loss(st, plans, x, y, cfg)[0]
    v = plans[0].val
    with torch.no_grad():
        pred = st.net(x[v].unsqueeze(0), None)
    want, tot = 0.0, 0
    for a in range(0, v.size, 16):  # 16 + 16 + 5 rows, each batch's own loss, weighted by its size
        sl = slice(a, a + 16)
        s = batch_sums(pred[:, sl], y[v][sl].unsqueeze(0), torch.ones(1, pred[:, sl].shape[1]), 1e-6)
        nb = pred[:, sl].shape[1]
        want += float(loss_from_sums("paper", s)[0]) * nb
        tot += nb
    assert got == pytest.approx(want / tot, rel=1e-5)
    whole = float(loss_from_sums("paper", batch_sums(pred, y[v].unsqueeze(0), torch.ones(1, v.size), 1e-6))[0])
    assert abs(whole - got) > 1e-6 * whole  # batchwise is not the whole-set loss (a product of means)


def test_early_stopping_keeps_the_best_epochs_weights():
    x, y = _data()
    plans = [_plan(0, 120, n_val=10, n_train=30)]  # few rows: it overfits, the validation loss turns
    cfg = TrainConfig(epochs=400, patience=15, batch_size=8, lr=1.0, hidden=(64, 64), dropout=0.0, loss="mse")
    st = init_stack(plans, cfg, 5, 3)
    snapshots = {}
    while not st.finished:
        train_epoch(st, plans, x, y, cfg)
        snapshots[st.epoch] = _flat(st.net).clone()
    assert st.stopped_early[0] and st.epoch < cfg.epochs
    be = int(st.best_epoch[0])
    assert st.epoch == be + cfg.patience  # Keras: stops `patience` epochs after the last improvement
    vl = st.val_loss[0, :st.epoch]
    assert be == int(np.nanargmin(vl)) + 1 and st.best_val[0] == vl[be - 1]
    assert torch.equal(_flat(best_network(st)), snapshots[be])
    assert not torch.equal(snapshots[be], snapshots[st.epoch])


def test_member_in_a_stack_equals_member_alone():
    x, y = _data()
    plans = [_plan(0, 120), _plan(1, 120, n_train=57)]  # different lengths: member 1 idles at epoch ends
    cfg = TrainConfig(epochs=4, patience=0, batch_size=16, lr=1.0, hidden=(16, 16), dropout=0.3, loss="paper",
                      ratio_eps=1e-6)
    both = init_stack(plans, cfg, 5, 3)
    alone = init_stack(plans[1:], cfg, 5, 3)
    for _ in range(cfg.epochs):
        train_epoch(both, plans, x, y, cfg)
        train_epoch(alone, plans[1:], x, y, cfg)
    for a, b in zip(both.net.parameters(), alone.net.parameters()):
        assert torch.allclose(a[1], b[0], rtol=1e-5, atol=1e-6)
    assert np.allclose(both.train_loss[1], alone.train_loss[0], rtol=1e-5)


def test_resume_from_checkpoint_is_bit_identical():
    x, y = _data()
    plans = [_plan(0, 120), _plan(1, 120)]
    cfg = TrainConfig(epochs=6, patience=3, batch_size=16, lr=1.0, hidden=(16, 16), dropout=0.2, loss="paper",
                      ratio_eps=1e-6)
    ref = init_stack(plans, cfg, 5, 3)
    while not ref.finished:
        train_epoch(ref, plans, x, y, cfg)
    part = init_stack(plans, cfg, 5, 3)
    for _ in range(3):
        train_epoch(part, plans, x, y, cfg)
    saved = copy.deepcopy(part.to_dict())
    resumed = init_stack(plans, cfg, 5, 3)  # a fresh process: new objects, then the checkpoint
    resumed.load_dict(saved)
    while not resumed.finished:
        train_epoch(resumed, plans, x, y, cfg)
    assert torch.equal(_flat(ref.net), _flat(resumed.net))
    assert torch.equal(_flat(best_network(ref)), _flat(best_network(resumed)))
    assert np.array_equal(ref.val_loss, resumed.val_loss, equal_nan=True)
    assert np.array_equal(ref.best_epoch, resumed.best_epoch)
