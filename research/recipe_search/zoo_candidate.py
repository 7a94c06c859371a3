"""Train one zoo candidate recipe and score it under the zoo's acceptance criteria.

A cheap probe before a full ``zoo/build.py`` run: the same data, training and scores
as the build and ``keras_dsr/zoo/criteria.py`` (training trajectory of the recipe's
seed, test trajectory seed + 1 and floor trajectory seed + 2 standardised with the
training statistics; D_stsp, D_H and lambda_max of the free run from the first test
point, PE(20); true lambda_max from ``keras_dsr.systems.lyapunov_max``), but on the current
backend only, without tries, and nothing is installed. One JSON line per run is
appended to ``--out``. Results and commands: ``RESULTS_zoo.md`` next to this file.

Usage (repository root; RECIPE is a JSON object of ``keras_dsr.recipes.Recipe``
fields that override the defaults):

    KERAS_BACKEND=jax python research/recipe_search/zoo_candidate.py chua \\
        '{"chunk_size": 250, "init_seed": 1000}' --out zoo_candidates.jsonl
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import keras  # noqa: E402

from keras_dsr.measures import evaluate  # noqa: E402
from keras_dsr.recipes import Recipe, floor_scores, train  # noqa: E402
from keras_dsr.systems import lyapunov_max, simulate  # noqa: E402
from keras_dsr.zoo.criteria import check_scores, held_out_pair, lyap_steps  # noqa: E402


def score(system, recipe, model=None, verbose=0):
    """Train (unless ``model`` is given) and score; returns a dict of the run."""
    tr = simulate(system, recipe.train_length, dt=recipe.dt, seed=recipe.seed)
    test, other = held_out_pair(system, recipe.seed, tr.mean, tr.std, dt=tr.dt)  # as the criteria make it
    floor = {k: float(v) for k, v in floor_scores(test, other, ("dstsp", "dh")).items()}
    lyap_true = float(lyapunov_max(system))
    seconds, final = 0.0, {}
    if model is None:
        model, history, seconds = train(recipe, tr.x, verbose=verbose)
        final = {k: round(float(v[-1]), 5) for k, v in history.history.items()}
    s = evaluate(model, test, measures=("dstsp", "dh", "pe", "lyap"), dt=tr.dt,
                 lyap_steps=lyap_steps(tr.dt, system))
    s = {k: float(v) for k, v in s.items()}
    rel = (s["lyap"] - lyap_true) / abs(lyap_true)
    # the verdict of the criteria module itself (bars in one place, Lorenz-63's absolute ones too)
    ok, lines = check_scores(system, s, {"floor": floor, "lyap": lyap_true})
    return {"system": system, "recipe": recipe.to_dict(), "scores": s, "floor": floor,
            "lyap_true": lyap_true, "lyap_rel": rel, "criteria": lines, "all_met": ok,
            "train_seconds": round(seconds, 1), "final_logs": final,
            "backend": keras.backend.backend(), "date": time.strftime("%Y-%m-%d %H:%M")}, model


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("system")
    p.add_argument("recipe", nargs="?", default="{}", help="JSON of Recipe overrides")
    p.add_argument("--out", default=None, help="append the result as a JSON line here")
    p.add_argument("--save", default=None, help="save the trained model (.keras) here")
    a = p.parse_args(argv)
    recipe = Recipe.from_dict(json.loads(a.recipe))
    row, model = score(a.system, recipe)
    if a.save:
        model.save(a.save)
    s, f = row["scores"], row["floor"]
    print(f"{a.system} {a.recipe}: D_stsp {s['dstsp']:.3f} (bar {f['dstsp'] + 0.2:.3f}), "
          f"D_H {s['dh']:.3f} (bar {2 * f['dh']:.3f}), lambda_max {s['lyap']:.3f} / "
          f"{row['lyap_true']:.3f} ({100 * row['lyap_rel']:+.1f} %), train "
          f"{row['train_seconds']} s: {'MET' if row['all_met'] else 'missed'}", flush=True)
    if a.out:
        with open(a.out, "a") as fh:
            fh.write(json.dumps(row) + "\n")
    return 0 if row["all_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
