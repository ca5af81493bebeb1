"""Registry: registration, building from configs, and the errors a misspelt config produces."""
import pytest

from jnerf.utils.registry import ConfigKeyError, Registry, build_from_cfg

TOYS = Registry("TOYS")


@TOYS.register_module()
class Encoder:
    def __init__(self, n_levels=16, width=2):
        self.n_levels, self.width = n_levels, width


@TOYS.register_module(name="Anything")
class TakesKwargs:
    def __init__(self, **kwargs):
        self.kwargs = kwargs


def test_build_from_dict_and_kwargs_override():
    obj = build_from_cfg(dict(type="Encoder", n_levels=8), TOYS, width=4)
    assert (obj.n_levels, obj.width) == (8, 4)
    assert build_from_cfg("Encoder", TOYS).n_levels == 16
    assert build_from_cfg(None, TOYS) is None
    assert [o.n_levels for o in build_from_cfg([dict(type="Encoder", n_levels=1), "Encoder"], TOYS)] == [1, 16]
    assert build_from_cfg(dict(type="Anything", x=1), TOYS).kwargs == {"x": 1}


def test_build_does_not_mutate_config():
    cfg = dict(type="Encoder", n_levels=3)
    build_from_cfg(cfg, TOYS)
    assert cfg == dict(type="Encoder", n_levels=3)


def test_unknown_type_lists_registered_names_and_suggests():
    with pytest.raises(ConfigKeyError) as err:
        build_from_cfg(dict(type="Encodr"), TOYS)
    msg = str(err.value)
    assert "'Encodr' is not registered in TOYS" in msg and "Did you mean 'Encoder'" in msg
    assert "Anything" in msg and "Encoder" in msg


def test_misspelt_argument_names_key_and_closest():
    with pytest.raises(ConfigKeyError) as err:
        build_from_cfg(dict(type="Encoder", n_level=4), TOYS)
    assert "no argument 'n_level'" in str(err.value) and "'n_levels'" in str(err.value)


def test_missing_type_and_duplicate_registration():
    with pytest.raises(ConfigKeyError, match="no 'type' key"):
        build_from_cfg(dict(n_levels=4), TOYS)
    with pytest.raises(KeyError, match="already registered"):
        TOYS.register_module(name="Encoder", module=TakesKwargs)


def test_project_registries_hold_the_components():
    import jnerf  # noqa: F401  registers everything
    from jnerf.utils.registry import (DATASETS, ENCODERS, EXPORTERS, LOSSES, NETWORKS, OPTIMS, RENDERERS, SAMPLERS,
                                      SCHEDULERS, build_from_cfg)
    build_from_cfg(dict(type="MeshExporter"), EXPORTERS)  # an unknown name makes the registry import the components
    assert "HashGridEncoder" in ENCODERS and "SHEncoder" in ENCODERS
    assert {"SDFNetwork", "ColorNetwork", "VarianceNetwork", "InstantNeuS"} <= set(NETWORKS.names())
    assert "OccupancyGrid" in SAMPLERS and "NeuSRenderer" in RENDERERS and "MeshExporter" in EXPORTERS
    assert "NeuSLoss" in LOSSES and "Adam" in OPTIMS and "WarmupCosineLR" in SCHEDULERS
    assert "NeuSDataset" in DATASETS
