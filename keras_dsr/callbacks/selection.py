"""Model selection on validation data: keep the best checkpoint of a ``fit``."""

import math

import keras
import numpy as np

__all__ = ["BestCheckpoint"]


class BestCheckpoint(keras.callbacks.Callback):
    """Score the model after chosen epochs and at the end; restore the best weights.

    Like ``EarlyStopping(restore_best_weights=True)`` on a score that is not a log
    entry: ``score_fn(model) -> float`` (lower is better; e.g. D_stsp of the free run
    on validation data, :func:`keras_dsr.recipes.validation_score_fn`) is computed
    after each epoch in ``epochs`` (1-based) and after the last epoch. At the end of
    training the weights with the lowest score are put back (the weights held in
    memory, not in files). A non-finite score never wins.

    Args:
        score_fn: ``score_fn(model) -> float``.
        epochs: epochs (1-based) after which to score besides the last.
        start_score: optional score of the weights before ``fit`` (e.g. a fine-tuning
            phase that must beat its start); they compete as epoch 0.

    Attributes (after ``fit``):
        scores: ``{epoch: score}``; best_score, best_epoch.

    Example:
        >>> sel = BestCheckpoint(lambda m: score(m), epochs=[5, 10])   # doctest: +SKIP
        >>> model.fit(windows, epochs=15, callbacks=[sel])             # doctest: +SKIP
    """

    def __init__(self, score_fn, epochs=(), start_score=None):
        super().__init__()
        if not callable(score_fn):
            raise TypeError(f"`score_fn` must be callable score_fn(model) -> float, "
                            f"got {score_fn!r}.")
        self.score_fn = score_fn
        self.epochs = {int(e) for e in epochs}
        self.start_score = start_score
        self.scores, self.best_score, self.best_epoch = {}, math.inf, None
        self._best_weights = None

    def _consider(self, epoch, score):
        score = float(score)
        self.scores[epoch] = score
        if math.isfinite(score) and score < self.best_score:
            self.best_score, self.best_epoch = score, epoch
            self._best_weights = [np.array(w) for w in self.model.get_weights()]

    def on_train_begin(self, logs=None):
        self.scores, self.best_score, self.best_epoch = {}, math.inf, None
        self._best_weights = None
        self._last = 0
        if self.start_score is not None:
            self._consider(0, self.start_score)

    def on_epoch_end(self, epoch, logs=None):
        self._last = epoch + 1
        if epoch + 1 in self.epochs:
            self._consider(epoch + 1, self.score_fn(self.model))

    def on_train_end(self, logs=None):
        if self._last and self._last not in self.scores:
            self._consider(self._last, self.score_fn(self.model))
        if self._best_weights is not None and self.best_epoch != self._last:
            self.model.set_weights(self._best_weights)
