"""Batched MLPs for seed ensembles: S copies of a ganforge MLP as stacked weights, each layer
one batched op over the seed dimension (see :mod:`ganforge.training.ensemble`)."""

from __future__ import annotations

import copy
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from ..nets.layers import Maxout
from ..nets.mlp import CategoricalCode

SUPPORTED = ("method standard; model.g/d.name mlp (no spectral_norm; dropout in G only); any loss, label options "
             "and loss.penalty; remedies: pack, top_k, code_balance (D without BN), instance_noise, "
             "historical_averaging, feature_matching, pull_away; train.amp none, compile false; eval.every 0; "
             "train.tensorboard false; one process")

ELEMENTWISE = (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.ELU, nn.Identity)

class _MaxPieces(torch.autograd.Function):
    """``y.amax(1)`` over the maxout pieces of y [S, pieces, out, N], with a lean backward:
    the gradient goes to every piece equal to the max (amax's own backward also divides it
    among exact ties, which costs a count and copies; real-valued pieces practically never tie)."""

    @staticmethod
    def forward(ctx, y: Tensor) -> Tensor:
        out = y.amax(1)
        ctx.save_for_backward(y, out)
        return out

    @staticmethod
    def backward(ctx, g: Tensor) -> Tensor:
        y, out = ctx.saved_tensors
        # eq writes its 0/1 straight into a float tensor: no bool mask, no conversion pass
        return torch.eq(y, out.unsqueeze(1), out=torch.empty_like(y, dtype=g.dtype)).mul_(g.unsqueeze(1))


def _piece_major(t: Tensor, out: int, pieces: int) -> Tensor:
    """Rows of a stacked maxout linear [S, out * pieces, ...] from unit-major (row j * pieces + k,
    the module's order) to piece-major (row k * out + j), so the max is over an outer dim."""
    return t.reshape(t.shape[0], out, pieces, *t.shape[2:]).transpose(1, 2).reshape(t.shape)


def _unit_major(t: Tensor, out: int, pieces: int) -> Tensor:
    """Inverse of :func:`_piece_major`."""
    return t.reshape(t.shape[0], pieces, out, *t.shape[2:]).transpose(1, 2).reshape(t.shape)


class StackedNet:
    """S copies of one MLP generator or discriminator as stacked tensors, run batched.

    ``params`` / ``buffers``: ``{name: [S, ...]}`` as in ``torch.func.stack_module_state``
    (parameters are leaf tensors that require grad). Inside, activations are feature-major,
    ``h [S, F, N]`` (seed, feature, sample), so that every layer is one batched op without a
    copy: ``Linear``: ``h' = W h + b`` as ``baddbmm`` ([S, out, in] x [S, in, N]);
    ``Maxout``: that, then max over the pieces (its rows stored piece-major, see
    :meth:`external`); ``BatchNorm1d``: the fused batch-norm kernel
    on the view ``[1, S*F, N]`` -- channel (s, f) normalised over its N samples, i.e.
    per-seed batch statistics, with the stacked running statistics updated in place
    exactly as ``nn.BatchNorm1d`` does (train) or used (eval).
    """

    def __init__(self, nets: Sequence[nn.Module]):
        self.template = copy.deepcopy(nets[0]).to("meta")
        self.params, self.buffers = torch.func.stack_module_state(list(nets))
        self.S = len(nets)
        self.gens: Sequence[torch.Generator] | None = None  # per-seed RNGs of dropout's masks (training mode)
        self.maxout: dict[str, tuple[int, int]] = {}  # parameter name -> (out, pieces), stored piece-major
        for prefix, m in self.template.named_modules():
            if isinstance(m, Maxout):
                for key in (f"{prefix}.linear.weight", f"{prefix}.linear.bias"):
                    if key in self.params:
                        self.maxout[key] = (m.out_features, m.pieces)
                        t = _piece_major(self.params[key].detach(), m.out_features, m.pieces)
                        self.params[key] = t.contiguous().requires_grad_(True)
        for m in self.template.modules():
            if not isinstance(m, (nn.Sequential, nn.Linear, Maxout, nn.BatchNorm1d, nn.LayerNorm, nn.Dropout, CategoricalCode,
                                  *ELEMENTWISE)) \
                    and m is not self.template:
                raise ConfigError(f"seed ensembles cannot batch layer {type(m).__name__}; supported: {SUPPORTED}")

    # ------------------------------------------------------------------ layers (h: [S, F, N])
    def _linear(self, prefix: str, h: Tensor) -> Tensor:
        w = self.params[prefix + "weight"]  # [S, out, in]
        b = self.params.get(prefix + "bias")  # [S, out]
        return torch.bmm(w, h) if b is None else torch.baddbmm(b.unsqueeze(2), w, h)  # [S, out, N]

    def _batch_norm(self, m: nn.BatchNorm1d, prefix: str, h: Tensor, train: bool) -> Tensor:
        S, C, N = h.shape
        p, b = self.params, self.buffers
        rm, rv = b.get(prefix + "running_mean"), b.get(prefix + "running_var")
        mom = 0.0
        if train and rm is not None:  # nn.BatchNorm1d's exponential_average_factor
            b[prefix + "num_batches_tracked"].add_(1)
            mom = m.momentum if m.momentum is not None else 1.0 / float(b[prefix + "num_batches_tracked"][0])
        flat = (lambda t: None if t is None else t.reshape(-1))  # [S, C] -> [S*C] (views)
        y = F.batch_norm(h.reshape(1, S * C, N), flat(rm), flat(rv), flat(p.get(prefix + "weight")),
                         flat(p.get(prefix + "bias")), train or rm is None, mom, m.eps)
        return y.reshape(S, C, N)

    def _layer(self, m: nn.Module, prefix: str, h: Tensor, train: bool) -> Tensor:
        if isinstance(m, nn.Sequential):
            for name, child in m.named_children():
                h = self._layer(child, f"{prefix}{name}.", h, train)
            return h
        if isinstance(m, nn.Linear):
            return self._linear(prefix, h)
        if isinstance(m, Maxout):  # output row j * pieces + k is piece k of unit j
            y = self._linear(prefix + "linear.", h)  # [S, pieces * out, N] (piece-major rows)
            return _MaxPieces.apply(y.reshape(y.shape[0], m.pieces, m.out_features, y.shape[-1]))  # [S, out, N]
        if isinstance(m, nn.BatchNorm1d):
            return self._batch_norm(m, prefix, h, train)
        if isinstance(m, nn.LayerNorm):  # over the features of each sample
            y = F.layer_norm(h.transpose(1, 2), m.normalized_shape, eps=m.eps)  # [S, N, F]
            if m.elementwise_affine:
                y = torch.addcmul(self.params[prefix + "bias"].unsqueeze(1), y, self.params[prefix + "weight"].unsqueeze(1))
            return y.transpose(1, 2)
        if isinstance(m, nn.Dropout):
            return self._dropout(m.p, h) if train and m.p > 0 else h
        return m(h)  # elementwise activation or Identity

    def _dropout(self, p: float, h: Tensor) -> Tensor:
        """Training-mode dropout with seed s's mask from ``gens[s]``, drawn as ``F.dropout`` on the
        CPU draws it for that seed's [N, F] activations (``bernoulli_(1 - p)``, then / (1 - p))."""
        if self.gens is None:
            raise RuntimeError("StackedNet.gens must be set to train a net with dropout")
        S, F_, N = h.shape
        mask = torch.stack([torch.empty(N, F_, dtype=h.dtype, device=h.device).bernoulli_(1 - p, generator=g)
                            for g in self.gens]).div_(1 - p)  # [S, N, F]
        return h * mask.transpose(1, 2)

    # ------------------------------------------------------------------ nets
    def generator(self, z: Tensor, train: bool, codes: Tensor | None = None) -> Tensor:
        """MLPGenerator: z [S, N, z_dim] -> [S, N, *out_shape]. With ``codes [S, N]`` (a
        categorical-code G), z holds only the continuous parts [S, N, z_dim - 1]."""
        G = self.template
        if codes is not None:
            z = G.code.embed(codes, z)  # [S, N, K + z_dim - 1]
        elif isinstance(G.code, CategoricalCode):  # each seed's code prior: buffers [S, K]
            z = G.code(z, self.buffers["code.log_weights"])  # [S, N, K + z_dim - 1]
        h = z.transpose(1, 2)  # [S, features, N]
        y = self._linear("out.", self._layer(G.body, "body.", h, train))  # [S, D, N]
        if G.images:
            y = torch.tanh(y)
        return y.transpose(1, 2).reshape(self.S, z.shape[1], *G.out_shape)

    def discriminator(self, x: Tensor) -> Tensor:
        """MLPDiscriminator: x [S, N, ...] -> logits [S, N]."""
        return self.head(self.features(x))

    def features(self, x: Tensor) -> Tensor:
        """MLPDiscriminator.features, feature-major: x [S, N, ...] -> h [S, F, N]."""
        return self._layer(self.template.body, "body.", x.flatten(2).transpose(1, 2), True)

    def head(self, h: Tensor) -> Tensor:
        """D's last linear layer on features h [S, F, N]: logits [S, N]."""
        return self._linear("head.", h).squeeze(1)

    @property
    def has_batch_norm(self) -> bool:
        return any(isinstance(m, nn.BatchNorm1d) for m in self.template.modules())

    def state_dict(self, s: int, source: dict[str, Tensor] | None = None) -> dict[str, Tensor]:
        """Seed s's state dict (parameters from ``source``, e.g. EMA weights, when given)."""
        p = source if source is not None else self.params
        return {**{k: self.external(k, v.detach())[s].clone() for k, v in p.items()},
                **{k: v[s].clone() for k, v in self.buffers.items()}}

    def external(self, name: str, t: Tensor) -> Tensor:
        """Stacked parameter (or optimiser state) ``name`` in the module's own layout."""
        return _unit_major(t, *self.maxout[name]) if name in self.maxout else t

    def internal(self, name: str, t: Tensor) -> Tensor:
        """Inverse of :meth:`external`: a stacked tensor in the module's layout -> the stored one."""
        return _piece_major(t, *self.maxout[name]) if name in self.maxout else t

    @torch.no_grad()
    def load_state_dict(self, s: int, sd: dict[str, Tensor], target: dict[str, Tensor] | None = None) -> None:
        """Write seed s's module state dict ``sd`` into the stacked parameters (or ``target``,
        e.g. EMA weights) and buffers: the inverse of :meth:`state_dict`."""
        p = target if target is not None else self.params
        missing = (set(p) | (set(self.buffers) if target is None else set())) - set(sd)
        if missing:
            raise KeyError(f"state dict of seed {s} lacks {sorted(missing)[:3]}")
        for k, v in p.items():
            v[s].copy_(self.internal(k, sd[k].unsqueeze(0))[0])
        if target is None:
            for k, v in self.buffers.items():
                v[s].copy_(sd[k])

    def grad_norms(self, grads: Sequence[Tensor]) -> Tensor:
        """Per-seed L2 norm over all gradients: [S] (what ``grad_norm(module)`` gives one run)."""
        return torch.stack([g.pow(2).flatten(1).sum(1) for g in grads]).sum(0).sqrt()


