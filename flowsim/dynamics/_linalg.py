"""Smooth pieces of matrix-function calculus shared by the product and SVD coordinates.

Lemma 4's right-hand side is built from fractional powers ``lambda^a`` of the eigenvalues
of ``W W^T`` and ``W^T W``; its derivative (what the implicit solver's Newton iteration
needs) is built from their *divided differences* ``(x^a - y^a) / (x - y)``
(Daleckii-Krein). Written naively these lose every digit when ``x ~ y`` and are ``0/0`` at
``x = y``; docs/numerics.md records that an eigendecomposition differentiated by jax makes
Kvaerno5 fail. Here they are written in terms of ``ell = log(x_max / x_min) >= 0``:

    (x^a - y^a) / (x - y) = x_max^(a - 1) * (1 - e^(-a ell)) / (1 - e^(-ell)),

whose ratio factor is evaluated by ``expm1`` (no cancellation) and by a series near
``ell = 0`` (so that jax's derivatives stay finite and smooth there too).
"""

from __future__ import annotations

import jax.numpy as jnp

_SERIES_BELOW = 1e-4  # |x| below which exprel uses its series (error ~ x^4/120 < 1e-18)


def exprel(x):
    """``(e^x - 1) / x`` with the value 1 at 0, smooth (also under jax differentiation)."""
    small = jnp.abs(x) < _SERIES_BELOW
    safe = jnp.where(small, 1.0, x)  # keeps the unused branch's derivative finite
    return jnp.where(small, 1.0 + x * (0.5 + x * (1.0 / 6.0 + x / 24.0)), jnp.expm1(safe) / safe)


def power_ratio(ell, a):
    """``(1 - e^(-a ell)) / (1 - e^(-ell))`` for ``ell >= 0`` (``a`` at ``ell = 0``, 1 at
    ``ell = inf`` for ``a > 0``): the shape factor of the divided difference of ``x^a``."""
    far = ell > 1.0
    near_ell = jnp.where(far, 0.5, ell)
    far_ell = jnp.where(far, ell, 2.0)
    near = a * exprel(-a * near_ell) / exprel(-near_ell)
    return jnp.where(far, jnp.expm1(-a * far_ell) / jnp.expm1(-far_ell), near)


def power_divided_difference(x, y, a):
    """``(x^a - y^a) / (x - y)`` for ``x, y >= 0`` and ``0 <= a < 1``, elementwise
    (``a x^(a-1)`` where ``x = y``). Where both are 0 it returns 0: the value there is
    infinite, but every use below multiplies it by an entry that vanishes exactly
    (a direction inside the common null space of ``W`` and ``dW W^T + W dW^T``)."""
    big, small = jnp.maximum(x, y), jnp.minimum(x, y)
    positive = big > 0
    safe_big = jnp.where(positive, big, 1.0)
    ell = jnp.log(safe_big) - jnp.log(jnp.where(positive, small, 1.0))  # inf where small = 0
    value = safe_big ** (a - 1.0) * power_ratio(ell, a)
    return jnp.where(positive & (a > 0), value, 0.0)
