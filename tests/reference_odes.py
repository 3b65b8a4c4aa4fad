"""Independent integrations for the tests: the factor ODE of gradient flow (Eq. 4),
written here in numpy and solved by scipy, never through flowsim's own loop.

``W = W_L ... W_1``; ``dW_l/dt = -(W_L ... W_(l+1))^T G (W_(l-1) ... W_1)^T`` with
``G = grad l(W)``: ``mask * (W - B)`` for completion, ``sum_i (<A_i, W> - y_i) A_i`` for
sensing.
"""

from __future__ import annotations

import numpy as np
import scipy.integrate


def completion_gradient(mask, target):
    mask, target = np.asarray(mask, dtype=float), np.asarray(target, dtype=float)
    return lambda w: mask * (w - target)


def sensing_gradient(operators, values):
    a = np.asarray(operators, dtype=float).reshape(len(values), -1)
    y = np.asarray(values, dtype=float)
    return lambda w: (a.T @ (a @ w.ravel() - y)).reshape(w.shape)


class FactorODE:
    """The factor ODE of layers ``shapes`` (``W_1`` first) under the loss gradient
    ``grad(W)``: ``rhs`` for scipy, ``split``, ``product``."""

    def __init__(self, grad, shapes):
        self.grad, self.shapes = grad, [tuple(s) for s in shapes]
        self.cuts = np.cumsum([0] + [a * b for a, b in self.shapes])

    def split(self, y):
        return [y[self.cuts[k]:self.cuts[k + 1]].reshape(s) for k, s in enumerate(self.shapes)]

    def product(self, y):
        ws = self.split(y)
        out = ws[0]
        for w in ws[1:]:
            out = w @ out
        return out

    def rhs(self, t, y):
        ws = self.split(y)
        depth = len(ws)
        rights = [np.eye(ws[0].shape[1])]  # W_(l-1) ... W_1
        for w in ws[:-1]:
            rights.append(w @ rights[-1])
        lefts = [np.eye(ws[-1].shape[0])]  # W_L ... W_(l+1), built from the top
        for w in ws[:0:-1]:
            lefts.append(lefts[-1] @ w)
        lefts = lefts[::-1]
        g = self.grad(ws[-1] @ rights[-1])
        return -np.concatenate([(lefts[k].T @ g @ rights[k].T).ravel()
                                for k in range(depth)])


def flatten(params):
    return np.concatenate([np.asarray(w, dtype=float).ravel() for w in params])


def products_at(grad, params, times, *, method="DOP853", rtol=1e-12, atol=1e-14):
    """``W(t)`` at each of ``times`` (increasing, > 0) from the factors ``params``."""
    ode = FactorODE(grad, [np.shape(w) for w in params])
    sol = scipy.integrate.solve_ivp(ode.rhs, (0, times[-1]), flatten(params), method=method,
                                    rtol=rtol, atol=atol, t_eval=times)
    assert sol.status == 0, sol.message
    return [ode.product(y) for y in sol.y.T]
