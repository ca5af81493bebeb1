"""Start-up and command line: a clean-environment import that stays offline and on the CPU, the numpy guard,
the CUDA 13 patch on copies of Jittor's sources, and CLI argument errors."""
import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN_NET = os.path.join(ROOT, "tools", "run_net.py")


def clean_env(tmp_path):
    """The machine's environment without any Jittor variables, and a sitecustomize that fails any network use."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("use_mkl", "nvcc_path", "use_cuda", "PYTHONPATH") and not k.startswith("JITTOR")}
    (tmp_path / "sitecustomize.py").write_text(textwrap.dedent("""
        import socket
        def _no_network(*args, **kwargs):
            raise RuntimeError("network access attempted during import")
        socket.socket.connect = _no_network
        socket.create_connection = _no_network
    """))
    env["PYTHONPATH"] = f"{tmp_path}{os.pathsep}{ROOT}"
    return env


def test_import_in_clean_environment_is_offline_and_cpu(tmp_path):
    code = ("import os, jnerf, jittor as jt\n"
            "print('mkl', os.environ['use_mkl'], 'cuda', jt.flags.use_cuda)\n"
            "print('sum', float(jt.array([1.0, 2.0, 3.5]).sum()))\n")
    proc = subprocess.run([sys.executable, "-c", code], env=clean_env(tmp_path), cwd=str(tmp_path),
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "mkl 0 cuda 0" in proc.stdout and "sum 6.5" in proc.stdout


def test_numpy_2_is_refused(monkeypatch):
    import numpy
    from jnerf.utils import jittor_env
    monkeypatch.setattr(numpy, "__version__", "2.1.0")
    with pytest.raises(jittor_env.JittorEnvironmentError, match="numpy < 2"):
        jittor_env._check_numpy()


def test_numpy_2_refuses_jittor_but_not_the_evaluator(monkeypatch):
    import numpy
    from jnerf.utils import jittor_env
    monkeypatch.setattr(numpy, "__version__", "2.1.0")
    finder = jittor_env._RefuseJittorImport()
    with pytest.raises(jittor_env.JittorEnvironmentError, match="numpy < 2"):
        finder.find_spec("jittor")
    assert finder.find_spec("scipy") is None  # anything else imports as usual


def python_in_clean_env(code, tmp_path, timeout):
    """Run ``python -c code`` in a fresh environment; it must exit 0. Returns the CompletedProcess."""
    proc = subprocess.run([sys.executable, "-c", code], env=clean_env(tmp_path), capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stderr
    return proc


def test_scoring_and_scene_tools_do_not_load_jittor(tmp_path):
    code = ("import sys, jnerf, jnerf.evaluation, jnerf.dataset.scene_maker, jnerf.dataset.neus_format; "
            "print('jittor' in sys.modules)")
    proc = python_in_clean_env(code, tmp_path, timeout=120)
    assert proc.stdout.strip() == "False"


def test_cuda13_patch_applies_once_to_stock_sources(tmp_path):
    from jnerf.utils import jittor_patch
    src = jittor_patch.jittor_source_dir()
    for name in jittor_patch.EDITS:
        text = open(os.path.join(src, name)).read()
        if jittor_patch.MARKER in text:
            pytest.skip("installed Jittor is already patched")
        dest = tmp_path / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(text)
    changed = jittor_patch.apply(str(tmp_path))
    assert len(changed) == 2
    header = (tmp_path / "extern/cuda/inc/helper_cuda.h").read_text()
    assert "deviceProp.computeMode" not in header and "deviceProp.clockRate" not in header
    assert "cudaDevAttrClockRate" in header
    assert '"-std=c++14", "-std=c++17"' in (tmp_path / "compiler.py").read_text()
    assert jittor_patch.apply(str(tmp_path)) == []  # idempotent
    (tmp_path / "compiler.py").write_text("something else entirely")
    with pytest.raises(jittor_patch.JittorPatchError, match="compiler.py"):
        jittor_patch.apply(str(tmp_path))


def run_cli(*args):
    return subprocess.run([sys.executable, RUN_NET, *args], capture_output=True, text=True, timeout=600, cwd=ROOT)


def test_cli_argument_errors():
    proc = run_cli("--task", "train")
    assert proc.returncode == 2 and "--config-file" in proc.stderr
    proc = run_cli("--config-file", "projects/neus/configs/instant_neus_demo.py", "--task", "fly")
    assert proc.returncode == 2 and "invalid choice: 'fly'" in proc.stderr
    proc = run_cli("--config-file", "no/such/config.py")
    assert proc.returncode == 2 and "config file not found: no/such/config.py" in proc.stderr


def test_cli_unknown_override_names_key():
    proc = run_cli("--config-file", "projects/neus/configs/instant_neus_tiny_cpu.py", "--opts", "train.total_step=5")
    assert proc.returncode == 2
    assert "total_step" in proc.stderr and "'total_steps'" in proc.stderr


def test_jittor_start_up_chatter_stays_off_the_terminal(tmp_path):
    code = ("import jnerf, jittor; from jnerf.utils.jittor_env import startup_output; "
            "print('captured', 'compiler.py' in startup_output())")
    proc = python_in_clean_env(code, tmp_path, timeout=300)
    assert proc.stdout.strip() == "captured True"
    assert "[i " not in proc.stdout + proc.stderr
