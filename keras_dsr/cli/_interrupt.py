"""Ctrl-C during a ``keras-dsr`` command: exit code 130, nothing half-written."""


_INTERRUPTED = []  # set by the SIGINT handler: raised again at the next safe point


def _on_sigint(signum, frame):
    """Record the interrupt and raise KeyboardInterrupt.

    JAX runs Python callbacks from its garbage-collector hook ("_xla_gc_callback");
    a KeyboardInterrupt raised inside one is printed as "Exception ignored" and
    lost. The flag survives: :class:`_InterruptCheck` (after each batch) and
    :func:`_raise_if_interrupted` (after training and after writing) raise it again.
    """
    _INTERRUPTED.append(signum)
    raise KeyboardInterrupt


def _raise_if_interrupted():
    if _INTERRUPTED:
        raise KeyboardInterrupt


def _interrupt_callback_class():
    import keras

    class InterruptCheck(keras.callbacks.Callback):
        """Raise KeyboardInterrupt at the next batch / epoch end after a swallowed Ctrl-C."""

        def on_train_batch_end(self, batch, logs=None):
            _raise_if_interrupted()

        def on_epoch_end(self, epoch, logs=None):
            _raise_if_interrupted()

    return InterruptCheck


def _InterruptCheck():  # noqa: N802 - builds the Keras callback lazily (keras import)
    return _interrupt_callback_class()()
