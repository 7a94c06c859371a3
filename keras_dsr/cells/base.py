"""The interface of a one-step map ``z_t = F(z_{t-1}, u_t)`` with its Jacobian.

Every recurrent model in keras_dsr (PLRNN family, adapters for other cells) is a
:class:`DSRCell`. The DEER solver, generalized teacher forcing and the models are
written against this interface only:

* ``call(z, u=None)``: the map, vectorised over any number of leading dims.
* ``jacobian(z, u=None)``: ``dF/dz`` as a dense ``[..., M, M]`` tensor.
* ``jacobian_diagonal(z, u=None)``: its diagonal ``[..., M]`` (quasi-DEER).
* ``step_and_jacobian(z, u=None)``: ``(call(z, u), jacobian(z, u))`` together; a
  cell whose map and Jacobian share work (e.g. Runge-Kutta stages) does it in one
  pass. DEER's Newton steps use it.

Shapes and conventions
----------------------
M = ``latent_dim`` (number of latent units), K = ``input_dim`` (external inputs).

* ``z``: ``[..., M]``; any leading dims, e.g. ``[B, M]`` (one step of a batch) or
  ``[B, T, M]`` (all time steps of a trajectory evaluated at once).
* ``u``: ``[..., K]`` with the same leading dims as ``z``, or ``None``. When
  ``input_dim > 0`` the map adds ``u @ C`` (``C`` has shape ``[K, M]``); ``u=None``
  then means a zero input. Passing ``u`` to a cell with ``input_dim == 0`` is an
  error.
* ``jacobian(z)[..., i, j] = d F_i / d z_j`` (row i = output unit i). The input
  term is additive, so the Jacobian does not depend on ``u``.
"""

import keras
from keras import ops

from keras_dsr._checks import check_int
from keras_dsr.ops._tensor import matmul


@keras.saving.register_keras_serializable(package="keras_dsr")
class DSRCell(keras.layers.Layer):
    """Base class of one-step maps ``z_next = F(z, u)`` with analytic Jacobians.

    Subclasses implement ``build_map_weights()`` (create the weights of the map),
    ``_step(z)`` (the autonomous part of the map), ``_jacobian(z)`` and
    ``_jacobian_diagonal(z)``; the base class handles validation, the input term
    ``u @ C`` and serialisation.

    Args:
        latent_dim: M, the number of latent units (positive int).
        input_dim: K, the number of external inputs (int >= 0, default 0). When
            K > 0 the map gets the additional term ``u @ C`` with a trainable
            ``C`` of shape ``[K, M]`` (Glorot-uniform initialised, as in the
            Durstewitz lab's code).
        seed: optional int seed of the weight initialisation. ``None`` draws from
            Keras' global generator (reproducible after
            ``keras.utils.set_random_seed``).
        **kwargs: ``keras.layers.Layer`` arguments (``name``, ``dtype``, ...).

    Attributes:
        state_size, output_size: M (Keras RNN-cell compatible).
    """

    def __init__(self, latent_dim, input_dim=0, seed=None, **kwargs):
        super().__init__(**kwargs)
        name = type(self).__name__
        self.latent_dim = check_int(latent_dim, "latent_dim", 1, name)
        self.input_dim = check_int(input_dim, "input_dim", 0, name)
        self.seed = check_int(seed, "seed", 0, name, allow_none=True)
        self.C = None

    # ----------------------------------------------------------------- sizes
    @property
    def state_size(self):
        return self.latent_dim

    @property
    def output_size(self):
        return self.latent_dim

    # ------------------------------------------------------------ validation
    def _check_z_shape(self, shape):
        name = type(self).__name__
        if shape is None or len(shape) < 1:
            raise ValueError(
                f"{name}: `z` must have shape [..., latent_dim={self.latent_dim}], "
                f"got shape {shape}."
            )
        if shape[-1] is not None and shape[-1] != self.latent_dim:
            raise ValueError(
                f"{name}: the last dim of `z` must equal latent_dim="
                f"{self.latent_dim}, got z of shape {tuple(shape)}."
            )

    def _check_u_shape(self, shape):
        name = type(self).__name__
        if shape is None:
            return
        if self.input_dim == 0:
            raise ValueError(
                f"{name}: an input `u` was given but the cell has input_dim=0; "
                "construct the cell with input_dim=K to use external inputs."
            )
        if len(shape) < 1 or (shape[-1] is not None and shape[-1] != self.input_dim):
            raise ValueError(
                f"{name}: the last dim of `u` must equal input_dim={self.input_dim}, "
                f"got u of shape {tuple(shape)}."
            )

    def _seed(self, offset):
        """Distinct int seeds for the separate draws of one build."""
        return None if self.seed is None else self.seed + offset

    # ----------------------------------------------------------------- build
    def build(self, z_shape, u_shape=None):
        """Create the weights. ``z_shape`` must end in M; ``u_shape`` (if any) in K."""
        self._check_z_shape(tuple(z_shape) if z_shape is not None else None)
        self._check_u_shape(tuple(u_shape) if u_shape is not None else None)
        self.build_map_weights()
        if self.input_dim > 0:
            self.C = self.add_weight(
                shape=(self.input_dim, self.latent_dim),
                initializer=keras.initializers.GlorotUniform(seed=self._seed(101)),
                name="C",
            )
        self.built = True

    def build_map_weights(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def _ensure_built(self, z):
        if not self.built:
            self.build(tuple(z.shape))

    def _prepare(self, z, u):
        z = ops.convert_to_tensor(z, dtype=self.compute_dtype)
        self._check_z_shape(tuple(z.shape))
        if u is not None:
            u = ops.convert_to_tensor(u, dtype=self.compute_dtype)
            self._check_u_shape(tuple(u.shape))
        self._ensure_built(z)
        return z, u

    # ------------------------------------------------------------------- map
    def call(self, z, u=None):
        """One step of the map: z [..., M] (and u [..., K] or None) -> [..., M]."""
        z, u = self._prepare(z, u)
        z_next = self._step(z)
        if u is not None:
            z_next = z_next + matmul(u, ops.cast(self.C, z.dtype))
        return z_next

    def jacobian(self, z, u=None):
        """Analytic ``dF/dz`` at z: [..., M] -> [..., M, M] (row i = output i).

        ``u`` is accepted for interface symmetry and validated; the input term is
        additive, so the Jacobian does not depend on it.
        """
        z, _ = self._prepare(z, u)
        return self._jacobian(z)

    def jacobian_diagonal(self, z, u=None):
        """Diagonal of :meth:`jacobian`, [..., M] -> [..., M], without the full matrix."""
        z, _ = self._prepare(z, u)
        return self._jacobian_diagonal(z)

    def step_and_jacobian(self, z, u=None):
        """``(F(z, u), dF/dz)``: the values of :meth:`call` and :meth:`jacobian`.

        Subclasses whose map and Jacobian share intermediate results override
        ``_step_and_jacobian(z)`` to compute them once.
        """
        z, u = self._prepare(z, u)
        z_next, jac = self._step_and_jacobian(z)
        if u is not None:
            z_next = z_next + matmul(u, ops.cast(self.C, z.dtype))
        return z_next, jac

    def _step_and_jacobian(self, z):
        return self._step(z), self._jacobian(z)

    def compute_output_shape(self, z_shape, u_shape=None):
        return tuple(z_shape)

    def _step(self, z):  # pragma: no cover - abstract
        raise NotImplementedError

    def _jacobian(self, z):  # pragma: no cover - abstract
        raise NotImplementedError

    def _jacobian_diagonal(self, z):  # pragma: no cover - abstract
        raise NotImplementedError

    # --------------------------------------------------------------- helpers
    def _var(self, v, like):
        """Weight ``v`` as a tensor of ``like``'s dtype (the compute dtype)."""
        return ops.cast(v, like.dtype)

    # ---------------------------------------------------------------- config
    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "latent_dim": self.latent_dim,
                "input_dim": self.input_dim,
                "seed": self.seed,
            }
        )
        return config
