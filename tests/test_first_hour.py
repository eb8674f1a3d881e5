"""What a new user trips on first: a mistyped preset or key gets a suggestion, --resume with
fewer epochs than the run has done is refused with what to do instead."""

import pytest
from hm2bp import config as hconfig
from hm2bp.cli import train_main
from hm2bp.config import ConfigError, build_config
from hm2bp.config.doc import to_toml
from hm2bp.layers import from_dict

TINY = dict(layers=[784, 30, 10], T=60, vth=[5.0, 3.0], desired=10, undesired=2, margin=2, epochs=2,
            batch_size=4, lr=0.005, seed=7, backend="cpu", train_size=200, test_size=100)


def test_a_mistyped_preset_gets_the_closest_name(capsys):
    with pytest.raises(SystemExit) as exc:
        train_main(["--preset", "mnist-fc80"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "unknown preset 'mnist-fc80' (did you mean 'mnist-fc800'?)" in err and "Traceback" not in err


def test_mistyped_config_keys_get_the_closest_name(tmp_path):
    path = tmp_path / "typo.toml"
    path.write_text('preset = "mnist-mini"\n[training]\nepoch = 3\n')
    with pytest.raises(ConfigError, match=r"unknown key \[training\] 'epoch' \(did you mean 'epochs'\?\)"):
        build_config(None, str(path))
    path.write_text('preset = "mnist-fc8000"\n')
    with pytest.raises(ConfigError, match=r"did you mean 'mnist-fc800'\?"):
        build_config(None, str(path))
    with pytest.raises(ValueError, match=r"unknown key 'chanels' for conv2d \(did you mean 'channels'\?\)"):
        from_dict({"type": "conv2d", "chanels": 4, "kernel": 3, "vth": 1.0}, "layer[0]")
    path.write_text("xyz = 1\n")  # nothing close: no suggestion
    with pytest.raises(ConfigError) as info:
        build_config(None, str(path))
    assert "did you mean" not in str(info.value)


def test_resume_with_fewer_epochs_than_done_is_refused(tmp_path, capsys):
    config = tmp_path / "tiny.toml"
    config.write_text(to_toml(hconfig.preset("mnist-mini", **TINY)))
    run = tmp_path / "run"
    assert train_main(["--config", str(config), "--out", str(run), "--quiet"]) == 0
    capsys.readouterr()
    assert train_main(["--resume", str(run), "--epochs", "1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"{run} has already completed 2 epochs, more than --epochs 1" in err
    assert "--epochs N with N > 2" in err and f"hm2bp-eval {run}" in err
