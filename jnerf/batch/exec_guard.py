"""Start a scene's training so that it stops, saving a checkpoint, when the Dask worker that waits on it dies.

    python exec_guard.py WORKER_PID COMMAND...

Run as a script (never imported: importing the jnerf package would prepare Jittor's environment here for nothing),
it asks Linux to send SIGINT to this process when the thread that started it ends (prctl PR_SET_PDEATHSIG), puts
SIGINT back to its default (a worker of the embedded cluster ignores Ctrl-C; the training must not) and replaces
itself with COMMAND, which keeps both. The training then reacts to its worker's death as to Ctrl-C: it finishes
the step, saves a checkpoint and exits 130, and the retried scene resumes from that step.

Why not ``subprocess.Popen(preexec_fn=...)``: a Dask worker runs threads, and Python documents preexec_fn as unsafe
in a threaded process (the child can deadlock before exec). Without prctl (not Linux) the orphaned training runs on
to its end, holding its run folder's lock, and the retry waits for it.
"""
import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def main(argv):
    worker_pid, command = int(argv[0]), argv[1:]
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGINT), 0, 0, 0)
    except (OSError, AttributeError):
        pass
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    if os.getppid() != worker_pid:  # the worker died before the request took effect: nothing will signal us
        return 130
    os.execv(command[0], command)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
