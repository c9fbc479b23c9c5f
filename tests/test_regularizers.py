"""D regularizers vs closed forms on critics whose input gradient is known."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
import torch
from torch import nn

from ganforge.errors import ConfigError
from ganforge.regularizers import REGULARIZERS, get_regularizer

NAMES = ["gp", "r1", "r2", "dragan"]
SHAPES = [(16, 2), (8, 3, 5, 5)]  # points and images


class Linear(nn.Module):
    """D(x) = <w, x>: grad_x D = w for every x."""

    def __init__(self, shape):
        super().__init__()
        self.w = nn.Parameter(torch.randn(shape[1:], dtype=torch.float64))

    def forward(self, x):
        return (x * self.w).flatten(1).sum(1)  # [N]


class Quadratic(nn.Module):
    """D(x) = 0.5 ||W x||^2 (x flattened): grad_x D = W^T W x."""

    def __init__(self, f):
        super().__init__()
        self.W = nn.Parameter(torch.randn(f + 1, f, dtype=torch.float64) / f**0.5)

    def forward(self, x):
        return 0.5 * (x.flatten(1) @ self.W.T).pow(2).sum(1)


class Recorder(nn.Module):
    """Wraps D and keeps the inputs it was called with."""

    def __init__(self, d):
        super().__init__()
        self.d, self.seen = d, []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return self.d(x)


def batches(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=torch.float64), torch.randn(shape, generator=g, dtype=torch.float64)


def test_registered_and_unknown_name():
    assert set(NAMES) <= set(REGULARIZERS.names())
    for n in NAMES:
        assert REGULARIZERS.describe(n)
    with pytest.raises(ConfigError) as e:
        get_regularizer("wgan-gp")
    assert "\n" not in str(e.value) and all(n in str(e.value) for n in NAMES)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", ["gp", "dragan"])
def test_linear_critic_penalty_exact(name, shape):
    """||grad D|| = ||w|| everywhere, so the penalty is (||w|| - 1)^2 whatever the noise."""
    torch.manual_seed(0)
    D = Linear(shape)
    real, fake = batches(shape)
    pen = get_regularizer(name)(D, real, fake)
    w = D.w.detach().numpy().ravel()
    ref = (np.linalg.norm(w) - 1) ** 2
    np.testing.assert_allclose(pen.item(), ref, rtol=1e-10)
    pen.backward()  # create_graph: the penalty trains D; d/dw (||w||-1)^2 = 2(||w||-1) w/||w||
    grad_ref = 2 * (np.linalg.norm(w) - 1) * w / np.linalg.norm(w)
    np.testing.assert_allclose(D.w.grad.numpy().ravel(), grad_ref, rtol=1e-9)


@pytest.mark.parametrize("shape", SHAPES)
def test_r1_r2_quadratic_critic_closed_form(shape):
    torch.manual_seed(0)
    f = int(np.prod(shape[1:]))
    D = Quadratic(f)
    real, fake = batches(shape)
    W = D.W.detach().numpy()
    M = W.T @ W
    for name, x in (("r1", real), ("r2", fake)):
        D.zero_grad()
        pen = get_regularizer(name)(D, real, fake)
        xs = x.numpy().reshape(len(x), -1)
        ref = np.mean(np.sum((xs @ M) ** 2, axis=1))  # E ||W^T W x||^2
        np.testing.assert_allclose(pen.item(), ref, rtol=1e-10)
        pen.backward()
        # finite differences of the closed form in W
        h, Wg = 1e-6, np.zeros_like(W)
        for idx in [(0, 0), (1, 0), (f, f - 1)]:
            Wp, Wm = W.copy(), W.copy()
            Wp[idx] += h
            Wm[idx] -= h
            fp = np.mean(np.sum((xs @ (Wp.T @ Wp)) ** 2, axis=1))
            fm = np.mean(np.sum((xs @ (Wm.T @ Wm)) ** 2, axis=1))
            np.testing.assert_allclose(D.W.grad[idx].item(), (fp - fm) / (2 * h), rtol=1e-5)


def test_r1_uses_real_r2_uses_fake():
    shape = (6, 3)
    D = Quadratic(3)
    real, fake = batches(shape)
    r1 = get_regularizer("r1")(D, real, fake)
    assert r1.item() == get_regularizer("r1")(D, real, torch.zeros(shape, dtype=torch.float64)).item()
    r2 = get_regularizer("r2")(D, real, fake)
    assert r2.item() == get_regularizer("r2")(D, torch.zeros(shape, dtype=torch.float64), fake).item()
    assert r1.item() != r2.item()


def test_gp_nonlinear_critic_when_real_equals_fake():
    """With real == fake every interpolate is x itself: gp = E[(||W^T W x|| - 1)^2]."""
    torch.manual_seed(0)
    D = Quadratic(4)
    x, _ = batches((32, 4))
    pen = get_regularizer("gp")(D, x, x.clone())
    M = D.W.detach().numpy().T @ D.W.detach().numpy()
    ref = np.mean((np.linalg.norm(x.numpy() @ M, axis=1) - 1) ** 2)
    np.testing.assert_allclose(pen.item(), ref, rtol=1e-10)


@pytest.mark.parametrize("shape", SHAPES)
def test_gp_evaluates_at_per_sample_interpolates(shape):
    torch.manual_seed(1)
    D = Recorder(Linear(shape))
    real, fake = batches(shape)
    get_regularizer("gp")(D, real, fake)
    (x_hat,) = D.seen
    eps = ((x_hat - fake) / (real - fake)).flatten(1)  # [N, F]: one eps per sample
    np.testing.assert_allclose(eps.numpy(), eps[:, :1].expand_as(eps).numpy(), atol=1e-9)
    assert ((eps >= 0) & (eps <= 1)).all() and eps[:, 0].std() > 0.1


@pytest.mark.parametrize("shape", SHAPES)
def test_dragan_perturbs_near_real_data(shape):
    """x_hat = real + alpha * 0.5 * std(real) * u with u ~ U[0, 1] per element and alpha ~
    U[0, 1] per sample, drawn in that order (the authors' code): replayed from the same RNG
    state in float64 NumPy-style arithmetic, and the draws' distributions checked."""
    torch.manual_seed(2)
    D = Recorder(Linear(shape))
    real, fake = batches(shape)
    state = torch.get_rng_state()
    get_regularizer("dragan")(D, real, fake)
    (x_hat,) = D.seen
    torch.set_rng_state(state)
    u = torch.rand(real.shape, dtype=real.dtype).numpy()
    alpha = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), dtype=real.dtype).numpy()
    want = real.double().numpy() + alpha * 0.5 * real.numpy().std() * u  # numpy std: ddof=0 over the batch
    np.testing.assert_allclose(x_hat.numpy(), want, rtol=1e-12, atol=1e-12)
    assert stats.kstest(u.ravel(), "uniform").pvalue > 1e-3
    step = (x_hat - real).numpy().reshape(real.shape[0], -1) / (0.5 * real.numpy().std())  # alpha * u per sample
    assert (step >= 0).all() and (step <= 1).all()
    assert (step.std(1) > 0).all()  # u is drawn per element, not per sample


@pytest.mark.parametrize("name", NAMES)
def test_trains_d_not_g(name):
    """Gradients reach D's parameters (create_graph) and none flow back to G's output."""
    torch.manual_seed(0)
    D = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 8), nn.Tanh(), nn.Linear(8, 1), nn.Flatten(0))
    G = nn.Linear(2, 3 * 4 * 4)
    real = torch.randn(5, 3, 4, 4)
    fake = G(torch.randn(5, 2)).view(5, 3, 4, 4)
    pen = get_regularizer(name)(D, real, fake)
    assert pen.dim() == 0 and torch.isfinite(pen)
    pen.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in D[1].parameters())
    assert all(p.grad is None for p in G.parameters())


def test_gp_shape_mismatch():
    D = Linear((4, 3))
    with pytest.raises(ValueError, match="same shape"):
        get_regularizer("gp")(D, torch.zeros(4, 3, dtype=torch.float64), torch.zeros(5, 3, dtype=torch.float64))
