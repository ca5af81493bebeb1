"""Every figure a log line reports, kept where a person can plot it: ``metrics.csv`` (one row per log line),
TensorBoard events under ``tb/`` (tensorboardX) and, when training ends, ``metrics.png`` (loss terms, PSNR, inv_s,
samples and rays against step and training seconds)."""
import csv
import logging
import os
from typing import Dict, Optional

logger = logging.getLogger("jnerf")

__all__ = ["MetricsLog"]

_FIRST = ["step", "train_seconds", "wall_seconds"]


class MetricsLog:
    """Appends to ``<exp_dir>/metrics.csv`` and ``<exp_dir>/tb/``; a resumed run continues both."""

    def __init__(self, exp_dir: str):
        self.exp_dir = exp_dir
        self.csv_path = os.path.join(exp_dir, "metrics.csv")
        self.columns = self._existing_columns()
        self._tb = None
        try:
            from tensorboardX import SummaryWriter
            self._tb = SummaryWriter(os.path.join(exp_dir, "tb"))
        except Exception as err:  # noqa: BLE001  (TensorBoard output is a convenience, never a failure)
            logger.warning("no TensorBoard events (%s: %s); metrics.csv has the same figures", type(err).__name__, err)

    def _existing_columns(self):
        if not os.path.isfile(self.csv_path):
            return None
        with open(self.csv_path, newline="") as f:
            return next(csv.reader(f), None)

    def write(self, step: int, train_seconds: float, wall_seconds: float, values: Dict[str, float]):
        row = dict(step=step, train_seconds=round(train_seconds, 3), wall_seconds=round(wall_seconds, 3), **values)
        if self.columns is None or not set(row) <= set(self.columns):
            self._extend_columns(row)
        with open(self.csv_path, "a", newline="") as f:
            csv.DictWriter(f, self.columns, restval="").writerow(row)
        if self._tb is not None:
            for name, value in values.items():
                self._tb.add_scalar(name, value, step)
            self._tb.flush()

    def _extend_columns(self, row):
        """Start the CSV, or rewrite it with the new columns (a loss term that switches on later)."""
        rows = []
        if self.columns is not None:
            with open(self.csv_path, newline="") as f:
                rows = list(csv.DictReader(f))
        known = [c for c in (self.columns or _FIRST) if c]
        self.columns = known + [k for k in row if k not in known]
        tmp = f"{self.csv_path}.tmp"
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, self.columns, restval="")
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, self.csv_path)

    def plot(self) -> Optional[str]:
        """Write metrics.png from metrics.csv; returns its path (None without matplotlib or rows)."""
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except Exception as err:  # noqa: BLE001
            logger.warning("no metrics.png (%s: %s); plot metrics.csv elsewhere", type(err).__name__, err)
            return None
        with open(self.csv_path, newline="") as f:
            rows = list(csv.DictReader(f))
        if not rows:
            return None

        def series(name, against="step"):
            pairs = [(float(r[against]), float(r[name])) for r in rows if r.get(name) not in (None, "")]
            return [p[0] for p in pairs], [p[1] for p in pairs]
        fig, axes = plt.subplots(2, 3, figsize=(16, 8))
        terms = [c for c in self.columns if c not in _FIRST + ["loss", "psnr", "inv_s", "levels", "rays",
                                                                "samples", "surface", "inside", "lr", "it_per_s"]]
        for name in ["loss"] + terms:
            x, y = series(name)
            if y and min(y) > 0:
                axes[0, 0].semilogy(x, y, label=name)
        axes[0, 0].legend(fontsize=7)
        panels = [(axes[0, 0], "loss terms (unweighted) and total", "step"),
                  (axes[0, 1], "training PSNR (dB)", "step"), (axes[0, 2], "training PSNR (dB)", "train_seconds"),
                  (axes[1, 0], "NeuS sharpness inv_s", "step"), (axes[1, 1], "ray budget per step", "step"),
                  (axes[1, 2], "total loss", "train_seconds")]
        axes[0, 1].plot(*series("psnr"))
        axes[0, 2].plot(*series("psnr", "train_seconds"))
        axes[1, 0].semilogy(*series("inv_s"))
        for name in ("samples", "rays"):
            axes[1, 1].semilogy(*series(name), label=name)
        axes[1, 1].legend()
        axes[1, 2].semilogy(*series("loss", "train_seconds"))
        for ax, title, against in panels:
            ax.set_title(title)
            ax.set_xlabel("step" if against == "step" else "seconds of training")
            ax.grid(alpha=0.3)
        fig.tight_layout()
        path = os.path.join(self.exp_dir, "metrics.png")
        fig.savefig(path, dpi=90)
        plt.close(fig)
        return path

    def close(self):
        if self._tb is not None:
            self._tb.close()
            self._tb = None
