"""The DSR model: a latent one-step map trained by GTF-DEER with ``model.fit(x)``."""

import warnings

import numpy as np

import keras
from keras import ops

from keras_dsr import schedules as schedules_lib
from keras_dsr._checks import check_int
from keras_dsr.layers.gtf_deer import GTFDEERLayer
from keras_dsr.losses import ObservationMSE
from keras_dsr.metrics import LastValue
from keras_dsr.models._checks import validate_windows
from keras_dsr.models.engine import GuardedModel
from keras_dsr.models.free_run import FreeRunning


@keras.saving.register_keras_serializable(package="keras_dsr")
class DSRModel(FreeRunning, GuardedModel):
    """A dynamical-systems-reconstruction model trained by generalized teacher forcing.

    The latent model ``z_t = F(z_{t-1})`` (a :class:`~keras_dsr.cells.DSRCell`) is
    observed through an observation model (identity on the first N units, or an
    affine ``x = B z (+ b)``). ``model.fit(x)`` takes windows ``x`` ``[B, T, N]`` of
    observed data alone: the loss (default :class:`~keras_dsr.losses.ObservationMSE`)
    compares the unforced one-step predictions with ``x[:, 1:]`` along the
    GTF-forced trajectory (docs/method.md, "Generalized teacher forcing"), solved in
    parallel by DEER (``method``), plus the ``regularizers``' penalties.

    The compiled train step owns all of GTF training: the forcing schedule ``gtf``
    (:mod:`keras_dsr.schedules`) sets alpha on each batch before its forward pass,
    and the step applies only finite updates (:class:`~keras_dsr.models.engine.GuardedModel`).
    ``fit`` is Keras's own: ``steps_per_execution > 1`` and ``jit_compile`` work, and
    the fit logs (``History``) carry the metrics ``alpha`` (the forcing of the last
    batch), ``gtf_norm`` (the last Jacobian-norm estimate of adaptive GTF),
    ``deer_iterations`` (mean Newton iterations), ``deer_fallbacks`` (fraction of
    batches whose solve fell back to the sequential loop), ``batch_loss``,
    ``skipped_steps``, ``diverged_steps`` and ``bad_streak``. A saved ``.keras``
    holds the model with its schedule and its current alpha, not these diagnostics.

    Args:
        cell: the latent model; default a clipped shPLRNN with ``latent_dim``
            (default: N, the number of observed features) and ``hidden_dim`` units.
        latent_dim, hidden_dim: sizes of the default cell (ignored with ``cell``).
        gtf: the forcing schedule: a :class:`~keras_dsr.schedules.ForcingSchedule`
            (e.g. ``AdaptiveForcing(k=5, gamma=0.999)``), ``"adaptive"`` or a
            number (constant alpha). Default: ``alpha``.
        alpha: shortcut when ``gtf`` is not given: ``"adaptive"`` (default: adaptive
            GTF with ``alpha_estimator`` and the lab's k = 5, gamma = 0.999) or a
            constant forcing in [0, 1] (1 = classical teacher forcing).
        alpha_estimator: the estimator of ``alpha="adaptive"`` (see
            :data:`keras_dsr.schedules.ESTIMATORS`).
        forcing: ``"full"`` (default, the lab's: every latent unit forced towards
            the data-inferred state) or ``"partial"`` (the first N units only).
        observation: ``"identity"`` (default) or ``"affine"``; ``use_bias``: the
            affine observation's bias.
        method: ``"deer"`` (default), ``"quasi"``, ``"damped"``, ``"sequential"``
            (BPTT with GTF; same gradients), or ``"auto"``
            (:func:`keras_dsr.ops.auto.choose_method`).
        latent_init: ``"zeros"`` or ``"learned"`` initial unobserved units
            (identity observation).
        regularizers: callables ``r(cell) -> scalar`` added to the loss (e.g.
            :class:`~keras_dsr.regularizers.ManifoldAttractorRegularization`).
        solver_options: dict of ``atol``, ``rtol``, ``max_iter`` and ``chunk_size``
            for DEER (see :class:`~keras_dsr.layers.GTFDEERLayer`).
        max_bad_steps, divergence_factor: see
            :class:`~keras_dsr.models.engine.GuardedModel`.

    Example (the lab's Lorenz-63 recipe: clipped shPLRNN, adaptive GTF):
        >>> model = DSRModel(hidden_dim=100, gtf=AdaptiveForcing())
        >>> model.compile(optimizer=keras.optimizers.Adam(1e-3), steps_per_execution=10)
        >>> model.fit(windows, epochs=10)
        >>> traj = model.generate(x0, steps=10_000)       # [1, 10000, N]
    """

    def __init__(self, cell=None, latent_dim=None, hidden_dim=100, gtf=None, alpha="adaptive",
                 alpha_estimator="product_upper_bound", forcing="full", observation="identity",
                 use_bias=False, method="deer", latent_init="zeros", regularizers=None,
                 solver_options=None, max_bad_steps=10, divergence_factor=100.0, **kwargs):
        super().__init__(max_bad_steps=max_bad_steps, divergence_factor=divergence_factor,
                         **kwargs)
        if isinstance(cell, dict):
            cell = keras.saving.deserialize_keras_object(cell)
        self.schedule = schedules_lib.get(alpha if gtf is None else gtf,
                                          estimator=alpha_estimator)
        if latent_dim is not None:
            latent_dim = check_int(latent_dim, "latent_dim", 1, "DSRModel")
        hidden_dim = check_int(hidden_dim, "hidden_dim", 1, "DSRModel")
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
        self.forcing, self.observation, self.use_bias = forcing, observation, bool(use_bias)
        self.method, self.latent_init = method, latent_init
        self.regularizers = regularizers
        self.solver_options = options
        self.observed_dim = None
        self.gtf = None
        if cell is not None:
            self._make_gtf()
        self.alpha_tracker = LastValue(name="alpha")
        self.norm_tracker = LastValue(name="gtf_norm")
        self.iterations_tracker = keras.metrics.Mean(name="deer_iterations")
        self.fallback_tracker = keras.metrics.Mean(name="deer_fallbacks")

    def _make_gtf(self):
        self.gtf = GTFDEERLayer(self.cell, gtf=self.schedule, forcing=self.forcing,
                                observation=self.observation, use_bias=self.use_bias,
                                method=self.method, latent_init=self.latent_init, name="gtf",
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

    def training_targets(self, x, y):
        return x[:, 1:] if y is None else y

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if y is None:
            y = x[:, 1:]
        elif y.shape[1] is not None and y.shape[1] == x.shape[1]:
            y = y[:, 1:]  # targets aligned with the inputs (e.g. (x, x) windows)
        loss = super().compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight,
                                    training=training)
        for reg in self.regularizers:
            loss = loss + ops.cast(reg(self.cell), loss.dtype)
        info = self.gtf.last_diagnostics
        if info:
            self.alpha_tracker.update_state(info["alpha"])
            norm = info["norm"]
            previous = ops.convert_to_tensor(self.norm_tracker.value)
            self.norm_tracker.update_state(
                ops.where(ops.isfinite(norm), ops.cast(norm, previous.dtype), previous))
            self.iterations_tracker.update_state(info["iterations"])
            self.fallback_tracker.update_state(info["fell_back"])
            self.gtf.last_diagnostics = {}
        self.record_batch_loss(loss)
        return loss

    def fit(self, x=None, y=None, *args, **kwargs):
        """Keras's ``fit``, after validating array windows ``x`` ``[B, T, N]`` and building
        the model from their shape (the weight initialisers must run eagerly, not
        under the trainers' symbolic tracing). Nothing else is added: no callbacks,
        no host-side training logic."""
        if isinstance(x, keras.utils.PyDataset):
            first = x[0]
            shape = np.shape(first[0] if isinstance(first, tuple) else first)
        else:
            x = validate_windows(x, self.observed_dim, where="DSRModel.fit")
            shape = x.shape
        if not self.built:
            self.build((None,) + tuple(shape[1:]))
        return super().fit(x, y, *args, **kwargs)

    def set_schedule(self, schedule, reset=True):
        """Install a forcing schedule in the compiled step (rebuilds the train function).

        With ``reset`` (default) alpha restarts at the schedule's initial value and
        its step count at 0.
        """
        schedule = schedules_lib.get(schedule)
        self.schedule = schedule
        if self.gtf is not None:
            self.gtf.schedule = schedule
            if self.gtf.built and reset:
                _sync_state(self)
                self.gtf.alpha.assign(schedule.initial_alpha)
                self.gtf.forcing_step.assign(0)
        if getattr(self, "train_function", None) is not None:
            self.make_train_function(force=True)

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
        _sync_state(self)
        return float(ops.convert_to_numpy(self.gtf.alpha))

    # ----------------------------------------------------------- generation
    # ----------------------------------------------------------- generation
    def run_initial_state(self, x0):
        return (self.gtf.initial_state(x0),)

    def run_step(self, state):
        return (self.cell(state[0]),)

    def run_observe(self, states):
        return self.gtf.observe(states[0])

    def generate(self, x0=None, steps=None, burn_in=0, return_latent=False, return_state=False,
                 state=None):
        """Run the model freely from observations ``x0`` or from a latent ``state``.

        Args:
            x0: ``[B, N]`` or ``[N]`` initial observation (the latent state is the
                observation model's ``init(x0)``, as in training), or None with ``state``.
            steps: number of steps returned (int >= 1).
            burn_in: steps run first and dropped (int >= 0), e.g. a transient.
            return_latent: also return the latent trajectory ``[B, steps, M]``.
            return_state: also return the last latent state ``[B, M]``; pass it as
                ``state`` to continue the run where it stopped.
            state: ``[B, M]`` or ``[M]`` latent state to start from instead of ``x0``.

        Returns:
            numpy ``[B, steps, N]`` (``[steps, N]`` for a 1-D ``x0`` / ``state``): the
            observations of ``z_{burn_in+1} .. z_{burn_in+steps}``; then, as asked, the
            latent trajectory and the last state, as a tuple. A trajectory that becomes
            non-finite is returned as is with a ``RuntimeWarning`` naming the step.

        Example:
            >>> x, last = model.generate(x0, 1000, burn_in=100, return_state=True)
            >>> more = model.generate(state=last, steps=1000)     # continues the run
        """
        if not self.built:
            raise ValueError("DSRModel.generate: the model is not built; fit or build it first.")
        steps = check_int(steps, "steps", 1, "DSRModel.generate")
        burn_in = check_int(burn_in, "burn_in", 0, "DSRModel.generate")
        if (x0 is None) == (state is None):
            raise ValueError("DSRModel.generate: give exactly one of `x0` and `state`.")
        m = self.cell.latent_dim
        start, width, name = (x0, self.observed_dim, "x0") if state is None else (state, m, "state")
        start = np.asarray(start, dtype="float32")
        single = start.ndim == 1
        if single:
            start = start[None]
        if start.ndim != 2 or start.shape[-1] != width:
            raise ValueError(f"`{name}` must have shape [B, {width}] or [{width}], "
                             f"got {start.shape}.")
        if not np.all(np.isfinite(start)):
            raise ValueError(f"`{name}` contains NaN or inf: a free run needs a finite start.")
        start = ops.convert_to_tensor(start)
        z0 = self.run_initial_state(start) if state is None else (start,)
        (latent,) = self.free_run(z0, int(burn_in) + int(steps))
        obs = np.asarray(ops.convert_to_numpy(self.run_observe((latent,))))[:, burn_in:]
        latent = np.asarray(ops.convert_to_numpy(latent))
        bad = ~np.isfinite(latent)
        if bad.any():
            step = int(np.argwhere(bad.any(axis=(0, 2)))[0, 0]) + 1
            warnings.warn(f"DSRModel.generate: the trajectory became non-finite at step {step}.",
                          RuntimeWarning, stacklevel=2)
        last = latent[:, -1]
        latent = latent[:, burn_in:]
        if single:
            obs, latent, last = obs[0], latent[0], last[0]
        out = (obs,) + ((latent,) if return_latent else ()) + ((last,) if return_state else ())
        return out if len(out) > 1 else obs

    def get_config(self):
        config = super().get_config()
        config.update(
            cell=None if self.cell is None else keras.saving.serialize_keras_object(self.cell),
            latent_dim=self.latent_dim, hidden_dim=self.hidden_dim,
            gtf=keras.saving.serialize_keras_object(self.schedule),
            forcing=self.forcing, observation=self.observation, use_bias=self.use_bias,
            method=self.method, latent_init=self.latent_init,
            regularizers=[keras.saving.serialize_keras_object(r) for r in self.regularizers],
            solver_options=self.solver_options,
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if "gtf" not in config and "forcing" not in config:
            # saved before forcing through the observation model: only the observed
            # units were forced then
            config["forcing"] = "partial"
        return cls(**config)


def _sync_state(model):
    """On JAX during ``fit``, bring the trainer's state back into the variables."""
    if keras.backend.backend() == "jax" and getattr(model, "_jax_state", None) is not None:
        model.jax_state_sync()
