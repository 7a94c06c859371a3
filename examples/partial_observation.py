"""Reconstruct Lorenz-63 from a noisy recording of x alone: delay embedding, training, scores.

The experiment of a scalar measurement: Lorenz-63 is simulated, only its x variable is
kept, with Gaussian observation noise (default 10 % of its standard deviation). The
series is delay-embedded (lag from the auto mutual information, dimension from false
nearest neighbours; :func:`keras_dsr.embedding.prepare`), a clipped shPLRNN is trained
on the embedded vectors by GTF-DEER, and the free-running model, started from a
state inferred by a forced warm-up on test data (:func:`keras_dsr.observed.warm_start`),
is scored in the embedding space and on the recorded channel alone against a clean
test trajectory passed through the same observation. The floor is a third, independent
true trajectory through that observation.

Noise raises the dimension that false nearest neighbours find: on x with 10 % noise
(50 000 samples, seeds 0 and 1) the lag is 21-22 samples and the false fraction is
0.21-0.23 at d = 3, 0.03-0.04 at d = 4 and below 0.01 at d = 5, so ``--embed auto``
chooses 5 (noise-free: 3, ``tests/test_embedding.py``); ``--embed 3:17`` fixes it.

Run:  python examples/partial_observation.py            (minutes on 2 CPU cores)
      python examples/partial_observation.py --quick    (4 optimiser steps: under a
                                                         minute, mostly compilation)
"""

import argparse

import numpy as np

import keras_dsr  # noqa: F401  (JAX unless a backend was chosen)
from keras_dsr.embedding import prepare
from keras_dsr.observed import evaluate_observed, generate_observed
from keras_dsr.recipes import Recipe, train
from keras_dsr.reconstruction import floor_scores
from keras_dsr.systems import get_system, simulate


def prepare_data(seed=0, noise=0.1, embed="auto", latent=None, train_length=50_000,
                 test_length=50_000, observe="x", observation="identity"):
    """``(prepared training data, clean test, clean floor trajectory)``, the last two
    through the same observation: three Lorenz-63 trajectories (seeds ``seed``,
    ``seed + 1``, ``seed + 2``), standardised with the training statistics, noise on
    the training data only (:func:`keras_dsr.embedding.prepare` for the options)."""
    series = [simulate("lorenz63", n, seed=seed + i, noise=noise if i == 0 else 0.0,
                       standardize=False)
              for i, n in enumerate((train_length, test_length, test_length))]
    mean, std = series[0].x.mean(0), series[0].x.std(0)
    noisy_train, clean_test, clean_other = ((s.x - mean) / std for s in series)
    prep = prepare(noisy_train, observe=observe, embed=embed, latent=latent,
                   observation=observation)
    return prep, prep.observation.apply(clean_test), prep.observation.apply(clean_other)


def run(quick=False, seed=0, noise=0.1, embed="auto", latent=None, steps=3000, seq_len=2000,
        train_length=50_000, test_length=50_000, warmup=50, verbose=0, observe="x",
        observation="identity", lyap_steps=0):
    """Train and score; returns a dict with the embedding, scores, floor and seconds.

    ``observe`` (default ``"x"``; None: all variables), ``embed``, ``latent`` and
    ``observation`` are the options of :func:`keras_dsr.embedding.prepare`. With
    ``lyap_steps > 0`` the result also holds ``"lyap"``, the model's lambda_max per
    time unit, averaged over that many steps of the free run from the warm-started
    state (:func:`keras_dsr.observed.evaluate_observed`).
    """
    if quick:
        steps, seq_len, train_length, test_length = 4, 200, 4_000, 3_000
    prep, x_test, x_other = prepare_data(seed, noise, embed, latent, train_length,
                                         test_length, observe, observation)
    recipe = Recipe(seq_len=seq_len, steps=steps, steps_per_epoch=min(100, steps),
                    hidden_dim=16 if quick else 100, seed=seed, **prep.recipe_changes())
    model, _, seconds = train(recipe, prep.x, verbose=verbose)
    x_gen = generate_observed(model, x_test, warmup=warmup)
    ch = list(prep.channels)
    out = {
        "dim": prep.observation.dim, "lag": prep.observation.lag, "seconds": seconds,
        "embedded": evaluate_observed(model, x_test, x_gen=x_gen, warmup=warmup),
        "recorded": evaluate_observed(model, x_test, channels=ch, x_gen=x_gen, warmup=warmup),
        "floor_embedded": floor_scores(x_test, x_other),
        "floor_recorded": floor_scores(x_test[:, ch], x_other[:, ch]),
        "finite": bool(np.all(np.isfinite(x_gen))),
    }
    if lyap_steps:
        out["lyap"] = evaluate_observed(model, x_test, measures=("lyap",), warmup=warmup,
                                        dt=float(get_system("lorenz63").dt), lyap_steps=lyap_steps,
                                        nonfinite="warn")["lyap"]
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", "--smoke", action="store_true", help="tiny run for CI")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--noise", type=float, default=0.1,
                        help="observation noise, fraction of x's std (default 0.1)")
    parser.add_argument("--embed", default="auto", help="'auto' or DIM:LAG (default auto)")
    parser.add_argument("--latent", type=int, default=None,
                        help="latent size M (default: the embedding dimension)")
    parser.add_argument("--steps", type=int, default=3000, help="optimiser steps")
    args = parser.parse_args(argv)
    out = run(quick=args.quick, seed=args.seed, noise=args.noise, embed=args.embed,
              latent=args.latent, steps=args.steps, verbose=0 if args.quick else 2)
    print(f"delay embedding of x: dim = {out['dim']}, lag = {out['lag']} samples; "
          f"trained in {out['seconds']:.0f} s")
    for space in ("embedded", "recorded"):
        s, f = out[space], out["floor_" + space]
        print(f"{space:>9}: D_stsp = {s['dstsp']:.3f}  D_H = {s['dh']:.3f}   "
              f"(floor {f['dstsp']:.3f} / {f['dh']:.3f})")
    return out


if __name__ == "__main__":
    main()
