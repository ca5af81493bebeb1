"""The zoo benchmark's driver (bench/zoo_quality.py train): a timeout that stops it stops the scene runs it
started, so scoring what they made does not share the device with orphaned training runs."""
import os
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Stands in for tools/run_net.py: records its pid, then trains "forever".
FAKE_RUN_NET = """import os, sys, time
out = sys.argv[sys.argv.index('--opts') + 1:]
name = [o for o in out if o.startswith('exp_name=')][0].split('=', 1)[1].strip("'")
open(os.path.join({pids!r}, name), 'w').write(str(os.getpid()))
time.sleep(120)
"""


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by its stopped parent) counts as gone
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(")")[-1].split()[0] != "Z"


def test_sigterm_stops_the_scene_runs(tmp_path):
    zoo, pids = tmp_path / "zoo", tmp_path / "pids"
    pids.mkdir()
    for name in ("scene_a", "scene_b"):
        (zoo / name).mkdir(parents=True)
        (zoo / name / "cameras_sphere.npz").write_bytes(b"")
    fake = tmp_path / "fake_run_net.py"
    fake.write_text(FAKE_RUN_NET.format(pids=str(pids)))
    driver = subprocess.Popen([sys.executable, os.path.join(ROOT, "bench", "zoo_quality.py"), "train", str(zoo),
                               "--out", str(tmp_path / "runs"), "--jobs", "2", "--run-net", str(fake)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 60
    while len(os.listdir(pids)) < 2 and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)  # both pid files complete
    started = [int((pids / n).read_text()) for n in sorted(os.listdir(pids))]
    assert len(started) == 2, driver.communicate(timeout=5)[0] if driver.poll() is not None else "runs did not start"
    driver.send_signal(signal.SIGTERM)
    output = driver.communicate(timeout=60)[0]
    assert driver.returncode != 0
    assert "stopped unfinished" in output
    time.sleep(0.5)
    survivors = [pid for pid in started if alive(pid)]
    for pid in survivors:  # leave no stray process behind, even when the test fails
        os.kill(pid, signal.SIGKILL)
    assert not survivors, f"scene runs still training after the driver stopped: {survivors}"
