"""``track_checkpoints.py`` with training changes that ``Recipe`` does not offer.

All were tried on Hindmarsh-Rose's lambda_max excess (``RESULTS_zoo.md``, sessions 10-11):

* ``--a-max A``: after every optimiser step the cell's diagonal ``a`` is projected into
  [-A, A] (a clipped shPLRNN is bounded only while max |a_i| < 1; trained Hindmarsh-Rose
  models had a_i up to 1.03).
* ``--tangent BETA``: adds ``BETA * mean_t |J(x_t) v_t - v_{t+1}|^2`` to the loss, with
  ``v_t = (x_{t+1} - x_{t-1}) / 2`` the data's central differences (step units) and
  ``J`` the cell's Jacobian at the data point (latent_dim = N). A flow map carries the
  velocity into the velocity one step later, ``DPhi(x) f(x) = f(Phi(x))``, which gives
  a flow its zero Lyapunov exponent; a map learned from the flow's samples need not.
* ``--jsmooth BETA``: adds ``BETA * mean_t sum_ij (w_i (J(x_{t+1}) - J(x_t))_ij)^2``, the
  change of the cell's Jacobian between consecutive data points. A flow map's Jacobian
  varies smoothly along an orbit; a piecewise-linear map's jumps wherever a ReLU unit
  switches, and the one-step loss barely sees jumps in the rows of slow variables.
  ``w_i = 1``, or with ``--jsmooth-rows`` ``w_i = rms(s) / s_i`` with ``s_i`` the sd of
  variable i's one-step increments in the training data (a slow variable's row weighs
  more).

All other arguments are ``track_checkpoints.py``'s.

Usage (repository root):

    KERAS_BACKEND=jax python research/recipe_search/track_variants.py --tangent 30 \\
        hindmarsh_rose '{"steps": 6000, "chunk_size": 250}' --every 5 --top 2
"""

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import ops  # noqa: E402

import track_checkpoints  # noqa: E402
from keras_dsr.models import dsr  # noqa: E402


class ProjectA(keras.callbacks.Callback):
    """Clip the cell's diagonal ``a`` into [-a_max, a_max] after every step."""

    def __init__(self, a_max):
        super().__init__()
        self.a_max = a_max

    def on_train_batch_end(self, batch, logs=None):
        a = self.model.cell.a
        v = np.asarray(ops.convert_to_numpy(a))
        if np.abs(v).max() > self.a_max:
            a.assign(np.clip(v, -self.a_max, self.a_max))


def tangent_penalty(model, x):
    """``mean_t |J(x_t) v_t - v_{t+1}|^2`` over a batch of windows ``x`` ``[B, T, N]``."""
    v = (x[:, 2:] - x[:, :-2]) * 0.5  # velocity at t = 1 .. T-2
    jac = model.cell.jacobian(x[:, 1:-2])  # [B, T-3, N, N] at t = 1 .. T-3
    pred = ops.einsum("btij,btj->bti", jac, v[:, :-1])
    return ops.mean(ops.sum(ops.square(pred - v[:, 1:]), axis=-1))


def jacobian_jumps(model, x, row_weights):
    """``mean_t sum_ij (w_i (J(x_{t+1}) - J(x_t))_ij)^2`` over windows ``x`` ``[B, T, N]``."""
    jac = model.cell.jacobian(x)  # [B, T, N, N]
    d = (jac[:, 1:] - jac[:, :-1]) * ops.cast(np.asarray(row_weights)[:, None], jac.dtype)
    return ops.mean(ops.sum(ops.square(d), axis=(-2, -1)))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], add_help=False)
    p.add_argument("--a-max", type=float, default=None)
    p.add_argument("--tangent", type=float, default=0.0)
    p.add_argument("--jsmooth", type=float, default=0.0)
    p.add_argument("--jsmooth-rows", action="store_true")
    a, rest = p.parse_known_args(argv)
    if a.a_max is not None:
        train = track_checkpoints.train

        def train_projected(recipe, x, callbacks=(), verbose="auto"):
            return train(recipe, x, callbacks=[ProjectA(a.a_max)] + list(callbacks),
                         verbose=verbose)

        track_checkpoints.train = train_projected
    if a.tangent:
        compute_loss = dsr.DSRModel.compute_loss

        def with_tangent(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
            loss = compute_loss(self, x=x, y=y, y_pred=y_pred, sample_weight=sample_weight,
                                training=training)
            return loss + a.tangent * ops.cast(tangent_penalty(self, x), loss.dtype)

        dsr.DSRModel.compute_loss = with_tangent
    if a.jsmooth:
        rows = {}
        train_plain = track_checkpoints.train

        def train_weighted(recipe, x, callbacks=(), verbose="auto"):
            s = np.diff(np.asarray(x), axis=0).std(0)
            rows["w"] = np.sqrt(np.mean(s**2)) / s if a.jsmooth_rows else np.ones_like(s)
            print(f"jsmooth row weights {np.round(rows['w'], 3).tolist()}", flush=True)
            return train_plain(recipe, x, callbacks=callbacks, verbose=verbose)

        track_checkpoints.train = train_weighted
        compute_loss_js = dsr.DSRModel.compute_loss

        def with_jsmooth(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
            loss = compute_loss_js(self, x=x, y=y, y_pred=y_pred,
                                   sample_weight=sample_weight, training=training)
            return loss + a.jsmooth * ops.cast(jacobian_jumps(self, x, rows["w"]), loss.dtype)

        dsr.DSRModel.compute_loss = with_jsmooth
    print(f"track_variants: a_max {a.a_max}, tangent {a.tangent}, jsmooth {a.jsmooth}"
          f"{' (row-weighted)' if a.jsmooth_rows else ''}", flush=True)
    track_checkpoints.main(rest)


if __name__ == "__main__":
    main()
