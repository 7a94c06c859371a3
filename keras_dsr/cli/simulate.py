"""``keras-dsr simulate``: simulate a system into a .npy / .csv file."""

from keras_dsr.cli._data import _simulate, _system
from keras_dsr.cli._shared import DATA_EXT, _check_out, _check_output, _save_array, _say
from keras_dsr.cli._args import _nonneg_float, _positive_float, _positive_int


def cmd_simulate(args):
    system = _system(args.system)
    _check_output(args.output, DATA_EXT)
    _check_out(args.output)
    tr = _simulate(system.name, args.steps, seed=args.seed, noise=args.noise, dt=args.dt,
                   burn_in=args.burn_in, standardize=args.standardize)
    _save_array(args.output, tr.x, [f"x{i + 1}" for i in range(tr.x.shape[1])])
    _say(args, f"wrote {args.output}: {system.name}, {tr.x.shape[0]} steps x {tr.x.shape[1]} "
               f"variables, dt = {tr.dt:g}, seed {args.seed}, noise {args.noise:g}"
               + (", standardised" if args.standardize else ""))
    return 0


HELP = "simulate a system into a .npy / .csv file"
run = cmd_simulate


def add_arguments(p):
    p.add_argument("system", help="system name (see 'keras-dsr systems')")
    p.add_argument("--steps", type=_positive_int, default=10_000, help="samples (default 10000)")
    p.add_argument("--noise", type=_nonneg_float, default=0.0,
                   help="observation noise, fraction of each variable's std (default 0)")
    p.add_argument("--dt", type=_positive_float, help="sampling interval (default: the system's)")
    p.add_argument("--burn-in", type=_nonneg_float, help="transient discarded, in time units "
                   "(default: the system's)")
    p.add_argument("--standardize", action="store_true", help="z-score each variable")
    p.add_argument("--output", "-o", required=True, help="output file (.npy or .csv)")
