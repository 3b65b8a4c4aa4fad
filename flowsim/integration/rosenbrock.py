"""Rosenbrock (linearly implicit) methods for small stiff flows: Rodas5P and Rodas4.

An implicit Runge-Kutta method such as Kvaerno5 solves a nonlinear system at each of its
implicit stages by Newton's method: at flowsim's sizes (a 2x2 depth-3 flow has 7-12
unknowns) each Newton iteration costs a Jacobian and an LU factorization, about twelve of
each per step. A Rosenbrock method builds the linearization into the scheme instead: one
exact Jacobian ``J`` and one factorization of ``E = I / (h gamma) - J`` per step, then one
linear solve per stage, no iteration and no convergence test. Its accuracy needs the exact
Jacobian, which ``jax.linearize`` gives at the cost of ``P`` Jacobian-vector products.

Both methods here are stiffly accurate and L-stable, in Hairer & Wanner's form
(*Solving Ordinary Differential Equations II*, section IV.7). For an autonomous field
``F`` with ``Y_1 = y_n``:

    E k_i = F(Y_i) + (1/h) sum_{j<i} c_ij k_j,     Y_i = y_n + sum_{j<i} a_ij k_j,
    y_{n+1} = Y_s + k_s,   error estimate = k_s,

where the last stages have no row of ``a`` of their own: ``Y_i = Y_{i-1} + k_{i-1}``.

- Rodas5P (Steinebach, BIT Numer. Math. 63:27, 2023): 8 stages, order 5, embedded order
  4, the embedded method A-stable (that of the older Rodas5 is not).
- Rodas4: Hairer & Wanner's RODAS (``rodas.f``, coefficient set ``METH = 1``): 6 stages,
  order 4, embedded order 3.

Where they win and lose against Kvaerno5 (measured): docs/numerics.md, "Small flows to
moderate losses".
"""

from __future__ import annotations

from dataclasses import dataclass

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import lu_factor, lu_solve


@dataclass(frozen=True)
class Tableau:
    """A stiffly accurate Rosenbrock method (module doc): ``gamma``; the rows ``a_i`` for
    stages ``2 .. len(a) + 1`` (later stages evaluate at ``Y_{i-1} + k_{i-1}``); the rows
    ``c_i`` for stages ``2 .. s``; the order; the order of the error estimate ``k_s``."""

    gamma: float
    a: tuple
    c: tuple
    order: int
    error_order: int

    @property
    def stages(self) -> int:
        return len(self.c) + 1

    def matrices(self):
        """``(A, C)`` as square arrays over the stages plus one row: ``Y_i = y_n + A_i k``
        (rows past those of ``a`` add the previous increment), ``y_{n+1} = y_n + A_s k``,
        and ``C_i k`` the stage's ``sum_j c_ij k_j``."""
        s = self.stages
        a, c = np.zeros((s + 1, s)), np.zeros((s + 1, s))
        for i in range(1, s + 1):
            if i <= len(self.a):
                a[i, :i] = self.a[i - 1]
            else:
                a[i] = a[i - 1]
                a[i, i - 1] += 1.0
            if i < s:
                c[i, :i] = self.c[i - 1]
        return a, c


#: Hairer & Wanner's RODAS (``rodas.f``, ``METH = 1``): 6 stages, order 4(3)
RODAS4 = Tableau(
    gamma=0.25,
    a=((1.544,),
       (0.9466785280815826, 0.2557011698983284),
       (3.314825187068521, 2.896124015972201, 0.9986419139977817),
       (1.221224509226641, 6.019134481288629, 12.53708332932087, -0.6878860361058950)),
    c=((-5.6688,),
       (-2.430093356833875, -0.2063599157091915),
       (-0.1073529058151375, -9.594562251023355, -20.47028614809616),
       (7.496443313967647, -10.24680431464352, -33.99990352819905, 11.70890893206160),
       (8.083246795921522, -7.981132988064893, -31.52159432874371, 16.31930543123136,
        -6.058818238834054)),
    order=4, error_order=4)

#: Steinebach's Rodas5P (BIT Numer. Math. 63:27, 2023): 8 stages, order 5(4), L-stable,
#: its embedded method A-stable
RODAS5P = Tableau(
    gamma=0.21193756319429014,
    a=((3.0,),
       (2.849394379747939, 0.45842242204463923),
       (-6.954028509809101, 2.489845061869568, -10.358996098473584),
       (2.8029986275628964, 0.5072464736228206, -0.3988312541770524,
        -0.04721187230404641),
       (-7.502846399306121, 2.561846144803919, -11.627539656261098,
        -0.18268767659942256, 0.030198172008377946)),
    c=((-14.155112264123755,),
       (-17.97296035885952, -2.859693295451294),
       (147.12150275711716, -1.41221402718213, 71.68940251302358),
       (165.43517024871676, -0.4592823456491126, 42.90938336958603, -5.961986721573306),
       (24.854864614690072, -3.0009227002832186, 47.4931110020768, 5.5814197821558125,
        -0.6610691825249471),
       (30.91273214028599, -3.1208243349937974, 77.79954646070892, 34.28646028294783,
        -19.097331116725623, -28.087943162872662),
       (37.80277123390563, -3.2571969029072276, 112.26918849496327, 66.9347231244047,
        -40.06618937091002, -54.66780262877968, -9.48861652309627)),
    order=5, error_order=5)

TABLEAUS = {"Rodas4": RODAS4, "Rodas5P": RODAS5P}


class RosenbrockState(eqx.Module):
    """Cumulative counts of vector-field evaluations and Jacobian-vector products (a
    Jacobian is ``P`` of them)."""

    fevals: jax.Array
    jvps: jax.Array


class Rosenbrock(eqx.Module):
    """The solver interface the compiled loop uses (``init``, ``step``, ``func``,
    ``error_order``), for an autonomous term ``F(t, y, args)``."""

    tableau: Tableau = eqx.field(static=True)

    def func(self, term, t, y, args):
        return term.vf(t, y, args)

    def error_order(self, term):
        return self.tableau.error_order

    def init(self, term, t0, t1, y0, args) -> RosenbrockState:
        zero = jnp.zeros((), jnp.float64)
        return RosenbrockState(fevals=zero, jvps=zero)

    def step(self, term, t0, t1, y0, args, state: RosenbrockState, made_jump):
        del made_jump
        tab = self.tableau
        a, c = (jnp.asarray(m, y0.dtype) for m in tab.matrices())
        h = t1 - t0
        field = lambda z: term.vf(t0, z, args)  # noqa: E731  (autonomous)
        f0, jvp = jax.linearize(field, y0)
        n = y0.shape[0]
        eye = jnp.eye(n, dtype=y0.dtype)
        lu = lu_factor(eye / (tab.gamma * h) - jax.vmap(jvp, out_axes=1)(eye))
        ks = jnp.zeros((tab.stages, n), y0.dtype).at[0].set(lu_solve(lu, f0))

        def stage(i, ks):  # one traced copy of the field, not one per stage
            value = field(y0 + a[i] @ ks) + (c[i] @ ks) / h
            return ks.at[i].set(lu_solve(lu, value))

        ks = jax.lax.fori_loop(1, tab.stages, stage, ks)
        new = RosenbrockState(fevals=state.fevals + tab.stages, jvps=state.jvps + n)
        return y0 + a[-1] @ ks, ks[-1], None, new, None
