"""Learn-stage kernels: stacked MLP, dropout streams, batch-sum losses, stacked Adadelta."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from prodampi.learn.losses import LOSSES, batch_sums, loss_from_sums, resolve_loss
from prodampi.learn.network import (
    DropoutStreams,
    StackedMLP,
    from_sequential,
    member_seed_state,
    n_parameters,
    to_sequential,
)
from prodampi.learn.optim import StackedAdadelta

torch.set_num_threads(1)

SMALL = (8, 16, 12)


# ----------------------------------------------------------------------------------------------- network


def test_parameter_counts_match_the_spec_and_the_module():
    assert n_parameters(60, 21) == 546_581
    assert n_parameters(60, 23) == 547_095
    for out in (21, 23):
        net = StackedMLP(2, 60, out)
        per_member = sum(p[0].numel() for p in net.parameters())
        assert per_member == n_parameters(60, out)
        assert sum(p.numel() for p in to_sequential(net, 1).parameters()) == n_parameters(60, out)
    assert n_parameters(5, 3, SMALL) == 6 * 8 + 9 * 16 + 17 * 12 + 13 * 3


def test_glorot_uniform_init_keras_defaults():
    net = StackedMLP(1, 60, 21)
    net.init_members([123])
    for w, b in zip(net.weights, net.biases):
        fan_in, fan_out = w.shape[1:]
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        x = w.detach().double().numpy().ravel()
        assert np.all(np.abs(x) <= limit) and np.abs(x).max() > 0.99 * limit
        # U(-a, a): mean 0, variance a^2 / 3 (n >= 5376 draws -> loose 5-sigma-ish bounds)
        assert abs(x.mean()) < 5 * limit / math.sqrt(3 * x.size)
        assert abs(x.var() / (limit ** 2 / 3) - 1) < 0.1
        assert torch.count_nonzero(b) == 0


def test_member_init_depends_only_on_its_seed():
    seeds = [11, 5, 42]
    stack = StackedMLP(3, 7, 4, SMALL)
    stack.init_members(seeds)
    rev = StackedMLP(3, 7, 4, SMALL)
    rev.init_members(seeds[::-1])
    for m, s in enumerate(seeds):
        alone = StackedMLP(1, 7, 4, SMALL)
        alone.init_members([s])
        for a, b, c in zip(stack.parameters(), alone.parameters(), rev.parameters()):
            assert torch.equal(a[m], b[0]) and torch.equal(a[m], c[2 - m])
    other = StackedMLP(1, 7, 4, SMALL)
    other.init_members([12])
    assert not torch.equal(other.weights[0][0], stack.weights[0][0])


def test_stacked_outputs_equal_single_member_stacks_and_sequential():
    seeds = [3, 1, 4]
    stack = StackedMLP(3, 7, 4, SMALL, dropout=0.3)
    stack.init_members(seeds)
    x = torch.randn(3, 10, 7, generator=torch.Generator().manual_seed(0))
    y = stack(x)
    assert y.shape == (3, 10, 4) and y.dtype == torch.float32
    for m, s in enumerate(seeds):
        alone = StackedMLP(1, 7, 4, SMALL, dropout=0.3)
        alone.init_members([s])
        torch.testing.assert_close(alone(x[m:m + 1])[0], y[m], rtol=0, atol=1e-6)
        seq = to_sequential(stack, m).eval()
        torch.testing.assert_close(seq(x[m]), y[m], rtol=0, atol=1e-6)
        # independent reference: plain numpy float64 forward
        h = x[m].double().numpy()
        for layer, (w, b) in enumerate(zip(stack.weights, stack.biases)):
            h = h @ w[m].detach().double().numpy() + b[m].detach().double().numpy()
            if layer < len(SMALL):
                h = np.maximum(h, 0.0)
        np.testing.assert_allclose(y[m].detach().double().numpy(), h, rtol=0, atol=1e-5)


def test_full_size_sequential_matches_stacked_eval():
    net = StackedMLP(2, 60, 21)
    net.init_members([7, 8])
    x = torch.rand(2, 32, 60, generator=torch.Generator().manual_seed(1))
    y = net(x)
    for m in range(2):
        torch.testing.assert_close(to_sequential(net, m).eval()(x[m]), y[m], rtol=0, atol=1e-6)


def test_sequential_round_trip_is_exact_and_sigmoid_output():
    stack = StackedMLP(3, 5, 2, SMALL, dropout=0.2, output="sigmoid")
    stack.init_members([9, 8, 7])
    with torch.no_grad():
        for b in stack.biases:
            b.normal_(generator=torch.Generator().manual_seed(3))
    seqs = [to_sequential(stack, m) for m in range(3)]
    assert isinstance(seqs[0][-1], torch.nn.Sigmoid)
    assert [mod.p for mod in seqs[0] if isinstance(mod, torch.nn.Dropout)] == [0.2] * 3
    back = from_sequential(seqs)
    assert (back.hidden, back.dropout, back.output) == (SMALL, 0.2, "sigmoid")
    for a, b in zip(stack.parameters(), back.parameters()):
        assert torch.equal(a, b)
    x = torch.randn(3, 6, 5, generator=torch.Generator().manual_seed(2))
    y = stack(x)
    assert torch.all((y > 0) & (y < 1))
    assert torch.equal(back(x), y)


def test_masks_apply_inverted_dropout():
    stack = StackedMLP(2, 5, 3, SMALL, dropout=0.5)
    x = torch.randn(2, 4, 5, generator=torch.Generator().manual_seed(0))
    ones = [torch.ones(2, 4, h) for h in SMALL]
    assert torch.equal(stack(x, ones), stack(x))
    masks = DropoutStreams([1, 2], SMALL, 0.5)
    masks.start_epoch(0)
    mk = masks.draw(4)
    # reference: the Sequential with the mask applied by hand after each ReLU
    seq = to_sequential(stack, 1)
    h = x[1]
    lins = [mod for mod in seq if isinstance(mod, torch.nn.Linear)]
    for layer, lin in enumerate(lins):
        h = lin(h)
        if layer < len(SMALL):
            h = torch.relu(h) * mk[layer][1]
    torch.testing.assert_close(stack(x, mk)[1], h, rtol=0, atol=1e-6)


# ------------------------------------------------------------------------------------------ dropout streams


def test_dropout_streams_are_keyed_by_member_and_epoch():
    widths = (6, 9)
    p = 0.25
    ds = DropoutStreams([10, 20, 30], widths, p)
    ds.start_epoch(3)
    first = ds.draw(50)
    second = ds.draw(50, active=[True, False, True])
    assert len(first) == 2 and first[0].shape == (3, 50, 6) and first[1].shape == (3, 50, 9)
    vals = torch.unique(torch.cat([f.ravel() for f in first]))
    assert torch.equal(vals, torch.tensor([0.0, 1 / (1 - p)]))
    allm = torch.cat([f.ravel() for f in first])
    keep = (allm > 0).double().mean().item()
    assert abs(keep - (1 - p)) < 5 * math.sqrt(p * (1 - p) / allm.numel())
    assert all(torch.count_nonzero(s[1]) == 0 for s in second)  # inactive member: zero masks

    # member 2 alone, same seed/epoch: same masks, and its stream did not see the other members' draws
    solo = DropoutStreams([30], widths, p)
    solo.start_epoch(3)
    assert all(torch.equal(a[2], b[0]) for a, b in zip(first, solo.draw(50)))
    assert all(torch.equal(a[2], b[0]) for a, b in zip(second, solo.draw(50)))
    # member 1 was inactive in `second`: its next draw continues where `first` left off
    solo1 = DropoutStreams([20], widths, p)
    solo1.start_epoch(3)
    solo1.draw(50)
    third = ds.draw(50)
    assert all(torch.equal(a[1], b[0]) for a, b in zip(third, solo1.draw(50)))

    # reseeding reproduces; another epoch or seed differs
    ds.start_epoch(3)
    assert all(torch.equal(a, b) for a, b in zip(first, ds.draw(50)))
    ds.start_epoch(4)
    assert not torch.equal(first[0], ds.draw(50)[0])
    assert member_seed_state(10, 3) != member_seed_state(3, 10)
    assert 0 <= member_seed_state(2 ** 40, 5999) < 2 ** 63


def test_dropout_shards_and_state_and_p_zero():
    ds = DropoutStreams([5, 6], (4,), 0.4)
    ds.start_epoch(0)
    state = ds.get_state()
    full = ds.draw(32)
    ds.set_state(state)
    again = ds.draw(32)
    assert torch.equal(full[0], again[0])
    lo, hi = full[0][:, :13], full[0][:, 13:]  # a replica's rows are a slice of the global masks
    assert torch.equal(torch.cat([lo, hi], dim=1), full[0])
    zero = DropoutStreams([5], (4,), 0.0)
    zero.start_epoch(0)
    assert zero.draw(8) is None
    with pytest.raises(RuntimeError):
        DropoutStreams([1], (4,), 0.2).draw(3)


# ------------------------------------------------------------------------------------------------ losses


def _np_losses(pred, target, mask, eps):
    """Independent numpy reference, float64, over the masked rows only."""
    out = {}
    for name in LOSSES:
        vals = []
        for m in range(pred.shape[0]):
            rows = mask[m] > 0
            e = (target[m][rows] - pred[m][rows]).ravel()
            y = target[m][rows].ravel()
            if e.size == 0:
                vals.append(0.0)
                continue
            mse = np.mean(e ** 2)
            mare = np.mean(np.abs(e) / (np.maximum(y, eps) if eps > 0 else y))
            vals.append({"paper": np.sum(np.abs(e)) / np.sum(y) * mse, "clm5_code": 12_500 * mse * mare,
                         "compas_code": 500 * mse, "mse": mse}[name])
        out[name] = np.array(vals)
    return out


def _loss_data(seed=0, m=3, b=17, p=5, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    pred = torch.rand(m, b, p, generator=g, dtype=dtype)
    target = torch.rand(m, b, p, generator=g, dtype=dtype) * 0.98 + 0.01
    mask = (torch.rand(m, b, generator=g) < 0.7).to(dtype)
    mask[-1] = 0.0  # an inactive member
    return pred, target, mask


@pytest.mark.parametrize("eps", [0.0, 0.05])
def test_losses_match_numpy(eps):
    pred, target, mask = _loss_data()
    active_rows = torch.nonzero(mask[0]).ravel()
    target[0, active_rows[:3], 0] = torch.tensor([0.01, 0.002, 0.03], dtype=target.dtype)  # below eps: floor matters
    sums = batch_sums(pred, target, mask, ratio_eps=eps)
    if eps > 0:
        assert sums[0, 2] < batch_sums(pred, target, mask)[0, 2]
    assert sums.shape == (3, 5)
    ref = _np_losses(pred.numpy(), target.numpy(), mask.numpy(), eps)
    for name in LOSSES:
        got = loss_from_sums(name, sums).numpy()
        np.testing.assert_allclose(got, ref[name], rtol=1e-12, atol=0)
        assert got[2] == 0.0
    rows = mask[0] > 0
    assert sums[0, 4].item() == rows.sum().item() * 5
    np.testing.assert_allclose(sums[0, 3].item(), target[0][rows].sum().item(), rtol=1e-13)


def test_member_without_entries_gets_zero_loss_and_gradient():
    sums = torch.tensor([[1.0, 2.0, 3.0, 4.0, 0.0], [1.0, 2.0, 3.0, 4.0, 8.0]], dtype=torch.float64,
                        requires_grad=True)
    for name in LOSSES:
        val = loss_from_sums(name, sums)
        assert val[0].item() == 0.0 and val[1].item() > 0
        grad, = torch.autograd.grad(val.sum(), sums)
        assert torch.count_nonzero(grad[0]) == 0 and torch.count_nonzero(grad[1]) > 0


def test_sums_split_and_masked_rows_are_invisible():
    pred, target, mask = _loss_data(seed=1)
    whole = batch_sums(pred, target, mask)
    for cut in (1, 8, 16):
        part = batch_sums(pred[:, :cut], target[:, :cut], mask[:, :cut]) + \
            batch_sums(pred[:, cut:], target[:, cut:], mask[:, cut:])
        torch.testing.assert_close(part, whole, rtol=1e-14, atol=1e-14)
    # masked rows: arbitrary garbage (NaN, inf, 0 targets) changes neither values nor gradients
    p2, t2 = pred.clone(), target.clone()
    off = mask == 0
    p2[off] = float("nan")
    t2[off] = 0.0
    t2[0][off[0]] = float("inf")
    p1 = pred.clone().requires_grad_(True)
    p2.requires_grad_(True)
    for name in LOSSES:
        l1 = loss_from_sums(name, batch_sums(p1, target, mask))
        l2 = loss_from_sums(name, batch_sums(p2, t2, mask))
        assert torch.equal(l1, l2)
        g1, = torch.autograd.grad(l1.sum(), p1)
        g2, = torch.autograd.grad(l2.sum(), p2)
        assert torch.equal(g1, g2) and torch.isfinite(g2).all()
        assert torch.count_nonzero(g2[off.unsqueeze(-1).expand_as(g2)]) == 0
        assert torch.count_nonzero(g2[2]) == 0  # N = 0 member: zero gradient


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_gradients_against_finite_differences(name):
    pred, target, mask = _loss_data(seed=2, m=3, b=6, p=3)
    mask[1, :3] = 1.0
    pred.requires_grad_(True)

    def f(x):
        return loss_from_sums(name, batch_sums(x, target, mask, ratio_eps=1e-6)).sum()

    assert torch.autograd.gradcheck(f, (pred,), eps=1e-6, atol=1e-7, rtol=1e-5)


def test_resolve_loss():
    assert resolve_loss("authors", "clm5") == "clm5_code"
    assert resolve_loss("authors", "COMPAS") == "compas_code"
    assert resolve_loss("authors", "toy") == "paper"
    assert resolve_loss("paper", "clm5") == "paper" and resolve_loss("mse", "compas") == "mse"
    assert resolve_loss("compas_code", "clm5") == "compas_code"
    with pytest.raises(ValueError):
        resolve_loss("huber", "clm5")
    with pytest.raises(ValueError):
        loss_from_sums("huber", torch.zeros(1, 5))


# ------------------------------------------------------------------------------------------------- optim


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_adadelta_matches_torch_for_one_member(dtype):
    g = torch.Generator().manual_seed(0)
    shapes = [(1, 4, 3), (1, 3)]
    ours = [torch.nn.Parameter(torch.randn(s, generator=g, dtype=dtype)) for s in shapes]
    ref = [torch.nn.Parameter(p.detach()[0].clone()) for p in ours]
    lr, rho, eps = 0.5, 0.9, 1e-6  # large lr so that 50 steps move the parameters visibly
    opt = StackedAdadelta(ours, lr=lr, rho=rho, eps=eps)
    topt = torch.optim.Adadelta(ref, lr=lr, rho=rho, eps=eps, foreach=False)
    start = [p.detach().clone() for p in ours]
    for _ in range(50):
        grads = [torch.randn(s, generator=g, dtype=dtype) for s in shapes]
        for p, q, gr in zip(ours, ref, grads):
            p.grad = gr.clone()
            q.grad = gr[0].clone()
        opt.step()
        topt.step()
    tol = {"rtol": 0, "atol": 1e-12 if dtype == torch.float64 else 1e-6}
    for i, (p, q) in enumerate(zip(ours, ref)):
        torch.testing.assert_close(p.detach()[0], q.detach(), **tol)
        st = topt.state[q]
        torch.testing.assert_close(opt.square_avg[i][0], st["square_avg"], **tol)
        torch.testing.assert_close(opt.acc_delta[i][0], st["acc_delta"], **tol)
        assert (p.detach() - start[i]).abs().max() > 1e-3
    assert int(opt.steps[0]) == 50


def test_adadelta_defaults_are_keras():
    opt = StackedAdadelta([torch.nn.Parameter(torch.zeros(2, 3))])
    assert (opt.lr, opt.rho, opt.eps) == (1e-3, 0.95, 1e-7)


def test_inactive_members_do_not_move_and_active_follow_their_solo_path():
    g = torch.Generator().manual_seed(1)
    w = torch.nn.Parameter(torch.randn(3, 5, 2, generator=g))
    solo = torch.nn.Parameter(w.detach()[1:2].clone())
    opt = StackedAdadelta([w], lr=0.3)
    sopt = StackedAdadelta([solo], lr=0.3)
    for step in range(20):
        grad = torch.randn(3, 5, 2, generator=g)
        active = torch.tensor([step % 2 == 0, True, step < 5])
        before = (w.detach().clone(), opt.square_avg[0].clone(), opt.acc_delta[0].clone())
        w.grad = grad
        opt.step(active)
        solo.grad = grad[1:2].clone()
        sopt.step()
        for m in range(3):
            if not active[m]:
                for t, b in zip((w.detach(), opt.square_avg[0], opt.acc_delta[0]), before):
                    assert torch.equal(t[m], b[m])
            else:
                assert not torch.equal(w.detach()[m], before[0][m])
        assert torch.equal(w.detach()[1], solo.detach()[0])
        assert torch.equal(opt.acc_delta[0][1], sopt.acc_delta[0][0])
    assert opt.steps.tolist() == [10, 20, 5]
    opt.step(torch.zeros(3, dtype=torch.bool))
    assert opt.steps.tolist() == [10, 20, 5]


def test_state_dict_round_trip_continues_bit_identically():
    g = torch.Generator().manual_seed(2)
    grads = [torch.randn(2, 4, 3, generator=g) for _ in range(20)]
    init = torch.randn(2, 4, 3, generator=g)

    def run(split):
        p = torch.nn.Parameter(init.clone())
        opt = StackedAdadelta([p], lr=0.2)
        for k in range(20):
            if k == split:
                saved = ({"w": p.detach().clone()}, opt.state_dict())
                p = torch.nn.Parameter(saved[0]["w"])
                opt = StackedAdadelta([p], lr=0.2)
                opt.load_state_dict(saved[1])
            p.grad = grads[k].clone()
            opt.step(torch.tensor([True, k % 3 != 0]))
        return p.detach(), opt

    full, fopt = run(split=None)
    resumed, ropt = run(split=11)
    assert torch.equal(full, resumed)
    assert all(torch.equal(a, b) for a, b in zip(fopt.acc_delta + fopt.square_avg, ropt.acc_delta + ropt.square_avg))
    assert torch.equal(fopt.steps, ropt.steps)
    # member state can be moved between stacks
    other = StackedAdadelta([torch.nn.Parameter(torch.zeros(1, 4, 3))])
    other.set_member_state(0, fopt.member_state(1))
    assert torch.equal(other.square_avg[0][0], fopt.square_avg[0][1]) and int(other.steps[0]) == int(fopt.steps[1])


# ------------------------------------------------------------------------------------------------ end to end


def _train(seeds, drop_seeds, xs, ys, row_masks, n_steps, batch=8, loss="paper"):
    """Minimal stacked training loop: per-member data, dropout streams, batch sums, StackedAdadelta."""
    m = len(seeds)
    net = StackedMLP(m, xs.shape[-1], ys.shape[-1], SMALL, dropout=0.2)
    net.init_members(seeds)
    streams = DropoutStreams(drop_seeds, SMALL, 0.2)
    opt = StackedAdadelta(list(net.parameters()), lr=1.0)
    n_rows = xs.shape[1]
    per_epoch = n_rows // batch
    for step in range(n_steps):
        epoch, k = divmod(step, per_epoch)
        if k == 0:
            streams.start_epoch(epoch)
        rows = slice(k * batch, (k + 1) * batch)
        rm = row_masks[:, rows]
        active = rm.sum(dim=1) > 0
        masks = streams.draw(batch, active.tolist())
        opt.zero_grad()
        pred = net(xs[:, rows], masks)
        lval = loss_from_sums(loss, batch_sums(pred, ys[:, rows], rm))
        lval.sum().backward()
        opt.step(active)
    return net


def test_stacked_training_equals_solo_training():
    g = torch.Generator().manual_seed(5)
    n_rows = 40
    xs = torch.rand(2, n_rows, 6, generator=g)
    ys = torch.rand(2, n_rows, 3, generator=g) * 0.9 + 0.05
    row_masks = torch.ones(2, n_rows)
    row_masks[0, 24:32] = 0.0  # member 0 has an empty batch: inactive there
    row_masks[1, 3] = 0.0
    row_masks[1, 17] = 0.0
    stack = _train([21, 47], [31, 58], xs, ys, row_masks, 30)
    solo = _train([47], [58], xs[1:], ys[1:], row_masks[1:], 30)
    solo0 = _train([21], [31], xs[:1], ys[:1], row_masks[:1], 30)  # member 0 skips a batch, alone and stacked
    for a, b in zip(stack.parameters(), solo0.parameters()):
        torch.testing.assert_close(a.detach()[0], b.detach()[0], rtol=0, atol=1e-6)
    init = StackedMLP(1, 6, 3, SMALL)
    init.init_members([47])
    moved = 0.0
    for a, b, c in zip(stack.parameters(), solo.parameters(), init.parameters()):
        torch.testing.assert_close(a.detach()[1], b.detach()[0], rtol=0, atol=1e-6)
        moved = max(moved, (b.detach() - c.detach()).abs().max().item())
    assert moved > 1e-3  # the training actually moved the weights
    bit = all(torch.equal(a.detach()[1], b.detach()[0]) for a, b in zip(stack.parameters(), solo.parameters()))
    print(f"stacked vs solo bit-identical: {bit}; max weight change {moved:.3g}")
