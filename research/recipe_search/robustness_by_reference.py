"""Robustness of shipped presets, judged against each test trajectory of the criteria.

``keras_dsr.zoo.criteria.preset_robustness`` draws its initial conditions around the
first test trajectory and classifies every free run by its D_stsp against that
trajectory (bound: the largest D_stsp of the true system run from the same initial
conditions, + 0.2). This probe repeats the judgement with each of the five test
trajectories as the reference, to see how much the verdict depends on which one
is used.

Usage (from the repository root; about 20 s per trajectory and preset on a free core,
much longer for systems whose true runs integrate slowly):
    KERAS_BACKEND=jax python research/recipe_search/robustness_by_reference.py \
        sprott_b rossler
    options: --n 100 (initial conditions per trajectory)
"""

import argparse
import time

from keras_dsr import zoo
from keras_dsr.robustness import free_run_fates, system_generator
from keras_dsr.zoo.criteria import _standardised, _test_pairs, held_out_length


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("names", nargs="+", help="shipped presets")
    p.add_argument("--n", type=int, default=100)
    a = p.parse_args(argv)
    print("| preset | test trajectory | off the attractor | counts | bound | seconds |")
    print("|---|---|---|---|---|---|")
    for name in a.names:
        model, info = zoo.load_preset(name), zoo.preset_info(name)
        length = held_out_length(info["system"], info["dt"])
        truth = system_generator(info["system"], info["dt"], info["mean"], info["std"])
        for k, (x_ref, _) in enumerate(_test_pairs(name)):
            start = time.perf_counter()
            with _standardised(model):  # as preset_robustness judges (seed 0)
                fates = free_run_fates(model, x_ref, n=a.n, steps=length // 5,
                                       burn_in=length // 20, seed=0, reference=truth)
            counts = {c: v for c, v in fates.counts.items() if v}
            seconds = time.perf_counter() - start
            print(f"| {name} | {k} | {100 * fates.failed:.1f} % | {counts} | "
                  f"{fates.to_dict()['max_dstsp']:.3f} | {seconds:.0f} |", flush=True)


if __name__ == "__main__":
    main()
