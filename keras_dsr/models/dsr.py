"""The DSR model: a latent one-step map trained by GTF-DEER with ``model.fit(x)``."""

import warnings

import numpy as np

import keras
from keras import ops

from keras_dsr.layers.gtf_deer import GTFDEERLayer, _check_alpha
from keras_dsr.losses import ObservationMSE
from keras_dsr.metrics import LastValue
from keras_dsr.models._checks import validate_windows


@keras.saving.register_keras_serializable(package="keras_dsr")
class DSRModel(keras.Model):
    """A dynamical-systems-reconstruction model trained by generalized teacher forcing.

    The latent model ``z_t = F(z_{t-1})`` (a :class:`~keras_dsr.cells.DSRCell`)
    observes its first N units (identity observation). ``model.fit(x)`` takes
    windows ``x`` ``[B, T, N]`` of observed data alone: the loss (default
    :class:`~keras_dsr.losses.ObservationMSE`) compares the unforced one-step
    predictions with ``x[:, 1:]`` along the GTF-forced trajectory (DESIGN §2.3),
    solved in parallel by DEER (``method``), plus the ``regularizers``' penalties.

    The fit logs (and ``History``) carry ``alpha`` (the forcing used at the last
    batch), ``deer_iterations`` (mean Newton iterations), ``deer_fallbacks``
    (fraction of batches whose solve fell back to the sequential loop) and
    ``gtf_norm`` (the last Jacobian-norm estimate of adaptive GTF), and
    ``nonfinite_restores`` (steps undone by :class:`~keras_dsr.callbacks.NonFiniteGuard`
    in the epoch). Set alpha
    with the callbacks in :mod:`keras_dsr.callbacks` (e.g. ``AdaptiveGTF()``, the
    lab's default).

    Args:
        cell: the latent model; default a clipped shPLRNN with ``latent_dim``
            (default: N, the number of observed features) and ``hidden_dim`` units.
        latent_dim, hidden_dim: sizes of the default cell (ignored with ``cell``).
        alpha: ``"adaptive"`` (default: start at 1 and, when ``fit`` is given no
            alpha callback, anneal with :class:`~keras_dsr.callbacks.AdaptiveGTF`
            and the lab's defaults) or a fixed initial forcing in [0, 1]
            (1 = classical teacher forcing; set later by your own callbacks).
        method: ``"deer"`` (default), ``"quasi"``, ``"damped"`` or ``"sequential"``
            (BPTT with GTF; same gradients), or ``"auto"`` (by device and latent
            size, :func:`keras_dsr.ops.auto.choose_method`).
        latent_init: ``"zeros"`` or ``"learned"`` initial unobserved units.
        alpha_estimator: see :class:`~keras_dsr.layers.GTFDEERLayer`.
        regularizers: callables ``r(cell) -> scalar`` added to the loss (e.g.
            :class:`~keras_dsr.regularizers.ManifoldAttractorRegularization`).
        solver_options: dict of ``atol``, ``rtol``, ``max_iter`` and ``chunk_size``
            for DEER (see :class:`~keras_dsr.layers.GTFDEERLayer`).

    Example (the lab's Lorenz-63 recipe: clipped shPLRNN, adaptive GTF):
        >>> model = DSRModel(hidden_dim=100)
        >>> model.compile(optimizer=keras.optimizers.Adam(1e-3))
        >>> model.fit(windows, epochs=10)
        >>> traj = model.generate(x0, steps=10_000)       # [1, 10000, N]
    """

    def __init__(self, cell=None, latent_dim=None, hidden_dim=100, alpha="adaptive", method="deer",
                 latent_init="zeros", alpha_estimator="product_upper_bound",
                 regularizers=None, solver_options=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(cell, dict):
            cell = keras.saving.deserialize_keras_object(cell)
        self.adaptive = alpha == "adaptive"
        if self.adaptive:
            alpha = 1.0
        _check_alpha(alpha)
        if latent_dim is not None and (not isinstance(latent_dim, int) or latent_dim < 1):
            raise ValueError(f"`latent_dim` must be a positive int or None, got {latent_dim!r}.")
        if not isinstance(hidden_dim, int) or hidden_dim < 1:
            raise ValueError(f"`hidden_dim` must be a positive int, got {hidden_dim!r}.")
        regularizers = list(regularizers or [])
        regularizers = [keras.saving.deserialize_keras_object(r) if isinstance(r, dict) else r
                        for r in regularizers]
        for r in regularizers:
            if not callable(r):
                raise TypeError(f"`regularizers` must hold callables r(cell), got {r!r}.")
        options = dict(solver_options or {})
        unknown = set(options) - {"atol", "rtol", "max_iter", "chunk_size"}
        if unknown:
            raise ValueError("`solver_options` accepts atol, rtol, max_iter, chunk_size; got "
                             f"{sorted(unknown)}.")
        self.cell = cell
        self.latent_dim, self.hidden_dim = latent_dim, hidden_dim
        self.initial_alpha, self.method = float(alpha), method
        self.latent_init, self.alpha_estimator = latent_init, alpha_estimator
        self.regularizers = regularizers
        self.solver_options = options
        self.observed_dim = None
        self.gtf = None
        if cell is not None:
            self._make_gtf()
        self.alpha_tracker = LastValue(name="alpha")
        self.iterations_tracker = keras.metrics.Mean(name="deer_iterations")
        self.fallback_tracker = keras.metrics.Mean(name="deer_fallbacks")
        self.norm_tracker = LastValue(name="gtf_norm")

    def _make_gtf(self):
        self.gtf = GTFDEERLayer(self.cell, alpha=self.initial_alpha, method=self.method,
                                latent_init=self.latent_init,
                                alpha_estimator=self.alpha_estimator, name="gtf",
                                **self.solver_options)

    def build(self, input_shape):
        n = input_shape[-1]
        if self.cell is None:
            from keras_dsr.cells import ClippedShallowPLRNN

            self.cell = ClippedShallowPLRNN(latent_dim=self.latent_dim or n,
                                            hidden_dim=self.hidden_dim, name="cell")
            self._make_gtf()
        self.gtf.build(input_shape)
        self.observed_dim = int(n)
        self.built = True

    # ------------------------------------------------------------- training
    def call(self, x, training=None):
        if self.observed_dim is not None and x.shape[-1] != self.observed_dim:
            raise ValueError(
                f"DSRModel: input has {x.shape[-1]} features, the model observes "
                f"{self.observed_dim}."
            )
        return self.gtf(x, training=training)

    def compile(self, optimizer="adam", loss=None, **kwargs):
        """``keras.Model.compile`` with the observation MSE as default loss."""
        super().compile(optimizer=optimizer, loss=ObservationMSE() if loss is None else loss,
                        **kwargs)

    def get_compile_config(self):
        return super().get_compile_config()

    def compile_from_config(self, config):
        return super().compile_from_config(config)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if y is None:
            y = x[:, 1:]
        elif y.shape[1] is not None and y.shape[1] == x.shape[1]:
            y = y[:, 1:]  # targets aligned with the inputs (e.g. (x, x) windows)
        loss = super().compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight,
                                    training=training)
        for reg in self.regularizers:
            loss = loss + ops.cast(reg(self.cell), loss.dtype)
        self.alpha_tracker.update_state(self.gtf.alpha)
        self.iterations_tracker.update_state(self.gtf.iterations)
        self.fallback_tracker.update_state(self.gtf.fell_back)
        self.norm_tracker.update_state(self.gtf.jacobian_norm)
        return loss

    def fit(self, x=None, y=None, *args, **kwargs):
        """``keras.Model.fit`` on windows ``x`` ``[B, T, N]`` (arrays are validated).

        Unless ``callbacks`` holds them already, ``fit`` adds
        :class:`~keras_dsr.callbacks.AdaptiveGTF` (with ``alpha="adaptive"``) and
        :class:`~keras_dsr.callbacks.NonFiniteGuard` (a step that makes the loss or the
        weights NaN / inf is undone; repeated failures raise ``FloatingPointError``).
        """
        if isinstance(x, keras.utils.PyDataset):
            shape = np.shape(x[0][0] if isinstance(x[0], tuple) else x[0])
        else:
            x = validate_windows(x, self.observed_dim, where="DSRModel.fit")
            shape = x.shape
        if not self.built:  # build eagerly: weight initialisers must not run under tracing
            self.build((None,) + tuple(shape[1:]))
        from keras_dsr.callbacks.guard import with_guard

        callbacks = with_guard(kwargs.get("callbacks"))
        if self.adaptive:
            from keras_dsr.callbacks.gtf import AdaptiveGTF, AlphaSchedule

            if not any(isinstance(c, (AdaptiveGTF, AlphaSchedule)) for c in callbacks):
                callbacks.append(AdaptiveGTF())
        kwargs["callbacks"] = callbacks
        return super().fit(x, y, *args, **kwargs)

    @classmethod
    def from_preset(cls, name, compile=False):
        """Load a pretrained reconstruction from the zoo (see :mod:`keras_dsr.zoo`).

        Example:
            >>> model = DSRModel.from_preset("lorenz63")
            >>> traj = model.generate([0.1, 0.2, 0.3], steps=5_000)   # [5000, 3]
        """
        from keras_dsr.zoo import load_preset

        return load_preset(name, compile=compile)

    @property
    def alpha(self):
        """Current GTF forcing (a float); set it with :func:`keras_dsr.callbacks.set_alpha`."""
        return float(ops.convert_to_numpy(self.gtf.alpha))

    # ----------------------------------------------------------- generation
    def generate(self, x0, steps, return_latent=False):
        """Run the model freely from observations ``x0``.

        Args:
            x0: ``[B, N]`` or ``[N]`` initial observation (the latent state is
                ``[x0, g(x0)]`` as in training).
            steps: number of steps to generate (int >= 1).
            return_latent: also return the latent trajectory.

        Returns:
            numpy ``[B, steps, N]`` (``[steps, N]`` for a 1-D ``x0``): the
            observations of ``z_1..z_steps``; with ``return_latent`` a pair
            ``(obs, latent [B, steps, M])``. A trajectory that becomes non-finite
            is returned as is with a ``RuntimeWarning`` naming the step.
        """
        if not self.built:
            raise ValueError("DSRModel.generate: the model is not built; fit or build it first.")
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
            raise ValueError(f"`steps` must be a positive int, got {steps!r}.")
        x0 = np.asarray(x0, dtype="float32")
        single = x0.ndim == 1
        if single:
            x0 = x0[None]
        if x0.ndim != 2 or x0.shape[-1] != self.observed_dim:
            raise ValueError(
                f"`x0` must have shape [B, {self.observed_dim}] or [{self.observed_dim}], "
                f"got {x0.shape}."
            )
        z0 = self.gtf.initial_state(ops.convert_to_tensor(x0))
        latent = np.asarray(ops.convert_to_numpy(free_run(self.cell, z0, int(steps))))
        bad = ~np.isfinite(latent)
        if bad.any():
            step = int(np.argwhere(bad.any(axis=(0, 2)))[0, 0]) + 1
            warnings.warn(f"DSRModel.generate: the trajectory became non-finite at step {step}.",
                          RuntimeWarning, stacklevel=2)
        obs = latent[..., : self.observed_dim]
        if single:
            obs, latent = obs[0], latent[0]
        return (obs, latent) if return_latent else obs

    def get_config(self):
        config = super().get_config()
        config.update(
            cell=None if self.cell is None else keras.saving.serialize_keras_object(self.cell),
            latent_dim=self.latent_dim, hidden_dim=self.hidden_dim,
            alpha="adaptive" if self.adaptive else self.initial_alpha,
            method=self.method, latent_init=self.latent_init,
            alpha_estimator=self.alpha_estimator,
            regularizers=[keras.saving.serialize_keras_object(r) for r in self.regularizers],
            solver_options=self.solver_options,
        )
        return config


_FREE_RUN_CACHE = {}


def free_run(cell, z0, steps):
    """``z_t = F(z_{t-1})`` for t = 1..steps from ``z0`` ``[B, M]``, compiled; ``[B, steps, M]``.

    JAX: ``jax.lax.scan`` under ``jax.jit`` with the cell's weights passed as
    arguments (no stale captured weights); TensorFlow: ``tf.function``, cached per cell,
    its variables and ``steps`` (no retracing on every call); PyTorch:
    a loop under ``torch.no_grad`` calling the cell's map directly.
    """
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        key = (id(cell), steps)
        fn = _FREE_RUN_CACHE.get(key)
        if fn is None:
            def run(weights, fixed, z0):
                def body(z, _):
                    z, _ = cell.stateless_call(weights, fixed, z)
                    return z, z

                _, zs = jax.lax.scan(body, z0, None, length=steps)
                return jax.numpy.moveaxis(zs, 0, 1)

            fn = jax.jit(run)
            _FREE_RUN_CACHE.clear()
            _FREE_RUN_CACHE[key] = fn
        return fn([v.value for v in cell.trainable_variables],
                  [v.value for v in cell.non_trainable_variables], z0)
    if backend == "tensorflow":
        import tensorflow as tf

        # one traced function per (cell, its variables, steps), reused across calls
        key = ("tf", id(cell), tuple(id(v) for v in cell.variables), steps)
        fn = _FREE_RUN_CACHE.get(key)
        if fn is None:
            @tf.function(reduce_retracing=True)
            def fn(z0):
                zs = tf.scan(lambda z, _: cell.call(z), tf.zeros((steps,)), initializer=z0)
                return tf.transpose(zs, (1, 0, 2))

            _FREE_RUN_CACHE.clear()
            _FREE_RUN_CACHE[key] = fn
        return fn(z0)
    import torch

    out = []
    with torch.no_grad():
        z = z0
        for _ in range(steps):
            z = cell.call(z)
            out.append(z)
    return torch.stack(out, dim=1)
