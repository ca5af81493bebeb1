"""The mean of a large Var in two passes on CUDA: ``mean(values)``.

Jittor reduces a whole array into one value with atomics on that one address: on an H200 the training step's
1-D loss means over ~262k samples took ~0.37 ms each (5 GB/s; bench/RESULTS.md, sixth session). Its reduce over
the outer dimension of a 2-D array runs one thread per column at ~3 TB/s. So on CUDA the values are folded into
[rows, COLUMNS], summed over the rows, and only the COLUMNS partial sums (plus the last partial row) meet in atomics.
On the CPU it is ``values.mean()``, so CPU runs keep their numbers; the two agree up to float32 summation order.
"""
import jittor as jt

__all__ = ["mean", "COLUMNS"]

COLUMNS = 4096


def mean(values, two_pass=None):
    """Mean of all elements of ``values`` (any shape, at least one element), as ``values.mean()`` returns it.
    ``two_pass``: None (on CUDA, for more than COLUMNS elements), or True/False to choose."""
    n = values.numel()
    if two_pass is None:
        two_pass = bool(jt.flags.use_cuda) and n > COLUMNS
    if not two_pass:
        return values.mean()
    flat = values.reshape((n,))
    rows = n // COLUMNS
    total = flat[:rows * COLUMNS].reshape((rows, COLUMNS)).sum(dim=0).sum()
    if n > rows * COLUMNS:
        total = total + flat[rows * COLUMNS:].sum()
    return total / n
