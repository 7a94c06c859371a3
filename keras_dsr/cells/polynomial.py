"""A polynomial vector field integrated over one sampling step: a smooth DSR cell.

:class:`PolynomialFlow` is the flow map of ``dz/dtau = f(z) = W (phi(z) / s)`` over one
step, where ``phi(z)`` holds every monomial of the M latent units up to ``degree``
(1, z_i, z_i z_j, z_i z_j z_k, ...), ``s`` their fixed scales (:func:`feature_scales`)
and ``W`` [M, P] is learned; the step is taken
by ``substeps`` explicit Runge-Kutta steps (classical RK4, or Euler) of size
``1 / substeps`` in units of the sampling interval, so ``W`` carries the time
scale. The model class is that of sparse polynomial identification (SINDy) and of
polynomial neural ODEs, trained here like every other cell, by GTF-DEER.

Unlike the piecewise-linear cells, the map is smooth: its Jacobian varies
continuously along the orbit, which is what slow passages near folds (e.g. the
quiet phase of Hindmarsh-Rose bursting) need for a right Lyapunov spectrum, and
any flow with a polynomial vector field of degree <= ``degree`` (Lorenz-63,
Rössler, Hindmarsh-Rose, ...) lies in the model class, also after the affine
standardisation of the data.
"""

import itertools

import numpy as np

import keras
from keras import ops

from keras_dsr.ops._tensor import matmul
from keras_dsr._checks import check_int, check_number
from keras_dsr.cells.base import DSRCell

INTEGRATORS = ("rk4", "euler")


def monomial_exponents(latent_dim, degree):
    """The monomials of ``phi``: an int array [P, M] of exponents, by total degree.

    Row p holds the power of each z_i in monomial p; the rows run through degree 0
    (the constant), then 1, 2, ... ``degree``, each in lexicographic order of the
    sorted index tuples. ``P = C(M + degree, degree)``.

    Example:
        >>> monomial_exponents(2, 2).tolist()
        [[0, 0], [1, 0], [0, 1], [2, 0], [1, 1], [0, 2]]
    """
    rows = []
    for d in range(degree + 1):
        for idx in itertools.combinations_with_replacement(range(latent_dim), d):
            e = [0] * latent_dim
            for i in idx:
                e[i] += 1
            rows.append(e)
    return np.asarray(rows, dtype=np.int64)


def _structure(latent_dim, degree):
    """Gather table of ``phi`` and the derivative tensor D [P, M, P].

    ``gather[p]`` lists, for monomial p, ``degree`` indices into ``[1, z_1 .. z_M]``
    (0 pads lower degrees), so ``phi_p = prod_c [1, z][gather[p, c]]``.
    ``d phi_k / d z_j = sum_l D[k, j, l] phi_l``: the derivative of a monomial is its
    exponent of z_j times the monomial with that exponent lowered by one, which is
    again in the library (one degree lower).
    """
    exps = monomial_exponents(latent_dim, degree)
    where = {tuple(e): p for p, e in enumerate(exps)}
    n = len(exps)
    deriv = np.zeros((n, latent_dim, n), dtype=np.float64)
    gather = np.zeros((n, degree), dtype=np.int32)
    for k, e in enumerate(exps):
        idx = [1 + i for i in range(latent_dim) for _ in range(e[i])]
        gather[k, :len(idx)] = idx
        for j in range(latent_dim):
            if e[j] > 0:
                lower = list(e)
                lower[j] -= 1
                deriv[k, j, where[tuple(lower)]] = e[j]
    return exps, gather, deriv


def feature_scales(exponents):
    """Root-mean-square of each monomial for independent standard-normal variables:
    ``s_p = sqrt(prod_i (2 e_pi - 1)!!)`` ([P]; 1 for the constant and the linear terms,
    sqrt(15) for z_i^3).

    :class:`PolynomialFlow` divides ``phi`` by these, so that on standardised data every
    feature has about unit size and one optimiser step moves the field by a similar
    amount through every coefficient (a cubic term would otherwise move it ~4x as much).

    Example:
        >>> feature_scales(monomial_exponents(1, 3)).round(3).tolist()
        [1.0, 1.0, 1.732, 3.873]
    """
    def double_factorial_odd(e):       # (2e - 1)!! = 1 * 3 * ... * (2e - 1)
        return float(np.prod(np.arange(1, 2 * e, 2))) if e > 0 else 1.0

    return np.sqrt([np.prod([double_factorial_odd(int(e)) for e in row])
                    for row in np.asarray(exponents)])


@keras.saving.register_keras_serializable(package="keras_dsr")
class PolynomialFlow(DSRCell):
    """One sampling step of a learned polynomial ODE: ``z' = Phi_1(z)``, ``dz/dtau = W (phi(z) / s)``.

    ``phi(z)`` [..., P] holds all monomials of z up to ``degree`` (constant first,
    see :func:`monomial_exponents`), ``s`` [P] their Gaussian root-mean-squares
    (:func:`feature_scales`, the attribute ``feature_scales``: features of about unit
    size on standardised data); ``W`` [M, P] is trainable, so the coefficient of
    monomial p in the field is ``W[:, p] / s[p]``. The step integrates
    the field over one unit of ``tau`` (one sampling interval) with ``substeps``
    classical RK4 (default) or explicit Euler steps. The Jacobian is exact for the
    discrete map (the chain rule through the Runge-Kutta stages), with
    ``d phi / d z`` from a constant derivative table, so DEER's Newton steps and
    adaptive GTF see the true ``dF/dz``.

    Attributes: ``exponents`` [P, M] (the monomials, :func:`monomial_exponents`),
    ``feature_scales`` [P], ``num_features`` P.

    Weights: ``W`` [M, P] (initialised ``N(0, init_scale^2)``), ``C`` [K, M] if
    ``input_dim > 0``. ``P = C(M + degree, degree)`` (20 for M = 3, degree 3).

    Args:
        latent_dim: M. degree: the highest total degree of the monomials (>= 1,
            default 3). integrator: ``"rk4"`` or ``"euler"``. substeps: integrator
            steps per sampling step (positive int, default 1). init_scale: standard
            deviation of the initial ``W`` (>= 0, default 1e-3: the map starts near
            the identity). bound: None (default) or a positive number B: the field
            sees ``clip(z, -B, B)``, so it is bounded outside the box and an orbit
            that leaves the data cannot overflow (a cubic field blows up in finite
            time); inside the box the map is unchanged. With standardised data, B = 10
            (``Recipe(cell="polynomial")``) lies outside the benchmark attractors
            (Rössler's z reaches 7.8 sd, Hindmarsh-Rose's x 5.2 sd). input_dim, seed: see :class:`DSRCell`.

    Example:
        >>> cell = PolynomialFlow(latent_dim=3, degree=3)
        >>> z = keras.random.normal((8, 100, 3))
        >>> cell(z).shape, cell.jacobian(z).shape
        ((8, 100, 3), (8, 100, 3, 3))
    """

    def __init__(self, latent_dim, degree=3, integrator="rk4", substeps=1, init_scale=1e-3,
                 bound=None, input_dim=0, seed=None, **kwargs):
        super().__init__(latent_dim, input_dim=input_dim, seed=seed, **kwargs)
        name = type(self).__name__
        self.degree = check_int(degree, "degree", 1, name)
        if integrator not in INTEGRATORS:
            raise ValueError(f"{name}: `integrator` must be one of {INTEGRATORS}, "
                             f"got {integrator!r}.")
        self.integrator = integrator
        self.substeps = check_int(substeps, "substeps", 1, name)
        self.init_scale = check_number(init_scale, "init_scale", 0, False, name)
        self.bound = check_number(bound, "bound", 0, True, name, allow_none=True)
        exps, self._gather, self._deriv = _structure(self.latent_dim, self.degree)
        self.exponents = exps                     # [P, M], see monomial_exponents
        self.num_features = len(exps)
        self.feature_scales = feature_scales(exps)

    def build_map_weights(self):
        self.W = self.add_weight(
            shape=(self.latent_dim, self.num_features),
            initializer=keras.initializers.RandomNormal(stddev=self.init_scale,
                                                        seed=self._seed(0)),
            name="W",
        )

    # ----------------------------------------------------------- the field
    def features(self, z):
        """``phi(z)``: [..., M] -> [..., P], the monomials of z up to ``degree`` (of
        ``clip(z, -bound, bound)`` when ``bound`` is set; unscaled)."""
        if self.bound is not None:
            z = ops.clip(z, -self.bound, self.bound)
        za = ops.concatenate([ops.ones_like(z[..., :1]), z], axis=-1)
        cols = self._gather_columns(za)
        phi = ops.take(za, cols[0], axis=-1)
        for col in cols[1:]:
            phi = phi * ops.take(za, col, axis=-1)
        return phi

    def _gather_columns(self, like):
        """The gather table's columns: numpy (traced as constants by JAX / TensorFlow) or,
        on PyTorch, cached index tensors on ``like``'s device (converting the numpy
        indices anew costs more than the whole map of one small step)."""
        cols = [self._gather[:, c] for c in range(self.degree)]
        if keras.backend.backend() != "torch":
            return cols
        import torch

        cache = self.__dict__.setdefault("_torch_columns", {})
        if like.device not in cache:
            cache[like.device] = [torch.as_tensor(c, device=like.device) for c in cols]
        return cache[like.device]

    def _field_tables(self, dtype, with_jacobian=True):
        """``W^T`` [P, M] and (``with_jacobian``) ``G`` [P, M*M] with
        ``J_f(z) = reshape(phi(z) @ G)``."""
        w = ops.cast(self.W, dtype) / ops.convert_to_tensor(self.feature_scales, dtype=dtype)
        if not with_jacobian:
            return ops.transpose(w), None
        m, p = self.latent_dim, self.num_features
        d = ops.convert_to_tensor(self._deriv.reshape(p, m * p), dtype=dtype)
        g = ops.reshape(matmul(w, d), (m, m, p))          # G[i, j, l]
        g = ops.reshape(ops.transpose(g, (2, 0, 1)), (p, m * m))
        return ops.transpose(w), g

    def field(self, z):
        """The vector field ``f(z) = W (phi(z) / s)`` per sampling step: [..., M] -> [..., M]."""
        z = ops.convert_to_tensor(z, dtype=self.compute_dtype)
        wt, _ = self._field_tables(z.dtype, with_jacobian=False)
        return matmul(self.features(z), wt)

    def _f_and_jf(self, z, tables, with_jacobian):
        wt, g = tables
        phi = self.features(z)
        f = matmul(phi, wt)
        if not with_jacobian:
            return f, None
        m = self.latent_dim
        jf = ops.reshape(matmul(phi, g), tuple(ops.shape(z)[:-1]) + (m, m))
        if self.bound is not None:   # d clip(z_j) / d z_j = 1[|z_j| < bound]
            inside = ops.cast(ops.less(ops.abs(z), self.bound), jf.dtype)
            jf = jf * inside[..., None, :]
        return f, jf

    def fit_field(self, x, ridge=0.0):
        """Set ``W`` by least squares of the field on finite differences of trajectories.

        The derivative per sampling step at ``x_t`` is estimated by the fourth-order
        central difference ``(-x_{t+2} + 8 x_{t+1} - 8 x_{t-1} + x_{t-2}) / 12``, and
        ``W`` minimises ``sum_t |W (phi(x_t) / s) - dx_t|^2 + ridge |W|^2`` (the
        identification step of sparse polynomial regression, SINDy, without the
        sparsity). On noise-free, well-sampled data this is close to the true field,
        a starting point from which GTF-DEER training (``model.fit``) corrects the
        remaining error of the one-step map (finite differences, Runge-Kutta steps).

        Args:
            x: a trajectory ``[T, M]`` (T >= 5) or a list of them, every latent unit
                observed (uniform sampling, one sampling interval per step).
            ridge: Tikhonov regularisation (>= 0, default 0).

        Returns:
            the root-mean-square residual per unit, ``[M]`` (numpy), in units per step.

        Example:
            >>> x = keras_dsr.systems.simulate("lorenz63", 10_000).x
            >>> cell = PolynomialFlow(3); cell.build((3,))
            >>> cell.fit_field(x).shape
            (3,)
        """
        name = type(self).__name__
        check_number(ridge, "ridge", 0, False, f"{name}.fit_field")
        trajs = list(x) if isinstance(x, (list, tuple)) else [x]
        feats, derivs = [], []
        for traj in trajs:
            traj = np.asarray(keras.ops.convert_to_numpy(traj), dtype=np.float64)
            if traj.ndim != 2 or traj.shape[1] != self.latent_dim or traj.shape[0] < 5:
                raise ValueError(f"{name}.fit_field: `x` must be [T, latent_dim="
                                 f"{self.latent_dim}] with T >= 5 (all units observed), or "
                                 f"a list of them; got shape {traj.shape}.")
            if not np.all(np.isfinite(traj)):
                raise ValueError(f"{name}.fit_field: `x` contains NaN or inf.")
            d = (-traj[4:] + 8.0 * traj[3:-1] - 8.0 * traj[1:-3] + traj[:-4]) / 12.0
            xc = traj[2:-2]
            if self.bound is not None:
                xc = np.clip(xc, -self.bound, self.bound)
            feats.append(np.prod(xc[:, None, :] ** self.exponents, axis=-1)
                         / self.feature_scales)
            derivs.append(d)
        phi, d = np.concatenate(feats), np.concatenate(derivs)
        if ridge > 0:
            p = phi.shape[1]
            phi_r = np.concatenate([phi, np.sqrt(ridge) * np.eye(p)])
            d_r = np.concatenate([d, np.zeros((p, d.shape[1]))])
            coef = np.linalg.lstsq(phi_r, d_r, rcond=None)[0]
        else:
            coef = np.linalg.lstsq(phi, d, rcond=None)[0]          # [P, M]
        if not self.built:
            self.build((self.latent_dim,))
        self.W.assign(coef.T.astype(keras.backend.standardize_dtype(self.W.dtype)))
        return np.sqrt(np.mean((phi @ coef - d) ** 2, axis=0))

    # ------------------------------------------------------------- the map
    def _integrate(self, z, with_jacobian):
        tables = self._field_tables(z.dtype, with_jacobian)
        h = 1.0 / self.substeps
        m = self.latent_dim
        jac = None
        if with_jacobian:
            eye = ops.eye(m, dtype=z.dtype)
            jac = ops.broadcast_to(eye, tuple(ops.shape(z)[:-1]) + (m, m))
        for _ in range(self.substeps):
            k1, j1 = self._f_and_jf(z, tables, with_jacobian)
            if self.integrator == "euler":
                z_next = z + h * k1
                step_j = None if jac is None else eye + h * j1
            else:
                k2, j2 = self._f_and_jf(z + (0.5 * h) * k1, tables, with_jacobian)
                k3, j3 = self._f_and_jf(z + (0.5 * h) * k2, tables, with_jacobian)
                k4, j4 = self._f_and_jf(z + h * k3, tables, with_jacobian)
                z_next = z + (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
                step_j = None
                if jac is not None:
                    # Stage Jacobians d k_s / d z by the chain rule.
                    d2 = matmul(j2, eye + (0.5 * h) * j1)
                    d3 = matmul(j3, eye + (0.5 * h) * d2)
                    d4 = matmul(j4, eye + h * d3)
                    step_j = eye + (h / 6.0) * (j1 + 2.0 * d2 + 2.0 * d3 + d4)
            if jac is not None:
                jac = step_j if self.substeps == 1 else matmul(step_j, jac)
            z = z_next
        return z, jac

    def _step(self, z):
        return self._integrate(z, with_jacobian=False)[0]

    def _jacobian(self, z):
        return self._integrate(z, with_jacobian=True)[1]

    def _jacobian_diagonal(self, z):
        return ops.diagonal(self._jacobian(z), axis1=-2, axis2=-1)

    def _step_and_jacobian(self, z):
        return self._integrate(z, with_jacobian=True)

    def get_config(self):
        config = super().get_config()
        config.update({"degree": self.degree, "integrator": self.integrator,
                       "substeps": self.substeps, "init_scale": self.init_scale,
                       "bound": self.bound})
        return config
