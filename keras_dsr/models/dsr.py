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
from keras_dsr.ops.solvers import serialize


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
        solver_options: dict of ``atol``, ``rtol``, ``max_iter``, ``chunk_size`` and
            ``linear_solver`` for DEER (see :class:`~keras_dsr.layers.GTFDEERLayer`);
            e.g. ``{"linear_solver": ShardedScan()}`` trains with the time axis of
            every window split over the devices (sequence parallelism, JAX).
        max_bad_steps, divergence_factor: see
            :class:`~keras_dsr.models.engine.GuardedModel`.
        data_mean, data_std: the observation units (default None: none): the
            per-variable mean and standard deviation ``[N]`` of the raw data the
            model was trained on, standardised. Set, :meth:`generate` takes ``x0``
            and returns observations in the data's physical units; see
            :meth:`set_normalization`. Training (``fit``, ``call``) always works in
            the model's standardised units.

    Example (the lab's Lorenz-63 recipe: clipped shPLRNN, adaptive GTF):
        >>> model = DSRModel(hidden_dim=100, gtf=AdaptiveForcing())
        >>> model.compile(optimizer=keras.optimizers.Adam(1e-3), steps_per_execution=10)
        >>> model.fit(windows, epochs=10)
        >>> traj = model.generate(x0, steps=10_000)       # [1, 10000, N]
    """

    def __init__(self, cell=None, latent_dim=None, hidden_dim=100, gtf=None, alpha="adaptive",
                 alpha_estimator="product_upper_bound", forcing="full", observation="identity",
                 use_bias=False, method="deer", latent_init="zeros", regularizers=None,
                 solver_options=None, max_bad_steps=10, divergence_factor=100.0,
                 data_mean=None, data_std=None, **kwargs):
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
        unknown = set(options) - {"atol", "rtol", "max_iter", "chunk_size", "linear_solver"}
        if unknown:
            raise ValueError("`solver_options` accepts atol, rtol, max_iter, chunk_size, "
                             f"linear_solver; got {sorted(unknown)}.")
        self.cell = cell
        self.latent_dim, self.hidden_dim = latent_dim, hidden_dim
        self.forcing, self.observation, self.use_bias = forcing, observation, bool(use_bias)
        self.method, self.latent_init = method, latent_init
        self.regularizers = regularizers
        self.solver_options = options
        self.observed_dim = None
        self.set_normalization(data_mean, data_std)
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
        if self.data_mean is not None and len(self.data_mean) != n:
            raise ValueError(f"DSRModel: the normalization has {len(self.data_mean)} "
                             f"variable(s), the input {n}.")
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

    # -------------------------------------------------------- units, presets
    def set_normalization(self, mean=None, std=None):
        """Set (or, with both None, clear) the observation units of :meth:`generate`.

        ``mean`` and ``std`` ``[N]`` are those of the raw data the model was
        trained on, standardised as ``(x - mean) / std``. Set, ``generate`` takes
        ``x0`` in the data's physical units and returns the observations in them:
        ``generate(x0) = generate_std((x0 - mean) / std) * std + mean``. Latent
        states (``state=``, ``return_latent``, ``return_state``) stay in the model's
        own coordinates. Training (``fit``, ``call``, losses) is unaffected: it
        works in the standardised units. The normalization is part of the config
        (``data_mean``, ``data_std``), so a saved ``.keras`` or preset keeps it.

        Raises:
            ValueError: only one given; not 1-D finite numbers; a ``std`` <= 0; sizes
                that differ from each other or from the observed variables.
        """
        if mean is None and std is None:
            self.data_mean = self.data_std = None
            return
        where = "DSRModel.set_normalization"
        if mean is None or std is None:
            raise ValueError(f"{where}: give both `mean` and `std`, or neither.")
        arrays = []
        for key, value in (("mean", mean), ("std", std)):
            try:
                arr = np.asarray(value, dtype="float64")
            except (TypeError, ValueError):
                raise ValueError(f"{where}: `{key}` must be a list of numbers, got "
                                 f"{value!r}.") from None
            if arr.ndim != 1 or arr.size == 0 or not np.all(np.isfinite(arr)):
                raise ValueError(f"{where}: `{key}` must be a non-empty 1-D list of finite "
                                 f"numbers, got {value!r}.")
            arrays.append(arr)
        if arrays[0].size != arrays[1].size:
            raise ValueError(f"{where}: `mean` has {arrays[0].size} value(s), `std` "
                             f"{arrays[1].size}.")
        if np.any(arrays[1] <= 0):
            raise ValueError(f"{where}: every `std` must be > 0, got {std!r}.")
        if self.observed_dim is not None and arrays[0].size != self.observed_dim:
            raise ValueError(f"{where}: `mean`/`std` have {arrays[0].size} value(s), the "
                             f"model observes {self.observed_dim} variable(s).")
        self.data_mean, self.data_std = (tuple(float(v) for v in a) for a in arrays)

    @classmethod
    def from_preset(cls, name_or_path, compile=False):
        """Load a preset: a shipped one by name, or a preset folder by path.

        A bare name (no path separator) is a shipped preset
        (:func:`keras_dsr.zoo.list_presets`); a path (with a separator, or a
        ``pathlib.Path``) is a folder written by :meth:`save_to_preset`. Every
        file's SHA-256 is checked against ``metadata.json`` and the model is
        rebuilt in Keras' safe mode. The model carries the normalization of its
        data, so ``generate`` works in physical units; ``model.preset`` holds the
        metadata (system, dt, ``mean``, ``std``, recipe, card).

        Args:
            compile: also compile it (Adam, observation MSE) for further training.

        Raises:
            keras_dsr.zoo.PresetError: unknown name (the message lists the known
                ones), or a missing, unreadable or corrupted file (named).

        Example:
            >>> model = DSRModel.from_preset("lorenz63")
            >>> traj = model.generate([1.0, 1.0, 20.0], steps=10_000)   # [10000, 3]
        """
        from keras_dsr.zoo.preset import load_preset_folder, resolve

        model = load_preset_folder(resolve(name_or_path), compile=compile)
        if not isinstance(model, cls):
            from keras_dsr.zoo.preset import PresetError

            raise PresetError(f"{name_or_path!r} holds a {type(model).__name__}, not a "
                              f"{cls.__name__}.")
        return model

    def save_to_preset(self, folder, system=None, dt=None, recipe=None, card=None):
        """Write the model as a preset folder (atomically; an existing one is replaced).

        The folder holds ``config.json`` (the Keras config, normalization
        included), ``model.weights.h5``, ``metadata.json`` (system, dt, the
        normalization's ``mean``/``std``, recipe, card, versions and the SHA-256 of
        every other file) and ``README.md`` (the model card, generated from the
        metadata). Load it with :meth:`from_preset` (a path).

        Args:
            folder: the preset folder; its name is the preset's name.
            system: name of the system or data set (a string), or None.
            dt: sampling interval of the data (a number > 0), or None.
            recipe: the :class:`~keras_dsr.recipes.Recipe` (or its dict) that trained it.
            card: JSON-serialisable dict of measures and training facts (the zoo's:
                ``scores``, ``floor``, ``lyap_true``, ``candidates``, ...).

        Returns:
            the metadata written (a dict).

        Example:
            >>> model.set_normalization(traj.mean, traj.std)
            >>> model.save_to_preset("my_presets/lorenz63", system="lorenz63", dt=traj.dt)
            >>> DSRModel.from_preset("my_presets/lorenz63").generate(x0_raw, 1000)
        """
        from keras_dsr.zoo.preset import save_preset

        return save_preset(self, folder, system=system, dt=dt, recipe=recipe, card=card)

    @property
    def alpha(self):
        """Current GTF forcing (a float); set it with :func:`keras_dsr.callbacks.set_alpha`."""
        _sync_state(self)
        return float(ops.convert_to_numpy(self.gtf.alpha))

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

        With a normalization (:meth:`set_normalization`; every zoo preset has
        one), ``x0`` and the returned observations are in the data's physical
        units; without one (the default) in the model's standardised units.

        Args:
            x0: ``[B, N]`` or ``[N]`` initial observation (the latent state is the
                observation model's ``init(x0)``, as in training), or None with ``state``.
            steps: number of steps returned (int >= 1).
            burn_in: steps run first and dropped (int >= 0), e.g. a transient.
            return_latent: also return the latent trajectory ``[B, steps, M]``.
            return_state: also return the last latent state ``[B, M]``; pass it as
                ``state`` to continue the run where it stopped.
            state: ``[B, M]`` or ``[M]`` latent state to start from instead of ``x0``
                (the model's own coordinates, with or without a normalization).

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
        scale = self.data_mean is not None
        start = np.asarray(start, dtype="float64" if scale and state is None else "float32")
        single = start.ndim == 1
        if single:
            start = start[None]
        if start.ndim != 2 or start.shape[-1] != width:
            raise ValueError(f"`{name}` must have shape [B, {width}] or [{width}], "
                             f"got {start.shape}.")
        if not np.all(np.isfinite(start)):
            raise ValueError(f"`{name}` contains NaN or inf: a free run needs a finite start.")
        if scale and state is None:  # x0 in physical units: standardise
            start = ((start - np.asarray(self.data_mean)) / np.asarray(self.data_std))
            start = start.astype("float32")
        start = ops.convert_to_tensor(start)
        z0 = self.run_initial_state(start) if state is None else (start,)
        (latent,) = self.free_run(z0, int(burn_in) + int(steps))
        obs = np.asarray(ops.convert_to_numpy(self.run_observe((latent,))))[:, burn_in:]
        if scale:  # back to physical units
            obs = (obs * np.asarray(self.data_std) + np.asarray(self.data_mean)).astype(obs.dtype)
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
            solver_options={k: serialize(v) if k == "linear_solver" else v
                            for k, v in self.solver_options.items()},
            data_mean=None if self.data_mean is None else list(self.data_mean),
            data_std=None if self.data_std is None else list(self.data_std),
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
