# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 4. Tensor rank
#
# Section 4.2: tensor completion with a CP factorization `W = sum_r w_r^1 x ... x w_r^N`
# trained by gradient flow from a small init. With a rank-1 ground truth and enough
# observed entries, the flow finds a tensor of (estimated) CP rank 1 and fills in the
# unobserved entries almost exactly; the "linear" memorizer (observed entries kept, the
# rest 0) has high rank. The implicit regularization lowers *rank*, not a norm.
#
# This is Figure 2's protocol (`flowsim.experiments.figure2`) on a small grid.

# %%
import matplotlib.pyplot as plt
import numpy as np
from _notebook import FIGURES, QUICK, in_kernel, save

import flowsim as fs
from flowsim.experiments import figure2 as fig2
from flowsim.tensor import CPFactorization, cp_gaussian_init, cp_rank

config = fig2.Figure2Config(
    order=3, dim=4 if QUICK else 8,
    n_values=(8, 16, 32, 63) if QUICK else (50, 100, 200, 300, 400, 511),
    init_stds=(1e-3,) if QUICK else (1e-2, 1e-3), trials=1 if QUICK else 3,
    stop_mse=1e-8 if QUICK else 1e-10)
results_file = FIGURES / "04_tensor_grid.jsonl"
results_file.unlink(missing_ok=True)  # always recomputed here (the CLI resumes instead)
records = fig2.run_grid(config, results_file, progress=False)
for series, rows in fig2.summarize(records).items():
    print(series, [(r["n"], f"err {r['error'][1]:.1e}", f"rank {r['rank'][1]:g}") for r in rows])

# %%
fig2.plot(config, records, FIGURES / "04_error_and_rank.png")

# %% [markdown]
# ## The singular values of the unfoldings along one run
# A CP-rank-1 tensor has rank-1 unfoldings. Along the flow, the second singular value of
# the mode-1 unfolding (relative to the first) falls as the fit improves.

# %%
data = fig2.dataset(config)
n = config.n_values[-2]
problem = data.problem(n)
model = CPFactorization(config.shape, config.cp_rank)
traj = fs.gradient_flow(problem, model, cp_gaussian_init(model, seed=1, std=1e-3),
                        solver="Tsit5", rtol=1e-8, atol=1e-12,
                        stop_loss=config.stop_mse * n / 2, progress=False)
unfold = traj.product.reshape(len(traj), config.shape[0], -1)
s = np.linalg.svd(unfold, compute_uv=False)
fig, ax = plt.subplots(figsize=(6, 4))
for k in range(1, min(4, s.shape[1])):
    ax.loglog(traj.t[1:], s[1:, k] / s[1:, 0], label=f"sigma_{k + 1} / sigma_1")
ax.set_xlabel("t")
ax.set_title(f"mode-1 unfolding, n = {n} observations; final CP rank "
             f"{cp_rank(traj.product[-1])}")
ax.legend()
save(fig, "04_unfolding_spectrum.png")

# %% [markdown]
# ## Explore (needs a Jupyter kernel with ipywidgets)

# %%
if in_kernel():
    import ipywidgets as widgets

    def explore(n=config.n_values[-2], log10_std=-3.0):
        cfg = fig2.Figure2Config(order=3, dim=config.dim, n_values=(n,),
                                 init_stds=(10 ** log10_std,), trials=1,
                                 stop_mse=config.stop_mse)
        record = fig2.run_one(cfg, fig2.dataset(cfg), ("tf", n, 10 ** log10_std, 0))
        print(f"n = {n}: relative error {record['error']:.2e}, CP rank {record['rank']}")

    widgets.interact(explore, n=(1, int(np.prod(config.shape)) - 1),
                     log10_std=(-4.0, -1.0, 0.5))
