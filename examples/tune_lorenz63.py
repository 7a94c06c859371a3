"""Search GTF-DEER hyperparameters for Lorenz-63 with keras-tuner, scored by D_stsp.

Simulates a training trajectory and an independent validation trajectory, then
runs a keras-tuner search (Bayesian optimisation by default) over the latent and
hidden sizes, the GTF schedule (adaptive gamma and estimator, or a constant
alpha), the learning rate and the training sequence length. The objective is
``val_dsr_score = D_stsp + w * D_H`` of the free-running model on the validation
trajectory (``--dh-weight`` w, default 0), not the training loss. Prints the best
trials and the best configuration as a :class:`keras_dsr.recipes.Recipe`, and
scores the best model on a third, independent test trajectory.

Run:  python examples/tune_lorenz63.py             (20 trials of Recipe().steps: hours on CPU)
      python examples/tune_lorenz63.py --smoke     (2 tiny trials; CI smoke mode)
Needs keras-tuner: pip install 'keras-dsr[tuner]'
"""

import argparse
import time
import warnings

import keras_dsr  # noqa: F401  (JAX unless a backend was chosen)
import keras_tuner as kt
from keras_dsr.measures import evaluate
from keras_dsr.recipes import Recipe
from keras_dsr.systems import simulate
from keras_dsr.tuning import DSRHyperModel

TUNERS = {"bayesian": kt.BayesianOptimization, "random": kt.RandomSearch,
          "hyperband": kt.Hyperband}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny search for CI")
    parser.add_argument("--tuner", choices=sorted(TUNERS), default="bayesian")
    parser.add_argument("--trials", type=int, default=20, help="trials (Hyperband: ignored)")
    parser.add_argument("--steps", type=int, default=Recipe().steps,
                        help="optimiser steps per trial (default: Recipe().steps)")
    parser.add_argument("--dh-weight", type=float, default=0.0,
                        help="objective D_stsp + w * D_H (default w = 0)")
    parser.add_argument("--directory", default="keras_dsr_tuning",
                        help="keras-tuner folder (trials, checkpoints)")
    parser.add_argument("--resume", action="store_true", help="continue a search")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    lengths = (2_000, 500) if args.smoke else (100_000, 10_000)
    train = simulate("lorenz63", lengths[0], seed=args.seed)  # standardised, dt = 0.01
    # validation and test trajectories: other initial conditions, in training units
    val, test = (simulate("lorenz63", n, seed=args.seed + k, standardize=False)
                 for k, n in ((1, lengths[1]), (2, lengths[0])))
    x_train, x_val, x_test = train.x, train.standardize(val.x), train.standardize(test.x)

    if args.smoke:
        # sequential GTF: the fastest compile for a plumbing check (the default is DEER)
        base = Recipe(batch_size=2, steps=2, steps_per_epoch=1, method="sequential",
                      seed=args.seed)
        space = dict(hidden_dims=(8, 16), seq_lens=(50, 100))
        args.trials = 2
    else:
        base = Recipe(steps=args.steps, seed=args.seed)
        space = {}
    hypermodel = DSRHyperModel(x_train, x_val, base=base, dh_weight=args.dh_weight, **space)
    common = dict(objective=hypermodel.objective, directory=args.directory,
                  project_name=f"lorenz63_{args.tuner}", overwrite=not args.resume,
                  seed=args.seed)
    if args.tuner == "hyperband":
        epochs = max(1, -(-base.steps // base.steps_per_epoch))
        tuner = kt.Hyperband(hypermodel, max_epochs=epochs, factor=3, **common)
    else:
        tuner = TUNERS[args.tuner](hypermodel, max_trials=args.trials, **common)

    t0 = time.time()
    tuner.search(verbose=0 if args.smoke else 2)
    print(f"\nsearch: {len(tuner.oracle.trials)} trials in {time.time() - t0:.0f} s "
          f"(objective {hypermodel.objective.name}, lower is better)")
    for trial in tuner.oracle.get_best_trials(min(3, len(tuner.oracle.trials))):
        hp = {k: v for k, v in trial.hyperparameters.values.items() if not k.startswith("tuner/")}
        print(f"  score {trial.score:.4g}  {hp}")

    best = hypermodel.recipe(tuner.get_best_hyperparameters(1)[0])
    print(f"\nbest configuration (retrain with keras_dsr.recipes.train):\n  {best}")
    with warnings.catch_warnings():  # the checkpoint also holds the optimizer state
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        model = tuner.get_best_models(1)[0]
    scores = evaluate(model, x_test, measures=("dstsp", "dh"))
    print(f"best model on an independent test trajectory: D_stsp = {scores['dstsp']:.3f}   "
          f"D_H = {scores['dh']:.3f}")
    return scores


if __name__ == "__main__":
    main()
