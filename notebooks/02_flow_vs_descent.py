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
# The paper's experiments run gradient descent (GD) with a small learning rate as a
# stand-in for gradient flow (step `k` <-> time `t = k * lr`). How close is it?
#
# 1. At equal time, GD deviates from the flow by O(lr): GD is Euler's method on Eq. (4).
# 2. Late in the run the flow gets stiff: the sharpness grows like `|W11|^(2 - 2/L)`, and
#    fixed-step GD can only follow the flow down to a loss of about `1/2 (lr/2)^(L/(L-1))`
#    (docs/numerics.md). Below that it diverts: it settles where the flow would keep going.

# %%
import matplotlib.pyplot as plt
import numpy as np
from _notebook import QUICK, in_kernel, save

import flowsim as fs

problem = fs.paper_problem()
model = fs.DeepMatrixFactorization((2, 2), depth=3)
params = fs.balanced_init(model, seed=0, scale=1e-2, det_sign=+1)

# %% [markdown]
# ## Deviation at equal time against the learning rate

# %%
T = 20.0
LRS = np.array([0.1, 0.03, 0.01]) if QUICK else np.array([0.1, 0.05, 0.02, 0.01, 0.005])
deviation = []
for lr in LRS:
    steps = np.unique(np.round(np.array([0.25, 0.5, 1.0]) * T / lr).astype(int))
    comparison = fs.descent_vs_flow(problem, model, params, lr, steps)
    deviation.append(comparison.product_relative.max())
deviation = np.array(deviation)
order, _ = fs.convergence_order(LRS, deviation)
print(f"max relative deviation of W up to t = {T:g}: {dict(zip(LRS.tolist(), deviation))}")
print(f"fitted order in lr: {order:.2f} (Euler: 1)")

fig, ax = plt.subplots(figsize=(5, 4))
ax.loglog(LRS, deviation, "o-", label="GD vs flow, max over t <= 20")
ax.loglog(LRS, deviation[-1] * LRS / LRS[-1], "k--", label="slope 1")
ax.set_xlabel("learning rate")
ax.set_ylabel("relative deviation of W")
ax.set_title(f"order {order:.2f}")
ax.legend()
save(fig, "02_deviation_vs_lr.png")

# %% [markdown]
# ## Where GD diverts from the flow
# `|W11|` against the loss for the flow and for GD at a few learning rates; the dotted
# lines mark the predicted floor `1/2 (lr/2)^(L/(L-1))` of each learning rate.

# %%
STOP = 1e-5 if QUICK else 1e-7
BUDGET = 200_000 if QUICK else 5_000_000
flow = fs.gradient_flow(problem, model, params, stop_loss=STOP, progress=False)
descents = {lr: fs.gradient_descent(problem, model, params, lr, stop_loss=STOP,
                                    max_iterations=BUDGET, progress=False)
            for lr in ((0.05, 0.02) if QUICK else (0.05, 0.02, 0.01))}
L = model.depth
fig, ax = plt.subplots(figsize=(6.5, 4.2))
ax.loglog(flow.loss[1:], np.abs(flow.product[1:, 0, 0]), "k", lw=2.5, label="exact flow")
for i, (lr, gd) in enumerate(descents.items()):
    ax.loglog(gd.loss[1:], np.abs(gd.product[1:, 0, 0]), f"C{i}", label=f"GD lr {lr:g}")
    ax.axvline(0.5 * (lr / 2) ** (L / (L - 1)), color=f"C{i}", ls=":")
    print(f"GD lr {lr:g}: {gd.status} after {gd.steps[-1]} steps, loss {gd.loss[-1]:.2e}, "
          f"|W11| {abs(gd.product[-1, 0, 0]):.3f}; floor estimate "
          f"{0.5 * (lr / 2) ** (L / (L - 1)):.1e}")
ax.invert_xaxis()
ax.set_xlabel("loss")
ax.set_ylabel("|W11|")
ax.legend()
save(fig, "02_where_gd_diverts.png")

# %% [markdown]
# ## Explore (needs a Jupyter kernel with ipywidgets)

# %%
if in_kernel():
    import ipywidgets as widgets

    def explore(log10_lr=-2.0, depth=3, log10_scale=-2.0):
        m = fs.DeepMatrixFactorization((2, 2), depth=depth)
        start = fs.balanced_init(m, seed=0, scale=10 ** log10_scale, det_sign=+1)
        f = fs.gradient_flow(problem, m, start, stop_loss=1e-6, progress=False)
        g = fs.gradient_descent(problem, m, start, 10 ** log10_lr, stop_loss=1e-6,
                                max_iterations=2_000_000, progress=False)
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.loglog(f.loss[1:], np.abs(f.product[1:, 0, 0]), "k", label="flow")
        ax.loglog(g.loss[1:], np.abs(g.product[1:, 0, 0]), label=f"GD lr {10 ** log10_lr:.3g}")
        ax.invert_xaxis()
        ax.legend()
        plt.show()

    widgets.interact(explore, log10_lr=(-3.0, -1.0, 0.25), depth=(2, 4),
                     log10_scale=(-3.0, -1.0, 0.5))
