"""Typed experiment configuration.

An :class:`Experiment` is a tree of dataclasses, one per section (data, model, loss, optim,
train, eval). Every field has a documented default. Recipes (``recipes/*.yaml``) give values
for some fields; ``--set section.key=value`` overrides them. Unknown keys and values of the
wrong type are one-line :class:`~ganforge.errors.ConfigError`\\ s that list what is valid.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

RECIPE_DIR = Path(__file__).parent / "recipes"


@dataclass
class DataConfig:
    name: str = "digits"  # registered dataset (`ganforge list datasets`)
    data_dir: str | None = None  # local copy of the dataset (offline path); None: the standard places
    image_size: int | None = None  # resize images to this side in pixels; None: dataset's native size
    download: bool = False  # allow torchvision to download when no local copy is found
    limit: int | None = None  # use only the first `limit` training samples; None: all
    samples: int = 100_000  # number of points drawn for generated 2D datasets (ring8, grid25)


@dataclass
class NetConfig:
    name: str = "dcgan"  # registered network family (`ganforge list nets`)
    width: int = 64  # base channels (conv nets) or hidden units (MLPs)
    depth: int = 3  # hidden layers (MLPs only)
    norm: str = "batch"  # normalisation in hidden layers: batch | layer | none
    activation: str = "relu"  # hidden activation: relu | leaky_relu | tanh | elu
    slope: float = 0.2  # negative slope of leaky_relu
    maxout: int = 0  # MLP discriminator: pieces per maxout unit (PacGAN 2D setup); 0: off
    spectral_norm: bool = False  # spectral normalisation on every weight layer (Miyato et al. 2018)
    dropout: float = 0.0  # dropout probability in hidden layers
    categories: int = 0  # MLP generator: z[:, 0] -> one of K equiprobable one-hot codes (disconnected modes); 0: off
    code_scale: float = 1.0  # with categories: factor on the z_dim - 1 continuous coordinates G sees
    init_std: float = 0.0  # > 0: weights ~ N(0, init_std^2), biases 0 (DCGAN, PacGAN: 0.02); 0: the family's own (dcgan 0.02, mlp PyTorch's)


def _default_g() -> NetConfig:
    return NetConfig(name="dcgan", activation="relu")


def _default_d() -> NetConfig:
    return NetConfig(name="dcgan", activation="leaky_relu")


@dataclass
class ModelConfig:
    z_dim: int = 100  # latent size; z ~ N(0, I)
    g: NetConfig = field(default_factory=_default_g)  # generator
    d: NetConfig = field(default_factory=_default_d)  # discriminator (returns logits)


@dataclass
class LossConfig:
    name: str = "ns"  # adversarial objective (`ganforge list losses`)
    smoothing: float = 0.0  # s > 0: D targets drawn from U[1-s, 1] (real) and U[0, s] (fake)
    real_label: float = 1.0  # one-sided smoothing: real target (e.g. 0.9); fake stays 0
    flip: float = 0.0  # probability of swapping real/fake labels of a D sample
    clip: float = 0.01  # WGAN weight clipping bound c (loss `wgan`)
    penalty: str | None = None  # regularizer on D: gp | r1 | dragan; None: the loss's default
    penalty_weight: float = 10.0  # lambda of the penalty (WGAN-GP: 10)


@dataclass
class RemedyConfig:
    """Mode-collapse and stability remedies of the standard method (all off by default)."""

    minibatch_discrimination: int = 0  # Salimans et al. 2016: number of kernels B in D's minibatch layer; 0: off
    mbd_dim: int = 5  # minibatch discrimination: kernel dimension C
    minibatch_std: bool = False  # Karras et al. 2018: append the batch's feature std as a channel in D
    feature_matching: float = 0.0  # weight of ||E f(x) - E f(G(z))||^2 on D's features in G's loss; 0: off
    historical_averaging: float = 0.0  # weight of ||theta - mean of past theta||^2 for both nets; 0: off
    instance_noise: float = 0.0  # std of Gaussian noise added to D's inputs, annealed linearly to 0; 0: off
    instance_noise_steps: int = 0  # steps over which instance noise anneals to 0; 0: all of training
    pack: int = 1  # PacGAN (Lin et al. 2018): D judges `pack` samples at once; 1: off
    unrolled_steps: int = 0  # unrolled GAN (Metz et al. 2016): G's loss through k differentiable D updates; 0: off
    unrolled_optimizer: str = "adam"  # unrolled GAN: surrogate D updates: adam (D's own Adam and its state, as the authors' code) | sgd
    unrolled_lr: float = 0.0  # unrolled GAN: step size of the surrogate D updates; 0: D's current learning rate
    pull_away: float = 0.0  # EBGAN pull-away term weight on G's features (Zhao et al. 2017); 0: off
    generators: int = 3  # MAD-GAN (method madgan): number of generators k
    madgan_sim: float = 0.0  # MAD-GAN-Sim-style diversity (method madgan): weight of the cosine similarity of D's features of G_i(z), G_j(z); 0: off
    mrgan_lambda1: float = 0.2  # MRGAN (methods mrgan, mdgan): weight of the geometric (reconstruction) term
    mrgan_lambda2: float = 0.4  # MRGAN (method mrgan): weight of the mode-regularizer term
    top_k: float = 0.0  # Sinha et al. 2020: G's loss on the k fakes D scores highest, k annealed from the batch to top_k * batch; 0: off
    top_k_decay: float = 0.99  # top-k training: k = batch * max(top_k, top_k_decay ** (step / 100)) (0.99 per epoch in the paper)
    code_balance: float = 0.0  # step size eta of the learned code prior (needs model.g.categories; 0.2 works): log pi_c += eta log r_c; 0: off
    code_balance_every: int = 50  # code balancing: steps between prior updates
    code_balance_start: float = 0.25  # code balancing: first update after this fraction of train.steps (D must be fit first)
    code_balance_samples: int = 64  # code balancing: latents per code in each update


@dataclass
class OptimConfig:
    name: str = "adam"  # adam | sgd | rmsprop
    lr: float = 2e-4  # learning rate (TTUR: give G and D different ones)
    beta1: float = 0.5  # Adam beta1 (DCGAN: 0.5)
    beta2: float = 0.999  # Adam beta2
    momentum: float = 0.0  # SGD/RMSprop momentum
    weight_decay: float = 0.0  # L2 weight decay
    schedule: str = "constant"  # learning-rate schedule: constant | exponential | cosine
    gamma: float = 0.9999  # exponential schedule: lr *= gamma every step
    min_lr: float = 0.0  # cosine schedule: final learning rate


@dataclass
class OptimSection:
    g: OptimConfig = field(default_factory=OptimConfig)  # generator optimiser
    d: OptimConfig = field(default_factory=OptimConfig)  # discriminator optimiser
    n_critic: int = 1  # D steps per G step


@dataclass
class TrainConfig:
    steps: int = 2000  # generator steps
    batch: int = 64  # batch size (real and fake)
    seed: int = 0  # seeds torch, numpy and the data order
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    ema: float = 0.0  # EMA decay of G's weights (e.g. 0.999); 0: off
    log_every: int = 50  # steps between rows of metrics.jsonl
    sample_every: int = 500  # steps between fixed-noise sample grids; 0: only at the end
    checkpoint_every: int = 1000  # steps between checkpoints (last.pt); 0: only at the end
    grid: int = 64  # images in a sample grid (a square number looks best)
    progress: bool = True  # show a progress bar
    threads: int = 0  # torch CPU threads; 0: torch's default
    monitor: bool = True  # run the collapse/health monitor and write diagnosis.json
    channels_last: bool = False  # images in channels-last memory format (faster convs on GPUs and oneDNN)
    amp: str = "none"  # autocast for forward passes: none | bf16 (no loss scaling needed) | auto (bf16 where the device has native bf16, else none)
    tensorboard: bool = False  # also log scalars and sample grids to <run>/tensorboard (pip install tensorboard)
    compile: bool = False  # torch.compile the networks (falls back to eager with a warning if unavailable)
    fused: str = "auto"  # Adam kernels: auto / fused (one fused kernel where torch has one: CPU, CUDA) | foreach
    cuda_graph: bool = False  # CUDA: replay each training iteration as one CUDA graph (eager elsewhere, with a warning)


@dataclass
class EvalConfig:
    every: int = 0  # steps between evaluations during training; 0: off
    metrics: list[str] = field(default_factory=list)  # metric names, e.g. [fid, modes]
    n: int = 2500  # generated samples per evaluation
    features: str = "auto"  # feature extractor: auto | inception | classifier | raw
    best: str | None = None  # keep checkpoints/best.pt by this metric (lower is better for fid/kid)


@dataclass
class Experiment:
    name: str = "digits-dcgan"  # run name (default output: runs/<name>)
    description: str = ""  # one line about the recipe
    method: str = "standard"  # training method (`ganforge list methods`)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    remedies: RemedyConfig = field(default_factory=RemedyConfig)
    optim: OptimSection = field(default_factory=OptimSection)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


# --------------------------------------------------------------------------- conversion


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp)).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check/convert ``value`` to the annotated type ``tp`` or raise a one-line ConfigError."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "~")):
            if type(None) in args:
                return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{where}: bad value {value!r}")
    if origin is list:
        (item,) = typing.get_args(tp)
        if isinstance(value, str):
            value = [v for v in (s.strip() for s in value.strip("[]").split(",")) if v]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list (e.g. a,b,c), got {value!r}")
        return [_coerce(v, item, where) for v in value]
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a mapping of {_fields_list(tp)}, got {value!r}")
        return _from_dict(tp, value, where)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "on", "false", "no", "0", "off"):
            return value.lower() in ("true", "yes", "1", "on")
        raise ConfigError(f"{where} must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                f = float(value)
            except ValueError:
                f = None
            if f is not None and f.is_integer():
                return int(f)
        raise ConfigError(f"{where} must be an integer, got {value!r}")
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{where} must be a number, got {value!r}")
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{where} must be a string, got {value!r}")
    raise ConfigError(f"{where}: unsupported type {_type_name(tp)}")


def _fields_list(cls: type) -> str:
    return ", ".join(f.name for f in dataclasses.fields(cls))


def _from_dict(cls: type, d: dict[str, Any], where: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for k in d:
        if k not in names:
            path = f"{where}.{k}" if where else k
            raise ConfigError(f"unknown config key {path!r}; valid keys{' of ' + where if where else ''}: {', '.join(sorted(names))}")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}" if where else k) for k, v in d.items()}
    obj = cls()
    for k, v in kwargs.items():
        if dataclasses.is_dataclass(hints[k]):
            # merge section: keep defaults for keys the mapping does not name
            base = getattr(obj, k)
            for sub in dataclasses.fields(hints[k]):
                if sub.name in d[k]:
                    setattr(base, sub.name, getattr(v, sub.name))
        else:
            setattr(obj, k, v)
    return obj


def from_dict(d: dict[str, Any]) -> Experiment:
    """Build an :class:`Experiment` from a (possibly partial) nested mapping."""
    if not isinstance(d, dict):
        raise ConfigError(f"a config must be a mapping of sections ({_fields_list(Experiment)})")
    return _from_dict(Experiment, d)


def apply_override(cfg: Experiment, assignment: str) -> Experiment:
    """Apply one ``section.key=value`` override in place (value parsed as YAML)."""
    if "=" not in assignment:
        raise ConfigError(f"override {assignment!r} must look like section.key=value, e.g. train.steps=500")
    path, raw = assignment.split("=", 1)
    keys = path.strip().split(".")
    obj: Any = cfg
    where = ""
    for i, k in enumerate(keys):
        if not dataclasses.is_dataclass(obj):
            raise ConfigError(f"{where!r} is a value, not a section; cannot set {path!r}")
        names = [f.name for f in dataclasses.fields(obj)]
        if k not in names:
            raise ConfigError(f"unknown config key {path!r}; valid keys{' of ' + where if where else ''}: {', '.join(names)}")
        where = ".".join(keys[: i + 1])
        if i < len(keys) - 1:
            obj = getattr(obj, k)
    if dataclasses.is_dataclass(getattr(obj, keys[-1])):
        raise ConfigError(f"{path!r} is a section; set one of its keys, e.g. {path}.{dataclasses.fields(getattr(obj, keys[-1]))[0].name}=...")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    hints = typing.get_type_hints(type(obj))
    setattr(obj, keys[-1], _coerce(value, hints[keys[-1]], path))
    return cfg


def recipe_names() -> list[str]:
    return sorted(p.stem for p in RECIPE_DIR.glob("*.yaml"))


def load_recipe(name_or_path: str) -> Experiment:
    """A shipped recipe by name, or a YAML file by path."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.is_file():
        if not p.is_file():
            raise ConfigError(f"recipe file {p} does not exist; give a recipe name ({', '.join(recipe_names())}) or a YAML path")
    else:
        p = RECIPE_DIR / f"{name_or_path}.yaml"
        if not p.is_file():
            raise ConfigError(f"unknown recipe {name_or_path!r}; valid recipes: {', '.join(recipe_names())} (or a path to a .yaml file)")
    try:
        d = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"recipe {p} is not valid YAML ({str(e).splitlines()[0]}); fix the file") from None
    cfg = from_dict(d)
    return cfg


def resolve(recipe: str = "digits-dcgan", overrides: list[str] | tuple[str, ...] = ()) -> Experiment:
    """A recipe plus ``section.key=value`` overrides → a checked :class:`Experiment`."""
    cfg = load_recipe(recipe)
    for o in overrides:
        apply_override(cfg, o)
    validate(cfg)
    return cfg


def validate(cfg: Experiment) -> None:
    """Range checks that types cannot express."""
    t = cfg.train
    for k in ("steps", "batch"):
        if getattr(t, k) < 1:
            raise ConfigError(f"train.{k} must be at least 1, got {getattr(t, k)}")
    for k in ("log_every", "sample_every", "checkpoint_every", "grid", "threads"):
        if getattr(t, k) < 0:
            raise ConfigError(f"train.{k} must be >= 0, got {getattr(t, k)}")
    if not 0.0 <= t.ema < 1.0:
        raise ConfigError(f"train.ema must be in [0, 1), got {t.ema}")
    if t.amp not in ("none", "bf16", "auto"):
        raise ConfigError(f"unknown train.amp={t.amp!r}; valid: none, bf16, auto")
    if t.fused not in ("auto", "fused", "foreach"):
        raise ConfigError(f"unknown train.fused={t.fused!r}; valid: auto, fused, foreach")
    if cfg.optim.n_critic < 1:
        raise ConfigError(f"optim.n_critic must be at least 1, got {cfg.optim.n_critic}")
    if cfg.eval.every < 0 or cfg.eval.n < 1:
        raise ConfigError(f"eval.every must be >= 0 and eval.n >= 1, got {cfg.eval.every} and {cfg.eval.n}")
    if cfg.eval.every and not cfg.eval.metrics:
        raise ConfigError("eval.every is set but eval.metrics is empty; add e.g. --set eval.metrics=fid,modes")
    if cfg.model.z_dim < 1:
        raise ConfigError(f"model.z_dim must be at least 1, got {cfg.model.z_dim}")
    L = cfg.loss
    if not 0.0 <= L.smoothing < 0.5:
        raise ConfigError(f"loss.smoothing must be in [0, 0.5), got {L.smoothing}")
    if not 0.0 <= L.flip < 0.5:
        raise ConfigError(f"loss.flip must be in [0, 0.5), got {L.flip}")
    for name, o in (("g", cfg.optim.g), ("d", cfg.optim.d)):
        if o.name not in ("adam", "sgd", "rmsprop"):
            raise ConfigError(f"unknown optimiser optim.{name}.name={o.name!r}; valid: adam, sgd, rmsprop")
        if o.schedule not in ("constant", "exponential", "cosine"):
            raise ConfigError(f"unknown schedule optim.{name}.schedule={o.schedule!r}; valid: constant, exponential, cosine")
        if o.lr <= 0:
            raise ConfigError(f"optim.{name}.lr must be positive, got {o.lr}")
