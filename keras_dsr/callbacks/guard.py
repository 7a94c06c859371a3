"""Set how many bad steps the compiled train step tolerates."""

import keras

from keras_dsr._checks import check_int


@keras.saving.register_keras_serializable(package="keras_dsr")
class NonFiniteGuard(keras.callbacks.Callback):
    """Set the tolerance of the models' in-step guard for one ``fit``.

    :class:`~keras_dsr.models.DSRModel` and :class:`~keras_dsr.models.SSMModel` never
    apply a step whose loss, gradients or updated weights are non-finite: the
    decision is made inside the compiled train step
    (:class:`~keras_dsr.models.engine.GuardedModel`), without copying weights to the
    host. This callback only sets, for the ``fit`` it is passed to, how many
    consecutive skipped or diverged steps are tolerated before
    :class:`~keras_dsr.models.engine.TrainingDiverged` is raised (the model's
    ``max_bad_steps`` is restored afterwards).

    Args:
        max_restores: consecutive bad steps tolerated (int >= 0); 0 raises at the
            first one.

    Example:
        >>> model.fit(windows, epochs=30, callbacks=[NonFiniteGuard(max_restores=0)])
    """

    def __init__(self, max_restores=3):
        super().__init__()
        check_int(max_restores, "max_restores", 0, "NonFiniteGuard")
        self.max_restores = max_restores
        self._saved = None

    def on_train_begin(self, logs=None):
        if not hasattr(self.model, "max_bad_steps"):
            raise TypeError(f"NonFiniteGuard needs a keras_dsr model (DSRModel, SSMModel), "
                            f"got {type(self.model).__name__}.")
        self._saved = self.model.max_bad_steps
        self.model.max_bad_steps = self.max_restores

    def on_train_end(self, logs=None):
        if self._saved is not None:
            self.model.max_bad_steps = self._saved

    def get_config(self):
        return {"max_restores": self.max_restores}
