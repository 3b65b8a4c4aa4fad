"""Proposition 4: depth 2, W(0) = alpha I with alpha in (0, 1]: the loss tends to 0.

docs/derivations.md, E. For symmetric positive definite W, Lemma 4 at N = 2 reads
``W' = -(G sqrt(W^T W) + sqrt(W W^T) G)`` with ``G = mask * (W - B)``; sympy derives the
entry ODE of ``W = [[x, y], [y, z]]`` from it, using the closed form ``sqrt(M) = (M +
sqrt(det M) I) / sqrt(tr M + 2 sqrt(det M))`` for PSD 2x2 M, and shows
``d/dt log det W = -2 z`` (so det W never reaches 0: W stays positive definite).
Integration uses ``(x, y, log det W)`` as state, which keeps det's sign exactly (det
cancels in float64 once it is ~1e-16, docs/numerics.md), and is cross-checked against
``flowsim.gradient_flow`` on the factors of :func:`flowsim.identity_init`.
"""

from __future__ import annotations

import numpy as np
import scipy.integrate
import sympy as sp

from .result import CheckResult, slack_result

CLAIM = "Proposition 4"

X, Y = sp.symbols("x y", real=True)
Z, D = sp.symbols("z D", positive=True)  # z = W22 > 0 and D = det W > 0 on the PD cone

#: the entry ODE as written in docs/derivations.md, E (the statement checked)
STATED = (-2 * Y * (Y - 1), -((Y - 1) * (X + Z) + Y * Z), -2 * (Y * (Y - 1) + Z**2))


def _psd_sqrt(m: sp.Matrix, sqrt_det: sp.Expr, sqrt_trace: sp.Expr) -> sp.Matrix:
    """Closed-form square root of a PSD 2x2 matrix."""
    return (m + sqrt_det * sp.eye(2)) / sqrt_trace


def derive_entry_ode() -> tuple[sp.Expr, sp.Expr, sp.Expr, sp.Expr]:
    """``(x', y', z', y'_{21})`` from Lemma 4 at N = 2 for symmetric PD ``W``, with
    ``x = (D + y^2) / z`` eliminated (so det W = D > 0 and tr W > 0 hold symbolically)."""
    w = sp.Matrix([[X, Y], [Y, Z]])
    g = sp.Matrix([[0, Y - 1], [Y - 1, Z]])  # mask * (W - B), B = [[., 1], [1, 0]]
    x_of = (D + Y**2) / Z
    sub = {X: x_of}
    m = (w * w.T).subs(sub)
    # sqrt(det(W W^T)) = det W = D; sqrt(tr + 2 sqrt det) = tr W = x + z (both > 0)
    root = _psd_sqrt(m, D, x_of + Z)
    rhs = -(g.subs(sub) * root + root * g.subs(sub))
    back = {D: X * Z - Y**2}
    parts = [sp.simplify(sp.simplify(e).subs(back)) for e in (rhs[0, 0], rhs[0, 1], rhs[1, 1],
                                                               rhs[1, 0])]
    return tuple(parts)


def check_entry_ode(stated=STATED) -> CheckResult:
    """The derived entry ODE equals ``stated`` (x', y', z'), and W' is symmetric."""
    derived = derive_entry_ode()
    residuals = [sp.simplify(d - s) for d, s in zip(derived[:3], stated)]
    symmetric = sp.simplify(derived[1] - derived[3]) == 0
    ok = all(r == 0 for r in residuals) and symmetric
    evidence = ("sympy: Lemma 4 (N=2, closed-form PSD sqrt) gives x' = -2y(y-1), "
                "y' = -[(y-1)(x+z) + yz], z' = -2[y(y-1) + z^2]" if ok else
                f"residuals {residuals}, W' symmetric: {symmetric}")
    return CheckResult(CLAIM, "entry ODE of W = [[x,y],[y,z]] from Lemma 4", evidence,
                       0.0 if ok else -1.0, ok, "derived", {"derived": [str(d) for d in derived]})


def check_log_det_rate(ode=STATED) -> CheckResult:
    """``d/dt det W = -2 z det W`` along ``ode``: det(t) = det(0) exp(-2 int z) > 0."""
    dx, dy, dz = ode
    rate = sp.simplify(dx * Z + X * dz - 2 * Y * dy + 2 * Z * (X * Z - Y**2))
    ok = rate == 0
    return CheckResult(CLAIM, "d/dt det W = -2 W22 det W (W stays positive definite)",
                       "sympy: exact" if ok else f"residual {rate}", 0.0 if ok else -1.0, ok,
                       "derived")


def integrate_entry_ode(alpha: float, stop_loss: float, t_max: float = 1e14,
                        rtol: float = 1e-10, atol: float = 1e-12) -> dict:
    """Integrate the entry ODE from ``alpha I`` with state ``(x, y, log det W)``
    (``z = (det + y^2) / x``) by scipy Radau until the loss reaches ``stop_loss``.
    Returns arrays ``t, x, y, z, loss``."""
    def split(u):
        x, y, logdet = u
        return x, y, (np.exp(logdet) + y * y) / x

    def rhs(_, u):
        x, y, z = split(u)
        return [-2 * y * (y - 1), -((y - 1) * (x + z) + y * z), -2 * z]

    def jac(_, u):
        x, y, logdet = u
        det = np.exp(logdet)
        z = (det + y * y) / x
        dz = np.array([-z / x, 2 * y / x, det / x])  # dz / d(x, y, log det)
        dydt = -np.array([(y - 1), (x + z) + z, 0.0]) - ((y - 1) + y) * dz
        return np.array([[0.0, -(4 * y - 2), 0.0], dydt, -2 * dz])

    def loss_of(u):
        x, y, z = split(u)
        return 0.5 * (2 * (y - 1) ** 2 + z**2)

    event = lambda t, u: np.log(loss_of(u) / stop_loss)  # noqa: E731
    event.terminal = True
    sol = scipy.integrate.solve_ivp(rhs, (0.0, t_max), [alpha, 0.0, 2 * np.log(alpha)],
                                    method="Radau", rtol=rtol, atol=atol, events=event,
                                    jac=jac)
    x, y, z = split(sol.y)
    return {"t": sol.t, "x": x, "y": y, "z": z, "loss": loss_of(sol.y),
            "status": sol.status, "message": sol.message}


def check_loss_to_zero(t, loss, target: float, label: str = "") -> CheckResult:
    """The loss is non-increasing (to 1e-12 relative) and reaches ``target`` (to 1e-9
    relative: the stop event locates it to rounding). Slack: ``log10(target (1 + 1e-9) /
    min loss)`` and ``1e-12 - `` each relative rise."""
    loss = np.asarray(loss)
    rises = np.diff(loss) / loss[:-1]
    slack = np.concatenate([[np.log10(target * (1 + 1e-9) / loss.min())], 1e-12 - rises])
    return slack_result(CLAIM, "loss -> 0 from W(0) = alpha I (depth 2)", slack,
                        f"{label}loss {loss[0]:.3g} -> {loss.min():.3e} at t = "
                        f"{np.asarray(t)[np.argmin(loss)]:.3e}, non-increasing "
                        f"(max relative rise {max(rises.max(), 0):.1e})", source="paper")


def check_matches_flow(w11_ode: float, w11_flow: float, level: float, tol: float = 1e-6,
                       label: str = "") -> CheckResult:
    """W11 where the loss first reaches ``level``: entry ODE vs flowsim's flow (default
    coordinates)."""
    rel = abs(w11_ode - w11_flow) / abs(w11_flow)
    return CheckResult(CLAIM, f"entry ODE vs flowsim.gradient_flow(identity_init) at loss "
                       f"{level:g}", f"{label}W11 = {w11_ode:.9g} vs {w11_flow:.9g} "
                       f"(rel {rel:.1e})", tol - rel, bool(rel <= tol), "numeric",
                       {"rel": rel})
