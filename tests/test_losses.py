"""NeuS losses and the curvature schedule against numpy formulas."""
import jnerf  # noqa: F401  (prepares Jittor's environment before jittor is imported)
import jittor as jt
import numpy as np
import pytest

from jnerf.models.losses.neus_loss import NeuSLoss, curvature_weight, psnr
from jnerf.utils.registry import LOSSES, build_from_cfg

SCHEDULE = dict(warmup_steps=1000, level_steps=200, decay=1.3195, decay_levels=11)


def test_curvature_schedule_warmup_decay_and_floor():
    base = 5e-4
    for step in (0, 250, 999):
        assert curvature_weight(step, base, **SCHEDULE) == pytest.approx(base * step / 1000)
    assert curvature_weight(1000, base, **SCHEDULE) == pytest.approx(base)
    assert curvature_weight(1300, base, **SCHEDULE) == pytest.approx(base / 1.3195 ** 1.5)
    floor = base / 1.3195 ** 11                          # all levels active at 1000 + 11*200
    assert curvature_weight(3200, base, **SCHEDULE) == pytest.approx(floor)
    assert curvature_weight(100000, base, **SCHEDULE) == pytest.approx(floor)   # the original would be ~0 here
    later = [curvature_weight(s, base, **SCHEDULE) for s in range(1000, 5000, 50)]
    assert all(a >= b for a, b in zip(later, later[1:]))
    assert curvature_weight(7, base) == base              # defaults: constant weight
    with pytest.raises(ValueError, match="level_steps"):
        curvature_weight(0, base, level_steps=0)


def test_psnr():
    assert psnr(0.01) == pytest.approx(20.0)
    assert psnr(jt.array([1e-3])).item() == pytest.approx(30.0, rel=1e-5)


def _outputs(rng, n_rays=16, n_samples=40):
    return {"rgb": rng.uniform(size=(n_rays, 3)).astype(np.float32),
            "opacity": rng.uniform(-0.1, 1.1, size=(n_rays, 1)).astype(np.float32),   # outside [0,1]: clamped
            "background": rng.uniform(size=(n_rays, 3)).astype(np.float32),
            "gradient": rng.normal(size=(n_samples, 3)).astype(np.float32),
            "laplacian": rng.normal(size=n_samples).astype(np.float32)}


def test_neus_loss_terms_match_numpy():
    rng = np.random.default_rng(0)
    out_np = _outputs(rng)
    rgb_gt = rng.uniform(size=(16, 3)).astype(np.float32)
    mask = (rng.uniform(size=(16, 1)) > 0.5).astype(np.float32)
    loss = build_from_cfg(dict(type="NeuSLoss", color_l1=1.0, color_mse=0.5, eikonal=0.1, mask=0.2,
                               curvature=5e-4, curvature_warmup_steps=1000, curvature_level_steps=200,
                               curvature_decay=1.3195, curvature_decay_levels=11), LOSSES)
    terms = loss({k: jt.array(v) for k, v in out_np.items()}, jt.array(rgb_gt), jt.array(mask), step=1300)
    target = rgb_gt * mask + out_np["background"] * (1 - mask)
    err = out_np["rgb"] - target
    o = np.clip(out_np["opacity"], 1e-3, 1 - 1e-3)
    expect = {"color_l1": np.abs(err).mean(), "color_mse": (err ** 2).mean(),
              "eikonal": ((np.linalg.norm(out_np["gradient"], axis=1) - 1) ** 2).mean(),
              "mask": -(mask * np.log(o) + (1 - mask) * np.log(1 - o)).mean(),
              "curvature": np.abs(out_np["laplacian"]).mean()}
    for name, value in expect.items():
        assert terms[name].item() == pytest.approx(value, rel=1e-5), name
    weights = dict(color_l1=1.0, color_mse=0.5, eikonal=0.1, mask=0.2,
                   curvature=curvature_weight(1300, 5e-4, **SCHEDULE))
    assert terms["total"].item() == pytest.approx(sum(weights[k] * expect[k] for k in expect), rel=1e-5)


def test_neus_loss_without_samples_or_masks():
    rng = np.random.default_rng(1)
    out_np = _outputs(rng, n_samples=0)
    rgb_gt = rng.uniform(size=(16, 3)).astype(np.float32)
    outputs = {k: jt.array(v) if v.size else jt.zeros(v.shape) for k, v in out_np.items()}
    terms = NeuSLoss(mask=0.0)(outputs, jt.array(rgb_gt), None, step=0)
    assert set(terms) == {"color_l1", "eikonal", "curvature", "total", "mse"}
    assert terms["eikonal"].item() == 0 and terms["curvature"].item() == 0
    assert terms["total"].item() == pytest.approx(np.abs(out_np["rgb"] - rgb_gt).mean(), rel=1e-5)
    with pytest.raises(ValueError, match="mask"):
        NeuSLoss(mask=0.1)(outputs, jt.array(rgb_gt), None)
    with pytest.raises(ValueError, match="eikonal"):
        NeuSLoss(eikonal=-1)


def test_neus_loss_gradient_reaches_prediction():
    rng = np.random.default_rng(2)
    out_np = _outputs(rng)
    outputs = {k: jt.array(v) for k, v in out_np.items()}
    rgb_gt = rng.uniform(size=(16, 3)).astype(np.float32)
    total = NeuSLoss(color_l1=0.0, color_mse=1.0, eikonal=0.0, mask=0.0, curvature=0.0)(
        outputs, jt.array(rgb_gt), None)["total"]
    grad = jt.grad(total, outputs["rgb"]).numpy()
    np.testing.assert_allclose(grad, 2 * (out_np["rgb"] - rgb_gt) / rgb_gt.size, rtol=1e-5, atol=1e-8)


def test_free_point_terms_match_numpy():
    """free_eikonal and free_space (carved points only) on the renderer's free points."""
    rng = np.random.default_rng(2)
    out_np = _outputs(rng)
    out_np.update(free_sdf=rng.normal(scale=0.1, size=32).astype(np.float32),
                  free_gradient=rng.normal(size=(32, 3)).astype(np.float32),
                  free_known_empty=(rng.uniform(size=32) > 0.5).astype(np.float32))
    loss = NeuSLoss(mask=0.0, eikonal=0.0, curvature=0.0, free_eikonal=0.1, free_space=1.0)
    terms = loss({k: jt.array(v) for k, v in out_np.items()}, jt.array(out_np["rgb"]), None)
    sdf = out_np["free_sdf"]
    expect = {"free_eikonal": ((np.linalg.norm(out_np["free_gradient"], axis=1) - 1) ** 2).mean(),
              "free_space": (np.maximum(-sdf, 0) * out_np["free_known_empty"]).mean()}
    for name, value in expect.items():
        assert terms[name].item() == pytest.approx(value, rel=1e-5), name
    assert terms["total"].item() == pytest.approx(0.1 * expect["free_eikonal"] + expect["free_space"], rel=1e-5)


def test_opaque_term_is_the_binary_entropy_of_the_opacity():
    rng = np.random.default_rng(3)
    out_np = _outputs(rng)
    terms = NeuSLoss(mask=0.0, eikonal=0.0, curvature=0.0, opaque=0.5)(
        {k: jt.array(v) for k, v in out_np.items()}, jt.array(out_np["rgb"]), None)
    o = np.clip(out_np["opacity"], 1e-3, 1 - 1e-3)
    expect = -(o * np.log(o) + (1 - o) * np.log(1 - o)).mean()
    assert terms["opaque"].item() == pytest.approx(expect, rel=1e-5)
    assert terms["total"].item() == pytest.approx(0.5 * expect, rel=1e-5)
