"""Which scenes a batch holds, and the overrides each one trains with.

``--scenes`` names a folder of scene folders (every sub-folder not starting with '.' is a scene; one without
``cameras_sphere.npz`` fails alone, with the loader's message) or a list file: one scene folder per line, relative
to the list file, optionally followed by that scene's overrides (``key=value`` words, shell-quoted when they hold
spaces); ``#`` starts a comment. A scene folder may also hold ``jnerf_opts.txt``: one ``key=value`` override a line,
``#`` comments. A scene trains with the base config, then the batch's ``--opts``, then its ``jnerf_opts.txt``, then
the overrides on its list line: the later wins.
"""
import os
import shlex
from dataclasses import dataclass, field
from typing import List, Tuple

from jnerf.utils.errors import UserError

__all__ = ["Scene", "SCENE_OPTS_FILE", "find_scenes", "default_batch_name"]

SCENE_OPTS_FILE = "jnerf_opts.txt"


@dataclass(frozen=True)
class Scene:
    name: str                   # the folder's name: its run folder is <log_dir>/<batch>/<name>
    root: str                   # absolute path of the scene folder
    opts: Tuple[str, ...] = field(default=())  # its own overrides (jnerf_opts.txt, then its list line)


def _override_lines(path):
    """``key=value`` lines of an overrides file, comments and blank lines dropped; a UserError for anything else."""
    opts = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            if "=" not in line:
                raise UserError(f"{path}:{number}: expected one key=value override a line, got {line!r}")
            opts.append(line)
    return opts


def _scene(root, list_opts=()):
    root = os.path.abspath(root)
    own = os.path.join(root, SCENE_OPTS_FILE)
    opts = (_override_lines(own) if os.path.isfile(own) else []) + list(list_opts)
    return Scene(os.path.basename(root.rstrip(os.sep)), root, tuple(opts))


def _from_folder(folder):
    if os.path.isfile(os.path.join(folder, "cameras_sphere.npz")):
        raise UserError(f"--scenes {folder}: this is a scene folder itself; pass the folder that holds the scene "
                        "folders, or a list file")
    names = sorted(n for n in os.listdir(folder) if not n.startswith(".") and os.path.isdir(os.path.join(folder, n)))
    if not names:
        raise UserError(f"--scenes {folder}: no scene folders in it")
    return [_scene(os.path.join(folder, n)) for n in names]


def _from_list(list_file):
    base = os.path.dirname(os.path.abspath(list_file))
    scenes = []
    with open(list_file) as f:
        for number, line in enumerate(f, 1):
            try:
                words = shlex.split(line, comments=True)
            except ValueError as err:
                raise UserError(f"{list_file}:{number}: {err}") from err
            if not words:
                continue
            bad = [w for w in words[1:] if "=" not in w]
            if bad:
                raise UserError(f"{list_file}:{number}: expected 'scene_folder [key=value ...]', got {bad[0]!r} "
                                "after the folder")
            scenes.append(_scene(os.path.join(base, words[0]), words[1:]))
    if not scenes:
        raise UserError(f"--scenes {list_file}: the list names no scene folder")
    return scenes


def find_scenes(spec: str) -> List[Scene]:
    """The scenes of ``--scenes`` (a folder of scene folders or a list file), in order; their names must differ
    (each names a run folder)."""
    if os.path.isdir(spec):
        scenes = _from_folder(spec)
    elif os.path.isfile(spec):
        scenes = _from_list(spec)
    else:
        raise UserError(f"--scenes {spec}: no such folder or list file")
    seen = {}
    for scene in scenes:
        if scene.name in seen:
            raise UserError(f"--scenes {spec}: two scenes are named {scene.name!r} ({seen[scene.name]} and "
                            f"{scene.root}); their run folders would collide")
        seen[scene.name] = scene.root
    return scenes


def default_batch_name(spec: str) -> str:
    """The batch's name when --name is not given: the scenes folder's name, or the list file's name without
    its extension."""
    path = os.path.abspath(spec).rstrip(os.sep)
    name = os.path.basename(path)
    return name if os.path.isdir(path) else os.path.splitext(name)[0]
