"""RunConfig: presets, TOML files, validation messages."""

import inspect
import json

import pytest
import hm2bp
from hm2bp import reference
from hm2bp.config import (
    DEFAULT_PRESET,
    MNIST_MINI,
    PRESETS,
    ConfigError,
    RunConfig,
    build_config,
    load_toml,
    preset,
)


def write(tmp_path, text, name="run.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_are_valid(name):
    cfg = preset(name)
    assert cfg.preset == name
    assert len(cfg.vth) == len(cfg.layers) - 1


@pytest.mark.parametrize("name,layers,T,vth,beta", [
    ("mnist-fc800", [784, 800, 10], 400, [20, 8], 0.04),
    ("nmnist-fc800", [2312, 800, 10], 540, [15, 15], 0.01),
    ("emnist-fc800x2", [784, 800, 800, 47], 400, [20, 20, 8], 0.04),
    ("fashion-fc400x2", [784, 400, 400, 10], 400, [20, 20, 15], 0.04),
])
def test_paper_presets_follow_spec_section_7(name, layers, T, vth, beta):
    cfg = preset(name)
    assert (cfg.layers, cfg.T, cfg.vth, cfg.reg_beta) == (layers, T, vth, beta)
    assert (cfg.epochs, cfg.batch_size, cfg.lr, cfg.optimizer) == (200, 1, 0.001, "adam")
    assert (cfg.tau_m, cfg.tau_s, cfg.t_ref, cfg.lateral_inhibition) == (64, 8, 2, 1)
    assert (cfg.desired, cfg.undesired, cfg.margin) == (35, 5, 5)
    assert cfg.boosting and cfg.effect_ratio and cfg.weight_limit == 8 and cfg.reg_lambda == 10


def test_default_preset_is_the_bundled_mini_run():
    assert DEFAULT_PRESET == "mnist-mini"
    cfg = build_config()
    assert cfg.preset == "mnist-mini" and cfg.dataset == "mnist-mini"
    assert all(getattr(cfg, k) == v for k, v in MNIST_MINI.items())


def test_network_kwargs_match_the_network_signature():
    cfg = preset("mnist-fc800")
    params = set(inspect.signature(reference.Network).parameters)
    assert set(cfg.network_kwargs()) == params
    net = reference.Network(**cfg.network_kwargs("cpu") | {"layers": [784, 5, 10]})
    assert net.vth == [20.0, 8.0]


def test_dict_roundtrip_through_json():
    cfg = preset("emnist-fc800x2", lr=0.002, threads=3)
    again = RunConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg


def test_toml_flat_and_grouped_forms_agree(tmp_path):
    flat = write(tmp_path, """
preset = "mnist-fc800"
layers = [784, 100, 10]
vth = [10, 5.5]
T = 100
epochs = 3
lr = 0.002
dataset = "mnist-mini"
""", "flat.toml")
    grouped = write(tmp_path, """
preset = "mnist-fc800"
[network]
layers = [784, 100, 10]
vth = [10, 5.5]
T = 100
[training]
epochs = 3
lr = 0.002
[data]
dataset = "mnist-mini"
""", "grouped.toml")
    a, b = build_config(config_file=flat), build_config(config_file=grouped)
    assert a == b
    assert a.vth == [10.0, 5.5] and a.T == 100 and a.preset == "mnist-fc800"
    assert a.reg_beta == 0.04  # from the preset


def test_precedence_preset_then_file_then_overrides(tmp_path):
    path = write(tmp_path, 'preset = "mnist-mini"\nepochs = 7\nbatch_size = 4\n')
    cfg = build_config(None, path, batch_size=2, lr=None)
    assert (cfg.epochs, cfg.batch_size, cfg.lr) == (7, 2, MNIST_MINI.get("lr", 0.001))
    # an explicit preset wins over the file's
    cfg = build_config("mnist-fc800", path)
    assert cfg.preset == "mnist-fc800" and cfg.dataset == "mnist" and cfg.epochs == 7


BAD_VALUES = [
    ("vth", [20.0, 0.0], "vth"),
    ("vth", [20.0, -1.0], "vth"),
    ("vth", [20.0], "vth"),  # one per layer after the input
    ("T", 1, "T"),
    ("T", 200.5, "T"),
    ("T", "200", "T"),
    ("layers", [784, 10], "layers"),  # vth count no longer matches
    ("layers", [784, 0, 10], "layers"),
    ("layers", [700, 400, 10], "layers"),  # dataset has 784 inputs
    ("layers", [784, 400, 11], "layers"),  # dataset has 10 classes
    ("layers", [784, "x", 10], "layers"),
    ("lr", -0.001, "lr"),
    ("lr", 0.0, "lr"),
    ("lr", float("nan"), "lr"),
    ("optimizer", "rmsprop", "optimizer"),
    ("dtype", "float16", "dtype"),
    ("backend", "tpu", "backend"),
    ("dataset", "cifar10", "dataset"),
    ("epochs", 0, "epochs"),
    ("epochs", True, "epochs"),
    ("batch_size", 0, "batch_size"),
    ("boosting", "yes", "boosting"),
    ("desired", 300, "desired"),  # >= T
    ("undesired", 40, "desired"),  # >= desired
    ("tau_s", 64.0, "tau_s"),
    ("tau_m", 0, "tau_m"),
    ("t_ref", -1, "t_ref"),
    ("margin", -1, "margin"),
    ("reg_beta", -0.1, "reg_beta"),
    ("weight_limit", 0, "weight_limit"),
    ("seed", -1, "seed"),
    ("threads", 0, "threads"),
    ("train_size", 0, "train_size"),
]


@pytest.mark.parametrize("key,value,named", BAD_VALUES)
def test_bad_values_name_the_key(key, value, named):
    with pytest.raises(ConfigError, match=rf"\b{named}\b"):
        preset("mnist-mini", **{key: value})


def test_error_lists_allowed_values():
    with pytest.raises(ConfigError, match="adam.*sgd"):
        preset("mnist-mini", optimizer="lbfgs")
    with pytest.raises(ConfigError, match="mnist-fc800"):
        preset("nope")


def test_unknown_keys_are_rejected(tmp_path):
    with pytest.raises(ConfigError, match="'learning_rate'"):
        RunConfig.from_dict({"learning_rate": 0.1})
    with pytest.raises(ConfigError, match="'hidden'"):
        build_config(config_file=write(tmp_path, "hidden = 3\n"))
    with pytest.raises(ConfigError, match=r"\[network\] 'hidden'"):
        build_config(config_file=write(tmp_path, "[network]\nhidden = 3\n"))
    with pytest.raises(ConfigError, match=r"'lr' belongs in \[training\]"):
        build_config(config_file=write(tmp_path, "[network]\nlr = 0.1\n"))
    with pytest.raises(ConfigError, match="given twice"):
        build_config(config_file=write(tmp_path, "lr = 0.1\n[training]\nlr = 0.2\n"))
    with pytest.raises(ConfigError, match="preset"):
        build_config(config_file=write(tmp_path, 'preset = "mnist-huge"\n'))


def test_toml_type_error_names_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"invalid epochs = '3'.*integer"):
        build_config(config_file=write(tmp_path, '[training]\nepochs = "3"\n'))


def test_unreadable_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_toml(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_toml(write(tmp_path, "layers = [784,\n"))


def test_replace_ignores_none_and_validates():
    cfg = preset("mnist-mini")
    assert cfg.replace(epochs=None, threads=2).threads == 2
    with pytest.raises(ConfigError, match="batch_size"):
        cfg.replace(batch_size=-4)


def test_mnist_cnn_preset_is_the_papers_cnn():
    from hm2bp.layers import Conv2d, Dense, Pool2d

    cfg = preset("mnist-cnn")
    assert cfg.layers == [784, 8640, 2160, 2560, 640, 300, 10]
    assert cfg.vth == [5.0, 2.0, 12.0, 4.0, 10.0, 10.0]
    assert cfg.layer_stack() == [Conv2d(15, 5, 5.0, init_w=0.5), Pool2d(2, 2.0), Conv2d(40, 5, 12.0, init_w=0.5),
                                 Pool2d(2, 4.0), Dense(300, 10.0), Dense(10, 10.0)]
    assert (cfg.reg_lambda, cfg.lr_rule, cfg.order, cfg.batch_size) == (0.0, "sqrt_plus1", "authors", 1)
    assert cfg.augmentation().enabled
    kw = cfg.network_kwargs("cpu")
    assert kw["input_shape"] == (1, 28, 28) and kw["vth"] is None


def test_fashion_cnn_preset_is_the_one_conv_recipe_chosen_on_validation():
    from hm2bp.layers import Conv2d, Dense, Pool2d
    cfg = preset("fashion-cnn")
    assert cfg.dataset == "fashion-mnist" and cfg.layers == [784, 18432, 4608, 400, 10]
    assert cfg.layer_stack() == [Conv2d(32, 5, 5.0, init_w=0.5), Pool2d(2, 2.0), Dense(400, 20.0, init_w=0.5),
                                 Dense(10, 15.0)]
    assert (cfg.T, cfg.reg_lambda, cfg.reg_beta, cfg.effect_ratio, cfg.boosting) == (400, 1.0, 0.04, True, True)
    assert (cfg.batch_size, cfg.lr, cfg.lr_rule, cfg.epochs, cfg.reencode) == (32, 0.004, "cosine", 6, True)
    assert not cfg.augmentation().enabled and cfg.order == "permutation"


def test_toml_layer_tables(tmp_path):
    path = tmp_path / "cnn.toml"
    path.write_text("""
preset = "mnist-mini"
[network]
input_shape = [1, 28, 28]
[[network.layer]]
type = "conv2d"
channels = 4
kernel = 5
vth = 3.0
[[network.layer]]
type = "pool2d"
size = 4
vth = 1.0
[[network.layer]]
type = "dense"
n = 10
vth = 5.0
""")
    cfg = build_config(config_file=path)
    assert cfg.layers == [784, 4 * 24 * 24, 4 * 6 * 6, 10]
    assert cfg.input_shape == [1, 28, 28]
    net = hm2bp.Network(**cfg.network_kwargs("cpu"))
    assert [w.shape for w in net.get_weights()] == [(4, 1, 5, 5), (10, 144)]


@pytest.mark.parametrize("stack, match", [
    ([{"type": "conv2d", "channels": 4, "kernel": 40, "vth": 1.0}, {"type": "dense", "n": 10, "vth": 1.0}],
     "window 40 is larger than its input map 28x28"),
    ([{"type": "conv2d", "channels": 0, "kernel": 5, "vth": 1.0}, {"type": "dense", "n": 10, "vth": 1.0}],
     "channels must be >= 1"),
    ([{"type": "dense", "n": 30, "vth": 1.0}, {"type": "conv2d", "channels": 2, "kernel": 3, "vth": 1.0},
      {"type": "dense", "n": 10, "vth": 1.0}], "follows a Dense layer"),
    ([{"type": "conv", "channels": 2}], "type must be one of dense, conv2d, pool2d"),
    ([{"type": "pool2d", "size": 2, "vth": 1.0, "kernel": 3}, {"type": "dense", "n": 10, "vth": 1.0}],
     "unknown key 'kernel' for pool2d"),
    ([{"type": "dense", "vth": 1.0}], "missing 1 required positional argument: 'n'"),
    ([{"type": "dense", "n": 12, "vth": 1.0}], r"layers\[-1\] = 10"),
])
def test_layer_stacks_in_configs_are_validated(stack, match):
    with pytest.raises(ConfigError, match=match):
        preset("mnist-mini", input_shape=[1, 28, 28], layer=stack)


def test_input_shape_needs_a_layer_stack():
    with pytest.raises(ConfigError, match="input_shape"):
        preset("mnist-mini", input_shape=[1, 28, 28])
