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
# # 2. Exact flow vs gradient descent
#
# The paper's theorems are about *gradient flow*, the limit of gradient descent (GD) as
# the learning rate goes to 0; its experiments run GD with a small learning rate as a
# stand-in. This notebook measures how good a stand-in that is, on the problem of
# notebook 1: the 2x2 matrix `[[?, 1], [1, 0]]` with the unknown entry `W11`, learned as a
# product of `L = 3` layers from a balanced start with `det W > 0`.
#
# GD is *Euler's method* for the flow's differential equation
# $dW_l/dt = -\partial\,\text{loss}/\partial W_l$, the simplest way to solve it
# numerically: step a length `lr` ($\eta$) along the current slope, then recompute the
# slope. Iteration $k$ with learning rate $\eta$ stands for time $t = k\eta$ (the flow's
# own time variable, "gradient time"). Two things can separate GD from the flow:
#
# 1. **Over a fixed stretch of time**, Euler's method is off by an amount proportional to
#    its step: halve `lr`, halve the error. That part is harmless.
# 2. **Late in training** the problem gets *stiff*: it has a very fast direction (the
#    known entries snap back to their targets) beside a very slow one (`W11` creeps
#    upwards), and a fixed step must be small enough for the fast one. The *sharpness*
#    (the largest curvature of the loss, the top eigenvalue of its Hessian with respect
#    to the layers) grows as `|W11|` grows: a small change of one layer is multiplied by
#    the other $L - 1$ layers, each about $|W_{11}|^{1/L}$ in size, so the sharpness grows
#    like $|W_{11}|^{2 - 2/L}$. GD with learning rate $\eta$ is only stable while the
#    sharpness is below $2/\eta$. Along the flow $|W_{11}| \approx 1/\sqrt{2\,\text{loss}}$
#    (notebook 1), so a fixed $\eta$ becomes unstable once the loss falls to about
#
#    $$\text{loss}_{\text{lr}} = \frac12 \left(\frac{\eta}{2}\right)^{L/(L-1)} .$$
#
#    What GD does after that is no longer the flow.
#
# More on this: [Gradient descent beside the flow](../docs/concepts/gradient-descent.md)
# and [Numerics](../docs/numerics.md) (why flowsim integrates the flow with an implicit,
# adaptive solver instead of small fixed steps).

# %%
import functools

import matplotlib.pyplot as plt
import numpy as np
from _notebook import QUICK, Timer, decade, explore, int_slider, log_slider, save
from matplotlib.lines import Line2D

import flowsim as fs

problem = fs.paper_problem()
model = fs.DeepMatrixFactorization((2, 2), depth=3)
params = fs.balanced_init(model, seed=0, scale=1e-2, det_sign=+1)
L = model.depth


def unstable_below(lr, depth=L):
    """The loss below which GD with this lr is unstable on the flow's path (see above)."""
    return 0.5 * (lr / 2) ** (depth / (depth - 1))


# %% [markdown]
# ## 1. Over a fixed time: GD is off by O(lr)
#
# For each learning rate, GD runs to time `t = 20` (that is `20 / lr` iterations), and
# the exact flow is computed at the same times (`t = 5, 10, 20`). We report the largest
# distance between the two product matrices, relative to the size of `W`.
#
# **What to look for:** the points fall on a line of slope 1 in log-log axes (the dashed
# reference): the error is proportional to `lr`, as for Euler's method. The fitted slope
# is printed and in the title.

# %%
T = 20.0
LRS = np.array([0.1, 0.03, 0.01]) if QUICK else np.array([0.1, 0.05, 0.02, 0.01, 0.005])
deviation = []
for lr in LRS:
    steps = np.unique(np.round(np.array([0.25, 0.5, 1.0]) * T / lr).astype(int))
    comparison = fs.descent_vs_flow(problem, model, params, lr, steps)
    deviation.append(float(comparison.product_relative.max()))
deviation = np.array(deviation)
order, _ = fs.convergence_order(LRS, deviation)
for lr, d in zip(LRS, deviation):
    print(f"lr {lr:<6g} ({int(round(T / lr)):>5} iterations): relative distance to the flow "
          f"{d:.2e}")
print(f"fitted slope {order:.2f} (Euler's method: 1)")

fig, ax = plt.subplots(figsize=(5.5, 4))
ax.loglog(LRS, deviation, "o-", label="GD vs exact flow, largest over t <= 20")
ax.loglog(LRS, deviation[-1] * LRS / LRS[-1], "k--", lw=1, label="slope 1 (proportional to lr)")
ax.set_xlabel("learning rate lr")
ax.set_ylabel("relative distance ||W_GD - W_flow|| / ||W_flow||")
ax.set_title(f"GD's error is proportional to lr (fitted slope {order:.2f})", fontsize=10)
ax.legend(fontsize=8)
save(fig, "02_deviation_vs_lr.png")

# %% [markdown]
# ## 2. Late in training: where GD leaves the flow
#
# Now the flow and GD at a few learning rates, all run until the loss reaches `1e-7`
# (GD with at most the iteration budget printed below). For each learning rate the table
# gives the predicted loss `loss_lr` where GD becomes unstable, the loss where GD's loss
# first went *up* (measured), where `det W` changed sign, and where GD ended.
#
# **What to look for:**
#
# - GD follows the flow (black) closely until its loss reaches about `loss_lr` (dotted
#   vertical line of the same colour): the measured first rise of the loss sits right at
#   the prediction.
# - Past that point the steps overshoot: the loss jumps *up* (spikes on the right; on the
#   left the GD curve runs back towards higher loss), then hovers near `loss_lr` for a
#   while. During that time GD changes the sign of `det W` (the crosses), which the flow
#   can never do, and then converges quickly to an ordinary solution with a finite
#   `|W11|` (the sudden drop on the right), while the flow's `|W11|` keeps growing.
# - So GD with a fixed learning rate reaches loss `1e-7` sooner than the flow (right
#   panel), by finding a different solution. The larger `lr`, the earlier it leaves the
#   flow and the smaller the `|W11|` it ends with. "Small enough" for `lr` depends on how
#   far training goes.

# %%
STOP = 1e-7
GD_LRS = (0.1, 0.05) if QUICK else (0.1, 0.05, 0.02)
BUDGET = 1_000_000 if QUICK else 5_000_000
flow = fs.gradient_flow(problem, model, params, stop_loss=STOP, progress=False)
descents = {lr: fs.gradient_descent(problem, model, params, lr, stop_loss=STOP,
                                    max_iterations=BUDGET, progress=False) for lr in GD_LRS}


def events(gd):
    """Indices (into the saved points) of GD's first loss rise and first det W sign change."""
    best = np.minimum.accumulate(gd.loss)
    rises = np.flatnonzero(gd.loss > 1.05 * best)
    flips = np.flatnonzero(gd.det_sign != gd.det_sign[0])
    return (rises[0] if rises.size else None), (flips[0] if flips.size else None)


print(f"exact flow: loss {flow.loss[-1]:.1e} at t = {flow.t[-1]:.2e}, "
      f"|W11| = {abs(flow.product[-1, 0, 0]):.1f}\n")
print(f"{'lr':>5} {'predicted':>10} {'loss first':>11} {'det W flips':>12} {'ended by':>15} "
      f"{'iterations':>11} {'final loss':>11} {'|W11|':>7}")
print(f"{'':>5} {'loss_lr':>10} {'rose at':>11} {'at loss':>12}")
for lr, gd in descents.items():
    rise, flip = events(gd)
    print(f"{lr:5g} {unstable_below(lr):10.1e} "
          f"{(f'{np.minimum.accumulate(gd.loss)[rise]:.1e}' if rise is not None else '-'):>11} "
          f"{(f'{gd.loss[flip]:.1e}' if flip is not None else '-'):>12} {gd.status:>15} "
          f"{gd.steps[-1]:11,d} {gd.loss[-1]:11.1e} {abs(gd.product[-1, 0, 0]):7.1f}")
print("\n(det W flips at loss: the loss at the first saved iterate with the other sign. GD's "
      "iterates are saved at\nlog-spaced steps, so this is where the change was seen, up to "
      "the spacing of the saved points.)")


def plot_against_flow(ax1, ax2, flow, descents, depth):
    """Left: |W11| against the loss; right: the loss against the time t = k lr."""
    ax1.loglog(flow.loss[1:], np.abs(flow.product[1:, 0, 0]), "k", lw=3, alpha=0.6)
    ax2.loglog(flow.t[1:], flow.loss[1:], "k", lw=3, alpha=0.6)
    for i, (lr, gd) in enumerate(descents.items()):
        color = f"C{i}"
        ax1.loglog(gd.loss[1:], np.abs(gd.product[1:, 0, 0]), color=color, lw=1.2)
        ax2.loglog(gd.t[1:], gd.loss[1:], color=color, lw=1.2)
        ax1.axvline(unstable_below(lr, depth), color=color, ls=":", lw=1.2)
        ax2.axhline(unstable_below(lr, depth), color=color, ls=":", lw=1.2)
        _, flip = events(gd)
        if flip is not None:
            ax1.plot(gd.loss[flip], abs(gd.product[flip, 0, 0]), "x", color=color, ms=9, mew=2)
            ax2.plot(gd.t[flip], gd.loss[flip], "x", color=color, ms=9, mew=2)
    lowest = min(flow.loss[-1], *(gd.loss[-1] for gd in descents.values()))
    ax1.set_xlim(1, lowest / 2)  # reversed: training moves left to right
    ax1.set_xlabel("loss (decreasing to the right)")
    ax1.set_ylabel("|W11| (the unknown entry)")
    ax2.set_xlabel("time t (GD: iteration x lr)")
    ax2.set_ylabel("loss")
    handles = [Line2D([], [], color="k", lw=3, alpha=0.6, label="exact flow")]
    handles += [Line2D([], [], color=f"C{i}", label=f"GD, lr {lr:.3g}")
                for i, lr in enumerate(descents)]
    handles += [Line2D([], [], color="0.3", ls=":", label="predicted loss_lr where GD\n"
                       "becomes unstable (colour of its lr)"),
                Line2D([], [], color="0.3", ls="", marker="x", ms=8, mew=2,
                       label="GD changes the sign of det W")]
    ax1.legend(handles=handles, fontsize=8, loc="lower right")


fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
plot_against_flow(ax1, ax2, flow, descents, L)
ax1.set_title("GD follows the flow, then settles at a finite |W11|", fontsize=10)
ax2.set_title("The loss rises once GD is unstable, then GD converges", fontsize=10)
save(fig, "02_where_gd_diverts.png")

# %% [markdown]
# ## Explore (in Jupyter, with ipywidgets)
#
# The same two panels for one learning rate at a time. Each slider answers when released.
#
# - **learning rate**: move it down one notch at a time. The dotted line (the predicted
#   `loss_lr`) moves right, and GD follows the black curve further before it leaves. At
#   the smallest rates GD can run out of its budget (1,000,000 iterations) before it gets
#   there: the title then says `max_iterations`. Following the flow to a low loss with a
#   fixed step is expensive, which is why flowsim integrates the flow with an adaptive
#   solver instead.
# - **depth**: at depth 2, GD changes the sign of `det W` early, at a loss around 0.1
#   (the title and the cross say where), at every rate on the slider, and stops at a small
#   `|W11|` (the depth-2 plateau in the paper's Figure 1), while the flow at depth 2 keeps
#   `det W > 0`. This is not the instability above: it happens decades of loss before
#   the predicted `loss_lr`. Theorem 1's protection of the sign holds for the flow from
#   balanced layers; GD's steps change the balance by a term of order `lr^2` per step
#   (see [Derivations](../docs/derivations.md), "Conservation"), and at depth 2 the
#   small singular value comes close to 0 early in training, where such a change can
#   carry it across. (That is the explanation the conservation law offers; this notebook
#   does not measure it.) At depth 4 the prediction `loss_lr` moves left (higher loss):
#   deeper networks get sharper faster.
# - **init scale**: changes the start, not where GD leaves the flow.
#
# Answer times: the flow and GD need compiling once per depth. The cell below runs, for
# depths 2, 3 and 4 and every value of the **init scale** slider, the flow and GD at
# every learning rate of the slider (GD up to 1,000,000 iterations each); its time is
# printed under it. Moving any slider then only redraws the figure, whose lines are
# updated in place.

# %%
EXPLORE_BUDGET = 1_000_000


@functools.cache
def explore_flow(depth, scale_decade):
    m = fs.DeepMatrixFactorization((2, 2), depth=depth)
    start = fs.balanced_init(m, seed=0, scale=10.0 ** scale_decade, det_sign=+1)
    return fs.gradient_flow(problem, m, start, stop_loss=STOP, progress=False)


@functools.cache
def explore_descent(depth, scale_decade, lr_decade):
    m = fs.DeepMatrixFactorization((2, 2), depth=depth)
    start = fs.balanced_init(m, seed=0, scale=10.0 ** scale_decade, det_sign=+1)
    return fs.gradient_descent(problem, m, start, 10.0 ** lr_decade, stop_loss=STOP,
                               max_iterations=EXPLORE_BUDGET, progress=False)


# the sliders' values (decades); the quick version has fewer, so that less is prepared
LR_RANGE = (-2.25, -0.75, 0.5) if QUICK else (-2.5, -0.75, 0.25)  # low, high, step
SCALE_STEP = 1.0 if QUICK else 0.5
EXPLORE_LRS = np.arange(LR_RANGE[0], LR_RANGE[1] + 0.01, LR_RANGE[2])
EXPLORE_SCALES = np.arange(-3, -0.99, SCALE_STEP)
with Timer(f"prepared depths 2, 3 and 4 at {len(EXPLORE_SCALES)} init scales: the flow, and GD "
           f"at {len(EXPLORE_LRS)} learning rates"):
    for depth in (2, 3, 4):
        for scale_decade in EXPLORE_SCALES:
            explore_flow(depth, round(float(scale_decade), 6))
            for lr_decade in EXPLORE_LRS:
                explore_descent(depth, round(float(scale_decade), 6),
                                round(float(lr_decade), 6))


def draw(fig, learning_rate, depth, init_scale):
    """The two panels for one setting: built on the first call, updated afterwards."""
    lr_decade, scale_decade = decade(learning_rate), decade(init_scale)
    flow_run = explore_flow(depth, scale_decade)
    gd = explore_descent(depth, scale_decade, lr_decade)
    lr, predicted = 10.0 ** lr_decade, unstable_below(10.0 ** lr_decade, depth)
    _, flip = events(gd)
    if not fig.axes:  # the first call: axes, empty lines, labels and the legend
        ax1, ax2 = fig.subplots(1, 2)
        for ax in (ax1, ax2):
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.plot([], [], "k", lw=3, alpha=0.6)  # the flow
            ax.plot([], [], color="C0", lw=1.2)  # GD
            ax.plot([], [], "x", color="C0", ms=9, mew=2)  # where GD flips det W
        ax1.axvline(predicted, color="C0", ls=":", lw=1.2)
        ax2.axhline(predicted, color="C0", ls=":", lw=1.2)
        ax1.set_xlabel("loss (decreasing to the right)")
        ax1.set_ylabel("|W11| (the unknown entry)")
        ax2.set_xlabel("time t (GD: iteration x lr)")
        ax2.set_ylabel("loss")
        ax1.legend(handles=[Line2D([], [], color="k", lw=3, alpha=0.6, label="exact flow"),
                            Line2D([], [], color="C0", label="GD"),
                            Line2D([], [], color="C0", ls=":", label="predicted loss_lr"),
                            Line2D([], [], color="C0", ls="", marker="x", ms=8, mew=2,
                                   label="GD changes the sign of det W")],
                   fontsize=8, loc="lower right")
    ax1, ax2 = fig.axes
    pairs = ((flow_run.loss[1:], np.abs(flow_run.product[1:, 0, 0]), flow_run.t[1:]),
             (gd.loss[1:], np.abs(gd.product[1:, 0, 0]), gd.t[1:]))
    for (loss, w11, t), line1, line2 in zip(pairs, ax1.lines[:2], ax2.lines[:2]):
        line1.set_data(loss, w11)
        line2.set_data(t, loss)
    marks = ([gd.loss[flip]], [abs(gd.product[flip, 0, 0])], [gd.t[flip]]) if flip is not None \
        else ([], [], [])
    ax1.lines[2].set_data(marks[0], marks[1])
    ax2.lines[2].set_data(marks[2], marks[0])
    ax1.lines[3].set_xdata([predicted, predicted])
    ax2.lines[3].set_ydata([predicted, predicted])
    for ax in (ax1, ax2):
        ax.relim()
        ax.autoscale_view()
    ax1.set_xlim(1, min(flow_run.loss[-1], gd.loss[-1]) / 2)  # reversed: left to right
    flipped = f"det W flipped near loss {gd.loss[flip]:.2g}" if flip is not None \
        else "det W kept its sign"
    fig.suptitle(f"depth {depth}, lr {lr:.3g}: GD {gd.status} after "
                 f"{gd.steps[-1]:,d} iterations, loss {gd.loss[-1]:.1e}, "
                 f"|W11| {abs(gd.product[-1, 0, 0]):.1f}, {flipped} (flow at loss "
                 f"{flow_run.loss[-1]:.0e}: |W11| {abs(flow_run.product[-1, 0, 0]):.0f})",
                 fontsize=9)


panel = explore(draw, {"learning_rate": log_slider("learning rate", 10 ** -1.25, *LR_RANGE,
                                                   fmt=".3f"),
                       "depth": int_slider("depth", 3, 2, 4),
                       "init_scale": log_slider("init scale", 1e-2, -3, -1, step=SCALE_STEP)},
                name="02_explore.png", figsize=(11, 4))
