"""``keras-dsr generate``: free run of a trained model from an initial condition."""

import argparse

from keras_dsr.cli._data import Data, _check_features, _load_model, _test_data, _units
from keras_dsr.cli._shared import DATA_EXT, UsageError, _check_out, _check_output, _save_array, _say
from keras_dsr.cli._args import _positive_float, _positive_int
from keras_dsr.cli._shared import DATA_HELP


def cmd_generate(args):
    import numpy as np

    _check_output(args.output, DATA_EXT)
    _check_out(args.output)
    model, card = _load_model(args.model)
    if (args.x0 is None) == (args.source is None):
        raise UsageError("give exactly one of --x0 and --from.")
    if args.x0 is not None:
        try:
            x0_raw = np.array([float(v) for v in args.x0.split(",")])
        except ValueError:
            raise UsageError(f"--x0 {args.x0!r}: expected comma-separated numbers.") from None
        if not np.all(np.isfinite(x0_raw)):
            raise UsageError(f"--x0 {args.x0!r}: every value must be a finite number "
                             "(no nan or inf).")
        if x0_raw.size != model.observed_dim:
            raise UsageError(f"--x0 has {x0_raw.size} value(s); the model observes "
                             f"{model.observed_dim}.")
        if card:
            mean, std = _units(card, x0_raw[None])
        else:  # no card: --x0 is in model units
            mean, std = np.zeros(x0_raw.size), np.ones(x0_raw.size)
        data = Data(None, mean, std, None, {})
        x0 = (x0_raw - mean) / std
    else:
        data = _test_data(args.source, args, card, length=max(args.index + 1, 2))
        _check_features(model, data, args.source)
        if not -data.x.shape[0] <= args.index < data.x.shape[0]:
            raise UsageError(f"--index {args.index} is outside the data "
                             f"({data.x.shape[0]} steps).")
        x0 = data.x[args.index]
    x = model.generate(np.asarray(x0, "float32"), args.steps)
    x = data.to_raw(np.asarray(x, "float64"))
    _save_array(args.output, x, [f"x{i + 1}" for i in range(x.shape[1])])
    _say(args, f"wrote {args.output}: {x.shape[0]} generated steps x {x.shape[1]} variables"
               + ("" if card or args.x0 is None else " (no model card: model units)"))
    return 0


HELP = "free run of a trained model"
run = cmd_generate


def add_arguments(p):
    p.add_argument("model", help="trained model (.keras)")
    p.add_argument("--x0", help="initial observation, comma-separated, in data units "
                   "(write --x0=-1,2,3 when the first value is negative)")
    p.add_argument("--from", dest="source", help="take the initial observation from " +
                   DATA_HELP)
    p.add_argument("--index", type=int, default=0, help="time step of --from (default 0)")
    p.add_argument("--steps", type=_positive_int, default=10_000, help="steps (default 10000)")
    p.add_argument("--dt", type=_positive_float, help=argparse.SUPPRESS)
    p.add_argument("--output", "-o", required=True, help="output file (.npy or .csv)")
