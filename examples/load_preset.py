"""Load a pretrained preset from the zoo, let it run freely, and score it against the true system.

Lists the shipped presets (``keras_dsr.zoo.list_presets()``), loads one
(``DSRModel.from_preset(name)``; its metadata, ``model.preset`` or
``zoo.preset_info(name)``, holds the system, dt, the training data's mean and std,
the recipe and the card), simulates a true trajectory of that system
(``keras_dsr.systems``) in its physical units from a held-out initial condition (the
preset's training seed + 1, as in its model card), and lets the model run freely from
the trajectory's first point, also in physical units (a preset carries the units of
its data)::

    model = DSRModel.from_preset("lorenz63")
    traj = model.generate(x0, 10_000)     # x0 [3] and traj [10000, 3]: physical units

The free run follows the protocol of docs/method.md §Evaluation measures (1.25 T steps,
the first quarter dropped); D_stsp and D_H are computed on the standardised
trajectories (the preset's mean and std) and printed next to the floor of an
independent true trajectory (seed + 2). The attractor (physical units) and the power
spectra are saved as PNG figures.

Run:  python examples/load_preset.py                        (T = 100 000 test steps)
      python examples/load_preset.py --preset rossler --output runs/rossler
      python examples/load_preset.py --smoke                 (T = 10 000; CI smoke mode)

Prints the presets, the chosen preset's system, dt and recorded card scores, then
``D_stsp = ...   D_H = ...   (floor of an independent true trajectory: ... / ...)``
and the paths of the figures (``attractor.png``, ``power_spectrum.png`` in ``--output``).
``--preset-dir`` reads presets from another folder of preset folders (e.g. one you
wrote with ``model.save_to_preset(folder, ...)``). Full mode takes about 1 min on a 2-core CPU (mostly the
simulation of the two true trajectories), smoke mode about 20 s.
"""

import argparse
import math
import os
import sys

import numpy as np

import keras_dsr  # noqa: F401  (JAX unless a backend was chosen)
from keras_dsr import zoo
from keras_dsr.measures import (evaluate, generate_for_evaluation, power_spectrum_distance,
                                state_space_divergence)
from keras_dsr.models import DSRModel
from keras_dsr.plotting import plot_attractor, plot_power_spectrum
from keras_dsr.systems import simulate_ensemble


def true_pair(info, steps, seed):
    """Test and independent true trajectories ``[steps, N]`` in the system's units."""
    test, other = simulate_ensemble(info["system"], steps, seeds=(seed, seed + 1),
                                    dt=info["dt"], standardize=False)
    return [t.clean for t in (test, other)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default=None,
                        help='preset name (default: "lorenz63" if shipped, else the first)')
    parser.add_argument("--output", default=None,
                        help="folder for the figures (default: ./keras_dsr_preset_<name>)")
    parser.add_argument("--steps", type=int, default=100_000, help="test trajectory length T")
    parser.add_argument("--seed", type=int, default=None,
                        help="initial-condition seed of the test trajectory "
                             "(default: the preset's training seed + 1)")
    parser.add_argument("--preset-dir", default=None,
                        help="a folder of preset folders (default: the shipped presets)")
    parser.add_argument("--smoke", action="store_true", help="short test trajectory, for CI")
    args = parser.parse_args(argv)
    if args.smoke:
        args.steps = 10_000
    if args.steps < 100:
        parser.error(f"--steps must be >= 100 (test trajectory length), got {args.steps}")
    if args.preset_dir is not None and not os.path.isdir(args.preset_dir):
        parser.error(f"--preset-dir {args.preset_dir!r} is not a folder")

    names = zoo.list_presets(args.preset_dir)
    if not names:
        sys.exit("load_preset.py: no preset is installed (keras_dsr.zoo.list_presets() is "
                 "empty); build one with `python zoo/build.py NAME`.")
    name = args.preset or ("lorenz63" if "lorenz63" in names else names[0])
    if name not in names:
        parser.error(f"--preset {name!r} is not a shipped preset; choose one of {names}")
    info = zoo.preset_info(name, args.preset_dir)
    print(f"presets: {', '.join(names)}")
    card = (info.get("card") or {}).get("scores", {})
    print(f"preset {name!r}: system {info['system']}, dt = {info['dt']}, trained with seed "
          f"{info['recipe']['seed']}; card: "
          + (", ".join(f"{k} {v:.3f}" for k, v in card.items() if isinstance(v, (int, float)))
             or "no scores recorded"))

    if args.preset_dir is None:
        model = DSRModel.from_preset(name)           # = zoo.load_preset(name)
    else:
        model = zoo.load_preset(name, preset_dir=args.preset_dir)
    seed = info["recipe"]["seed"] + 1 if args.seed is None else args.seed
    test, other = true_pair(info, args.steps, seed)

    # free run from test[0] (physical units), the transient dropped: in physical units
    x_gen = generate_for_evaluation(model, test)
    mean, std = np.asarray(info["mean"]), np.asarray(info["std"])
    test_s, other_s, gen_s = ((a - mean) / std for a in (test, other, x_gen))
    s = evaluate(model, test_s, measures=("dstsp", "dh"), x_gen=gen_s)
    floor = {"dstsp": state_space_divergence(test_s, other_s),
             "dh": power_spectrum_distance(test_s, other_s)}
    print(f"free run of {len(x_gen)} steps from a true {info['system']} point (seed {seed}):")
    print(f"D_stsp = {s['dstsp']:.3f}   D_H = {s['dh']:.3f}   (floor of an independent true "
          f"trajectory: {floor['dstsp']:.3f} / {floor['dh']:.3f})")
    print(f"last generated point in the system's units: {np.round(x_gen[-1], 3).tolist()}")

    out = args.output or f"keras_dsr_preset_{name}"
    os.makedirs(out, exist_ok=True)
    paths = [os.path.join(out, f) for f in ("attractor.png", "power_spectrum.png")]
    plot_attractor(test, x_gen, path=paths[0],
                   title=f"preset {name}: D_stsp {s['dstsp']:.3f}, D_H {s['dh']:.3f}")
    plot_power_spectrum(test, x_gen, path=paths[1], dt=info["dt"])
    print("figures: " + ", ".join(paths))
    if not all(math.isfinite(v) for v in s.values()):
        print("warning: the free run diverged (a measure is inf)")
    return s


if __name__ == "__main__":
    main()
