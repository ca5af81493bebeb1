"""jnerf: Instant-NeuS surface reconstruction in Jittor. `pip install -e .` installs every runtime dependency;
`pip install -e .[colmap]` adds pycolmap for tools/prepare_scene.py (your own photos)."""
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
        "numpy>=1.21,<2",                        # Jittor returns wrong arrays under numpy 2 (see docs)
        "opencv-python-headless>=4.5,<4.12",     # 4.12+/5.x need numpy 2; headless imports on servers
        "imageio>=2.20", "imageio-ffmpeg",       # PNG/JPG I/O and the turntable mp4
        "pillow",
        "pymeshlab",
        "trimesh>=4", "networkx",                # mesh I/O, connected components
        "PyMCubes",                              # marching cubes
        "scipy",                                 # k-d trees for the evaluator, mask dilation
        "tqdm",
        "astunparse",                            # needed by Jittor, not always pulled in
    ],
    extras_require={
        # tools/prepare_scene.py: structure from motion and COLMAP models (a 40 MB wheel, so optional); 4.x works
        # with numpy 1.x, which Jittor needs
        "colmap": ["pycolmap>=4.0,<5"],
        "test": ["pytest>=7", "pycolmap>=4.0,<5"],
    },
)
