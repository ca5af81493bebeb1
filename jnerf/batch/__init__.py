"""Batches of scenes on Dask distributed: one task per NeuS scene folder, each trained, exported and evaluated by
the README's train command (``tools/run_net.py --task train``) in a subprocess of a Dask worker.

Nothing here imports Jittor, and no Dask worker ever does: Jittor compiles with a multiprocessing pool, which a
daemonic process (a Dask worker) may not start, and a process that has imported Jittor is killed when one of its
children dies by a signal. A worker only starts the scene's process, waits for it and reads the files it wrote, so a
killed worker or scene process is retried by Dask and resumes from the scene's last checkpoint.

- ``scenes``: which scene folders a batch holds and their per-scene overrides;
- ``task``: what a worker does for one scene (``run_scene``);
- ``results``: the results table (``results.csv`` and ``results.md``);
- ``cluster``: the embedded ``LocalCluster`` (one worker per GPU) or an existing scheduler;
- ``driver``: submits the scenes, shows progress, stops cleanly on Ctrl-C (``run_batch``).
``tools/run_batch.py`` is the command line; docs/batch.md the user's guide.
"""
