"""The coordinate interface shared by every formulation of the flow.

A *coordinate system* represents the state of gradient flow as one flat float64 vector
``y`` and knows how to build it from factors, how to move it (the vector field), and how
to read the product, the loss, a sign-safe determinant and the conserved quantities back
from it. The integrators (:mod:`flowsim.integration`) only ever talk to this interface,
so every formulation returns the same :class:`~flowsim.trajectory.Trajectory` with the
same metrics, and the same precision guards watch every formulation.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from ..parameterization import Factorization, Params
from ..problem import observation_loss

#: float64's unit roundoff
EPS = float(np.finfo(np.float64).eps)


def decades(value: float, noise: float) -> float:
    """``log10(value / noise)`` (``inf`` for no noise, ``-inf`` for a zero value)."""
    if not noise > 0:
        return np.inf
    with np.errstate(divide="ignore"):
        return float(np.log10(value / noise))


@dataclass(frozen=True)
class Coordinates(abc.ABC):
    """One formulation of gradient flow on ``model`` (hashable: it is a static jit key)."""

    model: Factorization
    name = "abstract"
    #: True where the formulation holds only from balanced factors (Lemmas 4-5)
    needs_balanced = False
    #: True where the sign of ``det W`` is a constant of the state (it cannot be lost)
    sign_exact = False
    #: True where the state changes chart during a solve (:meth:`rechart`)
    has_charts = False

    @abc.abstractmethod
    def from_factors(self, params: Params) -> np.ndarray:
        """Flat state vector for the factors (validated by the caller); raises
        ``ValueError`` where these coordinates cannot represent them."""

    @abc.abstractmethod
    def vector_field(self, y, mask, target):
        """``dy/dt`` of gradient flow (Eq. 4, or its equivalent form in these coordinates)."""

    @abc.abstractmethod
    def product(self, y):
        """The product matrix (or tensor) represented by ``y``."""

    def rechart(self, y):
        """The same point in the chart of these coordinates best suited to it
        (jax-traceable; the integrators call it after every accepted step and carry the
        solver's stored derivatives through its Jacobian). Single-chart coordinates
        return ``y`` unchanged."""
        return y

    def factors(self, y) -> Params | None:
        """The factors, when these coordinates carry them (``None`` otherwise)."""
        return None

    def host_factors(self, states: np.ndarray) -> Params | None:
        """:meth:`factors` of every row of ``states`` ``(n, k)`` as numpy arrays
        ``(n, rows, cols)``, or ``None`` where these coordinates carry no factors."""
        if self.factors(jnp.asarray(states[0])) is None:
            return None
        return tuple(np.asarray(f) for f in jax.vmap(self.factors)(jnp.asarray(states)))

    def host_products(self, states: np.ndarray) -> np.ndarray | None:
        """The products of every row of ``states`` computed by numpy, where these
        coordinates hold nothing but the product to observe (:meth:`exact_observables` is
        empty); ``None`` sends :func:`observe_states` to its jax path."""
        return None

    def slogdet(self, y):
        """``(sign det W, log|det W|)`` computed from the coordinates themselves; for a
        product without a determinant ``(nan, nan)``."""
        w = self.product(y)
        if w.ndim != 2 or w.shape[0] != w.shape[1]:
            return jnp.nan, jnp.nan
        return jnp.linalg.slogdet(w)

    def log_singular_values(self, y):
        """``log`` of the singular values of ``W``, largest first (an empty vector for a
        tensor). The smallest one is taken as ``log|det W|`` minus the others where ``W`` is
        square, so coordinates that hold ``det W`` more accurately than ``W``'s rounded
        entries (the layers' determinants, ``log det W`` itself) give it to that accuracy;
        coordinates override this where they hold the singular values themselves."""
        w = self.product(y)
        if w.ndim != 2:
            return jnp.zeros(0)
        logs = jnp.log(jnp.linalg.svd(w, compute_uv=False))
        if w.shape[0] == w.shape[1]:
            _, logabs = self.slogdet(y)
            tail = logabs - jnp.sum(logs[:-1])
            usable = jnp.isfinite(logabs) & jnp.all(jnp.isfinite(logs[:-1]))
            logs = logs.at[-1].set(jnp.where(usable, tail, logs[-1]))
        return logs

    def watch_sign(self, y):
        """The sign the integrators watch after every accepted step: ``sign det W``
        where there is one, else 1 (:mod:`flowsim.integration.guards`)."""
        sign, _ = self.slogdet(y)
        return jnp.where(jnp.isnan(sign), 1.0, sign)

    def conserved(self, y):
        """Quantities gradient flow conserves from every start (the model's
        :meth:`~flowsim.parameterization.Factorization.conserved`), where these
        coordinates carry them; an empty vector where the formulation builds them in."""
        return jnp.zeros(0)

    def conserved_scale(self, y):
        return jnp.asarray(1.0)

    @property
    def watches_conserved(self) -> bool:
        """Whether :meth:`conserved` is non-empty (the integrators then watch it)."""
        return False

    def sigma_min(self, y) -> float:
        """Smallest singular value of ``W`` (numpy, host side), from ``|det W|`` over the
        larger singular values where the coordinates hold ``det W`` more accurately than
        ``W``'s rounded entries."""
        y = jnp.asarray(y)
        w = np.asarray(self.product(y), dtype=np.float64)
        s = np.linalg.svd(w, compute_uv=False)
        _, logabs = (float(v) for v in self.slogdet(y))
        if w.shape[0] == w.shape[1] and np.isfinite(logabs) and np.all(s[:-1] > 0):
            return float(np.exp(logabs - np.sum(np.log(s[:-1]))))
        return float(s[-1])

    def resolution(self, y, rtol: float = 0.0, atol: float = 0.0) -> float:
        """How many decades (``log10``) the smallest singular value of ``W`` stands above
        the error level of ``W`` in these coordinates: float64's rounding, or the
        integrator's per-step tolerance ``rtol |W| + atol`` where larger (numpy, host
        side; ``inf`` where the sign of det is exact by construction or there is no
        matrix). Where it is small, the sign of ``det W`` is not resolved: rounding or step
        errors alone can flip it. For a state that is ``W`` itself:
        ``log10(sigma_min / (max(eps, rtol) ||W||_2 + atol))``."""
        if self.sign_exact or len(self.model.shape) != 2:
            return np.inf
        w = np.asarray(self.product(jnp.asarray(y)), dtype=np.float64)
        noise = max(EPS, float(rtol)) * float(np.linalg.norm(w, 2)) + float(atol)
        return decades(self.sigma_min(y), noise)

    def loss(self, y, mask, target):
        return self.loss_and_size(y, mask, target)[0]

    def loss_and_size(self, y, mask, target):
        """The loss and ``max |W_ij|`` from one product (what the integrators check after
        every accepted step)."""
        w = self.product(y)
        return observation_loss(w, mask, target), jnp.max(jnp.abs(w))

    def loss_rate(self, y, mask, target):
        """``d loss / dt`` along the flow: ``<grad_y loss, dy/dt>``."""
        f = self.vector_field(y, mask, target)
        return jax.jvp(lambda z: self.loss(z, mask, target), (y,), (f,))[1]

    def exact_observables(self, y) -> dict:
        """Observables these coordinates hold exactly (jax, no LAPACK): ``det_sign``,
        ``log_abs_det``, ``log_singular_values`` where the state carries them; the rest
        come from :meth:`host_slogdet` and :func:`host_log_singular_values`."""
        return {}

    def host_slogdet(self, states: np.ndarray, products: np.ndarray):
        """``(sign, log|det|)`` of the products of ``states`` (numpy, rows), as accurately
        as these coordinates allow; NaN where a product has no determinant."""
        n = len(products)
        if products.ndim != 3 or products.shape[1] != products.shape[2]:
            return np.full(n, np.nan), np.full(n, np.nan)
        return np.linalg.slogdet(products)

    def observables(self, y, mask, target):
        """Per-point quantities saved in a Trajectory (jax; what :func:`observe_states`
        computes without LAPACK in jax)."""
        return {"loss": self.loss(y, mask, target), "product": self.product(y),
                **self.exact_observables(y)}


def host_log_singular_values(products: np.ndarray, log_abs_det: np.ndarray) -> np.ndarray:
    """``log`` singular values (largest first) of each product ``(n, d, d2)``, the smallest
    taken as ``log|det|`` minus the others where the products are square (keeps the digits
    of a determinant held more accurately than the rounded entries); ``(n, 0)`` for
    tensors."""
    n = len(products)
    if products.ndim != 3:
        return np.zeros((n, 0))
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log(np.linalg.svd(products, compute_uv=False))
        if products.shape[1] == products.shape[2]:
            tail = log_abs_det - np.sum(logs[:, :-1], axis=1)
            usable = np.isfinite(log_abs_det) & np.all(np.isfinite(logs[:, :-1]), axis=1)
            logs[:, -1] = np.where(usable, tail, logs[:, -1])
    return logs


_observe_batch = jax.jit(lambda coords, states, mask, target: jax.vmap(
    lambda y: coords.observables(y, mask, target))(states), static_argnums=0)


def observe_states(coords: Coordinates, states, mask, target) -> dict:
    """The per-point quantities of a Trajectory for every row of ``states`` ``(n, k)``, as
    numpy arrays: loss, product, ``det_sign``, ``log_abs_det``, ``log_singular_values``.
    The products come from :meth:`Coordinates.host_products` where the coordinates give
    them (numpy, on the host), else from a jax batch vmapped over rows padded to a power
    of two (a few compiled shapes); determinants and singular values that the
    coordinates do not hold exactly are computed by numpy on the host: jaxlib's batched
    LAPACK calls can deadlock its thread pool when several run at once (measured:
    batches of 100x100 LU and SVD, 2 cores)."""
    states = np.asarray(states, dtype=np.float64)
    products = coords.host_products(states)
    if products is not None:
        # numpy's matmul on the host, where the states are: a jax batch would first copy
        # them to the device, then run a batched matmul (docs/numerics.md)
        out = {"product": products,
               "loss": np.asarray(observation_loss(products, mask, target))}
    else:
        n = len(states)
        padded = np.concatenate(
            [states, np.repeat(states[-1:], (1 << (n - 1).bit_length()) - n, axis=0)])
        out = _observe_batch(coords, jnp.asarray(padded), jnp.asarray(mask),
                             jnp.asarray(target))
        out = {k: np.asarray(v)[:n] for k, v in out.items()}
    if "det_sign" not in out:
        out["det_sign"], out["log_abs_det"] = coords.host_slogdet(states, out["product"])
    if "log_singular_values" not in out:
        out["log_singular_values"] = host_log_singular_values(out["product"],
                                                              out["log_abs_det"])
    return out
