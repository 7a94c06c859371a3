"""``keras-dsr evaluate``: the measures of a trained model on data or a system."""

import json

from keras_dsr.io import atomic_write
from keras_dsr.cli._args import _parse_measures
from keras_dsr.cli._data import _check_eval_length, _check_features, _load_model, _test_data
from keras_dsr.cli._shared import PE_STEPS, UsageError, _check_out, _print_scores, _say
from keras_dsr.cli._args import _positive_float, _positive_int
from keras_dsr.cli._shared import DATA_HELP, MEASURES_HELP, length_help


def cmd_evaluate(args):
    from keras_dsr.measures import evaluate

    measures = _parse_measures(args.measures)
    if args.output:
        _check_out(args.output)
    model, card = _load_model(args.model)
    data = _test_data(args.data, args, card, length=args.length)
    _check_features(model, data, args.data)
    _check_eval_length(data, args.data)
    if "pe" in measures and data.x.shape[0] <= PE_STEPS:
        raise UsageError(f"PE({PE_STEPS}) needs more than {PE_STEPS} test steps.")
    if "lyap" in measures and not data.dt:
        raise UsageError("lambda_max needs the sampling interval: pass --dt.")
    _say(args, f"scoring {args.model} on {data.x.shape[0]} steps of {args.data}")
    if args.score_on == "recorded":
        scores = _score_recorded(model, data, card, measures, args)
    else:
        scores = evaluate(model, data.x, measures=measures, dt=data.dt, pe_steps=PE_STEPS)
    ref = data.system.lyapunov_ref if data.system is not None else None
    _print_scores(scores, reference=ref)
    if args.output:
        with atomic_write(args.output) as fh:
            json.dump({"model": args.model, "data": data.info, "score_on": args.score_on,
                       "scores": scores}, fh, indent=2)
        _say(args, f"wrote {args.output}")
    return 0


def _score_recorded(model, data, card, measures, args):
    """The scores on the recorded channels alone (delay 0 of the card's observation), from a
    free run warm-started on the test data (:func:`keras_dsr.observed.evaluate_observed`)."""
    from keras_dsr.cli._data import _observation
    from keras_dsr.observed import evaluate_observed

    obs = _observation(card)
    if obs is None:
        raise UsageError(f"--score-on recorded: {args.model!r} has no delay embedding or "
                         "observed subset in its card (data.observation); every column is "
                         "recorded, use --score-on all.")
    channels = list(range(data.x.shape[1] // obs.dim))  # delay 0 of each recorded channel
    _say(args, f"scoring on the recorded channel(s) {channels} of {data.x.shape[1]} columns")
    return evaluate_observed(model, data.x, measures=measures, channels=channels, dt=data.dt,
                             pe_steps=PE_STEPS)


HELP = "measures of a trained model on data or a system"
run = cmd_evaluate


def add_arguments(p):
    p.add_argument("model", help="trained model (.keras)")
    p.add_argument("data", help=DATA_HELP + "; a system is simulated from seed --seed + 1")
    p.add_argument("--measures", default="dstsp,dh,pe", help=MEASURES_HELP +
                   " (default dstsp,dh,pe)")
    p.add_argument("--length", type=_positive_int, help=length_help())
    p.add_argument("--dt", type=_positive_float, help="sampling interval (default: card / system)")
    p.add_argument("--score-on", choices=("all", "recorded"), default="all",
                   help="'all' columns the model observes (default), or the 'recorded' "
                        "channels alone of a delay-embedded model (its delay-0 columns; the "
                        "free run warm-started on the test data)")
    p.add_argument("--output", "-o", help="also write the scores as JSON")
