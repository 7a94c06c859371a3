"""Reconstruct Lorenz-63 with a clipped shPLRNN trained by GTF-DEER on 10^4-step sequences.

Trains with ``model.fit`` (through :func:`keras_dsr.recipes.reconstruct`) and
adaptive GTF on windows of T = 10 000 steps drawn from a 100 000-step trajectory,
then generates freely from the first point of an independent test trajectory
(another initial condition) and reports the attractor measures of docs/method.md §Evaluation measures
(D_stsp, D_H) against it, next to the floor (an independent true trajectory).

Run:  python examples/train_lorenz63.py            (minutes on 2 CPU cores; see README)
      python examples/train_lorenz63.py --smoke    (seconds; CI smoke mode)

Measured on a quiet 2-core CPU (seed 0, this recipe = ``keras-dsr reconstruct lorenz63
--chunk-size none``): 152 s of training, D_stsp 0.099, D_H 0.063 (floor 0.027 / 0.047).
Earlier, with the three trajectories simulated separately (other trajectories of the
same seeds), on a loaded CPU (seeds 0, 1, 2): 183-281 s, D_stsp 0.265 / 0.111 / 0.287,
D_H 0.063 / 0.059 / 0.094 (research/recipe_search/RESULTS.md).
"""

import argparse

import keras_dsr  # noqa: F401  (JAX unless a backend was chosen)
from keras_dsr.recipes import Recipe, reconstruct


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny run for CI")
    parser.add_argument("--seq-len", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=3000, help="optimiser steps")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--hidden", type=int, default=100)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--alpha", type=float, default=None,
                        help="constant GTF alpha instead of adaptive GTF")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    recipe = Recipe(seq_len=args.seq_len, batch_size=args.batch_size, steps=args.steps,
                    steps_per_epoch=100, hidden_dim=args.hidden, learning_rate=args.lr,
                    alpha="adaptive" if args.alpha is None else args.alpha,
                    gtf_gamma=0.99, seed=args.seed)
    test_length = 100_000
    if args.smoke:
        recipe = recipe.replace(seq_len=200, steps=4, steps_per_epoch=2, hidden_dim=16,
                                train_length=5_000)
        test_length = 5_000
    result = reconstruct("lorenz63", recipe, test_length=test_length, with_floor=True,
                         verbose=2)
    s, f = result.scores, result.floor
    print(f"\ntrained in {result.seconds:.0f} s; final alpha = {result.model.alpha:.3f}")
    print(f"D_stsp = {s['dstsp']:.3f}   D_H = {s['dh']:.3f}   "
          f"(floor of an independent true trajectory: {f['dstsp']:.3f} / {f['dh']:.3f})")
    return s


if __name__ == "__main__":
    main()
