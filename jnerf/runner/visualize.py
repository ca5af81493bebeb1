"""What a person reads and opens: validation panels (prediction | ground truth | normals | depth) as uint8
arrays, textured meshes beside training images, and the log's summaries (window means of per-step figures, which
MLP path runs)."""
import numpy as np


def to_uint8(img):
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def normal_image(normals_cam):
    """Camera-space unit normals [H,W,3] -> RGB in [0,1] (x right = red, y down = green, facing camera = blue)."""
    n = normals_cam * np.array([1.0, -1.0, -1.0], dtype=np.float32)  # OpenCV camera axes -> viewer-friendly
    return n * 0.5 + 0.5


def depth_range(depth, opacity):
    """(near, far): the 1st and 99th percentile of the depth over the covered pixels (None when none is)."""
    covered = opacity > 0.5
    if not covered.any():
        return None
    lo, hi = np.percentile(depth[covered], [1, 99])
    return float(lo), float(max(hi, lo + 1e-8))


def depth_image(depth, opacity):
    """Depth [H,W] mapped over ``depth_range`` to [0,1] through a blue-to-yellow ramp (near blue, far yellow)."""
    limits = depth_range(depth, opacity)
    if limits is None:
        return np.zeros(depth.shape + (3,), np.float32)
    t = np.clip((depth - limits[0]) / (limits[1] - limits[0]), 0, 1)
    ramp = np.stack([t, 0.3 + 0.5 * t, 1.0 - t], -1)
    return np.where((opacity > 0.5)[..., None], ramp, 0.0).astype(np.float32)


MIN_PANEL_HEIGHT = 320  # panels are scaled up to at least this many pixels, so a person can read them


def validation_panel(pred_rgb, gt_rgb, normals_cam, depth, opacity, psnr_db=None):
    """[H', 4W', 3] uint8: prediction, ground truth, normals, depth side by side, each labelled (the depth with its
    range, in normalised units), scaled up by an integer factor to at least MIN_PANEL_HEIGHT pixels."""
    limits = depth_range(depth, opacity)
    labels = ["prediction" + (f" (PSNR {psnr_db:.2f} dB)" if psnr_db is not None else ""), "ground truth",
              "normals (camera frame)",
              "depth " + (f"{limits[0]:.3f} (blue) to {limits[1]:.3f} (yellow)" if limits else "(nothing covered)")]
    tiles = [pred_rgb, gt_rgb, normal_image(normals_cam) * (opacity[..., None] > 0.5), depth_image(depth, opacity)]
    return labelled_panel(tiles, labels)


def labelled_panel(tiles, labels):
    """[H', nW', 3] uint8: images [H,W,3] in [0,1] side by side, each with its label in the top-left corner, scaled
    up by an integer factor to at least MIN_PANEL_HEIGHT pixels."""
    from PIL import Image, ImageDraw
    factor = max(1, -(-MIN_PANEL_HEIGHT // tiles[0].shape[0]))
    images = []
    for tile, label in zip(tiles, labels):
        img = Image.fromarray(to_uint8(tile)).resize((tile.shape[1] * factor, tile.shape[0] * factor),
                                                      Image.NEAREST)
        draw = ImageDraw.Draw(img)
        box = draw.textbbox((4, 4), label)
        draw.rectangle((box[0] - 3, box[1] - 3, box[2] + 3, box[3] + 3), fill=(0, 0, 0))
        draw.text((4, 4), label, fill=(255, 255, 255))
        images.append(np.asarray(img))
    return np.concatenate(images, axis=1)


def masked_psnr(pred, gt, mask):
    """PSNR (dB) of images [H,W,3] in [0,1] over the pixels where ``mask`` [H,W] is true."""
    mse = float(np.mean((np.asarray(pred, np.float64)[mask] - np.asarray(gt, np.float64)[mask]) ** 2))
    return float(-10.0 * np.log10(max(mse, 1e-10)))


def write_mesh_comparisons(mesh, dataset, views, downscale, out_dir, tag):
    """A ``TexturedMesh`` (normalised frame) rasterised from training cameras ``views`` at 1/``downscale`` size
    beside the training image: out_dir/<tag>_view<idx>.png, each view's PSNR over the object's mask (the mesh's
    coverage without masks) logged and returned as {view: dB}."""
    import logging
    import os
    import imageio
    from jnerf.dataset.cameras import downscale_intrinsics
    from jnerf.export.texture import render_mesh
    os.makedirs(out_dir, exist_ok=True)
    scores = {}
    for idx in views:
        rays = dataset.image_rays(idx, downscale=downscale)   # the block-averaged training image
        h, w = rays["H"], rays["W"]
        gt = rays["rgb"].numpy().reshape(h, w, 3)
        K = downscale_intrinsics(dataset.intrinsics[idx], downscale)
        rgb, covered = render_mesh(mesh.vertices, mesh.faces, K, dataset.c2w[idx], h, w, mesh=mesh)
        mask = covered if dataset.masks is None else rays["mask"].numpy().reshape(h, w) > 0.5
        scores[idx] = masked_psnr(rgb, gt, mask)
        path = os.path.join(out_dir, f"{tag}_view{idx:03d}.png")
        imageio.imwrite(path, labelled_panel([rgb, gt], [f"textured mesh (PSNR {scores[idx]:.2f} dB in the mask)",
                                                         "training image"]))
        logging.getLogger("jnerf").info("textured mesh vs training view %d: PSNR %.2f dB over the object -> %s",
                                        idx, scores[idx], path)
    return scores


def write_validation_panels(render_image, dataset, settings, step, out_dir):
    """Render the validation views (``settings``: ValidationSettings) with ``render_image(rays)`` and write one
    panel per view as out_dir/step<step>_view<idx>.png; logs each view's PSNR."""
    import logging
    import os
    import imageio
    from jnerf.models.losses import psnr
    os.makedirs(out_dir, exist_ok=True)
    for idx in settings.views:
        rays = dataset.image_rays(idx, downscale=settings.downscale)
        rgb, normal, depth, opacity = render_image(rays)
        gt = rays["rgb"].numpy().reshape(rays["H"], rays["W"], 3)
        normal_cam = normal @ dataset.c2w[idx][:3, :3]  # world -> camera: R^T n, on row vectors
        path = os.path.join(out_dir, f"step{step:06d}_view{idx:03d}.png")
        view_psnr = float(psnr(max(float(np.mean((rgb - gt) ** 2)), 1e-10)))
        imageio.imwrite(path, validation_panel(rgb, gt, normal_cam, depth, opacity, view_psnr))
        logging.getLogger("jnerf").info("validation view %d: psnr %.2f -> %s", idx, view_psnr, path)


def window_means(window):
    """{name: mean} of the per-step figures (numbers or Vars) logged since the last line; the Vars of one figure
    are fetched in one transfer, not one device sync per step."""
    import jittor as jt
    means = {}
    for name, values in window.items():
        if isinstance(values[0], jt.Var):
            means[name] = float(jt.concat([v.reshape((1,)) for v in values]).numpy().mean())
        else:
            means[name] = float(np.mean(values))
    return means


def mlp_path(mlp):
    """What an MLP runs on, for the start-up log: the fused fp16 kernel or Jittor's fp32 layers."""
    use_fused = getattr(mlp, "use_fused", None)
    if use_fused is None or not use_fused():
        return f"{type(mlp).__name__} (fp32 layers)"
    if mlp.fused == "auto" and mlp.min_fused_rows > 0:
        return f"fused fp16 kernel for batches of {mlp.min_fused_rows}+ rows, fp32 layers below"
    return "fused fp16 kernel"
