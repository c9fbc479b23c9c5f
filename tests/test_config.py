"""Config: recipes load, overrides are typed, bad input is a one-line ConfigError."""

import dataclasses

import pytest
import yaml

from ganforge.config import Experiment, apply_override, from_dict, load_recipe, recipe_names, resolve
from ganforge.errors import ConfigError

RECIPES = ["digits-dcgan", "ring8", "grid25", "fashion-dcgan", "fashion-wgan-gp"]


def test_all_issue_recipes_ship():
    assert set(RECIPES) <= set(recipe_names())


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_round_trips_through_yaml(name):
    cfg = load_recipe(name)
    assert cfg.name == name and cfg.description
    again = from_dict(yaml.safe_load(cfg.to_yaml()))
    assert again == cfg


def test_every_field_has_a_documented_default():
    """Each leaf field of every config dataclass has a default and a comment on its line."""
    import ast
    import inspect

    import ganforge.config as C

    lines = inspect.getsource(C).splitlines()
    tree = ast.parse("\n".join(lines))
    checked = 0
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and any(getattr(d, "id", None) == "dataclass" for d in node.decorator_list):
            cls = getattr(C, node.name)
            for f in dataclasses.fields(cls):
                assert f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING, f.name
            for stmt in node.body:
                if isinstance(stmt, ast.AnnAssign):
                    src = lines[stmt.lineno - 1]
                    sub = getattr(C, ast.unparse(stmt.annotation), None)
                    if not dataclasses.is_dataclass(sub):
                        assert "#" in src, f"{node.name}.{stmt.target.id} has no comment"
                        checked += 1
    assert checked > 40


def test_overrides_are_typed():
    cfg = resolve("digits-dcgan", ["train.steps=7", "optim.g.lr=1e-3", "loss.name=hinge", "train.ema=0", "eval.metrics=fid,kid", "data.limit=none"])
    assert cfg.train.steps == 7 and isinstance(cfg.train.steps, int)
    assert cfg.optim.g.lr == 1e-3 and cfg.optim.d.lr == 1e-4
    assert cfg.loss.name == "hinge"
    assert cfg.eval.metrics == ["fid", "kid"]
    assert cfg.data.limit is None


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("train.stepz=5", "valid keys of train: steps, batch"),
        ("trian.steps=5", "valid keys: name, description"),
        ("train.steps=many", "train.steps must be an integer"),
        ("train.steps=0", "train.steps must be at least 1"),
        ("train.progress=maybe", "must be true or false"),
        ("train", "must look like section.key=value"),
        ("optim.g=3", "is a section"),
        ("optim.g.name=adamw", "valid: adam, sgd, rmsprop"),
        ("loss.smoothing=0.7", "loss.smoothing must be in [0, 0.5)"),
    ],
)
def test_bad_override_is_one_line_error(override, fragment):
    with pytest.raises(ConfigError) as e:
        resolve("digits-dcgan", [override])
    assert fragment in str(e.value)
    assert "\n" not in str(e.value)


def test_unknown_recipe_lists_valid_ones():
    with pytest.raises(ConfigError, match="valid recipes: .*digits-dcgan"):
        load_recipe("nope")


def test_recipe_file_with_unknown_key(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("train: {steps: 3, colour: red}\n")
    with pytest.raises(ConfigError, match="unknown config key 'train.colour'"):
        load_recipe(str(p))


def test_partial_yaml_keeps_defaults(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("model: {g: {width: 8}}\n")
    cfg = load_recipe(str(p))
    assert cfg.model.g.width == 8 and cfg.model.g.name == "dcgan" and cfg.model.d.activation == "leaky_relu"


def test_apply_override_mutates_in_place():
    cfg = Experiment()
    apply_override(cfg, "model.d.spectral_norm=true")
    assert cfg.model.d.spectral_norm is True
