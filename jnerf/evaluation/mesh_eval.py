"""Mesh evaluation against a ground-truth mesh: accuracy, completeness, Chamfer distance and F-score.

The DTU protocol of the NeuS lineage (the Python port of the official script, jzhangbs/DTUeval-python) ported to
synthetic scenes with a GT mesh, all lengths in world units and also as a fraction of the GT bounding-box diagonal:
1. with a scene folder: drop predicted faces with a vertex that some training view sees outside its dilated mask
   (MonoSDF-style culling; vertices out of frame or behind a camera count as covered), and, after step 2, drop the
   GT points that no training camera sees (in front, in frame, not occluded by the GT mesh beyond a tolerance: a
   z-buffer test against the GT mesh rendered with the scene maker's rasteriser);
2. sample both surfaces (area-stratified, dense) and voxel-downsample each to an even query set;
3. accuracy = mean distance pred -> GT, completeness = mean distance GT -> pred, Chamfer = their mean; distances
   are clamped at ``max_dist`` (bounded KD-tree queries keep huge or junk-laden meshes cheap);
   precision/recall = fraction of distances below tau, F-score their harmonic mean.
Distances are measured to the other mesh's dense sample, which leaves a floor of about 0.5 * sqrt(area / N) for
N dense points; N is chosen so that the floor is ``floor_frac`` of the diagonal, and the floor is reported.
"""
import json
import time

import numpy as np

from jnerf.dataset.cameras import normalised_to_world, world_to_normalised

__all__ = ["evaluate_mesh", "format_report", "sample_surface", "voxel_downsample", "nearest_distances",
           "sampling_floor"]


def _load_mesh(mesh, what):
    """(vertices float64 [V,3], faces int64 [F,3]) of a path or trimesh object; raises when there are no faces."""
    import trimesh
    name = mesh if isinstance(mesh, str) else f"{what} mesh"
    if isinstance(mesh, str):
        try:
            mesh = trimesh.load(mesh, force="mesh", process=False)
        except Exception as err:  # trimesh raises many types for unreadable files
            raise ValueError(f"{name}: cannot read {what} mesh ({err})") from err
    faces = np.asarray(getattr(mesh, "faces", np.zeros((0, 3))), dtype=np.int64).reshape(-1, 3)
    vertices = np.asarray(mesh.vertices, dtype=np.float64).reshape(-1, 3)
    if len(faces) == 0 and what == "ground-truth":
        raise ValueError(f"{name}: the ground-truth mesh has no faces (expected a triangle mesh)")
    if not np.all(np.isfinite(vertices)):
        raise ValueError(f"{name}: {what} mesh has NaN or inf vertex coordinates")
    return vertices, faces


def _triangle_areas(vertices, faces):
    tri = vertices[faces]  # [F,3,3]
    return 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)


def sampling_floor(area, n_points):
    """Expected distance from a random surface point to the nearest of ``n_points`` uniform samples: 0.5*sqrt(A/N)."""
    return 0.5 * np.sqrt(area / max(n_points, 1))


def sample_surface(vertices, faces, n_points, rng):
    """``n_points`` points [n,3] uniform over the surface; stratified along cumulative area (one sample per equal
    slice of area) so the set clumps less than independent draws and the 0.5*sqrt(A/N) floor is an upper bound."""
    areas = _triangle_areas(vertices, faces)
    cum = np.cumsum(areas)
    if n_points <= 0 or cum[-1] <= 0:
        return np.zeros((0, 3))
    targets = (np.arange(n_points) + rng.random(n_points)) * (cum[-1] / n_points)
    face = np.minimum(np.searchsorted(cum, targets, side="right"), len(faces) - 1)
    root = np.sqrt(rng.random(n_points))[:, None]  # sqrt makes the barycentric draw area-uniform
    second = rng.random(n_points)[:, None]
    tri = faces[face]
    return ((1 - root) * vertices[tri[:, 0]] + root * (1 - second) * vertices[tri[:, 1]]
            + root * second * vertices[tri[:, 2]])


def voxel_downsample(points, voxel, rng):
    """Indices of one random point per occupied voxel of size ``voxel`` (an even, density-capped subset)."""
    if len(points) == 0:
        return np.zeros(0, dtype=np.int64)
    order = rng.permutation(len(points))
    keys = np.floor((points[order] - points.min(0)) / voxel).astype(np.int64)  # [P,3]
    dims = keys.max(0) + 1
    if np.prod(dims.astype(np.float64)) < 2.0 ** 62:
        flat = (keys[:, 0] * dims[1] + keys[:, 1]) * dims[2] + keys[:, 2]
        _, first = np.unique(flat, return_index=True)
    else:  # absurd extent relative to the voxel: fall back to row-wise unique
        _, first = np.unique(keys, axis=0, return_index=True)
    return np.sort(order[first])


def missing_dependency():
    """None when the evaluator's libraries (scipy's k-d tree, trimesh) import; else what went wrong, e.g. a scipy
    built for numpy 2 next to the numpy 1.x that Jittor needs, which fails with AttributeError, not ImportError."""
    try:
        import scipy.spatial  # noqa: F401
        import trimesh  # noqa: F401
    except Exception as err:  # noqa: BLE001  (any failure of a broken build counts)
        return f"{type(err).__name__}: {err}"
    return None


def nearest_distances(query, target, max_dist):
    """Distance [Q] from each query point to its nearest target point, clamped at ``max_dist``."""
    if len(query) == 0:
        return np.zeros(0)
    if len(target) == 0:
        return np.full(len(query), float(max_dist))
    from scipy.spatial import cKDTree
    dist, _ = cKDTree(target).query(query, k=1, distance_upper_bound=max_dist, workers=-1)
    return np.minimum(dist, max_dist)  # points beyond the bound come back as inf


# ------------------------------------------------------------------------------------------------ scene tests
def _nearest_pixel(points, intr, c2w, height, width):
    """Per point: in_view (in front and in frame), row, col of the nearest pixel centre, camera depth."""
    from jnerf.dataset.cameras import project_points
    uv, depth = project_points(points, intr.astype(np.float64), c2w.astype(np.float64))
    with np.errstate(invalid="ignore"):
        col, row = np.round(uv[:, 0]), np.round(uv[:, 1])
        in_view = (depth > 1e-9) & (col >= 0) & (col < width) & (row >= 0) & (row < height)
    col = np.where(in_view, col, 0).astype(np.int64)
    row = np.where(in_view, row, 0).astype(np.int64)
    return in_view, row, col, depth


def covered_by_masks(points, scene):
    """bool [P]: every view that sees a (normalised-frame) point sees it on its dilated mask."""
    keep = np.ones(len(points), dtype=bool)
    height, width = scene["masks"].shape[1:]
    for intr, c2w, mask in zip(scene["intrinsics"], scene["c2w"], scene["cull_masks"]):
        in_view, row, col, _ = _nearest_pixel(points, intr, c2w, height, width)
        keep &= ~in_view | mask[row, col]
    return keep


def seen_by_cameras(points, gt_vertices, gt_faces, scene, tolerance):
    """bool [P]: a (normalised-frame) GT point is in front, in frame and not occluded in at least one view.

    A point passes the depth test when its depth is within ``tolerance`` plus two pixel footprints (z/f) of the GT
    depth map at its nearest pixel centre; the footprint term absorbs the sub-pixel offset on slanted surfaces.
    """
    from jnerf.dataset.rasterizer import rasterize
    seen = np.zeros(len(points), dtype=bool)
    height, width = scene["masks"].shape[1:]
    for intr, c2w in zip(scene["intrinsics"], scene["c2w"]):
        depth_map = rasterize(gt_vertices, gt_faces, intr, c2w, height, width)["depth"]
        in_view, row, col, depth = _nearest_pixel(points, intr, c2w, height, width)
        slack = tolerance + 2.0 * depth / float(intr[0, 0])
        seen |= in_view & (depth <= depth_map[row, col] + slack)
    return seen


def _load_scene(scene_dir, cull_dilation):
    from jnerf.dataset.neus_format import dilate_masks, load_scene_arrays
    scene = load_scene_arrays(scene_dir)
    if scene["masks"] is None:
        raise ValueError(f"{scene_dir}: the scene has no masks (mask/ folder or alpha channel); mask culling and "
                         "visibility need them")
    height, width = scene["masks"].shape[1:]
    if cull_dilation is None:
        cull_dilation = max(1, int(round(0.01 * max(height, width))))
    scene["cull_masks"] = dilate_masks(scene["masks"], cull_dilation)
    scene["cull_dilation"] = cull_dilation
    del scene["images"]
    return scene


# ------------------------------------------------------------------------------------------------ evaluation
def _dense_and_query(vertices, faces, n_dense, voxel, rng):
    """Dense sample [N,3] (the distance target) and an even voxel-downsampled query subset of it."""
    dense = sample_surface(vertices, faces, n_dense, rng)
    return dense, dense[voxel_downsample(dense, voxel, rng)]


def _fscore(precision, recall):
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def _scores(dist, tau):
    if len(dist) == 0:
        return float("nan"), 0.0
    return float(dist.mean()), float(np.mean(dist < tau))


# F-score thresholds always reported, as fractions of the GT bbox diagonal: at 1% good meshes saturate near 1.0,
# 0.5% separates them.
REPORTED_TAU_FRACS = (0.005, 0.01)


def evaluate_mesh(pred, gt, scene_dir=None, pred_frame="world", tau=None, tau_frac=0.005, max_dist_frac=0.05,
                  voxel_frac=2e-3, floor_frac=5e-4, max_samples=4_000_000, cull_dilation=None,
                  visibility_tol_frac=5e-3, seed=0, json_path=None, verbose=False):
    """Compare a predicted mesh with the GT mesh; returns a dict of metrics (see the module docstring).

    pred, gt: paths (.ply/.obj/.off) or trimesh objects, in world units unless ``pred_frame='normalised'`` (then
    pred is mapped with the scene's scale_mat, so ``scene_dir`` is required). ``tau`` (world units) defaults to
    ``tau_frac`` of the GT bbox diagonal (F-scores at REPORTED_TAU_FRACS are added as ``fscore_at``, keyed by the
    fraction as a string); ``max_dist`` = ``max_dist_frac`` of it; the query sets are downsampled on a
    ``voxel_frac`` grid; dense samples are sized for a floor of ``floor_frac`` of the diagonal (at most
    ``max_samples`` per mesh). ``cull_dilation``: mask dilation radius in pixels (default 1% of the image size).
    """
    start = time.time()
    if pred_frame not in ("world", "normalised"):
        raise ValueError(f"pred_frame must be 'world' or 'normalised', got {pred_frame!r}")
    if pred_frame == "normalised" and scene_dir is None:
        raise ValueError("pred_frame='normalised' needs scene_dir (its scale_mat maps the prediction to world units)")
    rng = np.random.default_rng(seed)
    gt_vertices, gt_faces = _load_mesh(gt, "ground-truth")
    pred_vertices, pred_faces = _load_mesh(pred, "predicted")
    scene = _load_scene(scene_dir, cull_dilation) if scene_dir is not None else None
    if pred_frame == "normalised":
        pred_vertices = normalised_to_world(pred_vertices, scene["scale_mat"])

    diag = float(np.linalg.norm(gt_vertices.max(0) - gt_vertices.min(0)))
    tau = tau_frac * diag if tau is None else float(tau)
    max_dist, voxel = max_dist_frac * diag, voxel_frac * diag
    pred_area_before = float(_triangle_areas(pred_vertices, pred_faces).sum()) if len(pred_faces) else 0.0
    if scene is not None:  # MonoSDF-style: keep the faces whose three vertices all survive the mask test
        kept_vertices = covered_by_masks(world_to_normalised(pred_vertices, scene["scale_mat"]), scene)
        pred_faces = pred_faces[kept_vertices[pred_faces].all(axis=1)]
    gt_area = float(_triangle_areas(gt_vertices, gt_faces).sum())
    pred_area = float(_triangle_areas(pred_vertices, pred_faces).sum()) if len(pred_faces) else 0.0

    def n_dense(area):
        return int(min(max_samples, np.ceil(area / (2.0 * floor_frac * diag) ** 2)))

    gt_dense, gt_query = _dense_and_query(gt_vertices, gt_faces, n_dense(gt_area), voxel, rng)
    if len(pred_faces):
        pred_dense, pred_query = _dense_and_query(pred_vertices, pred_faces, n_dense(pred_area), voxel, rng)
    else:
        pred_dense = pred_query = np.zeros((0, 3))

    n_gt_before = len(gt_query)
    if scene is not None:
        scale_mat = scene["scale_mat"]
        scale = float(np.cbrt(abs(np.linalg.det(scale_mat[:3, :3]))))  # world units per normalised unit
        seen = seen_by_cameras(world_to_normalised(gt_query, scale_mat), world_to_normalised(gt_vertices, scale_mat),
                               gt_faces, scene, visibility_tol_frac * diag / scale)
        gt_query = gt_query[seen]

    acc_dist = nearest_distances(pred_query, gt_dense, max_dist)
    comp_dist = nearest_distances(gt_query, pred_dense, max_dist)
    accuracy, precision = _scores(acc_dist, tau)
    completeness, recall = _scores(comp_dist, tau)
    if len(acc_dist) == 0:  # nothing predicted (or all culled): the worst score, not a NaN
        accuracy = max_dist
    chamfer = 0.5 * (accuracy + completeness)
    fscore = _fscore(precision, recall)
    fscore_at = {f"{frac:g}": _fscore(_scores(acc_dist, frac * diag)[1], _scores(comp_dist, frac * diag)[1])
                 for frac in REPORTED_TAU_FRACS}
    result = {
        "accuracy": accuracy, "completeness": completeness, "chamfer": chamfer,
        "precision": precision, "recall": recall, "fscore": fscore, "fscore_at": fscore_at,
        "accuracy_frac": accuracy / diag, "completeness_frac": completeness / diag, "chamfer_frac": chamfer / diag,
        "tau": tau, "tau_frac": tau / diag, "max_dist": max_dist, "gt_bbox_diagonal": diag, "voxel": voxel,
        "floor_accuracy": float(sampling_floor(gt_area, len(gt_dense))),
        "floor_completeness": float(sampling_floor(pred_area, len(pred_dense))) if len(pred_dense) else 0.0,
        "n_pred_points": int(len(pred_query)), "n_gt_points": int(len(gt_query)),
        "n_pred_dense": int(len(pred_dense)), "n_gt_dense": int(len(gt_dense)),
        "pred_culled_fraction": 1.0 - pred_area / pred_area_before if pred_area_before > 0 else 0.0,
        "gt_unseen_fraction": 1.0 - len(gt_query) / n_gt_before if n_gt_before else 0.0,
        "cull_dilation_px": scene["cull_dilation"] if scene is not None else None,
        "scene_dir": scene_dir, "pred": pred if isinstance(pred, str) else None,
        "gt": gt if isinstance(gt, str) else None, "seed": seed, "seconds": time.time() - start,
    }
    result["floor_accuracy_frac"] = result["floor_accuracy"] / diag
    result["floor_completeness_frac"] = result["floor_completeness"] / diag
    if json_path:
        with open(json_path, "w") as f:
            json.dump(result, f, indent=2)
    if verbose:
        print(format_report(result))
    return result


def format_report(result):
    """A plain-text table of an ``evaluate_mesh`` result."""
    diag = result["gt_bbox_diagonal"]
    rows = [("accuracy (pred->GT)", result["accuracy"]), ("completeness (GT->pred)", result["completeness"]),
            ("chamfer", result["chamfer"]), ("sampling floor acc", result["floor_accuracy"]),
            ("sampling floor comp", result["floor_completeness"]), ("tau", result["tau"]),
            ("max_dist (clamp)", result["max_dist"])]
    lines = [f"{'metric':<26}{'world units':>14}{'% of diag':>12}"]
    lines += [f"{name:<26}{value:>14.6g}{100 * value / diag:>11.4f}%" for name, value in rows]
    lines += [f"{'precision @ tau':<26}{result['precision']:>14.4f}",
              f"{'recall @ tau':<26}{result['recall']:>14.4f}",
              f"{'F-score @ tau':<26}{result['fscore']:>14.4f}",
              *[f"{f'F-score @ {100 * float(frac):g}% of diag':<26}{value:>14.4f}"
                for frac, value in result.get("fscore_at", {}).items()],
              f"GT bbox diagonal {diag:.6g}; query points pred {result['n_pred_points']} / GT {result['n_gt_points']}"
              f" (dense {result['n_pred_dense']} / {result['n_gt_dense']}); seed {result['seed']}; "
              f"{result['seconds']:.1f} s"]
    if result["scene_dir"] is not None:
        lines.append(f"scene {result['scene_dir']}: culled {100 * result['pred_culled_fraction']:.2f}% of the pred "
                     f"surface area (masks dilated {result['cull_dilation_px']} px), dropped "
                     f"{100 * result['gt_unseen_fraction']:.2f}% of GT points unseen by any camera")
    return "\n".join(lines)
