"""jnerf: Instant-NeuS surface reconstruction in Jittor. `pip install -e .` installs every runtime dependency;
`[mesh]` adds pymeshlab for the optional mesh post-processing, `[texture]` xatlas for textured meshes (mesh.texture,
--task texture), `[colmap]` pycolmap for tools/prepare_scene.py (your own photos), `[batch]` Dask for batches of
scenes (tools/run_batch.py), `[test]` what the tests need."""
from setuptools import find_packages, setup

setup(
    name="jnerf",
    version="0.1.0",
    description="Instant-NeuS in Jittor: multi-view images with masks to an accurate, coloured triangle mesh",
    license="Apache-2.0",
    python_requires=">=3.8",
    packages=find_packages(include=["jnerf", "jnerf.*"]),
    package_data={"jnerf": ["ops/*.h", "ops/*/*.h"]},
    install_requires=[
        "jittor==1.3.11.0",
        "numpy>=1.21,<2",                        # Jittor returns wrong arrays under numpy 2 (README)
        "opencv-python-headless>=4.5,<4.12",     # image decoding (16-bit PNGs), mask dilation; 4.12+ needs numpy 2
        "imageio>=2.20", "imageio-ffmpeg",       # validation PNGs and the turntable mp4
        "pillow",                                # labels on validation panels; image reading without OpenCV
        "trimesh>=4",                            # mesh reading for the evaluator and the scene maker
        "PyMCubes",                              # marching cubes
        "scipy",                                 # k-d trees for the evaluator
        "tqdm",
        "tensorboardX",                          # TensorBoard events of the training metrics
        "matplotlib",                            # metrics.png
        "astunparse",                            # needed by Jittor, not always pulled in
    ],
    extras_require={
        "mesh": ["pymeshlab"],                   # mesh.postprocess: islands, holes, smoothing, decimation
        "texture": ["xatlas>=0.0.11"],           # mesh.texture: the UV atlas (decimating first also needs [mesh])
        # tools/prepare_scene.py: structure from motion and COLMAP models (a 40 MB wheel, so optional); 4.x works
        # with numpy 1.x, which Jittor needs
        "colmap": ["pycolmap>=4.0,<5"],
        "batch": ["dask>=2024.1", "distributed>=2024.1"],  # tools/run_batch.py: scenes as Dask tasks
        "test": ["pytest>=7", "pymeshlab", "nbclient", "nbformat", "ipykernel", "pycolmap>=4.0,<5", "xatlas>=0.0.11",
                 "dask>=2024.1", "distributed>=2024.1"],
    },
)
