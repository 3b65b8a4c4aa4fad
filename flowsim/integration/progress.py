"""The progress bar of a solve: decades of loss for a single run, finished members for a
batch. Shown after 2 s unless asked for (``progress=True``) or refused (``False``)."""

from __future__ import annotations

import math

import numpy as np
from tqdm.auto import tqdm


class Bar:
    """The bar of one solve of ``runs`` (their engine started: ``run.loss`` is the loss at
    the start)."""

    def __init__(self, runs, desc: str, progress: bool | None):
        self.runs, self.single = runs, len(runs) == 1
        delay = 0.0 if progress else 2.0
        if self.single:
            run = runs[0]
            self.loss0 = run.loss if np.isfinite(run.loss) and run.loss > 0 else 1.0
            stop = run.stop_loss
            self.decades = (math.log10(self.loss0 / stop)
                            if stop is not None and self.loss0 > stop > 0 else 1.0)
            self.bar = tqdm(total=round(self.decades, 2), unit="dec", delay=delay,
                            disable=progress is False, desc=desc, leave=False)
        else:
            self.loss0 = self.decades = None
            self.bar = tqdm(total=len(runs), unit="run", delay=delay,
                            disable=progress is False, desc=desc + " (batch)", leave=False)

    def update(self, engine) -> None:
        bar = self.bar
        if self.single:
            run = self.runs[0]
            if run.carry is None:
                return
            t, _ = engine.point(run)
            cur = run.loss
            if run.stop_loss is not None and cur > 0:
                bar.n = round(min(self.decades, max(0.0, math.log10(self.loss0 / cur))), 2)
            bar.set_postfix_str(f"t={t:.3g} loss={cur:.3g}", refresh=False)
            bar.update(0)
        else:
            bar.n = sum(r.trajectory is not None for r in self.runs)
            bar.update(0)

    def close(self) -> None:
        self.bar.close()
