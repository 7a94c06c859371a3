"""``keras-dsr systems``: the benchmark systems."""

from keras_dsr.cli._shared import _fmt


def cmd_systems(args):
    from keras_dsr.systems import get_system, list_systems

    rows = [(s.name, str(s.n_obs), str(s.dim), f"{s.dt:g}", _fmt(s.lyapunov_ref),
             s.equations.split("   (")[0]) for s in map(get_system, list_systems())]
    head = ("name", "N", "D", "dt", "lambda_max", "equations (default parameters)")
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(5)]
    for r in [head] + rows:
        eq = r[5] if len(r[5]) <= 72 else r[5][:71] + "~"
        print("  ".join(c.ljust(w) for c, w in zip(r[:5], widths)) + "  " + eq)
    print("N: observed variables, D: state dimension, dt: default sampling interval "
          "(time units),\nlambda_max: published largest Lyapunov exponent (per time unit).")
    return 0


HELP = "list the benchmark systems"
run = cmd_systems


def add_arguments(p):
    """``systems`` takes only the global options."""
