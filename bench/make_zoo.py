"""Build the scene zoo that the quality-over-time benchmark trains on: meshes that ship with pymeshlab (and one
procedural thin-walled tube) rendered into NeuS-format folders by the scene maker, with the variations that broke
the method before: world units far from 1, cameras on a hemisphere only, a rotated world frame and thin parts.

    python bench/make_zoo.py data/zoo                 # 4 scenes, 48 views at 384^2 (about 2 minutes on 2 cores)
    python bench/make_zoo.py data/zoo --views 24 --resolution 160 --only cow_mm   # a small CPU-sized variant

Each scene folder gets a `zoo.json` saying how it was made. None of these scenes is used to tune defaults.
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

# name: source mesh, world scale, world offset, random rotation seed (None: none), hemisphere, up axis, what it tests
ZOO = {
    "cow_mm": dict(source="cow.obj", scale=250.0, offset=(0.0, 0.0, 0.0), rotation_seed=None, hemisphere=False,
                   up="y", tests="world units in the hundreds (mm), full sphere of cameras, thin legs and horns"),
    "airplane_hemi_rot": dict(source="airplane.obj", scale=1.0, offset=(0.0, 0.0, 0.0), rotation_seed=3,
                              hemisphere=True, up="y",
                              tests="upper hemisphere of cameras only, rotated world frame, thin wings and tail"),
    "bone_tiny_offset": dict(source="bone.ply", scale=0.004, offset=(2.5, -1.0, 4.0), rotation_seed=None,
                             hemisphere=False, up="z",
                             tests="world units of a few mm (0.004 scale), far off the origin, z up"),
    "tube_thin": dict(source="tube", scale=1.0, offset=(0.0, 0.0, 0.0), rotation_seed=11, hemisphere=True,
                      up="y", tests="a thin-walled open tube (wall 3% of its diameter), hemisphere, rotated"),
}


def sample_mesh_dir():
    import pymeshlab
    return os.path.join(os.path.dirname(pymeshlab.__file__), "tests", "sample_meshes")


def random_rotation(seed):
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def source_mesh(name):
    import trimesh
    if name == "tube":  # thin walls: 0.03 thick on a 1.0-diameter, 1.0-tall tube
        return trimesh.creation.annulus(r_min=0.47, r_max=0.5, height=1.0, sections=96)
    return trimesh.load(os.path.join(sample_mesh_dir(), name), force="mesh", process=False)


def build(name, spec, out_root, views, resolution, seed):
    import trimesh
    from jnerf.dataset.scene_maker import make_scene
    mesh = source_mesh(spec["source"])
    vertices = np.asarray(mesh.vertices, np.float64)
    vertices = vertices - 0.5 * (vertices.min(0) + vertices.max(0))
    if spec["rotation_seed"] is not None:
        vertices = vertices @ random_rotation(spec["rotation_seed"]).T
    vertices = vertices * spec["scale"] + np.asarray(spec["offset"])
    mesh = trimesh.Trimesh(vertices, np.asarray(mesh.faces), process=False)
    out_dir = os.path.join(out_root, name)
    summary = make_scene(mesh, out_dir, n_views=views, width=resolution, hemisphere=spec["hemisphere"],
                         up=spec["up"], seed=seed)
    with open(os.path.join(out_dir, "zoo.json"), "w") as f:
        json.dump(dict(spec, name=name, views=views, resolution=resolution, seed=seed,
                       mask_coverage=summary["mask_coverage"]), f, indent=2)
    print(f"{name}: {views} views {resolution}^2, {summary['seconds']:.1f} s, object covers "
          f"{100 * summary['mask_coverage']:.1f}% of the pixels ({spec['tests']})", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_root", help="folder that receives one scene folder per zoo entry")
    parser.add_argument("--views", type=int, default=48)
    parser.add_argument("--resolution", type=int, default=384)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="*", choices=sorted(ZOO), help="build only these scenes")
    args = parser.parse_args(argv)
    for name in args.only or ZOO:
        build(name, ZOO[name], args.out_root, args.views, args.resolution, args.seed)


if __name__ == "__main__":
    main()
