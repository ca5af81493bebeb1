"""Config files: _base_ merge, overrides, strict keys with suggestions, save and reload."""
import os
import textwrap

import pytest

from jnerf.utils.config import ConfigKeyError, load_config, parse_overrides, save_cfg

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(ROOT, "projects", "neus", "configs")


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


@pytest.fixture
def base(tmp_path):
    write(tmp_path, "base.py", """
        import numpy as np
        exp_name = 'base'
        device = 'auto'
        on_cpu = None
        bbox = np.array([-1.0, -1.0, -1.0])
        model = dict(type='Net', width=64, encoding=dict(levels=16, table=19))
        lr = 1e-2
        def helper(): return 1          # functions are not config keys
    """)
    os.makedirs(tmp_path / "sub", exist_ok=True)
    return tmp_path


def test_base_deep_merge_relative_path(base):
    path = write(base, "sub/child.py", """
        _base_ = '../base.py'
        model = dict(encoding=dict(table=21))
        lr = 5e-3
    """)
    cfg = load_config(path)
    assert cfg.model.encoding.table == 21 and cfg.model.encoding.levels == 16 and cfg.model.width == 64
    assert cfg.lr == 5e-3 and cfg.exp_name == "base" and "helper" not in cfg
    assert list(cfg.bbox) == [-1.0, -1.0, -1.0]


def test_unknown_key_on_read_names_key_and_suggestion(base):
    cfg = load_config(str(base / "base.py"))
    with pytest.raises(ConfigKeyError) as err:
        cfg.model.widht
    assert "widht" in str(err.value) and "'width'" in str(err.value)
    with pytest.raises(ConfigKeyError):
        cfg.exp_nam


def test_child_setting_unknown_key_is_an_error(base):
    path = write(base, "typo.py", """
        _base_ = 'base.py'
        model = dict(encodng=dict(levels=8))
    """)
    with pytest.raises(ConfigKeyError) as err:
        load_config(path)
    assert "model.encodng" in str(err.value) and "'encoding'" in str(err.value)


def test_declared_new_keys_and_replace(base):
    path = write(base, "new.py", """
        _base_ = 'base.py'
        _new_keys_ = ['extra']
        extra = 3
        model = dict(_replace_=True, type='Other', depth=2)
    """)
    cfg = load_config(path)
    assert cfg.extra == 3 and dict(cfg.model) == {"type": "Other", "depth": 2}


def test_overrides_parse_literals_and_reject_unknown_paths(base):
    assert parse_overrides(["a.b=1", "c=foo", "d=[1, 2]", "e=True"]) == [
        (["a", "b"], 1), (["c"], "foo"), (["d"], [1, 2]), (["e"], True)]
    # the configs' own dict(...) spelling is a dict, not a string (mesh.postprocess=dict(...) used to arrive as str)
    assert parse_overrides(["p=dict(smooth=3, keep=[1, dict(x=-1.5)])", "q=dict(open"]) == [
        (["p"], {"smooth": 3, "keep": [1, {"x": -1.5}]}), (["q"], "dict(open")]
    cfg = load_config(str(base / "base.py"), ["model.encoding.levels=8", "exp_name=run2"])
    assert cfg.model.encoding.levels == 8 and cfg.exp_name == "run2"
    with pytest.raises(ConfigKeyError, match="has no key 'levls'"):
        load_config(str(base / "base.py"), ["model.encoding.levls=8"])
    with pytest.raises(ValueError, match="key.path=value"):
        parse_overrides(["novalue"])


def test_saved_config_reloads_identically(base, tmp_path):
    cfg = load_config(str(base / "base.py"), ["lr=0.5"])
    out = str(tmp_path / "saved.py")
    save_cfg(cfg, out)
    again = load_config(out)
    assert again.to_dict() == {**cfg.to_dict(), "bbox": [-1.0, -1.0, -1.0]}


@pytest.mark.parametrize("name", sorted(f for f in os.listdir(CONFIGS) if f.endswith(".py")))
def test_shipped_configs_load_and_every_key_has_one_consumer(name):
    """Every shipped config resolves; every top-level key is the runner's own or a group that one constructor
    takes, and each group names arguments that constructor accepts (the run-time ones aside)."""
    from jnerf.runner import load_run_config
    for device in ("cuda", "cpu"):  # with and without the config's on_cpu settings
        cfg = load_run_config(os.path.join(CONFIGS, name), device=device)
        _check_consumers(cfg)


def _check_consumers(cfg):
    import jnerf
    from jnerf.models.samplers import SceneBox
    from jnerf.runner.settings import EvalSettings, TrainSettings, TurntableSettings, ValidationSettings
    from jnerf.utils import registry as R
    jnerf.register_all()
    runner_keys = {"exp_name", "log_dir", "seed", "device", "on_cpu"}
    settings = {"bbox": SceneBox, "train": TrainSettings, "val": ValidationSettings, "turntable": TurntableSettings,
                "eval": EvalSettings}
    registries = {"dataset": R.DATASETS, "model": R.NETWORKS, "occupancy": R.SAMPLERS, "renderer": R.RENDERERS,
                  "loss": R.LOSSES, "optim": R.OPTIMS, "scheduler": R.SCHEDULERS, "mesh": R.EXPORTERS}
    assert set(cfg) == runner_keys | set(settings) | set(registries)
    nested = [(cfg.model.sdf_network, R.NETWORKS), (cfg.model.color_network, R.NETWORKS),
              (cfg.model.variance_network, R.NETWORKS), (cfg.model.sdf_network.encoding, R.ENCODERS)]
    if cfg.model.get("background_network") is not None:  # scenes without masks
        nested += [(cfg.model.background_network, R.NETWORKS), (cfg.model.background_network.encoding, R.ENCODERS)]
    for sub, registry in [(cfg[k], r) for k, r in registries.items()] + nested:
        R._check_kwargs(registry.get(sub.type), {k: v for k, v in sub.items() if k != "type"})
    for key, cls in settings.items():
        R.build_settings(cls, cfg[key], key)
    from jnerf.export.exporter import texture_settings
    texture_settings(cfg.mesh.texture)  # mesh.texture: None, True or TextureSettings' arguments


def test_on_cpu_settings_apply_only_on_the_cpu_and_command_line_wins(base):
    from jnerf.runner import load_run_config
    path = write(base, "gpu_sized.py", """
        _base_ = 'base.py'
        on_cpu = dict(model=dict(width=16), lr=0.5)
    """)
    assert load_run_config(path, device="cuda").model.width == 64
    cpu = load_run_config(path, device="cpu")
    assert cpu.model.width == 16 and cpu.lr == 0.5 and cpu.model.encoding.levels == 16
    overridden = load_run_config(path, ["model.width=8"], device="cpu")
    assert overridden.model.width == 8
    # the run's saved config.py describes the run: loading it again (--task mesh with logs/<exp>/config.py, on the
    # CPU or a GPU) gives the same values, not the on_cpu settings applied a second time over the command line's
    from jnerf.utils.config import save_cfg
    save_cfg(overridden, os.path.join(base, "run_config.py"))
    for device in ("cpu", "cuda"):
        again = load_run_config(os.path.join(base, "run_config.py"), device=device)
        assert again.model.width == 8 and again.lr == 0.5 and again.model.encoding.levels == 16, device
    typo = write(base, "typo_cpu.py", """
        _base_ = 'base.py'
        on_cpu = dict(model=dict(widht=16))
    """)
    load_run_config(typo, device="cuda")  # not applied, not checked
    with pytest.raises(ConfigKeyError, match="on_cpu.model.widht"):
        load_run_config(typo, device="cpu")
