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
# The same 2x2 problem (Eq. 6) and the same balanced start (product scale 1e-3,
# `det W(0) > 0`), factorized with depth L = 1, 2, 3, 4.
#
# - L = 1 is plain least squares: the unobserved W11 never moves, det passes through 0
#   (nothing forbids it at depth 1) and the flow ends at a rank-2 solution.
# - L >= 2: by Lemma 5 the signed singular values move like
#   `sigma_r' = -L (sigma_r^2)^(1 - 1/L) <grad, u_r v_r^T>` and never cross 0, so det keeps
#   its sign, the small singular value `sigma_2` goes to 0 and `|W11|` to infinity.
#   The deeper the factorization, the sharper the separation of the singular values.
#
# Depth 2 is where plain coordinates fail: `det W` decays super-polynomially and in float64
# factor coordinates its sign is lost (docs/numerics.md). The singular-value coordinates
# (`coordinates="svd"`, with `log det W` as a coordinate) keep it.

# %%
import matplotlib.pyplot as plt
import numpy as np
from _notebook import QUICK, in_kernel, save

import flowsim as fs

STOP = 1e-4 if QUICK else 1e-8
# The quick (CI) version uses scipy's LSODA: nothing to compile for five model shapes.
SOLVER = "LSODA" if QUICK else "Kvaerno5"
problem = fs.paper_problem()
SVD = "svd" if "svd" in fs.COORDINATES else "factors"


def run(depth, coordinates=None, scale=1e-3, stop_loss=STOP, **options):
    """Flow from the balanced start with det > 0 (depth 1: plain least squares)."""
    model = fs.DeepMatrixFactorization((2, 2), depth=depth)
    coords = "factors" if depth == 1 else (coordinates or SVD)
    params = fs.balanced_init(model, seed=0, scale=scale, det_sign=+1)
    return fs.gradient_flow(problem, model, params, coordinates=coords, stop_loss=stop_loss,
                            solver=SOLVER, progress=False, **options)


runs = {depth: run(depth) for depth in (1, 2, 3, 4)}
for depth, traj in runs.items():
    w = traj.product[-1]
    print(f"depth {depth} ({traj.config['coordinates']}): {traj.status}, W11 = {w[0, 0]:.4f}, "
          f"det sign {int(traj.det_sign[0]):+d} -> {int(traj.det_sign[-1]):+d}")

# %% [markdown]
# ## Singular values over log-time
# `log10 sigma_1` and `log10 sigma_2`; `sigma_2 = |det W| / sigma_1` is taken from the run's
# own `log|det W|`, so it is resolved far below rounding of the entries (and below
# float64's smallest number: at depth 2 it decays super-polynomially).

# %%
fig, axes = plt.subplots(1, 4, figsize=(15, 3.6))
for ax, (depth, traj) in zip(axes, runs.items()):
    t = traj.t[1:]
    log_s1 = np.log10(fs.singular_values(traj.product[1:])[:, 0])
    # log10 sigma_2 from log|det| directly: at depth 2 sigma_2 underflows float64
    log_s2 = traj.log_abs_det[1:] / np.log(10) - log_s1
    ax.semilogx(t, log_s1, label=r"$\log_{10}\sigma_1$")
    ax.semilogx(t, log_s2, label=r"$\log_{10}\sigma_2$")
    ax.set_title(f"depth {depth}: final log10 sigma_2 = {log_s2[-1]:.4g}", fontsize=9)
    ax.set_xlabel("t")
axes[0].set_ylabel("log10 singular value")
axes[0].legend()
save(fig, "03_singular_values.png")

# %% [markdown]
# ## The sign of det at depth 2: factor coordinates vs singular-value coordinates
# The same depth-2 start integrated in both. Once `|det W|` falls below ~1e-16 of `||W||^2`
# the factor coordinates cannot resolve its sign. flowsim then ends such a run with status
# `precision_lost`; here we ask it to go on (`on_precision_loss="continue"`) to show what
# happens: the run switches branch and `|W11|` stalls at a finite value. The `svd`
# coordinates carry `log det W` and the sign exactly, so `|W11|` keeps growing like
# `1/sqrt(2 loss)`.

# %%
depth2 = {"factors": run(2, "factors", on_precision_loss="continue"), SVD: runs[2]}
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
for i, (name, traj) in enumerate(depth2.items()):
    t, sign = traj.t[1:], traj.det_sign[1:]
    log_det = traj.log_abs_det[1:] / np.log(10)
    ax1.semilogx(t, np.where(sign > 0, log_det, np.nan), f"C{i}-", label=f"{name}, det > 0")
    ax1.semilogx(t, np.where(sign < 0, log_det, np.nan), f"C{i}--", label=f"{name}, det < 0")
    ax2.loglog(traj.loss[1:], np.abs(traj.product[1:, 0, 0]), label=name)
ax2.loglog(depth2[SVD].loss[1:], 1 / np.sqrt(2 * depth2[SVD].loss[1:]), "k--",
           label="1/sqrt(2 loss)")
ax2.invert_xaxis()
ax1.set_xlabel("t")
ax1.set_ylabel("log10 |det W|")
ax1.set_ylim(-40, 2)
ax1.set_title(f"svd: log10|det W| reaches {depth2[SVD].log_abs_det[-1] / np.log(10):.3g}",
              fontsize=9)
ax1.legend()
ax2.set_xlabel("loss")
ax2.set_ylabel("|W11|")
ax2.legend()
save(fig, "03_det_sign_depth2.png")

# %% [markdown]
# ## Explore (needs a Jupyter kernel with ipywidgets)

# %%
if in_kernel():
    import ipywidgets as widgets

    def explore(depth=3, log10_scale=-3.0):
        traj = run(depth, scale=10 ** log10_scale)
        log_s1 = np.log10(fs.singular_values(traj.product[1:])[:, 0])
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.semilogx(traj.t[1:], log_s1, label="log10 sigma_1")
        ax.semilogx(traj.t[1:], traj.log_abs_det[1:] / np.log(10) - log_s1,
                    label="log10 sigma_2")
        ax.set_xlabel("t")
        ax.legend()
        plt.show()

    widgets.interact(explore, depth=(1, 4), log10_scale=(-4.0, -1.0, 0.5))
