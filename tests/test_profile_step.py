"""bench/profile_step.py on the CPU, a few steps of the tiny config: the table has every stage of the step, the SDF
stage's pieces with a forward and a backward time each, the host split and the kernel list."""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_profile_step_prints_every_stage_and_piece(tmp_path):
    md = tmp_path / "profile.md"
    run = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "profile_step.py"), "--config",
                          os.path.join(ROOT, "projects", "neus", "configs", "instant_neus_tiny_cpu.py"),
                          "--warmup-steps", "3", "--steps", "3", "--device", "cpu", "--markdown", str(md)],
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    text = md.read_text()
    for stage in ("ray generation", "marching", "SDF + numerical gradient, forward", "alpha, weights, compositing",
                  "colour MLP", "losses", "backward", "optimiser update (Adam)"):
        assert re.search(rf"^\| {re.escape(stage)}[^|]* \| [\d.]+ \| [\d.]+ \|$", text, re.M), stage
    for piece in ("hash grid (7-point stencil)", "SDF MLP (7N stencil rows)", "centre points alone"):  # central
        row = re.search(rf"^\| {re.escape(piece)}[^|]* \| ([\d.]+) \| ([\d.]+) \|$", text, re.M)
        assert row and float(row.group(1)) > 0 and float(row.group(2)) > 0, piece
    assert "marching call (incl. waiting for the device)" in text and "Kernels (Jittor profiler)" in text
