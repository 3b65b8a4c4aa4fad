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
# # 1. Norms go to infinity
#
# The 2x2 matrix completion problem of Razin & Cohen (2020), Eq. (6): entries (1,2), (2,1)
# and (2,2) are observed with values 1, 1, 0, and W11 is not observed. Every solution is
# `[[w, 1], [1, 0]]`, with determinant -1. Theorem 1: gradient flow on a deep factorization
# `W = W_L ... W_1` from a balanced start with `det W(0) > 0` can never reach `det < 0`,
# so to fit the observations it must send `|W11|` to infinity: every norm grows like
# `1/sqrt(loss)` while the effective rank falls to its infimum 1.
#
# This notebook integrates the *exact* flow (no learning rate) with `flowsim` and shows
# Figure 1 of the paper without gradient descent's discretization.

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
from _notebook import FIGURES, QUICK, in_kernel, save
from matplotlib import animation
from matplotlib.colors import Normalize

import flowsim as fs
from flowsim.plots import colored_line, reversed_loss_axis

STOP = 1e-5 if QUICK else 1e-8
problem = fs.paper_problem()
model = fs.DeepMatrixFactorization((2, 2), depth=3)

# %% [markdown]
# ## The exact flow, det > 0 and det < 0
# A balanced initialization of product scale 1e-3 (App. F.1), once conditioned on
# `det W(0) > 0` and once on `det W(0) < 0`.

# %%
runs = {sign: fs.gradient_flow(problem, model,
                               fs.balanced_init(model, seed=0, scale=1e-3, det_sign=sign),
                               stop_loss=STOP, progress=False)
        for sign in (+1, -1)}
for sign, traj in runs.items():
    w = traj.product[-1]
    print(f"det W(0) {sign:+d}: {traj.status}, loss {traj.loss[-1]:.2e}, W11 = {w[0, 0]:.4f}, "
          f"|W11| sqrt(2 loss) = {abs(w[0, 0]) * math.sqrt(2 * traj.loss[-1]):.5f}")

# %% [markdown]
# ## Figure 1, exact-flow version
# `|W11|` against the loss (decreasing to the right), coloured by log-time. With det > 0 the
# curve follows `1/sqrt(2 loss)` (Theorem 1, sharp) and stays above the bound
# `1/sqrt(2 loss) - 2` (appendix D2); with det < 0 it levels off at a finite solution.

# %%
fig, ax = plt.subplots(figsize=(6.5, 4.2))
pos = runs[+1]
t_norm = Normalize(np.log10(pos.t[1]), np.log10(pos.t[-1]))
for sign, traj in runs.items():
    lines = colored_line(ax, traj.loss[1:], np.abs(traj.product[1:, 0, 0]),
                         np.log10(traj.t[1:]), norm=t_norm, linewidth=2.5 if sign > 0 else 1.5)
grid = np.logspace(np.log10(STOP), -0.5, 100)
ax.plot(grid, 1 / np.sqrt(2 * grid), "k--", lw=1, label=r"$1/\sqrt{2\,\ell}$")
ax.plot(grid, 1 / np.sqrt(2 * grid) - 2, "k:", lw=1, label=r"bound $1/\sqrt{2\ell}-2$")
ax.set_yscale("log")
ax.set_ylim(1e-3, 2 / math.sqrt(STOP))
reversed_loss_axis(ax, STOP, 1.0)
ax.set_ylabel("|W11| (unobserved entry)")
ax.set_title("depth 3, balanced: thick det>0, thin det<0")
ax.legend(loc="upper left")
fig.colorbar(lines, ax=ax, label="log10 t")
save(fig, "01_figure1_exact_flow.png")

# %% [markdown]
# ## Norms and effective rank over time (det > 0)
# Frobenius, nuclear, spectral and the Schatten-1/2 quasi-norm all grow without bound;
# the effective rank (Definition 1) falls to 1 under the bound `1 + 4 sqrt(2 loss)`, and the
# distance to rank 1 under `sqrt(2 loss)` (Eqs. 9-10, appendix D4-D5).

# %%
w = pos.product[1:]
t = pos.t[1:]
loss = pos.loss[1:]
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
for p, name in ((2, "Frobenius"), (1, "nuclear"), (np.inf, "spectral"), (0.5, "Schatten-1/2")):
    ax1.loglog(t, fs.schatten_norm(w, p), label=name)
lower = 1 / np.sqrt(2 * loss) - 2
ax1.loglog(t, np.where(lower > 0, lower, np.nan), "k:", label="1/sqrt(2 loss) - 2")
ax1.set_xlabel("t")
ax1.set_ylabel("norm of W(t)")
ax1.legend()
ax2.loglog(t, fs.effective_rank(w) - 1, label="effective rank - 1")
ax2.loglog(t, 4 * np.sqrt(2 * loss), "C0:", label="bound 4 sqrt(2 loss)")
ax2.loglog(t, fs.distance_to_rank(w, 1), label="distance to rank 1")
ax2.loglog(t, np.sqrt(2 * loss), "C1:", label="bound sqrt(2 loss)")
ax2.set_xlabel("t")
ax2.legend()
save(fig, "01_norms_and_erank.png")

# %% [markdown]
# ## Phase portrait of many starts (animation)
# Eight random balanced starts (no conditioning: Proposition 3 says half have det > 0),
# integrated together by one vmapped solve (`fs.gradient_flow` on a list of starts). In the
# `(W11, W22)` plane the det > 0 runs ride the hyperbola `W11 W22 = W12 W21 -> 1` out to
# infinity; the det < 0 runs stop at finite points of the solution line `W22 = 0`.

# %%
starts = [fs.balanced_init(model, seed=s, scale=1e-3) for s in range(8)]
trajs = fs.gradient_flow(problem, model, starts, stop_loss=max(STOP, 1e-5), lanes=4,
                         progress=False)
signs = [int(tr.det_sign[0]) for tr in trajs]
print("det W(0) signs:", signs)

frames = 10 if QUICK else 60
log_t = np.linspace(0, np.log10(max(tr.t[-1] for tr in trajs)), frames)
fig, ax = plt.subplots(figsize=(6, 5))
x = np.logspace(-3, 3, 400)
ax.plot(x, 1 / x, color="0.7", lw=1, label="W11 W22 = 1")
ax.plot(-x, -1 / x, color="0.7", lw=1)
ax.axhline(0, color="0.85", lw=1, label="solutions (W22 = 0)")
ax.set_xscale("symlog", linthresh=1)
ax.set_yscale("symlog", linthresh=1e-2)
ax.set_xlim(-1000, 1000)
ax.set_ylim(-2, 2)
ax.set_xlabel("W11")
ax.set_ylabel("W22")
colors = ["C3" if s > 0 else "C0" for s in signs]
paths = [ax.plot([], [], color=c, lw=1)[0] for c in colors]
dots = ax.scatter(np.zeros(len(trajs)), np.zeros(len(trajs)), c=colors, zorder=3)
title = ax.set_title("")
ax.legend(loc="lower left", fontsize=8)


def position(traj, lt):
    """(W11, W22) at log10 t = lt, interpolated between saved steps (log-time)."""
    lts = np.log10(np.maximum(traj.t, 1e-300))
    return [np.interp(lt, lts, traj.product[:, i, i]) for i in (0, 1)]


def draw(k):
    for traj, path in zip(trajs, paths):
        upto = traj.t <= 10 ** log_t[k]
        path.set_data(traj.product[upto, 0, 0], traj.product[upto, 1, 1])
    dots.set_offsets([position(traj, log_t[k]) for traj in trajs])
    title.set_text(f"t = 10^{log_t[k]:.1f}   (red: det W(0) > 0, blue: < 0)")
    return [*paths, dots, title]


movie = animation.FuncAnimation(fig, draw, frames=frames, blit=False)
movie.save(FIGURES / "01_phase_portrait.gif", writer=animation.PillowWriter(fps=8))
draw(frames - 1)
save(fig, "01_phase_portrait.png")  # the last frame, as a static figure

# %% [markdown]
# ## Explore (needs a Jupyter kernel with ipywidgets)
# Depth, initialization scale and how far to push the loss.

# %%
if in_kernel():
    import ipywidgets as widgets

    def explore(depth=3, log10_scale=-3.0, log10_stop_loss=-6):
        m = fs.DeepMatrixFactorization((2, 2), depth=depth)
        traj = fs.gradient_flow(problem, m,
                                fs.balanced_init(m, seed=0, scale=10 ** log10_scale, det_sign=1),
                                stop_loss=10 ** log10_stop_loss, progress=False)
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.loglog(traj.loss[1:], np.abs(traj.product[1:, 0, 0]), label=f"depth {depth}")
        ax.loglog(traj.loss[1:], 1 / np.sqrt(2 * traj.loss[1:]), "k--", label="1/sqrt(2 loss)")
        ax.invert_xaxis()
        ax.set_xlabel("loss")
        ax.set_ylabel("|W11|")
        ax.legend()
        plt.show()

    widgets.interact(explore, depth=(2, 4), log10_scale=(-4.0, -1.0, 0.5),
                     log10_stop_loss=(-8, -3))
