"""Methods with remedies: unrolled GAN, MAD-GAN, MRGAN, and dry runs of every remedy."""

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import ganforge
from ganforge.config import LossConfig, resolve
from ganforge.errors import ConfigError
from ganforge.losses import bce_d_loss, ns_g_loss
from ganforge.methods import METHODS, Context, Stats
from ganforge.methods.madgan import MixtureGenerator, generator_similarity, madgan_d_loss, madgan_g_loss, real_log_odds
from ganforge.methods.mrgan import geometric_term
from ganforge.methods.unrolled import AdamUpdate, sgd_update, unrolled_discriminator
from ganforge.training import Interrupted


FAST = ["train.steps=5", "train.log_every=1", "train.sample_every=0", "train.checkpoint_every=0",
        "train.progress=false", "train.batch=16", "data.limit=128", "data.samples=1000", "train.threads=1",
        "remedies.pack=1",  # pinned: the ring8 recipe packs 2; tests that pack say so
        "model.g.categories=0", "model.z_dim=2", "remedies.code_balance=0"]  # and its G has a latent code


def tiny(recipe, *extra):
    cfg = resolve(recipe, FAST + list(extra))
    w = 8 if cfg.model.g.name == "dcgan" else 16
    cfg.model.g.width = cfg.model.d.width = w
    return cfg


# --------------------------------------------------------------------------- unrolled GAN


class LinearD(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 1).double()

    def forward(self, x):
        return self.lin(x).reshape(-1)


def _unrolled_setup(seed=0):
    torch.manual_seed(seed)
    D, G = LinearD(), nn.Linear(1, 2).double()
    real, z_d, z_g = torch.randn(8, 2, dtype=torch.float64), torch.randn(8, 1, dtype=torch.float64), torch.randn(8, 1, dtype=torch.float64)
    return D, G, real, z_d, z_g


def _unrolled_g_loss(D, G, real, z_d, z_g, k, lr):
    d_loss = lambda f: bce_d_loss(f(real), f(G(z_d)), LossConfig())  # fakes stay attached to G
    return ns_g_loss(unrolled_discriminator(D, d_loss, k, lr)(G(z_g)), LossConfig())


def _manual_unrolled_g_loss(D, G, real, z_d, z_g, k, lr):
    """Hand-written gradient of the BCE D loss of a linear D, unrolled k SGD steps."""
    w, b = D.lin.weight.detach().reshape(2), D.lin.bias.detach().reshape(())
    for _ in range(k):
        fake = G(z_d)
        s_r, s_f = torch.sigmoid(-(real @ w + b)), torch.sigmoid(fake @ w + b)
        # d/dw [mean softplus(-l_r) + mean softplus(l_f)] = mean(-sigma(-l_r) x_r) + mean(sigma(l_f) x_f)
        g_w = (-s_r[:, None] * real).mean(0) + (s_f[:, None] * fake).mean(0)
        g_b = (-s_r).mean() + s_f.mean()
        w, b = w - lr * g_w, b - lr * g_b
    return F.softplus(-(G(z_g) @ w + b)).mean()


def _grads(loss, G):
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, list(G.parameters()))])


def test_unrolled_with_zero_steps_is_the_discriminator_itself():
    D, G, real, z_d, z_g = _unrolled_setup()
    assert unrolled_discriminator(D, None, 0, 0.1) is D
    assert torch.equal(_unrolled_g_loss(D, G, real, z_d, z_g, 0, 0.5), ns_g_loss(D(G(z_g)), LossConfig()))


@pytest.mark.parametrize("k", [1, 3])
def test_unrolled_gradient_matches_manual_double_backprop_and_finite_differences(k):
    D, G, real, z_d, z_g = _unrolled_setup(k)
    lr = 0.5
    before = {n: p.clone() for n, p in D.named_parameters()}
    got = _grads(_unrolled_g_loss(D, G, real, z_d, z_g, k, lr), G)
    want = _grads(_manual_unrolled_g_loss(D, G, real, z_d, z_g, k, lr), G)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    # central finite differences of the unrolled loss in G's parameters
    params, fd, eps = list(G.parameters()), [], 1e-6
    for p in params:
        for i in range(p.numel()):
            vals = []
            for s in (eps, -eps):
                with torch.no_grad():
                    p.view(-1)[i] += s
                vals.append(_manual_unrolled_g_loss(D, G, real, z_d, z_g, k, lr).item())
                with torch.no_grad():
                    p.view(-1)[i] -= s
            fd.append((vals[0] - vals[1]) / (2 * eps))
    np.testing.assert_allclose(got.numpy(), fd, rtol=1e-5, atol=1e-8)
    plain = _grads(_unrolled_g_loss(D, G, real, z_d, z_g, 0, lr), G)
    assert (got - plain).abs().max() > 1e-3  # looking ahead changes G's gradient
    for n, p in D.named_parameters():
        assert torch.equal(p, before[n])  # the real D is not updated by the unroll


def test_unrolled_leaves_batchnorm_statistics_of_d_alone():
    cfg = tiny("ring8", "model.d.norm=batch", "model.d.maxout=0", "remedies.unrolled_steps=2")
    m = METHODS.get("standard")(cfg, (2,), torch.device("cpu"))
    D = m.modules["d"]
    stats = {k: v.clone() for k, v in D.state_dict().items()}
    ctx = Context(m.modules, cfg, real=lambda: torch.randn(16, 2), z=lambda n: torch.randn(n, 2), stats=Stats())
    m.phases[1].loss(ctx).backward()
    changed = [k for k, v in D.state_dict().items() if not torch.equal(v, stats[k])]
    assert changed == []  # the surrogate runs on cloned buffers: D's running statistics are untouched


def _ns_loss_after_real_steps(D, opt, k, real, fake):
    """G's NS loss on ``fake`` after ``opt`` took k real steps of D's BCE loss on (real, fake)."""
    for _ in range(k):
        opt.zero_grad()
        bce_d_loss(D(real), D(fake), LossConfig()).backward()
        opt.step()
    return ns_g_loss(D(fake), LossConfig())


def test_unrolled_g_loss_is_against_a_copy_of_d_after_k_sgd_steps_on_the_same_batches():
    """The loss value: G's NS loss on its fakes, scored by a deep copy of D that a real
    torch.optim.SGD trained k steps on D's BCE loss of one real batch and those same fakes
    (the reference code's unroll); and G runs forward once per G step, whatever k is."""
    import copy

    k, lr = 3, 0.5
    cfg = tiny("ring8", f"remedies.unrolled_steps={k}", f"remedies.unrolled_lr={lr}", "remedies.unrolled_optimizer=sgd")
    torch.manual_seed(0)
    m = METHODS.get("unrolled")(cfg, (2,), torch.device("cpu"))
    G, D = m.modules["g"], m.modules["d"]
    real, z = torch.randn(16, 2), torch.randn(16, cfg.model.z_dim)
    calls = []
    G.register_forward_hook(lambda *_: calls.append(1))
    ctx = Context(m.modules, cfg, real=lambda: real, z=lambda n: z[:n], stats=Stats())
    loss = next(p for p in m.phases if p.module == "g").loss(ctx)
    assert len(calls) == 1
    with torch.no_grad():
        fake = G(z)
    D2, plain = copy.deepcopy(D), ns_g_loss(D(fake), LossConfig())
    want = _ns_loss_after_real_steps(D2, torch.optim.SGD(D2.parameters(), lr=lr), k, real, fake)
    torch.testing.assert_close(loss, want, rtol=1e-5, atol=1e-6)
    assert abs(want.item() - plain.item()) > 1e-4  # the k steps moved D


def _trained_adam(D, steps=3, lr=0.05, betas=(0.5, 0.999), weight_decay=0.0):
    """D's Adam after a few real steps on random data, so its moments and step count are not trivial."""
    opt = torch.optim.Adam(D.parameters(), lr=lr, betas=betas, weight_decay=weight_decay)
    for _ in range(steps):
        opt.zero_grad()
        x = torch.randn(16, 2, dtype=next(D.parameters()).dtype)
        bce_d_loss(D(x + 1), D(x - 1), LossConfig()).backward()
        opt.step()
    return opt


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_unrolled_adam_g_loss_is_against_a_copy_of_d_and_its_adam_after_k_real_adam_steps(weight_decay):
    """The default surrogate continues D's own Adam: G's loss equals its NS loss under a deep
    copy of D whose copied torch.optim.Adam (same moments, step count, lr) took k real steps
    on the same batches; the real D and its optimiser state are left as they were."""
    import copy

    k = 3
    cfg = tiny("ring8", f"remedies.unrolled_steps={k}", "optim.d.beta1=0.5", f"optim.d.weight_decay={weight_decay}")
    assert cfg.remedies.unrolled_optimizer == "adam" and cfg.remedies.unrolled_lr == 0
    torch.manual_seed(0)
    m = METHODS.get("unrolled")(cfg, (2,), torch.device("cpu"))
    G, D = m.modules["g"], m.modules["d"]
    opt = _trained_adam(D, lr=0.05, weight_decay=weight_decay)
    saved_d = copy.deepcopy(D.state_dict())
    saved_opt = copy.deepcopy(opt.state_dict())
    real, z = torch.randn(16, 2), torch.randn(16, cfg.model.z_dim)
    ctx = Context(m.modules, cfg, real=lambda: real, z=lambda n: z[:n], stats=Stats(), optims={"d": opt})
    loss = next(p for p in m.phases if p.module == "g").loss(ctx)
    with torch.no_grad():
        fake = G(z)
    D2 = copy.deepcopy(D)
    opt2 = torch.optim.Adam(D2.parameters(), lr=0.05, betas=(0.5, 0.999), weight_decay=weight_decay)
    opt2.load_state_dict(copy.deepcopy(saved_opt))
    want = _ns_loss_after_real_steps(D2, opt2, k, real, fake)
    torch.testing.assert_close(loss, want, rtol=1e-5, atol=1e-6)
    assert abs(want.item() - ns_g_loss(D(fake), LossConfig()).item()) > 1e-4  # the unroll moved D
    for key, v in D.state_dict().items():
        assert torch.equal(v, saved_d[key])
    for p, st in zip(D.parameters(), saved_opt["state"].values()):
        assert torch.equal(opt.state[p]["exp_avg"], st["exp_avg"]) and torch.equal(opt.state[p]["step"], st["step"])


def test_unrolled_adam_moves_d_as_far_as_real_steps_where_sgd_at_the_same_lr_barely_moves_it():
    """Why the default unrolls Adam: at D's lr, SGD's surrogate step is lr * |g| (tiny for a
    small gradient), Adam's about lr per weight whatever the gradient's scale."""
    torch.manual_seed(0)
    D = LinearD()
    opt = _trained_adam(D, lr=1e-4)
    x = torch.randn(64, 2, dtype=torch.float64)
    d_loss = lambda f: 1e-3 * bce_d_loss(f(x + 1), f(x - 1), LossConfig())  # a D loss with small gradients
    probe = torch.randn(32, 2, dtype=torch.float64)
    moved = {}
    for name, update in (("sgd", sgd_update(1e-4)),
                         ("adam", AdamUpdate(dict(D.named_parameters()), opt, 1e-4, (0.9, 0.999)))):
        moved[name] = (unrolled_discriminator(D, d_loss, 5, update)(probe) - D(probe)).abs().max().item()
    assert moved["adam"] > 1e-4  # about k * lr * |x|
    assert moved["sgd"] < moved["adam"] / 100


@pytest.mark.parametrize("k", [1, 3])
def test_unrolled_adam_gradient_matches_finite_differences(k):
    """G's gradient through k differentiable Adam steps (moments included) against central
    finite differences of the same float64 computation."""
    D, G, real, z_d, z_g = _unrolled_setup(k)
    opt = _trained_adam(D, lr=0.1, betas=(0.5, 0.999))

    def loss_fn():
        update = AdamUpdate(dict(D.named_parameters()), opt, 0.1, (0.5, 0.999), weight_decay=0.01)
        d_loss = lambda f: bce_d_loss(f(real), f(G(z_d)), LossConfig())
        return ns_g_loss(unrolled_discriminator(D, d_loss, k, update)(G(z_g)), LossConfig())

    got = _grads(loss_fn(), G)
    fd, eps = [], 1e-6
    for p in G.parameters():
        for i in range(p.numel()):
            vals = []
            for s in (eps, -eps):
                with torch.no_grad():
                    p.view(-1)[i] += s
                vals.append(loss_fn().item())
                with torch.no_grad():
                    p.view(-1)[i] -= s
            fd.append((vals[0] - vals[1]) / (2 * eps))
    np.testing.assert_allclose(got.numpy(), fd, rtol=1e-5, atol=1e-8)
    plain = _grads(ns_g_loss(D(G(z_g)), LossConfig()), G)
    assert (got - plain).abs().max() > 1e-3


def _g_phase_loss(cfg, method_name, seed=0):
    torch.manual_seed(0)
    m = METHODS.get(method_name)(cfg, (2,), torch.device("cpu"))
    real = torch.randn(16, 2)
    ctx = Context(m.modules, cfg, real=lambda: real, z=lambda n: torch.randn(n, 2), stats=Stats())
    torch.manual_seed(seed)
    g_phase = next(p for p in m.phases if p.module == "g")
    return m, ctx, real, g_phase.loss(ctx)


def test_standard_g_loss_with_k0_is_the_plain_g_loss_and_k_changes_it():
    cfg = tiny("ring8")
    m, ctx, real, loss = _g_phase_loss(cfg, "standard")
    torch.manual_seed(0)
    G, D = m.modules["g"], m.modules["d"]
    assert torch.equal(loss, F.softplus(-D(G(torch.randn(16, 2)))).mean())
    g0 = _grads(loss, G)
    mk, _, _, loss_k = _g_phase_loss(tiny("ring8", "remedies.unrolled_steps=2", "remedies.unrolled_lr=0.5"), "unrolled")
    for a, b in zip(G.parameters(), mk.modules["g"].parameters()):
        assert torch.equal(a, b)  # same initial nets
    assert (_grads(loss_k, mk.modules["g"]) - g0).abs().max() > 1e-4


def test_top_k_g_loss_is_the_ns_loss_of_the_k_best_fakes():
    """G's loss with top-k training = mean of -log sigmoid over the k largest of D's logits on
    the same fakes (float64 reference), and differs from the plain loss."""
    from ganforge.remedies import top_k_count

    for step in (0, 150, 5000):
        cfg = tiny("ring8", "remedies.top_k=0.5", "remedies.top_k_decay=0.9")
        m, ctx, _, loss = _g_phase_loss(cfg, "standard")
        ctx.step = step
        torch.manual_seed(0)
        loss = next(p for p in m.phases if p.module == "g").loss(ctx).detach()
        torch.manual_seed(0)
        with torch.no_grad():
            logits = m.modules["d"](m.modules["g"](torch.randn(16, 2))).double().numpy()
        k = top_k_count(16, 0.5, 0.9, step)
        assert k == max(8, round(16 * 0.9 ** (step / 100)))
        best = np.sort(logits)[::-1][:k]
        want = np.mean(np.logaddexp(0.0, -best))  # softplus(-l) = -log sigmoid(l)
        assert float(loss) == pytest.approx(want, rel=1e-5)
        if k < 16:
            assert abs(float(loss) - np.mean(np.logaddexp(0.0, -logits))) > 1e-4


def test_method_unrolled_needs_steps():
    from ganforge.errors import ConfigError

    with pytest.raises(ConfigError, match="unrolled_steps >= 1"):
        METHODS.get("unrolled")(tiny("ring8"), (2,), torch.device("cpu"))


# --------------------------------------------------------------------------- MAD-GAN


def _log_softmax(a):
    a = a - a.max(1, keepdims=True)
    return a - np.log(np.exp(a).sum(1, keepdims=True))


def test_madgan_losses_match_numpy_cross_entropy():
    r = np.random.default_rng(0)
    k = 3
    real = r.normal(size=(5, k + 1))
    fakes = [r.normal(size=(4, k + 1)) for _ in range(k)]
    t = lambda a: torch.from_numpy(a)
    want_d = -_log_softmax(real)[:, k].mean() - sum(_log_softmax(f)[:, i].mean() for i, f in enumerate(fakes))
    want_g = -sum(_log_softmax(f)[:, k].mean() for f in fakes)  # every G_i wants "real" (class k)
    assert madgan_d_loss(t(real), [t(f) for f in fakes]).item() == pytest.approx(want_d, rel=1e-12)
    assert madgan_g_loss([t(f) for f in fakes]).item() == pytest.approx(want_g, rel=1e-12)
    p = np.exp(_log_softmax(real))
    np.testing.assert_allclose(real_log_odds(t(real)).numpy(), np.log(p[:, k] / (1 - p[:, k])), rtol=1e-10)


def test_generator_similarity_matches_numpy_cosine_over_pairs():
    r = np.random.default_rng(1)
    feats = [r.normal(size=(6, 5)) for _ in range(4)]
    cos = lambda a, b: (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    want = np.mean([cos(feats[i], feats[j]).mean() for i in range(4) for j in range(i + 1, 4)])
    assert generator_similarity([torch.from_numpy(f) for f in feats]).item() == pytest.approx(want, rel=1e-12)
    same = torch.from_numpy(feats[0])
    assert generator_similarity([same, 3 * same]).item() == pytest.approx(1.0, rel=1e-12)  # scale-free
    assert generator_similarity([same, -same]).item() == pytest.approx(-1.0, rel=1e-12)
    with pytest.raises(ValueError, match="at least two"):
        generator_similarity([same])


def test_madgan_similarity_penalty_pushes_the_generators_apart(tmp_path):
    """The penalty's gradient lowers the generators' similarity; without it the same seed trains as before."""
    run = ganforge.train(tiny("ring8", "method=madgan", "remedies.madgan_sim=1", "train.steps=6", "train.log_every=1"),
                         out=tmp_path / "sim")
    rows = [json.loads(line) for line in (run.run_dir / "metrics.jsonl").read_text().splitlines()]
    sims = [row["madgan/similarity"] for row in rows if "madgan/similarity" in row]
    assert len(sims) == 6 and all(-1 <= v <= 1 for v in sims)
    assert all(math.isfinite(row["loss/g"]) for row in rows if "loss/g" in row)
    # the term on its own, one gradient step on two generators with shared z lowers it
    torch.manual_seed(0)
    g1, g2, feat = nn.Linear(3, 4), nn.Linear(3, 4), nn.Linear(4, 6)
    z = torch.randn(32, 3)
    before = generator_similarity([feat(g1(z)), feat(g2(z))])
    before.backward()
    with torch.no_grad():
        for p in [*g1.parameters(), *g2.parameters()]:
            p -= 0.1 * p.grad
    assert generator_similarity([feat(g1(z)), feat(g2(z))]).item() < before.item() - 1e-3


@pytest.mark.parametrize("extra, message", [
    (["method=madgan", "remedies.madgan_sim=-1"], "remedies.madgan_sim must be >= 0"),
    (["remedies.madgan_sim=1"], "not supported by method 'standard'"),
    (["method=madgan", "remedies.madgan_sim=1", "remedies.generators=1"], "set remedies.generators >= 2"),
])
def test_madgan_similarity_config_errors(extra, message, tmp_path):
    with pytest.raises(ConfigError, match=message):
        ganforge.train(tiny("ring8", *extra), out=tmp_path / "r")


class _Const(nn.Module):
    """A 'generator' that outputs [i, z_1, z_2]."""

    def __init__(self, i):
        super().__init__()
        self.i, self.z_dim, self.out_shape = i, 2, (3,)

    def forward(self, z):
        return torch.cat([torch.full((z.shape[0], 1), float(self.i)), z], 1)


def test_mixture_generator_picks_uniformly_and_keeps_z_gaussian():
    k = 3
    G = MixtureGenerator([_Const(i) for i in range(k)])
    z = torch.randn(30000, 2, generator=torch.Generator().manual_seed(0))
    out = G(z)
    idx = out[:, 0].long()
    phi = np.array([0.5 * (1 + math.erf(v / math.sqrt(2))) for v in z[:200, 0].tolist()])
    assert idx[:200].tolist() == np.floor(k * phi).astype(int).tolist()
    assert torch.allclose(torch.bincount(idx, minlength=k) / len(z), torch.full((k,), 1 / k), atol=0.015)
    for i in range(k):  # each generator receives z ~ N(0, I)
        zi = out[idx == i, 1:]
        assert zi.mean(0).abs().max() < 0.05 and (zi.std(0) - 1).abs().max() < 0.05
    assert torch.equal(out[:, 2], z[:, 1]) and torch.equal(G(z), out)  # a deterministic function of z


# --------------------------------------------------------------------------- MRGAN


def test_mrgan_losses_are_adversarial_plus_geometric_plus_mode_terms():
    x, y = np.random.default_rng(1).normal(size=(2, 4, 3, 2, 2))
    assert geometric_term(torch.from_numpy(x), torch.from_numpy(y)).item() == pytest.approx(((x - y) ** 2).reshape(4, -1).sum(1).mean())
    cfg = tiny("ring8", "remedies.mrgan_lambda1=0.3", "remedies.mrgan_lambda2=0.7")
    m, ctx, real, loss = _g_phase_loss(cfg, "mrgan")
    G, D, E = m.modules["g"], m.modules["d"], m.modules["e"]
    torch.manual_seed(0)
    adv = F.softplus(-D(G(torch.randn(16, 2)))).mean()
    rec = G(E(real))
    reg = 0.3 * (real - rec).pow(2).sum(1).mean() + 0.7 * F.softplus(-D(rec)).mean()  # -log D(G(E(x)))
    torch.testing.assert_close(loss, adv + reg)
    e_loss = next(p for p in m.phases if p.module == "e").loss(ctx)
    torch.testing.assert_close(e_loss, reg)
    assert all(g is not None for g in torch.autograd.grad(e_loss, list(E.parameters())))


def test_mdgan_phases_are_the_manifold_and_diffusion_steps():
    """Each phase's loss against a hand computation with the method's own modules: D1 on x vs
    G(E(x)); G and E on -log D1(G(E(x))) + lambda ||x - G(E(x))||^2; D2 on G(E(x)) vs G(z);
    G on -log D2(G(z)). The steps train the right module and D1, D2 are different nets."""
    cfg = tiny("ring8", "method=mdgan", "remedies.mrgan_lambda1=0.3")
    torch.manual_seed(0)
    m = METHODS.get("mdgan")(cfg, (2,), torch.device("cpu"))
    G, E, D1, D2 = (m.modules[k] for k in ("g", "e", "d", "d2"))
    assert D1 is not D2 and not torch.equal(next(D1.parameters()), next(D2.parameters()))
    assert [(p.name, p.module) for p in m.phases] == [("D", "d"), ("Gm", "g"), ("E", "e"), ("D2", "d2"), ("G", "g")]
    real, z = torch.randn(16, 2), torch.randn(16, 2)
    ctx = Context(m.modules, cfg, real=lambda: real, z=lambda n: z[:n], stats=Stats())
    losses = {p.name: p.loss(ctx) for p in m.phases}
    sp = lambda t: F.softplus(t).mean()  # -log sigmoid(-t), averaged
    rec = G(E(real))
    torch.testing.assert_close(losses["D"], sp(-D1(real)) + sp(D1(rec)))
    manifold = sp(-D1(rec)) + 0.3 * (real - rec).pow(2).sum(1).mean()
    torch.testing.assert_close(losses["Gm"], manifold)
    torch.testing.assert_close(losses["E"], manifold)
    torch.testing.assert_close(losses["D2"], sp(-D2(rec)) + sp(D2(G(z))))
    torch.testing.assert_close(losses["G"], sp(-D2(G(z))))
    assert torch.autograd.grad(losses["E"], list(E.parameters()))[0].abs().sum() > 0
    assert all(g is None for g in torch.autograd.grad(losses["G"], list(E.parameters()) + list(D1.parameters()), allow_unused=True))


@pytest.mark.parametrize("extra, message", [
    (["loss.penalty=r1"], "mdgan does not apply loss penalties"),
    (["loss.name=wgan"], "mdgan does not apply loss penalties"),
    (["remedies.historical_averaging=0.1"], "not supported by method 'mdgan'"),
])
def test_mdgan_rejects_what_it_does_not_apply(extra, message):
    with pytest.raises(ConfigError, match=message):
        METHODS.get("mdgan")(tiny("ring8", "method=mdgan", *extra), (2,), torch.device("cpu"))


# --------------------------------------------------------------------------- dry runs


def _check_run(run, n=5):
    rows = [json.loads(l) for l in (run.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5]
    for r in rows:
        assert np.isfinite(r["loss/d"]) and np.isfinite(r["loss/g"]) and 0 <= r["d/fake"] <= 1
    x = ganforge.load(run.run_dir).sample(n)
    assert x.shape[0] == n and torch.isfinite(x).all()
    return rows


@pytest.mark.parametrize("extra", [
    ["remedies.minibatch_discrimination=4", "remedies.mbd_dim=3"], ["remedies.minibatch_std=true"],
    ["remedies.feature_matching=1"], ["remedies.historical_averaging=0.1"], ["remedies.instance_noise=0.1"],
    ["remedies.pack=4"], ["remedies.unrolled_steps=2"], ["remedies.pull_away=0.1"],
    ["method=madgan"], ["method=mrgan"], ["method=mdgan"], ["method=unrolled", "remedies.unrolled_steps=1", "loss.penalty=gp"],
    ["remedies.top_k=0.5", "remedies.top_k_decay=0.5"],
])
def test_dry_run_of_each_remedy_on_ring8(extra, tmp_path):
    rows = _check_run(ganforge.train(tiny("ring8", *extra), out=tmp_path / "r"))
    key = {"feature_matching": "remedy/feature_matching", "historical": "remedy/hist_avg_d",
           "pull_away": "remedy/pull_away", "madgan": "madgan/which_acc", "mrgan": "mrgan/geometric_g", "mdgan": "mdgan/geometric_g",
           "top_k": "remedy/top_k"}
    for k, v in key.items():
        if k in extra[0]:
            assert v in rows[-1]


@pytest.mark.parametrize("extra", [["remedies.pack=2"], ["remedies.minibatch_std=true", "remedies.minibatch_discrimination=3"],
                                   ["method=madgan", "remedies.generators=2"]])
def test_dry_run_on_digits_with_a_tiny_dcgan(extra, tmp_path):
    run = ganforge.train(tiny("digits-dcgan", *extra), out=tmp_path / "r")
    _check_run(run)
    x = ganforge.load(run.run_dir).sample(4)
    assert x.min() >= -1 and x.max() <= 1


def test_madgan_run_loads_as_a_mixture_that_samples_like_the_trainer(tmp_path):
    run = ganforge.train(tiny("ring8", "method=madgan", "remedies.generators=4"), out=tmp_path / "r")
    loaded = ganforge.load(run.run_dir)
    assert isinstance(loaded.generator, MixtureGenerator) and len(loaded.generator) == 4
    assert torch.equal(run.sample(50, seed=3), loaded.sample(50, seed=3))
    (run.run_dir / "generator.safetensors").unlink()  # the checkpoint path of load() too
    assert torch.equal(run.sample(50, seed=3), ganforge.load(run.run_dir).sample(50, seed=3))


@pytest.mark.parametrize("extra", [["remedies.historical_averaging=0.5", "remedies.instance_noise=0.2"],
                                   ["method=madgan", "optim.n_critic=2"], ["method=mdgan"]])
def test_resume_equals_uninterrupted(extra, tmp_path):
    args = ["train.steps=8", "train.log_every=2"] + extra
    full = ganforge.train(tiny("ring8", *args), out=tmp_path / "full")

    class StopAt:
        stop_requested = False

        def on_log(self, trainer, row):
            self.stop_requested = trainer.step == 4

    with pytest.raises(Interrupted):
        ganforge.train(tiny("ring8", *args), out=tmp_path / "cut", callbacks=[StopAt()])
    resumed = ganforge.train(tiny("ring8", *args), out=tmp_path / "cut", resume=True)
    a, b = full.generator.state_dict(), resumed.generator.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    strip = lambda d: [{k: v for k, v in json.loads(r).items() if k != "time"} for r in (d / "metrics.jsonl").read_text().splitlines()]
    assert strip(tmp_path / "full") == strip(tmp_path / "cut")
    ckpt = torch.load(tmp_path / "cut" / "checkpoints" / "last.pt", weights_only=True)
    if "remedies.historical_averaging=0.5" in extra:
        assert int(ckpt["modules"]["avg_d"]["count"]) == 8 and int(ckpt["modules"]["avg_g"]["count"]) == 8
