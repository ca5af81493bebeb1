"""Occupancy ops and OccupancyGrid against numpy loops and analytic SDFs: slab test, ray marching, visual hull,
the SDF-aware classification, its schedule, free points and the extraction prior."""
import jnerf  # noqa: F401  (prepares Jittor's environment before jittor is imported)
import jittor as jt
import numpy as np
import pytest

from jnerf.dataset.cameras import look_at_c2w
from jnerf.models.samplers.occupancy_grid import INSIDE, OUTSIDE, SURFACE, OccupancyGrid, dilate_cells
from jnerf.ops.occupancy import carve_visual_hull, ray_aabb_intersect, ray_march

BOX_MIN, BOX_MAX = np.array([-1.0, -0.8, -0.6]), np.array([1.0, 0.8, 0.6])


def _random_rays(rng, n):
    """Rays from outside and inside the box, some missing it."""
    origins = rng.uniform(-2.5, 2.5, size=(n, 3))
    origins[: n // 4] = rng.uniform(-0.5, 0.5, size=(n // 4, 3))      # start inside the box
    targets = rng.uniform(-0.7, 0.7, size=(n, 3))
    dirs = targets - origins
    dirs[n // 2: n // 2 + n // 8] = rng.normal(size=(n // 8, 3))     # random directions: some miss
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    return origins.astype(np.float32), dirs.astype(np.float32)


def _slab_numpy(o, d, near_min):
    t_near, t_far = np.empty(len(o)), np.empty(len(o))
    for r in range(len(o)):
        lo, hi = -np.inf, np.inf
        for a in range(3):
            if abs(d[r, a]) < 1e-9:
                if not BOX_MIN[a] <= o[r, a] <= BOX_MAX[a]:
                    lo, hi = np.inf, -np.inf
                continue
            t0, t1 = sorted(((BOX_MIN[a] - o[r, a]) / d[r, a], (BOX_MAX[a] - o[r, a]) / d[r, a]))
            lo, hi = max(lo, t0), min(hi, t1)
        t_near[r], t_far[r] = max(lo, near_min), hi
    return t_near, t_far, t_far > t_near


def _cell_numpy(p, res):
    ijk = np.clip(np.floor((p - BOX_MIN) / (BOX_MAX - BOX_MIN) * res).astype(int), 0, res - 1)
    return (ijk[..., 0] * res + ijk[..., 1]) * res + ijk[..., 2]


def _march_numpy(o, d, occupied, res, step, max_steps, jitter, near_min):
    t_near, t_far, hit = _slab_numpy(o, d, near_min)
    ray_idx, starts, ends, info = [], [], [], []
    for r in range(len(o)):
        first = len(starts)
        for i in range(max_steps):
            t = t_near[r] + (i + jitter[r]) * step
            if not hit[r] or t >= t_far[r]:
                break
            t0, t1 = max(t - step / 2, t_near[r]), min(t + step / 2, t_far[r])
            if occupied[_cell_numpy(o[r] + d[r] * (t0 + t1) / 2, res)]:
                ray_idx.append(r), starts.append(t0), ends.append(t1)
        info.append((first, len(starts) - first))
    return np.array(ray_idx), np.array(starts), np.array(ends), np.array(info)


def test_ray_aabb_matches_numpy():
    o, d = _random_rays(np.random.default_rng(0), 64)
    t_near, t_far, hit = ray_aabb_intersect(jt.array(o), jt.array(d), BOX_MIN, BOX_MAX, near_min=0.05)
    ref_near, ref_far, ref_hit = _slab_numpy(o, d, 0.05)
    assert 0 < ref_hit.sum() < len(o)
    np.testing.assert_array_equal(hit.numpy(), ref_hit)
    np.testing.assert_allclose(t_near.numpy()[ref_hit], ref_near[ref_hit], atol=1e-5)
    np.testing.assert_allclose(t_far.numpy()[ref_hit], ref_far[ref_hit], atol=1e-5)


@pytest.mark.parametrize("use_jitter", [True, False])
def test_ray_march_matches_numpy_loop(use_jitter):
    rng = np.random.default_rng(1)
    res, step, max_steps = 6, 0.05, 40          # max_steps cuts the longest rays short
    o, d = _random_rays(rng, 48)
    occupied = rng.uniform(size=res ** 3) < 0.5
    jitter = rng.uniform(size=48).astype(np.float32) if use_jitter else np.full(48, 0.5, np.float32)
    samples = ray_march(jt.array(o), jt.array(d), jt.array(occupied), BOX_MIN, BOX_MAX, res, step, max_steps,
                        jitter=jt.array(jitter) if use_jitter else None)
    ray_idx, starts, ends, info = _march_numpy(o, d, occupied, res, step, max_steps, jitter, 0.0)
    np.testing.assert_array_equal(samples.packed_info.numpy(), info)
    np.testing.assert_array_equal(samples.ray_indices.numpy(), ray_idx)
    np.testing.assert_allclose(samples.t_starts.numpy(), starts, atol=1e-5)
    np.testing.assert_allclose(samples.t_ends.numpy(), ends, atol=1e-5)
    assert samples.ray_indices.dtype == jt.int32 and samples.packed_info.dtype == jt.int32
    assert np.all(samples.lengths().numpy() > 0)


def test_ray_march_all_empty_gives_no_samples():
    o, d = _random_rays(np.random.default_rng(2), 48)
    samples = ray_march(jt.array(o), jt.array(d), jt.zeros((6 ** 3,), dtype=jt.bool), BOX_MIN, BOX_MAX, 6,
                        0.05, 40)
    assert samples.n_samples == 0 and samples.n_rays == 48
    assert np.all(samples.packed_info.numpy()[:, 1] == 0)
    none = ray_march(jt.zeros((0, 3)), jt.zeros((0, 3)), jt.ones((6 ** 3,), dtype=jt.bool), BOX_MIN, BOX_MAX, 6,
                     0.05, 40)
    assert none.n_samples == 0 and none.n_rays == 0


def _sphere_views(radius=0.5, size=32):
    """Cameras around the origin and the exact silhouettes of a sphere of ``radius``."""
    eyes = [np.array(e, float) * 4.0 for e in
            [(1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0.6, 0.6, -0.5)]]
    c2w = np.stack([look_at_c2w(e, np.zeros(3), [0.0, 0.0, 1.0]) for e in eyes])
    focal = size * 1.2
    K = np.array([[focal, 0, (size - 1) / 2], [0, focal, (size - 1) / 2], [0, 0, 1]])
    intrinsics = np.repeat(K[None], len(eyes), axis=0)
    v, u = np.mgrid[0:size, 0:size]
    pix = np.stack([u, v, np.ones_like(u)], -1).reshape(-1, 3).astype(float)
    masks = []
    for cam in c2w:
        d = pix @ np.linalg.inv(K).T @ cam[:3, :3].T
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        o = cam[:3, 3]
        closest = np.linalg.norm(o - (o @ d.T)[:, None] * d, axis=1)     # distance from the centre to the ray
        masks.append((closest <= radius).reshape(size, size))
    return intrinsics, c2w, np.stack(masks)


def _hull_numpy(intrinsics, c2w, masks, res, k):
    axes = [BOX_MIN[a] + (np.arange(res) + 0.5) * (BOX_MAX[a] - BOX_MIN[a]) / res for a in range(3)]
    centres = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    votes = np.zeros(len(centres), int)
    h, w = masks.shape[1:]
    for K, cam, mask in zip(intrinsics, c2w, masks):
        w2c = np.linalg.inv(cam)
        for c, x in enumerate(centres):
            p = K @ (w2c[:3, :3] @ x + w2c[:3, 3])
            if p[2] <= 1e-6:
                continue
            col, row = int(np.floor(p[0] / p[2] + 0.5)), int(np.floor(p[1] / p[2] + 0.5))
            if 0 <= col < w and 0 <= row < h and not mask[row, col]:
                votes[c] += 1
    return votes < k, centres


@pytest.fixture(scope="module")
def sphere_views():
    return _sphere_views()


@pytest.mark.parametrize("k", [1, 2])
def test_visual_hull_centres_match_numpy_loop(sphere_views, k):
    intrinsics, c2w, masks = sphere_views
    res = 10
    occupied = carve_visual_hull(intrinsics, c2w, masks, BOX_MIN, BOX_MAX, res, k, use_corners=False).numpy()
    ref, centres = _hull_numpy(intrinsics, c2w, masks, res, k)
    assert (occupied != ref).sum() <= 2          # float32 vs float64 rounding at pixel borders
    radius = np.linalg.norm(centres, axis=1)
    assert occupied[radius < 0.4].all()          # the object survives
    if k == 1:
        assert not occupied[radius > 0.8].any()  # beyond the 6-view hull of the sphere


def test_visual_hull_corners_are_conservative_and_frame_is_unknown(sphere_views):
    intrinsics, c2w, masks = sphere_views
    res = 10
    centre_only = carve_visual_hull(intrinsics, c2w, masks, BOX_MIN, BOX_MAX, res, 1, use_corners=False).numpy()
    corners = carve_visual_hull(intrinsics, c2w, masks, BOX_MIN, BOX_MAX, res, 1, use_corners=True).numpy()
    assert np.all(corners >= centre_only) and corners.sum() > centre_only.sum()
    grid = OccupancyGrid(BOX_MIN, BOX_MAX, res)
    assert grid.init_from_masks(intrinsics, c2w, masks, use_corners=False) == pytest.approx(centre_only.mean())
    np.testing.assert_array_equal(grid.occupied.numpy(), centre_only)
    # A view that sees only a corner of the box carves nothing outside its frame.
    narrow = intrinsics[:1].copy()
    narrow[0, 0, 0] = narrow[0, 1, 1] = 32 * 12.0
    seen = carve_visual_hull(narrow, c2w[:1], np.zeros_like(masks[:1]), BOX_MIN, BOX_MAX, res, 1,
                             use_corners=False).numpy()
    ref, _ = _hull_numpy(narrow, c2w[:1], np.zeros_like(masks[:1]), res, 1)
    assert 0 < (~seen).sum() < len(seen) and (seen != ref).sum() <= 2


def _sphere_sdf(centre, radius):
    return lambda pts: np.linalg.norm(np.asarray(pts, np.float64) - centre, axis=1) - radius


def test_grid_classifies_cells_by_the_sdf_and_keeps_every_crossed_cell():
    res, centre, radius = 16, np.array([0.1, 0.0, -0.05]), 0.45
    grid = OccupancyGrid(BOX_MIN, BOX_MAX, res, band_cells=2.0, band_softness=5.0)
    inv_s = 1000.0
    state = grid.classify(_sphere_sdf(centre, radius), inv_s)
    flat = np.arange(res ** 3)
    d = np.linalg.norm(grid.cell_centres(flat) - centre, axis=1) - radius
    band = 2.0 * 0.5 * np.linalg.norm((BOX_MAX - BOX_MIN) / res) + 5.0 / inv_s
    np.testing.assert_array_equal(state == SURFACE, np.abs(d) <= band)
    np.testing.assert_array_equal(state == INSIDE, d < -band)
    np.testing.assert_array_equal(state == OUTSIDE, d > band)
    # conservative: a cell the sphere passes through (corners on both sides) is always sampled
    cell = (BOX_MAX - BOX_MIN) / res
    corners = grid.cell_centres(flat)[:, None, :] + 0.5 * cell * np.array(
        [[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)])
    corner_sdf = np.linalg.norm(corners - centre, axis=2) - radius
    crossed = (corner_sdf.min(1) < 0) & (corner_sdf.max(1) > 0)
    assert crossed.sum() > 50 and np.all(state[crossed] == SURFACE)
    # a softer SDF (small inv_s) widens the band; the grid itself is untouched by classify
    assert (grid.classify(_sphere_sdf(centre, radius), 5.0) == SURFACE).sum() > (state == SURFACE).sum()
    assert np.all(grid.state == SURFACE)


def test_grid_schedule_hull_bound_and_state_round_trip():
    res = 16
    grid = OccupancyGrid(BOX_MIN, BOX_MAX, res, update_start=10, update_every=5)
    hull = np.zeros((res,) * 3, bool)
    hull[2:14, 2:14, 2:14] = True
    grid.set_hull(hull.reshape(-1))
    assert grid.occupied_fraction == pytest.approx(hull.mean())   # every hull cell sampled before the first update
    sdf = _sphere_sdf(np.zeros(3), 0.5)
    assert [s for s in range(25) if grid.update_every_n_steps(s, sdf, lambda: 1e4)] == [10, 15, 20]
    assert np.all(grid.state[~hull.reshape(-1)] == OUTSIDE)         # the hull bounds every classification
    assert (grid.state == INSIDE).any() and (grid.state == SURFACE).any()
    # marched: the near-surface cells and the outer layer of the interior, never the deep interior
    state = grid.state.reshape((res,) * 3)
    inside = state == INSIDE
    deep = inside.copy()  # all 26 neighbours inside too
    for offset in np.ndindex(3, 3, 3):
        deep &= np.roll(inside, np.array(offset) - 1, axis=(0, 1, 2))
    deep[[0, -1]] = deep[:, [0, -1]] = deep[:, :, [0, -1]] = False
    marched = grid.occupied.numpy().reshape((res,) * 3)
    assert np.all(marched[state == SURFACE]) and not np.any(marched[state == OUTSIDE])
    assert deep.any() and not np.any(marched & deep)
    lo, hi = grid.tight_bbox(margin=0.0)
    cell = (BOX_MAX - BOX_MIN) / res
    np.testing.assert_allclose(lo, BOX_MIN + 2 * cell, atol=1e-6)
    np.testing.assert_allclose(hi, BOX_MIN + 14 * cell, atol=1e-6)
    # an SDF that crosses zero nowhere in the hull keeps the previous cells rather than emptying the grid
    before = grid.state.copy()
    assert not grid.update_every_n_steps(25, lambda p: np.ones(len(p)), lambda: 1e4)
    np.testing.assert_array_equal(grid.state, before)
    restored = OccupancyGrid(resolution=4)
    restored.load_state_dict(grid.state_dict())
    assert restored.resolution == res
    np.testing.assert_array_equal(restored.state, grid.state)
    np.testing.assert_array_equal(restored.hull, grid.hull)
    np.testing.assert_allclose(restored.bbox_min, BOX_MIN)


def test_interior_next_to_empty_space_is_marched_so_rendering_sees_it():
    """An SDF still negative in a concavity that the hull carved: without a surface band in between, the cells next
    to the carved space must be marched (they render opaque), not skipped as an invisible solid."""
    res = 12
    grid = OccupancyGrid(BOX_MIN, BOX_MAX, res)
    hull = np.ones((res,) * 3, bool)
    hull[:, :, :3] = False                                           # carved slab at low z
    grid.set_hull(hull.reshape(-1))
    state = grid.classify(lambda p: np.full(len(p), -1.0), 1e4)      # "solid everywhere" inside the hull
    assert np.all(state.reshape((res,) * 3)[hull] == INSIDE)
    grid.set_state(state)
    marched = grid.occupied.numpy().reshape((res,) * 3)
    assert marched[:, :, 3].all() and not marched[:, :, 5].any()     # the layer against the carved slab only
    evaluate, _ = grid.extraction_prior(state)(grid.cell_centres(np.arange(res ** 3)))
    assert evaluate.reshape((res,) * 3)[:, :, 2:4].all()             # the network decides where that surface is


def test_free_points_cover_the_box_and_flag_carved_cells():
    res = 4
    grid = OccupancyGrid(BOX_MIN, BOX_MAX, res)
    hull = np.zeros(res ** 3, bool)
    hull[: res ** 3 // 2] = True                                    # cells with ix < 2 survive the hull
    grid.set_hull(hull)
    points, empty = grid.free_points(2000)
    points, empty = points.numpy(), empty.numpy()
    assert np.all(points >= BOX_MIN - 1e-6) and np.all(points <= BOX_MAX + 1e-6)
    np.testing.assert_array_equal(empty == 1.0, ~hull[_cell_numpy(points.astype(np.float64), res)])
    assert 0.4 < empty.mean() < 0.6


def test_dilate_cells_is_a_cube():
    flags = np.zeros((7, 7, 7), bool)
    flags[3, 3, 3] = True
    grown = dilate_cells(flags, 1)
    assert grown.sum() == 27 and grown[2:5, 2:5, 2:5].all()
    assert dilate_cells(flags, 2).sum() == 125


def test_extraction_prior_evaluates_near_the_surface_and_signs_the_rest():
    res = 12
    sdf = _sphere_sdf(np.zeros(3), 0.5)
    grid = OccupancyGrid(BOX_MIN, BOX_MAX, res)
    state = grid.classify(sdf, 1e4)
    prior = grid.extraction_prior(state)
    pts = np.random.default_rng(0).uniform(BOX_MIN * 1.1, BOX_MAX * 1.1, size=(5000, 3)).astype(np.float32)
    evaluate, value = prior(pts)
    truth = sdf(pts)
    assert 0 < evaluate.mean() < 0.8
    # every skipped point carries the right sign, so no surface can appear between skipped and evaluated points
    np.testing.assert_array_equal(np.sign(value[~evaluate]), np.sign(truth[~evaluate]))
    assert np.all(np.abs(truth[~evaluate]) > 0.5 * grid.half_diagonal())


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="bbox_max"):
        OccupancyGrid((0, 0, 0), (1, -1, 1))
    with pytest.raises(ValueError, match="resolution"):
        OccupancyGrid(resolution=0)
    with pytest.raises(ValueError, match="occupied"):
        ray_march(jt.zeros((2, 3)), jt.ones((2, 3)), jt.ones((10,), dtype=jt.bool), BOX_MIN, BOX_MAX, 4, 0.1, 8)


def test_classification_follows_a_new_hull():
    """classify keeps the hull cells' centres between updates; a new hull (set_hull, a loaded checkpoint) must
    classify exactly as a grid built with that hull from the start."""
    sdf = lambda p: (np.linalg.norm(p, axis=1) - 0.5).astype(np.float32)  # noqa: E731
    grid = OccupancyGrid(bbox_min=[-1, -1, -1], bbox_max=[1, 1, 1], resolution=32)
    grid.classify(sdf, 1e4)
    centres = grid.cell_centres(np.arange(grid.n_cells))
    hull = centres[:, 0] > 0.1  # half the box
    grid.set_hull(hull)
    fresh = OccupancyGrid(bbox_min=[-1, -1, -1], bbox_max=[1, 1, 1], resolution=32)
    fresh.set_hull(hull)
    state = grid.classify(sdf, 1e4)
    np.testing.assert_array_equal(state, fresh.classify(sdf, 1e4))
    assert np.all(state[~hull] == OUTSIDE) and np.any(state[hull] == SURFACE) and np.any(state[hull] == INSIDE)
