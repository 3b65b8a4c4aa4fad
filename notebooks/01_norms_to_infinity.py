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
# **The question.** A model with more parameters than training data can fit the data in
# many ways, and which fit training picks is decided by the training algorithm itself:
# its *implicit regularization*. A popular hypothesis for matrix problems is that
# gradient descent picks the solution of smallest norm. Razin & Cohen, *"Implicit
# Regularization in Deep Learning May Not Be Explainable by Norms"* (NeurIPS 2020),
# built a tiny problem where this is false: training sends **every norm to infinity**,
# while the **rank** of the learned matrix goes down. This notebook reproduces it.
#
# **The problem** (the paper's Eq. 6). A 2x2 matrix with three known entries and one
# unknown one, the top-left entry `W11` ($W_{11}$):
#
# $$W = \begin{pmatrix} ? & 1 \\ 1 & 0 \end{pmatrix}.$$
#
# Training minimizes the squared error on the known entries only,
#
# $$\text{loss}(W) = \tfrac12\left[(W_{12} - 1)^2 + (W_{21} - 1)^2 + W_{22}^2\right]$$
#
# (matrix completion, as in a recommender system with one missing rating). Every value
# $w$ of the unknown entry fits the data exactly, so the solutions are the matrices
# $\begin{pmatrix} w & 1 \\ 1 & 0 \end{pmatrix}$, and every one of them has determinant
# $\det W = w \cdot 0 - 1 \cdot 1 = -1$.
#
# **The model.** $W$ is not trained directly: it is a product of $L$ 2x2 matrices,
# $W = W_L \cdots W_2 W_1$, a linear neural network of depth $L$ ("deep matrix
# factorization"). The gradient is taken with respect to the layers $W_l$.
#
# **Gradient flow.** Gradient descent with learning rate `lr` ($\eta$) updates
# $W_l \leftarrow W_l - \eta\, \partial\,\text{loss} / \partial W_l$. As $\eta \to 0$
# its iterates follow a smooth curve, the solution of the differential equation
#
# $$\frac{dW_l}{dt} = -\frac{\partial\,\text{loss}}{\partial W_l},$$
#
# with iteration $k$ at time $t = k\eta$. This is *gradient flow*, and the paper's
# theorems are about it; its time variable $t$ is called "gradient time" below.
# flowsim solves this equation with an adaptive ODE solver, so what you see here has no
# learning-rate effects (notebook 2 compares it with gradient descent).
#
# **Balanced initialization.** The layers are *balanced* when
# $W_{l+1}^\top W_{l+1} = W_l W_l^\top$ for every $l$: neighbouring layers have the same size
# in every direction. Small random initializations are close to balanced, gradient
# flow keeps balanced layers balanced, and the theorem assumes it.
# `fs.balanced_init(model, seed, scale)` draws a random matrix of size about `scale`
# and splits it into `L` balanced layers whose product is that matrix.
#
# **Why the sign of det W decides everything** (Theorem 1). Every solution has
# `det W = -1 < 0`. Start training with `det W > 0`. To reach a solution, `det W` would
# have to pass through 0, that is, a singular value of `W` would have to reach 0. For
# balanced gradient flow with `L >= 2` layers that never happens: a singular value
# $\sigma$ moves at a speed proportional to $\sigma^{2 - 2/L}$, which vanishes as
# $\sigma$ approaches 0, so it approaches 0 ever more slowly and never gets there. So
# $\det W$ stays positive, and the loss can only go to 0 if $W_{11}$ runs off to
# infinity. In numbers: at a given value of the loss, each known entry is off by at most
# $s = \sqrt{2\,\text{loss}}$, so $W_{12} W_{21} \ge (1 - s)^2$ and $|W_{22}| \le s$;
# $\det W = W_{11} W_{22} - W_{12} W_{21} > 0$ then forces
#
# $$|W_{11}| \ge \frac{(1 - s)^2}{s} \ge \frac{1}{\sqrt{2\,\text{loss}}} - 2 .$$
#
# Along the flow in fact $|W_{11}| \sqrt{2\,\text{loss}} \to 1$.
#
# A matrix `[[huge, 1], [1, tiny]]` is nearly rank 1: its first singular value is about
# `|W11|`, the second `det W / sigma_1` goes to 0. So every norm grows without bound
# while the rank falls, the opposite of a bias towards small norms.
#
# Further reading: [Derivations](../docs/derivations.md) (every bound used here, derived
# step by step), [Problems and models](../docs/concepts/problems-and-models.md) (the
# problem, the model and the metrics) and [Numerics](../docs/numerics.md) (how the flow is
# integrated, and where float64 arithmetic needs care).

# %%
import functools
import math

import matplotlib.pyplot as plt
import numpy as np
from _notebook import (
    FIGURES,
    QUICK,
    Timer,
    decade,
    explore,
    int_slider,
    log_slider,
    save,
    show_file,
)
from matplotlib import animation
from matplotlib.lines import Line2D

import flowsim as fs

problem = fs.paper_problem()                          # the 2x2 problem above
model = fs.DeepMatrixFactorization((2, 2), depth=3)   # W = W_3 W_2 W_1
STOP = 1e-6 if QUICK else 1e-8                        # train until the loss reaches this
print(f"quick mode: {QUICK}; runs stop at loss {STOP:g}")

# %% [markdown]
# ## Two runs: det W > 0 and det W < 0 at the start
#
# The same depth-3 network, started twice from a small balanced initialization (scale
# `1e-3`, as in the paper's experiments): once conditioned on `det W(0) > 0`, once on
# `det W(0) < 0`. Each run stops when the loss reaches the value above.
#
# **What to look for** in the printed table: with `det W(0) > 0` the unknown entry `W11`
# is large and `|W11| * sqrt(2 * loss)` is 1, as Theorem 1 predicts; with `det W(0) < 0`
# the run ends at an ordinary solution with a small `W11` (the sign of det already
# matches the solutions, nothing blocks the way). The last column checks that `det W`
# never changed sign along either run.

# %%
runs = {}
for sign in (+1, -1):
    start = fs.balanced_init(model, seed=0, scale=1e-3, det_sign=sign)
    runs[sign] = fs.gradient_flow(problem, model, start, stop_loss=STOP, progress=False)

print(f"{'start':10} {'ended by':10} {'loss':>9} {'W11':>10} {'|W11| sqrt(2 loss)':>19} "
      f"{'time t':>9}  det sign kept")
for sign, traj in runs.items():
    w11, loss = traj.product[-1, 0, 0], traj.loss[-1]
    kept = "yes" if np.all(traj.det_sign == traj.det_sign[0]) else "no"
    print(f"{'det > 0' if sign > 0 else 'det < 0':10} {traj.status:10} {loss:9.1e} "
          f"{w11:10.3f} {abs(w11) * math.sqrt(2 * loss):19.5f} {traj.t[-1]:9.2e}  {kept}")
print(f"\nflowsim integrated in {runs[+1].config['coordinates']!r} coordinates: "
      f"{runs[+1].config['coordinates_reason']}")

# %% [markdown]
# flowsim chose the variables it integrates in so that the sign of `det W` is exact
# (`traj.config` records which and why; [Coordinates](../docs/concepts/coordinates.md)
# explains the choice). Note the time `t` the det > 0 run needed (time is the flow's own
# variable, "gradient time": gradient descent with learning rate `lr` reaches time `t`
# after `t / lr` iterations). The loss falls like a power of `t`, so each further decade
# of loss costs many more decades of time.
#
# ## The paper's Figure 1, with the exact flow
#
# The unknown entry `|W11|` against the loss, for both runs. The loss axis is reversed,
# so training moves from left to right. Dots on the det > 0 curve mark the time `t`.
#
# **What to look for:** the red curve (det > 0) lies on the dashed line
# `1/sqrt(2 loss)` (Theorem 1's rate) and above the dotted lower bound
# `1/sqrt(2 loss) - 2` for the whole run; the blue curve (det < 0) levels off: that run
# found a finite solution.

# %%
fig, ax = plt.subplots(figsize=(7, 4.5))
colors = {+1: "C3", -1: "C0"}
for sign, traj in runs.items():
    ax.plot(traj.loss[1:], np.abs(traj.product[1:, 0, 0]), color=colors[sign], lw=2,
            label=f"exact flow, det W(0) {'> 0' if sign > 0 else '< 0'}")
pos = runs[+1]
for k in range(0, int(np.log10(pos.t[-1])) + 1, 2):  # mark t = 1, 100, 10^4, ...
    i = np.searchsorted(pos.t, 10.0 ** k)
    if i < len(pos.t):
        ax.plot(pos.loss[i], abs(pos.product[i, 0, 0]), "o", color="C3", ms=4)
        ax.annotate(f"t = 1e{k}", (pos.loss[i], abs(pos.product[i, 0, 0])),
                    textcoords="offset points", xytext=(-6, 8), ha="right", fontsize=8)
grid = np.logspace(math.log10(STOP), 0, 200)
ax.plot(grid, 1 / np.sqrt(2 * grid), "k--", lw=1, label=r"Theorem 1's rate $1/\sqrt{2\,loss}$")
bound = 1 / np.sqrt(2 * grid) - 2
ax.plot(grid, np.where(bound > 0, bound, np.nan), "k:", lw=1.5,
        label=r"proved lower bound $1/\sqrt{2\,loss} - 2$ (det > 0)")
ax.set_xscale("log")
ax.set_yscale("log")
ax.set_xlim(1, STOP)  # reversed: training moves left to right
ax.set_ylim(1e-3, 3 / math.sqrt(STOP))
ax.set_xlabel("loss (decreasing to the right)")
ax.set_ylabel("|W11| (the unknown entry)")
ax.set_title("Depth 3, balanced start of scale 1e-3")
ax.legend(loc="upper left", fontsize=8)
save(fig, "01_figure1_exact_flow.png")

# %% [markdown]
# ## Every norm grows, the effective rank falls (det W > 0)
#
# Two ways to measure the "size" and the "rank" of `W`, both from its singular values
# `sigma_1 >= sigma_2`:
#
# - **Schatten norms** `||W||_p = (sigma_1^p + sigma_2^p)^(1/p)`: `p = 2` is the
#   Frobenius norm, `p = 1` the nuclear norm (the classic convex stand-in for rank),
#   `p = inf` the spectral norm `sigma_1`. For `p < 1` (here `p = 1/2`) it is a
#   *quasi-norm*: the triangle inequality holds only up to a constant factor. As
#   `p -> 0` the sum `sigma_1^p + sigma_2^p` (without the power `1/p`) tends to the
#   number of nonzero singular values, the rank, which is why small `p` is often
#   proposed as a better stand-in for rank.
# - **Effective rank** (Roy & Vetterli; the paper's Definition 1):
#   `erank(W) = exp(H(rho))` with `rho_i = sigma_i / (sigma_1 + sigma_2)` and
#   `H(rho) = -sum_i rho_i ln rho_i` the entropy (`rho`, not `p`: `p` is the Schatten
#   index above).
#   It is a smooth version of rank: 2 when both singular values are equal, 1 for a rank-1
#   matrix. We plot `erank - 1` on a log axis, and the distance from `W` to the nearest
#   rank-1 matrix, which is `sigma_2`.
#
# flowsim keeps the logarithms of the singular values exactly (`traj.log_singular_values`),
# so `sigma_2` and `erank - 1` stay exact even far below `1e-16` of `sigma_1`, where they
# could not be read from the entries of `W` in float64.
#
# **What to look for:** on the left, all four norms grow like `1/sqrt(loss)` and stay
# above the proved lower bound. They nearly coincide: for a matrix close to rank 1 every
# one of them is close to `sigma_1`, about `|W11|`, so no choice of norm stays bounded.
# On the right, `erank - 1` and
# `sigma_2` fall under their bounds `4 sqrt(2 loss)` and `sqrt(2 loss)` (the dotted lines
# of the same colour; [Derivations](../docs/derivations.md), D4-D5).

# %%
loss = pos.loss[1:]
log_sv = pos.log_singular_values[1:]
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.3))
# (the four norms nearly coincide: drawn from thick and pale to thin and dashed, so that
# each stays visible)
for p, name, style in ((0.5, "Schatten-1/2 quasi-norm", dict(lw=7, alpha=0.3)),
                       (1, "nuclear (p = 1)", dict(lw=4, alpha=0.6)),
                       (2, "Frobenius (p = 2)", dict(lw=2)),
                       (np.inf, "spectral (p = inf)", dict(lw=1.2, ls="--", color="k"))):
    ax1.loglog(loss, fs.schatten_from_log_singular_values(log_sv, p), label=name, **style)
lower = 1 / np.sqrt(2 * loss) - 2
ax1.loglog(loss, np.where(lower > 0, lower, np.nan), "k:", label="lower bound 1/sqrt(2 loss) - 2")
ax1.set_ylabel("norm of W")
ax1.set_title("Every norm of W grows without bound")
ax2.loglog(loss, fs.effective_rank_minus_one(log_sv), "C0", label="effective rank - 1")
ax2.loglog(loss, 4 * np.sqrt(2 * loss), "C0:", label="bound 4 sqrt(2 loss)")
ax2.loglog(loss, fs.distance_to_rank_from_log_singular_values(log_sv, 1), "C1",
           label="distance to rank 1 (= sigma_2)")
ax2.loglog(loss, np.sqrt(2 * loss), "C1:", label="bound sqrt(2 loss)")
ax2.set_ylabel("erank - 1,  sigma_2")
ax2.set_title("... while W approaches rank 1")
for ax in (ax1, ax2):
    ax.set_xlim(1, STOP)
    ax.set_xlabel("loss (decreasing to the right)")
    ax.legend(fontsize=8)
save(fig, "01_norms_and_erank.png")

# %% [markdown]
# ## Many starts at once: a phase portrait
#
# Eight random balanced starts, *without* choosing the sign of `det W(0)`: about half
# start with each sign (Proposition 3 of the paper). We follow the two diagonal entries
# `(W11, W22)`; both axes are logarithmic away from 0 and linear near 0 (matplotlib's
# "asinh" scale, smooth everywhere, so a bend in a path is the dynamics, not the axis).
# Runs that end close together are drawn as rings of different sizes, so that each end
# point stays visible.
# (For hundreds of starts, pass the list itself, `fs.gradient_flow(problem, model,
# starts)`: one vectorized solve. For eight, one run after the other is quicker, since
# the solver compiled for the first cell is reused.)
#
# **What to look for** in the animation and in its last frame: red runs (det > 0) slide
# along the grey hyperbola `W11 W22 = 1` out to `|W11| -> infinity` with `W22 -> 0`;
# blue runs (det < 0) stop at finite points of the line `W22 = 0`, ordinary solutions.

# %%
starts = [fs.balanced_init(model, seed=s, scale=1e-3) for s in range(8)]
trajs = [fs.gradient_flow(problem, model, start, stop_loss=STOP, progress=False)
         for start in starts]
signs = [int(tr.det_sign[0]) for tr in trajs]
print(f"det W(0) > 0 in {signs.count(1)} of {len(signs)} runs, < 0 in {signs.count(-1)}")

frames = 12 if QUICK else 60
log_t = np.linspace(-1, np.log10(max(tr.t[-1] for tr in trajs)), frames)
fig, ax = plt.subplots(figsize=(9, 5))
x = np.logspace(-3, 4, 400)
ax.plot(x, 1 / x, color="0.6", lw=1)
ax.plot(-x, -1 / x, color="0.6", lw=1)
ax.axhline(0, color="0.8", lw=3, zorder=0)
ax.set_xscale("asinh", linear_width=1)
ax.set_yscale("asinh", linear_width=1e-2)
ax.set_xlim(-2000, 2000)
ax.set_ylim(-2, 2)
ax.set_xlabel("W11 (unknown entry)")
ax.set_ylabel("W22 (observed, target 0)")
run_colors = ["C3" if s > 0 else "C0" for s in signs]
paths = [ax.plot([], [], color=c, lw=1)[0] for c in run_colors]
dots = ax.scatter(np.zeros(len(trajs)), np.zeros(len(trajs)), facecolors="none",
                  edgecolors=run_colors, linewidths=1.5, zorder=3,
                  s=[25 + 30 * i for i in range(len(trajs))])  # rings: overlaps stay visible
title = ax.set_title("")
ax.legend(handles=[Line2D([], [], color="C3", marker="o", mfc="none",
                          label=f"det W(0) > 0 ({signs.count(1)} runs)"),
                   Line2D([], [], color="C0", marker="o", mfc="none",
                          label=f"det W(0) < 0 ({signs.count(-1)} runs)"),
                   Line2D([], [], color="0.6", label="hyperbola W11 W22 = 1"),
                   Line2D([], [], color="0.8", lw=3, label="solutions (W22 = 0)")],
          loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=8)  # outside: no path hidden
fig.subplots_adjust(left=0.1, right=0.72)  # room for the legend in the animation's frames


def position(traj, lt):
    """(W11, W22) at log10 t = lt, interpolated in log-time between saved steps."""
    lts = np.log10(np.maximum(traj.t, 1e-300))
    return [np.interp(lt, lts, traj.product[:, i, i]) for i in (0, 1)]


def draw_frame(k):
    for traj, path in zip(trajs, paths):
        upto = traj.t <= 10 ** log_t[k]
        path.set_data(traj.product[upto, 0, 0], traj.product[upto, 1, 1])
    dots.set_offsets([position(traj, log_t[k]) for traj in trajs])
    title.set_text(f"8 balanced starts, depth 3, time t = 10^{log_t[k]:.1f}")
    return [*paths, dots, title]


movie = animation.FuncAnimation(fig, draw_frame, frames=frames, blit=False)
movie.save(FIGURES / "01_phase_portrait.gif", writer=animation.PillowWriter(fps=8))
draw_frame(frames - 1)
save(fig, "01_phase_portrait.png")  # the last frame, as a still
plt.close(fig)  # the notebook shows the animation instead:
show_file(FIGURES / "01_phase_portrait.gif", alt="phase portrait of 8 runs, animated")

# %% [markdown]
# ## Explore (in Jupyter, with ipywidgets)
#
# Three sliders; each answers when you release it.
#
# - **depth** (2-4): Theorem 1 holds at every depth `L >= 2`. Move it: the curve on the
#   left still ends on the dashed line `1/sqrt(2 loss)`, and `erank - 1` on the right
#   still falls to 0. The time `t` in the title says how long each depth needs to get
#   there.
# - **init scale**: the size of the starting matrix. A larger start moves the early part of
#   the curve (near loss 1), never the late part: the end is set by the problem, not by
#   the start.
# - **stop loss**: how far training goes. Lower it and `|W11|` keeps climbing: there is
#   no finite end.
#
# Answer times: every run of this notebook stops at the same loss (printed in the first
# cell) with the same solver, so nothing is compiled again for new depths beyond what the
# cells above compiled (depth 3) and one compilation per other depth. The cell below runs
# the flow for every depth and every value of the **init scale** slider first (its time is
# printed under it); **stop loss** only cuts a run already computed. Moving a slider then
# only redraws the figure: its lines are updated in place, not rebuilt. The status line
# under the sliders says how long each answer took.

# %%
EXPLORE_STOP = STOP  # the runs above stopped here too: the same compiled solver
SCALE_STEP = 1.0 if QUICK else 0.5  # the init scale slider's step, in decades
EXPLORE_SCALES = np.arange(-4, -0.9, SCALE_STEP)  # the init scale slider's values (decades)
LOSS_GRID = np.logspace(0, math.log10(EXPLORE_STOP), 81)  # for the reference lines


@functools.cache
def explore_run(depth, scale_decade):
    """The flow at this depth from a balanced start of scale 10**scale_decade, det > 0."""
    m = fs.DeepMatrixFactorization((2, 2), depth=depth)
    start = fs.balanced_init(m, seed=0, scale=10.0 ** scale_decade, det_sign=+1)
    return fs.gradient_flow(problem, m, start, stop_loss=EXPLORE_STOP, progress=False)


with Timer(f"prepared depths 2, 3 and 4 at {len(EXPLORE_SCALES)} init scales"):
    for depth in (2, 3, 4):
        for scale_decade in EXPLORE_SCALES:
            explore_run(depth, round(float(scale_decade), 6))


def draw(fig, depth, init_scale, stop_loss):
    """The figure of one setting: built on the first call, its lines updated afterwards."""
    traj = explore_run(depth, decade(init_scale))
    upto = traj.loss >= stop_loss * (1 - 1e-9)  # the run cut where it reached stop_loss
    loss, w11 = traj.loss[upto][1:], np.abs(traj.product[upto, 0, 0][1:])
    erank = fs.effective_rank_minus_one(traj.log_singular_values[upto][1:])
    if not fig.axes:  # the first call: axes, lines and labels
        ax1, ax2 = fig.subplots(1, 2)
        ax1.loglog([1], [1], "C3", lw=2, label="exact flow")
        ax1.loglog(LOSS_GRID, 1 / np.sqrt(2 * LOSS_GRID), "k--", lw=1, label="1/sqrt(2 loss)")
        ax1.set_ylabel("|W11| (the unknown entry)")
        ax2.loglog([1], [1], "C0", label="effective rank - 1")
        ax2.loglog(LOSS_GRID, 4 * np.sqrt(2 * LOSS_GRID), "C0:", label="bound 4 sqrt(2 loss)")
        ax2.set_ylabel("effective rank - 1")
        for ax in (ax1, ax2):
            ax.set_xlim(1, EXPLORE_STOP)
            ax.set_xlabel("loss (decreasing to the right)")
        ax1.legend(fontsize=8, loc="upper left")
        ax2.legend(fontsize=8, loc="lower left")
    ax1, ax2 = fig.axes
    ax1.lines[0].set_data(loss, w11)
    ratio = w11[-1] * math.sqrt(2 * loss[-1])
    ax1.set_title(f"depth {depth}: |W11| sqrt(2 loss) = {ratio:.4f} "
                  f"at loss {loss[-1]:.0e}, t = {traj.t[upto][-1]:.1e}", fontsize=9)
    ax2.lines[0].set_data(loss, erank)
    ax2.set_title(f"effective rank - 1 = {erank[-1]:.1e} at loss {loss[-1]:.0e}", fontsize=9)
    for ax in (ax1, ax2):
        ax.relim()
        ax.autoscale_view(scalex=False)


panel = explore(draw, {"depth": int_slider("depth", 3, 2, 4),
                       "init_scale": log_slider("init scale", 1e-3, -4, -1, step=SCALE_STEP),
                       "stop_loss": log_slider("stop loss", STOP, round(math.log10(STOP)), -2,
                                               step=1)},
                name="01_explore.png")
