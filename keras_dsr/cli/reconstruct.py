"""``keras-dsr reconstruct``: simulate, train, score against the floor; figures, model + card."""

import os

from keras_dsr.cli._args import _check_latent, _parse_measures, _recipe
from keras_dsr.cli._data import Data, _autonomous, _check_observation_options, _default_test_length, _system
from keras_dsr.cli._interrupt import _InterruptCheck, _raise_if_interrupted
from keras_dsr.cli._shared import PE_STEPS, UsageError, _check_out, _print_scores, _save_figures, _say, _verbose
from keras_dsr.cards import final_logs
from keras_dsr.cli.card import _make_card, _save_model
from keras_dsr.cli._args import _add_recipe_options, _nonneg_float, _positive_int, add_observation_options
from keras_dsr.cli._shared import MEASURES_HELP, length_help


def cmd_reconstruct(args):
    from keras_dsr.recipes import reconstruct

    system = _autonomous(_system(args.system))
    recipe = _recipe(args)
    measures = _parse_measures(args.measures)
    if args.observe is None and args.embed is None:  # else checked by embedding.prepare
        _check_latent(recipe, system.n_obs)
    else:
        _check_observation_options(args, system.n_obs)
    outdir = args.output_dir or f"keras_dsr_{system.name}"
    for name in ("model.keras", "model.json", "model.md", "attractor.png"):
        _check_out(os.path.join(outdir, name), "--output-dir")
    if recipe.seq_len > recipe.train_length:
        raise UsageError(f"--seq-len {recipe.seq_len} is longer than the training data "
                         f"(--train-length {recipe.train_length}).")
    test_length = args.test_length or _default_test_length()
    if "pe" in measures and test_length <= PE_STEPS:
        raise UsageError(f"PE({PE_STEPS}) needs --test-length > {PE_STEPS}.")
    _say(args, f"reconstructing {system.name} (dt = {system.dt:g}): training on "
               f"{recipe.train_length} simulated steps, testing on {test_length}")
    _say(args, f"recipe: {recipe}")
    observed = args.observe is not None or args.embed is not None or args.noise > 0
    if observed:  # measured like a recording: some variables, noise, delay embedding
        from keras_dsr.observed import MeasurementError, reconstruct_observed

        try:
            res, prep = reconstruct_observed(
                system.name, recipe, observe=args.observe, embed=args.embed,
                noise=args.noise, measures=measures, test_length=test_length,
                callbacks=[_InterruptCheck()], verbose=_verbose(args))
        except MeasurementError as e:
            raise UsageError(str(e)) from None
        obs = prep.observation
        _say(args, f"observed columns {list(obs.columns) if obs.columns else 'all'}, noise "
                   f"{args.noise:g}; delay embedding dimension {obs.dim}, lag {obs.lag}")
        recipe, true_x = res.recipe, obs.apply(res.test.x)
        mean, std = obs.per_column(res.train.mean), obs.per_column(res.train.std)
    else:
        res = reconstruct(system.name, recipe, measures=measures, test_length=test_length,
                          with_floor=True, callbacks=[_InterruptCheck()],
                          verbose=_verbose(args))
        true_x, mean, std = res.test.x, res.train.mean, res.train.std
    _raise_if_interrupted()
    final = final_logs(res.history)
    _say(args, f"trained in {res.seconds:.1f} s; final loss {final.get('loss', float('nan')):.4g}, "
               f"alpha {final.get('alpha', float('nan')):.3f}")
    print(f"\n{system.name}: free-running model vs the test trajectory")
    floor = dict(res.floor or {})
    if "lyap" in measures and system.lyapunov_ref is not None:
        floor["lyap"] = system.lyapunov_ref
    _print_scores(res.scores, floor=floor)
    info = {"source": "system", "system": system.name, "steps": recipe.train_length,
            "seed": recipe.seed, "dt": res.train.dt, "noise": args.noise,
            "test_steps": test_length, "test_seed": recipe.seed + 1}
    if observed:
        info["observation"] = prep.observation.to_dict()
    data = Data(res.train.x, mean, std, res.train.dt, info, system)
    paths = _save_figures(outdir, true_x, res.generated, res.train.dt,
                          f"{system.name}: true vs generated", history=res.history)
    _say(args, "wrote " + ", ".join(paths))
    card = _make_card(args, data, recipe, res.history, res.seconds, scores=res.scores,
                      floor=floor)
    _save_model(args, res.model, os.path.join(outdir, "model.keras"), card)
    _raise_if_interrupted()
    return 0


HELP = "simulate a system, train, score against the floor; figures, model and card"
run = cmd_reconstruct


def add_arguments(p):
    p.add_argument("system", help="system name (see 'keras-dsr systems')")
    p.add_argument("--output-dir", help="output folder (default ./keras_dsr_SYSTEM)")
    p.add_argument("--test-length", type=_positive_int, help=length_help().replace(
        "test steps simulated for a system", "test steps"))
    p.add_argument("--measures", default="dstsp,dh", help=MEASURES_HELP +
                   " (default dstsp,dh)")
    p.add_argument("--noise", type=_nonneg_float, default=0.0, help="Gaussian observation "
                   "noise on the training data, as a fraction of each variable's std "
                   "(default 0; the model is scored on clean test data)")
    add_observation_options(p)
    _add_recipe_options(p)
