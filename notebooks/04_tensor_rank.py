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
# Notebooks 1-3 showed a bias towards low *rank*, not small norm, in matrix completion.
# Section 4.2 of the paper proposes the same lens for models beyond linear networks,
# through *tensor* completion. This notebook reproduces its experiment (Figure 2) on a
# small grid.
#
# **Tensors and tensor completion.** An order-3 tensor is a 3-dimensional array, here
# `d x d x d` numbers. Tensor completion: observe `n` of its entries and fill in the rest.
#
# **CP rank.** A *rank-1* tensor is an outer product $a \otimes b \otimes c$, with entries
# $a_i b_j c_k$. The *CP rank* of a tensor is the smallest number of rank-1 tensors that
# add up to it: the tensor version of matrix rank. A rank-1 $d \times d \times d$ tensor is
# fixed by $3d - 2$ numbers, far fewer than its $d^3$ entries, so a low-rank tensor can in
# principle be recovered from a few observed entries.
#
# **The model.** A CP factorization
#
# $$\mathcal W = \sum_{r=1}^{R} w_r^{(1)} \otimes w_r^{(2)} \otimes w_r^{(3)}$$
#
# with $R$ components (enough to represent *any* tensor of this shape, so nothing in the model
# forces a low rank), trained by gradient flow on the squared error of the observed
# entries from a small random start (Gaussian, standard deviation `init`). It is the tensor
# analogue of a depth-2 matrix factorization, and equivalent to a shallow network with
# multiplicative units.
#
# **The comparison.** The truth is a random rank-1 tensor of norm 1. Against the flow
# stands the *memorizer* (the "linear" baseline of the paper): keep the observed entries,
# put 0 everywhere else. Both fit the observations exactly; they differ in what they put
# in the unobserved entries. We measure, over **all** entries, the relative error
# $\|\mathcal W - \mathcal W^*\| / \|\mathcal W^*\|$, and estimate the CP rank of each
# result (the smallest rank whose best fit is within 1% of it, found by alternating least
# squares).

# %%
import functools

import matplotlib.pyplot as plt
import numpy as np
from _notebook import FIGURES, QUICK, decade, explore, int_slider, log_slider, save

import flowsim as fs
from flowsim.experiments import figure2 as fig2

config = fig2.Figure2Config(
    order=3, dim=4 if QUICK else 8,
    n_values=(8, 16, 32, 48) if QUICK else (50, 100, 200, 300, 400, 511),
    init_stds=(1e-2, 1e-3), trials=2 if QUICK else 3,
    stop_mse=1e-8 if QUICK else 1e-10)
TOTAL = int(np.prod(config.shape))
print(f"tensor {'x'.join(map(str, config.shape))} ({TOTAL} entries), CP factorization with "
      f"R = {config.cp_rank} components; a rank-1 tensor of this shape has "
      f"{3 * config.dim - 2} free numbers")

# %% [markdown]
# ## Figure 2: error and rank against the number of observations
#
# For each number of observed entries `n`, the flow runs from two initialization scales,
# a few times each (different random starts: 2 in the quick version, 3 in the full one),
# until the mean squared error on the observed entries is below a small threshold (`1e-8`
# quick, `1e-10` full); the memorizer needs no training. The CP rank of every result is
# then estimated. This takes seconds in the quick version, a minute or two in the full
# one.
#
# **What to look for:** once `n` is somewhat above the number of free numbers of a rank-1
# tensor (printed above), the flow's error drops by orders of magnitude (to a few `1e-3`
# in the quick version, which trains only to MSE `1e-8`: the error falls further the
# longer training runs; the table printed below gives this run's values) and its
# estimated rank is 1, the rank
# of the truth. The smaller initialization does at least as well as the larger one (in the
# full version clearly better at the smallest `n`: a smaller start pulls harder towards
# low rank). The memorizer's error stays large and its rank high: it fits the same
# observations, but without a bias towards low rank it has no reason to fill in the rest
# correctly; only with nearly every entry observed (the full version's last point, 511 of
# 512) does it come close. With too few observations (the quick version's smallest `n`)
# nothing recovers the truth.

# %%
results_file = FIGURES / "04_tensor_grid.jsonl"
results_file.unlink(missing_ok=True)  # always recomputed here (the CLI resumes instead)
records = fig2.run_grid(config, results_file, progress=False)
summary = fig2.summarize(records)
# (the two initializations often give almost the same numbers: the first is drawn thick
# and pale, the second thin on top of it, so that neither hides the other)
series = [("linear", "memorizer (observed entries, 0 elsewhere)", "0.35",
           dict(fmt="s--", ms=6, lw=1.5))]
series += [(("tf", std), f"gradient flow, init {std:g}", f"C{i}",
            dict(fmt="o-", ms=10, lw=5, alpha=0.45) if i == 0 else dict(fmt="^-", ms=5, lw=1.5))
           for i, std in enumerate(config.init_stds)]

width = max(len(label) for _, label, _, _ in series) + len(", error")  # one column
print(f"{'median over the random starts':{width}} "
      + " ".join(f"{'n = ' + str(n):>9}" for n in config.n_values))
for key, label, _, _ in series:
    rows = summary[key]
    print(f"{label + ', error':{width}} " + " ".join(f"{r['error'][1]:9.1e}" for r in rows))
    print(f"{label + ', rank':{width}} " + " ".join(f"{r['rank'][1]:9g}" for r in rows))


def plot_grid(ax_err, ax_rank):
    """Median error and rank per n (bars: the spread over the trials)."""
    for key, label, color, style in series:
        rows = summary[key]
        n = np.array([r["n"] for r in rows])
        for ax, metric in ((ax_err, "error"), (ax_rank, "rank")):
            q = np.array([r[metric] for r in rows])
            ax.errorbar(n, q[:, 1], yerr=[q[:, 1] - q[:, 0], q[:, 2] - q[:, 1]], color=color,
                        capsize=3, label=label, **style)
    ax_rank.axhline(1, color="k", ls=":", lw=1, label="rank of the truth")
    ax_err.set_yscale("log")
    ax_err.set_ylabel("relative error over all entries")
    ax_rank.set_ylabel("estimated CP rank")
    for ax in (ax_err, ax_rank):
        ax.set_xlabel("number of observed entries n")
        top = ax.secondary_xaxis("top", functions=(lambda n: n / TOTAL, lambda f: f * TOTAL))
        top.set_xlabel("fraction of entries observed", fontsize=8)
        ax.grid(alpha=0.3)


fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
plot_grid(ax1, ax2)
ax1.legend(fontsize=8)
ax2.legend(fontsize=8)
spread = ("one run per point" if config.trials == 1 else
          f"points: median of {config.trials} random starts, bars: 25-75% of them")
fig.suptitle(f"Completing a rank-1 {'x'.join(map(str, config.shape))} tensor ({spread}; "
             f"flow trained to MSE {config.stop_mse:g})", fontsize=10)
fig.tight_layout()
save(fig, "04_error_and_rank.png")

# %% [markdown]
# ## Along one run: the unfolding's singular values
#
# How does the flow get to rank 1? Reshape the `d x d x d` tensor into a `d x d^2` matrix
# (its *mode-1 unfolding*: one row per first index). A rank-1 tensor has a rank-1
# unfolding, so the ratios `sigma_k / sigma_1` of the unfolding's singular values
# (`k >= 2`) measure how far the tensor is from rank 1.
#
# **What to look for:** along the flow (solid lines) the ratios stay near where the random
# start put them for most of the run, then, in the last stretch, fall by orders of
# magnitude (to `1e-7` or below) as the fit completes: the flow has grown one rank-1
# component and kept the others tiny. The dashed lines are the same ratios for the
# memorizer at the same `n`: the largest between 0.1 and 1, far from rank 1.

# %%
data = fig2.dataset(config)
n = config.n_values[-2]
problem = data.problem(n)
model = fs.CPFactorization(config.shape, config.cp_rank)
traj = fs.gradient_flow(problem, model, fs.cp_gaussian_init(model, seed=1, std=1e-3),
                        solver=config.solver, rtol=config.rtol, atol=config.atol,
                        stop_loss=config.stop_mse * n / 2, progress=False)


def unfolding_ratios(tensors):
    """sigma_k / sigma_1 (k >= 2) of the mode-1 unfolding of each tensor, (..., d - 1)."""
    tensors = np.asarray(tensors)
    s = np.linalg.svd(tensors.reshape(*tensors.shape[:-3], config.dim, -1), compute_uv=False)
    return s[..., 1:] / s[..., :1]


ratios = unfolding_ratios(traj.product[1:])
memorizer = unfolding_ratios(fs.linear_baseline(problem))
fig, ax = plt.subplots(figsize=(7, 4.3))
for k in range(min(3, ratios.shape[1])):
    ax.loglog(traj.t[1:], ratios[:, k], f"C{k}", label=f"flow: sigma_{k + 2} / sigma_1")
    ax.axhline(memorizer[k], color=f"C{k}", ls="--", lw=1,
               label=f"memorizer: sigma_{k + 2} / sigma_1")
ax.set_xlabel("time t")
ax.set_ylabel("singular value ratio of the unfolding")
ax.set_title(f"n = {n} observed entries: the flow ends at error "
             f"{np.linalg.norm(traj.product[-1] - data.truth):.1e}, "
             f"CP rank {fs.cp_rank(traj.product[-1])}", fontsize=10)
ax.legend(fontsize=8, loc="lower left")
save(fig, "04_unfolding_spectrum.png")

# %% [markdown]
# ## Explore (in Jupyter, with ipywidgets)
#
# Pick the number of observed entries `n` and the initialization scale; the flow runs
# once for that setting (the first random start of the grid). Left: the unfolding's
# singular value ratios of the flow's result, the memorizer and the truth (which has none
# above 0: it is exactly rank 1). Right: the grid above, with your setting marked.
#
# - **n**: move it down step by step. Above a threshold the flow's ratios sit far below
#   the memorizer's and its error is small; near the number of free numbers of a rank-1
#   tensor it starts to fail, and below it no method can recover the truth.
# - **init**: try a larger start (`1e-1`): the flow's result gets a higher rank and a
#   larger error, at small `n` most of all. Small starts bias towards low rank; larger
#   ones less.
#
# Answer times: one run of the flow and a rank estimate per new setting, remembered
# afterwards; the figure is updated in place. The status line says how long each answer
# took, split into computing and drawing. In the quick version (4x4x4) the computing is
# a small part; in the full version (8x8x8, 64 components) settings where the flow is
# stiff (few observations, a large init) take several seconds, where estimating the CP
# rank of a high-rank result also costs seconds.

# %%
@functools.cache
def explore_run(n, std_decade):
    """The flow's completed tensor for n observations from init 10**std_decade (the grid's
    first random start), its status and its estimated CP rank."""
    w, record = fig2.solve_one(config, data, ("tf", n, 10.0 ** std_decade, 0))
    return w, record["status"], fs.cp_rank(w)


def draw(fig, n, init):
    """This setting against the grid: built on the first call, updated afterwards."""
    std_decade = decade(init)
    w, status, rank = explore_run(n, std_decade)
    memo = memorizer(n)
    error = np.linalg.norm(w - data.truth)  # relative: the truth has norm 1
    k = np.arange(2, config.dim + 1)
    if not fig.axes:  # the first call: the grid, empty marks for the setting, labels
        ax1, ax2, ax3 = fig.subplots(1, 3)
        ax1.semilogy(k, np.ones(k.size), "C3*-", ms=10, label="gradient flow, this setting")
        ax1.semilogy(k, np.ones(k.size), "s--", color="0.35", label="memorizer")
        ax1.set_xticks(k)
        ax1.set_xlabel("k")
        ax1.set_ylabel("sigma_k / sigma_1 of the unfolding")
        ax1.legend(fontsize=8)
        plot_grid(ax2, ax3)
        ax2.plot([n], [error], "*", color="C3", ms=14, label="gradient flow, this setting")
        ax2.legend(fontsize=7)
        ax3.plot([n], [rank], "*", color="C3", ms=14)
        for ax in (ax2, ax3):  # fixed: the star moves, the grid stays
            ax.set_xlim(0, TOTAL)
        fig.suptitle("Left: this setting. Middle and right: the grid above, with this "
                     "setting as a red star", fontsize=10)
    ax1, ax2, ax3 = fig.axes[:3]  # (then the secondary axes of the grid)
    ax1.lines[0].set_ydata(unfolding_ratios(w))
    ax1.lines[1].set_ydata(unfolding_ratios(memo))
    ax1.relim()
    ax1.autoscale_view()
    ax1.set_title(f"n = {n}, init {10.0 ** std_decade:.0e}: flow error {error:.1e}, "
                  f"CP rank {rank} ({status})", fontsize=9)
    ax2.lines[-1].set_data([n], [error])
    ax3.lines[-1].set_data([n], [rank])
    low, high = ax2.get_ylim()  # widen the axes only when the star would leave them
    if not low <= error <= high:
        ax2.set_ylim(min(low, error / 2), max(high, error * 2))
    if rank > ax3.get_ylim()[1]:
        ax3.set_ylim(top=rank + 1)


@functools.cache
def memorizer(n):
    return fs.linear_baseline(data.problem(n))


panel = explore(draw, {"n": int_slider("observed entries n", config.n_values[-2], 2, TOTAL - 1),
                       "init": log_slider("init", 1e-3, -4, -1)},
                name="04_explore.png", figsize=(15, 4))
