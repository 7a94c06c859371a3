"""Train one recipe for a zoo system and score it on the build's five validation pairs.

The candidate ranking of ``zoo/build.py`` (``keras_dsr.zoo.selection``: medians over
five validation trajectories, seeds apart from the criteria's test seeds, and
``validation_score``: <= 1 when every criterion is met on validation data), for a
recipe that has no folder yet: the same data, training (``keras_dsr.recipes.train``,
with the recipe's ``tries``, ``select_epochs`` and ``finetune``) and scores, on the
current backend, without installing anything. One JSON line per run is appended to
``--out``. Results and commands: ``RESULTS_zoo.md`` next to this file.

Usage (repository root; RECIPE is a JSON object of ``keras_dsr.recipes.Recipe`` fields):

    KERAS_BACKEND=jax taskset -c 1 python research/recipe_search/validation_probe.py \\
        aizawa '{"chunk_size": 250, "dt": 0.1, "select_epochs": [10, 15, 20, 25]}' \\
        --out probes.jsonl
"""

import argparse
import json

from keras_dsr.recipes import Recipe, train
from keras_dsr.systems import lyapunov_max, simulate
from keras_dsr.zoo.criteria import pair_floors, pair_scores
from keras_dsr.zoo.selection import validation_pairs, validation_score


def probe(system, recipe, verbose=0):
    """Train ``recipe`` on ``system``'s zoo data; returns the run's dict (validation
    floor and measures of the kept model, the candidates and their scores)."""
    data = simulate(system, recipe.train_length, dt=recipe.dt, seed=recipe.seed)
    pairs = validation_pairs(system, recipe.seed, data.mean, data.std, dt=data.dt)
    floor, _ = pair_floors(pairs)
    lyap_true = float(lyapunov_max(system))

    def measures(model):
        s = pair_scores(model, pairs, data.dt, system)
        return {k: s[k] for k in ("dstsp", "dh", "lyap")}

    result = train(recipe, data.x, verbose=verbose,
                   score_fn=lambda m: validation_score(measures(m), floor, lyap_true))
    model, _, seconds = result
    final = measures(model)
    return {"system": system, "recipe": recipe.to_dict(), "train_s": round(seconds, 1),
            "lyap_true": lyap_true, "val_floor": floor, "val_measures": final,
            "val_score": validation_score(final, floor, lyap_true),
            "candidates": result.report["candidates"],
            "finetune": result.report["finetune"]}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("system")
    p.add_argument("recipe", help="JSON object of Recipe fields")
    p.add_argument("--out", help="append the run's JSON line to this file")
    a = p.parse_args(argv)
    row = probe(a.system, Recipe.from_dict(json.loads(a.recipe)))
    line = json.dumps(row, default=str)
    print(line, flush=True)
    if a.out:
        with open(a.out, "a") as fh:
            fh.write(line + "\n")
    return row


if __name__ == "__main__":
    main()
