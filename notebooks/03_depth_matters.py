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
# # 3. Depth matters
#
# The problem of notebook 1 again: the 2x2 matrix `[[?, 1], [1, 0]]` with the unknown entry
# `W11`, every solution `[[w, 1], [1, 0]]` with `det W = -1`. Here the *same* start
# (a balanced initialization of scale `1e-3` with `det W(0) > 0`) is trained as a product
# of `L = 1, 2, 3, 4` layers, by the exact gradient flow.
#
# - **L = 1** is plain least squares on the entries of `W`. The loss does not depend on
#   `W11`, so its gradient there is 0 and `W11` never moves from its starting value
#   (about `1e-4`). The three known entries move to their targets, `det W` passes
#   through 0 on the way (nothing forbids it at depth 1), and training ends at the
#   solution nearest the start: both singular values about 1, rank 2, small norm.
# - **L >= 2**: a singular value $\sigma$ of $W$ moves at a speed proportional to
#   $\sigma^{2 - 2/L}$ (the paper's Lemma 5:
#   $\dot\sigma_r = -L\,(\sigma_r^2)^{1 - 1/L}
#   \langle \nabla \text{loss}(W), u_r v_r^\top\rangle$), so it can approach 0 but
#   never reach it, and $\det W$ (the product of the signed singular values) keeps its
#   sign. As in notebook 1, $\sigma_1$ (about $|W_{11}|$) grows
#   without bound and $\sigma_2$ falls towards 0: $W$ approaches rank 1.
#
# How fast `sigma_2` falls depends on the depth: near 0 the factor `sigma^(2 - 2/L)` is
# smaller for larger `L` (exponent 1 at `L = 2`, 4/3 at `L = 3`, 3/2 at `L = 4`), so the
# deeper the network, the more slowly `sigma_2` approaches 0 late in training. At depth 2 it
# shrinks by a constant factor per unit of "gradient time" (the flow's own time variable
# `t`; gradient descent with learning rate `lr` reaches it after `t / lr` iterations),
# exponentially, and falls below `10^(-100,000)`, far below anything float64 can represent
# (the table below prints the value this run reaches; the full version, which trains
# further, reaches far lower). flowsim keeps the *logarithm* of each singular value, so
# such values are still exact.

# %%
import functools

import matplotlib.pyplot as plt
import numpy as np
from _notebook import QUICK, Timer, decade, explore, int_slider, log_slider, save
from matplotlib.lines import Line2D

import flowsim as fs

STOP = 1e-6 if QUICK else 1e-8
problem = fs.paper_problem()


def run(depth, scale=1e-3, **options):
    """The exact flow from the balanced start with det > 0, at this depth."""
    model = fs.DeepMatrixFactorization((2, 2), depth=depth)
    start = fs.balanced_init(model, seed=0, scale=scale, det_sign=+1)
    return fs.gradient_flow(problem, model, start, stop_loss=STOP, progress=False, **options)


# %% [markdown]
# ## Four depths, one start
#
# The four runs, each until the loss reaches the stop value. The table gives the final
# matrix and the two singular values as powers of 10 (`log10 sigma`).
#
# **What to look for:** at depth 1, `W11` is still about `1e-4` and the sign of `det W`
# went from + to -; at depths 2-4, `W11` is large (the same value at every depth: it is
# about `1/sqrt(2 loss)`), `det W` kept its sign, and `sigma_2` is tiny, smallest at
# depth 2.

# %%
runs = {depth: run(depth) for depth in (1, 2, 3, 4)}
print(f"{'depth':>5} {'W11':>10} {'W12':>7} {'W21':>7} {'W22':>9} {'det W sign':>11} "
      f"{'log10 sigma_1':>14} {'log10 sigma_2':>14} {'time t':>9}")
for depth, traj in runs.items():
    w = traj.product[-1]
    s1, s2 = traj.log_singular_values[-1] / np.log(10)
    signs = f"{int(traj.det_sign[0]):+d} -> {int(traj.det_sign[-1]):+d}"
    print(f"{depth:5d} {w[0, 0]:10.4g} {w[0, 1]:7.4f} {w[1, 0]:7.4f} {w[1, 1]:9.2e} "
          f"{signs:>11} {s1:14.3f} {s2:14.5g} {traj.t[-1]:9.2e}")

# %% [markdown]
# ## The singular values, depth by depth
#
# Three views of the same four runs:
#
# - **left**, the loss against time: deeper networks sit longer on a plateau near loss 1
#   before they start learning (from a small start every layer is small, and the gradient
#   of one layer is a product of the others), then all go down like a power of `t`;
# - **middle**, `sigma_1` against the loss: depths 2, 3 and 4 lie on top of each other on
#   the line `1/sqrt(2 loss)`, depth 1 stays at 1;
# - **right**, `log10 sigma_2` against the loss. The vertical axis is linear between -1
#   and 1 and logarithmic beyond ("symlog"), so that `-10`, `-100`, `-1000`, ... are
#   equally spaced: the depth-2 value in the table above is a real value of this
#   computation.
#
# **What to look for:** on the right, depth 1 stays at 0 (`sigma_2 = 1`); depth 4 ends
# highest of the deep ones and depth 2 lowest, by tens of thousands of decades (the
# table above gives the numbers of this run).

# %%
styles = {1: dict(color="0.4", ls="-", lw=2), 2: dict(color="C0", lw=5, alpha=0.5),
          3: dict(color="C1", lw=2.5), 4: dict(color="C3", lw=1.2, ls="--")}
fig, (ax0, ax1, ax2) = plt.subplots(1, 3, figsize=(15, 4.2))
for depth, traj in runs.items():
    log_sv = traj.log_singular_values[1:] / np.log(10)
    loss = traj.loss[1:]
    ax0.loglog(traj.t[1:], loss, **styles[depth], label=f"depth {depth}")
    ax1.loglog(loss, 10 ** log_sv[:, 0], **styles[depth], label=f"depth {depth}")
    ax2.plot(loss, log_sv[:, 1], **styles[depth], label=f"depth {depth}")
grid = np.logspace(np.log10(STOP), 0, 100)
ax1.loglog(grid, 1 / np.sqrt(2 * grid), "k:", lw=1, label="1/sqrt(2 loss)")
ax0.set_xlabel("time t")
ax0.set_ylabel("loss")
ax0.set_title("Loss over time", fontsize=10)
ax1.set_ylabel("sigma_1 (largest singular value)")
ax1.set_title("sigma_1 grows like 1/sqrt(2 loss) at every depth >= 2", fontsize=10)
ax2.set_xscale("log")
ax2.set_yscale("symlog", linthresh=1)
ax2.set_ylim(top=0.5)
ax2.set_ylabel("log10 sigma_2 (symlog axis)")
ax2.set_title("sigma_2 falls towards 0, fastest at depth 2", fontsize=10)
for ax in (ax1, ax2):
    ax.set_xlim(1, STOP)
    ax.set_xlabel("loss (decreasing to the right)")
for ax in (ax0, ax1, ax2):
    ax.legend(fontsize=8)
fig.tight_layout()  # (the right panel's label clear of the middle panel)
save(fig, "03_singular_values.png")

# %% [markdown]
# ## When float64 loses the sign of det W (depth 2)
#
# Theorem 1 turns on the *sign* of `det W`, and along the flow `|det W|` becomes tiny
# while the entries of `W` grow. If the computer holds the layers' entries (*factor
# coordinates*, the obvious way to integrate `dW_l/dt = -dloss/dW_l`), `det W` is a
# difference of two numbers of size about 1 (`W11 W22` and `W12 W21`). Once `|det W|` is
# below float64's resolution of those numbers, about `1e-16`, its sign is rounding noise.
# At depth 2 that happens early, near loss `1e-2`, where `|det W|` is already about
# `1e-20`.
#
# flowsim watches for this: a run whose sign of `det W` can no longer be trusted ends with
# status `precision_lost` and says so. Here we ask it to go on anyway
# (`on_precision_loss="continue"`) to see what a naive integration would report. The
# default coordinates for this problem (`"svd"`, the singular values with
# `log|det W|` and the sign of `det W` as variables) keep the sign exactly.
# ([Coordinates](../docs/concepts/coordinates.md) and [Numerics](../docs/numerics.md)
# give the details and the measurements.)
#
# **What to look for:** on the left, the factor-coordinate run (thin blue) follows the
# exact one (thick orange) down to about `1e-20`, then its `det W` turns negative (dashed)
# and grows back to about -1 (`|det W| -> 1`, the value of every solution); the `x` marks
# where the sign was lost, where flowsim's guard would have stopped the run had we not
# asked it to continue (the guard's message is printed below the cell). The time axis
# ends soon after the last of these events; both runs go on to later times without
# anything new happening in this panel. On the right, that run's `|W11|` stalls at a finite
# value: the arithmetic error sent it to an ordinary solution, while the exact flow's
# `|W11|` keeps growing along `1/sqrt(2 loss)`.

# %%
factors = run(2, coordinates="factors", on_precision_loss="continue")
exact = runs[2]
print(f"exact run: {exact.config['coordinates']} coordinates, ended by {exact.status}, "
      f"det W > 0 throughout: {bool(np.all(exact.det_sign > 0))}")
print(f"factor coordinates: ended by {factors.status}, det W changed sign: "
      f"{bool(np.any(factors.det_sign != factors.det_sign[0]))}")
for event in factors.stats.get("precision_events", []):
    print(f"flowsim's guard ({event['kind']}): {event['message']}")

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.3))
t, log_det = exact.t[1:], exact.log_abs_det[1:] / np.log(10)
ax1.semilogx(t, log_det, color="C1", lw=5, alpha=0.5)
t, sign = factors.t[1:], factors.det_sign[1:]
log_det = factors.log_abs_det[1:] / np.log(10)
ax1.semilogx(t, np.where(sign > 0, log_det, np.nan), color="C0", lw=1.5)
ax1.semilogx(t, np.where(sign < 0, log_det, np.nan), color="C0", lw=1.5, ls="--")
flip = np.flatnonzero(factors.det_sign != factors.det_sign[0])
if flip.size:  # the first saved point with the wrong sign
    ax1.plot(factors.t[flip[0]], factors.log_abs_det[flip[0]] / np.log(10), "kx", ms=9, mew=2)
ax1.set_ylim(-45, 3)
# the time axis ends soon after the last event: the exact run leaving the axis (below
# 1e-45) and the factor run's |det W| back near 1 after the sign was lost
events_t = [exact.t[np.argmax(exact.log_abs_det < -45 * np.log(10))]]
if flip.size:
    back = np.flatnonzero((factors.log_abs_det > np.log(0.5)) &
                          (np.arange(factors.t.size) > flip[0]))
    events_t.append(factors.t[back[0]] if back.size else factors.t[-1])
ax1.set_xlim(right=3 * max(events_t))
ax1.set_xlabel("time t")
ax1.set_ylabel("log10 |det W|")
ax1.set_title(f"exact: log10 |det W| reaches {exact.log_abs_det[-1] / np.log(10):.3g} "
              "(far below the axis)", fontsize=10)
ax1.legend(handles=[Line2D([], [], color="C1", lw=5, alpha=0.5,
                           label="exact (svd coordinates), det W > 0"),
                    Line2D([], [], color="C0", lw=1.5, label="factor coordinates, det W > 0"),
                    Line2D([], [], color="C0", lw=1.5, ls="--",
                           label="factor coordinates, det W < 0 (sign lost)"),
                    Line2D([], [], color="k", ls="", marker="x", ms=8, mew=2,
                           label="where the sign was lost")], fontsize=8, loc="lower left")
ax2.loglog(exact.loss[1:], np.abs(exact.product[1:, 0, 0]), color="C1", lw=5, alpha=0.5,
           label="exact (svd coordinates)")
ax2.loglog(factors.loss[1:], np.abs(factors.product[1:, 0, 0]), color="C0", lw=1.5,
           label="factor coordinates, continued")
ax2.loglog(exact.loss[1:], 1 / np.sqrt(2 * exact.loss[1:]), "k:", lw=1, label="1/sqrt(2 loss)")
ax2.set_xlim(1, STOP)
ax2.set_xlabel("loss (decreasing to the right)")
ax2.set_ylabel("|W11| (the unknown entry)")
ax2.set_title("Depth 2: with the sign lost, |W11| stalls", fontsize=10)
ax2.legend(fontsize=8, loc="upper left")
fig.tight_layout()
save(fig, "03_det_sign_depth2.png")

# %% [markdown]
# ## Explore (in Jupyter, with ipywidgets)
#
# One depth at a time, with the loss over time (left) and both singular values against the
# loss (right; at depth 2 on the symlog axis used above, since `log10 sigma_2` reaches
# `-10^5` and beyond). Each slider answers when released.
#
# - **depth**: go from 1 to 2. At depth 1 both singular values stay near 1 (`log10 = 0`);
#   from depth 2 on they split: `sigma_1` climbs along `1/sqrt(2 loss)`, `sigma_2` falls.
#   Compare how far `sigma_2` falls at depths 2, 3 and 4, and how long the plateau on the
#   left lasts.
# - **init scale**: a smaller start makes the plateau near loss 1 longer, most of all for
#   deep networks (try depth 4 at scale `1e-4`); the end of the run does not change.
#
# Answer times: the cell below runs the flow at every depth and every value of the
# **init scale** slider first (its time is printed under it; the solver is the one
# compiled above), so moving a slider only redraws the figure, whose lines are updated in
# place.

# %%
@functools.cache
def explore_run(depth, scale_decade):
    if scale_decade == -3.0:
        return runs[depth]  # computed above
    return run(depth, scale=10.0 ** scale_decade)


EXPLORE_SCALES = np.arange(-4, -0.9, 0.5)  # the init scale slider's values (decades)
with Timer(f"prepared depths 1-4 at {len(EXPLORE_SCALES)} init scales"):
    for depth in (1, 2, 3, 4):
        for scale_decade in EXPLORE_SCALES:
            explore_run(depth, round(float(scale_decade), 6))


def draw(fig, depth, init_scale):
    """One depth's two panels: built on the first call, their lines updated afterwards."""
    scale_decade = decade(init_scale)
    traj = explore_run(depth, scale_decade)
    log_sv = traj.log_singular_values[1:] / np.log(10)
    symlog = log_sv.min() < -100  # depth 2: a logarithmic axis for the number of decades
    if not fig.axes:  # the first call: axes, lines and labels
        ax1, ax2 = fig.subplots(1, 2)
        ax1.loglog([1], [1], "k")
        ax1.set_xlabel("time t")
        ax1.set_ylabel("loss")
        ax2.plot([1], [0], "C3", label="log10 sigma_1")
        ax2.plot([1], [0], "C0", label="log10 sigma_2")
        ax2.set_xscale("log")
        ax2.set_xlim(1, STOP)
        ax2.set_xlabel("loss (decreasing to the right)")
        ax2.legend(fontsize=8, loc="lower left")
    ax1, ax2 = fig.axes
    ax1.lines[0].set_data(traj.t[1:], traj.loss[1:])
    ax1.relim()
    ax1.autoscale_view()
    ax1.set_title(f"depth {depth}, init scale {10.0 ** scale_decade:.0e}: loss "
                  f"{traj.loss[-1]:.0e} at t = {traj.t[-1]:.1e}", fontsize=9)
    for line, column in zip(ax2.lines, (0, 1)):
        line.set_data(traj.loss[1:], log_sv[:, column])
    if symlog and ax2.get_yscale() != "symlog":
        ax2.set_yscale("symlog", linthresh=1)
    elif not symlog and ax2.get_yscale() != "linear":
        ax2.set_yscale("linear")
    ax2.relim()
    ax2.autoscale_view(scalex=False)
    if symlog:
        ax2.set_ylim(top=10.0)
    ax2.set_ylabel("log10 singular value" + (" (symlog axis)" if symlog else ""))
    ax2.set_title(f"final: log10 sigma_1 = {log_sv[-1, 0]:.3f}, "
                  f"log10 sigma_2 = {log_sv[-1, 1]:.4g}", fontsize=9)


panel = explore(draw, {"depth": int_slider("depth", 3, 1, 4),
                       "init_scale": log_slider("init scale", 1e-3, -4, -1)},
                name="03_explore.png")
