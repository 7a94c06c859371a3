"""``keras-dsr plot``: attractor, power-spectrum and time-series figures of a model."""

import os

from keras_dsr.cli._data import _check_eval_length, _check_features, _load_model, _test_data
from keras_dsr.cli._shared import _check_out, _save_figures, _say
from keras_dsr.cli._args import _positive_float, _positive_int
from keras_dsr.cli._shared import DATA_HELP, length_help


def cmd_plot(args):
    from keras_dsr.measures import generate_for_evaluation

    _check_out(os.path.join(args.output_dir, "attractor.png"), "--output-dir")
    model, card = _load_model(args.model)
    data = _test_data(args.data, args, card, length=args.length)
    _check_features(model, data, args.data)
    _check_eval_length(data, args.data)
    x_gen = generate_for_evaluation(model, data.x)
    paths = _save_figures(args.output_dir, data.x, x_gen, data.dt,
                          f"{os.path.basename(args.model)} on {os.path.basename(args.data)}")
    _say(args, "wrote " + ", ".join(paths))
    return 0


HELP = "attractor, power spectra and time series of a model (PNG)"
run = cmd_plot


def add_arguments(p):
    p.add_argument("model", help="trained model (.keras)")
    p.add_argument("data", help=DATA_HELP)
    p.add_argument("--output-dir", default=".", help="folder for the PNGs (default .)")
    p.add_argument("--length", type=_positive_int, help=length_help())
    p.add_argument("--dt", type=_positive_float, help="sampling interval (default: card / system)")
