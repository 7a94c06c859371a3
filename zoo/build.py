"""Rebuild a zoo preset from scratch: simulate, train with GTF-DEER, evaluate, ship.

Each preset has a folder ``zoo/<name>/`` with ``recipe.json`` (the system and the
:class:`keras_dsr.recipes.Recipe` fields, among them ``tries``, ``select_epochs`` and
``finetune``: the model selection on validation trajectories). This script
trains it with :func:`keras_dsr.recipes.train`, measures the free-running model against
five held-out test trajectories (D_stsp, D_H: medians; PE(20), lambda_max) next to the
floors of independent true trajectories and the true lambda_max, on every installed
backend, and its free runs from 100 initial conditions (robustness), writes the model
card (:func:`keras_dsr.zoo.card.card_text`: the preset's ``README.md``, copied to
``zoo/<name>/CARD.md``) and installs the model into the package as the preset folder
``keras_dsr/zoo/presets/<name>/`` (``DSRModel.save_to_preset``: config, weights,
metadata with the normalization, recipe, card and SHA-256s, and the README card) —
only when the model meets the acceptance criteria of ``keras_dsr/zoo/criteria.py``;
otherwise the card records the failed build and the preset is not installed.

Usage (from the repository root):
    KERAS_BACKEND=jax python zoo/build.py lorenz63
    KERAS_BACKEND=jax python zoo/build.py --all
    KERAS_BACKEND=jax python zoo/build.py --judge --all   # judge again, no training
"""

import argparse
import datetime
import json
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
os.environ.setdefault("KERAS_BACKEND", "jax")

import keras_dsr  # noqa: E402,F401
import keras  # noqa: E402
from keras_dsr import zoo  # noqa: E402
from keras_dsr.cards import final_logs, machine_line  # noqa: E402
from keras_dsr.recipes import Recipe, train  # noqa: E402
from keras_dsr.systems import lyapunov_max, simulate  # noqa: E402
from keras_dsr.zoo.criteria import (  # noqa: E402
    check_scores, pair_floors, pair_scores, preset_robustness, preset_scores, true_reference)
from keras_dsr.zoo.selection import validation_pairs, validation_score  # noqa: E402


GATE = False  # robustness is reported on the card; True: it decides the status too
#: The training record of a card, kept when a preset is judged again (``--judge``).
FACTS = ("train_seconds", "candidates", "finetune", "validation", "final_logs", "machine",
         "date")


def recipes():
    """Names of the preset folders that hold a ``recipe.json``."""
    return sorted(d for d in os.listdir(HERE)
                  if os.path.isfile(os.path.join(HERE, d, "recipe.json")))


def load_recipe(name):
    """``(system, recipe)`` of preset ``name`` (``zoo/<name>/recipe.json``).

    The file holds the system and the :class:`~keras_dsr.recipes.Recipe` fields; the
    model-selection fields (``tries``, ``select_epochs``, ``finetune``) may stand beside
    the recipe too, as they did before they became Recipe fields.
    """
    with open(os.path.join(HERE, name, "recipe.json")) as fh:
        spec = json.load(fh)
    fields = dict(spec["recipe"])
    for key in ("tries", "select_epochs", "finetune"):
        if key in spec:
            fields[key] = spec[key]
    return spec["system"], Recipe.from_dict(fields)


def train_candidates(system, recipe, verbose=2):
    """Train ``recipe`` (its ``tries``, ``select_epochs`` and ``finetune``) with
    :func:`keras_dsr.recipes.train`, scoring candidates on the *validation* pairs
    (:func:`keras_dsr.zoo.selection.validation_pairs`, medians over them as the
    criteria judge), never on the test pairs that the criteria use; the score is
    :func:`keras_dsr.zoo.selection.validation_score`.

    Returns:
        ``(model, recipe, train_traj, seconds, history, report)``: ``report`` is that
        of ``train`` (the kept ``init_seed`` among them) plus the validation measures
        of the kept model.
    """
    train_traj = simulate(system, recipe.train_length, dt=recipe.dt, seed=recipe.seed)
    pairs = validation_pairs(system, recipe.seed, train_traj.mean, train_traj.std,
                             dt=train_traj.dt)
    val_floor, _ = pair_floors(pairs)
    lyap_true = float(lyapunov_max(system))

    def measures(model):
        scores = pair_scores(model, pairs, train_traj.dt, system)
        return {k: scores[k] for k in ("dstsp", "dh", "lyap")}

    def score_fn(model):
        return validation_score(measures(model), val_floor, lyap_true)

    model, history, seconds = result = train(recipe, train_traj.x, score_fn=score_fn,
                                             verbose=verbose)
    report = dict(result.report, val_floor=val_floor, val_measures=measures(model),
                  val_pairs=len(pairs))
    return model, recipe, train_traj, seconds, history, report


def build(name, verbose=2):
    system, recipe = load_recipe(name)
    print(f"== {name}: {system}, recipe {recipe.to_dict()}", flush=True)
    model, recipe, train_traj, seconds, history, report = train_candidates(
        system, recipe, verbose=verbose)
    # Install into the package first, then score the installed preset (what users load).
    model.set_normalization(train_traj.mean, train_traj.std)  # generate in physical units
    model.save_to_preset(os.path.join(zoo.PRESET_DIR, name), system=system,
                         dt=train_traj.dt, recipe=recipe)
    facts = {
        "train_seconds": round(seconds, 1), "candidates": report["candidates"],
        "finetune": report["finetune"],
        "validation": {"floor": report["val_floor"], "measures": report["val_measures"],
                       "pairs": report["val_pairs"]},
        "final_logs": final_logs(history), "machine": machine_line(),
        "date": datetime.date.today().isoformat(),
    }
    return judge(name, facts)


def judge(name, facts=None):
    """Judge the installed preset ``name`` by the criteria on every backend and its
    robustness, and write its card (``facts``: the training record; None: the card's
    own, for a preset judged again without retraining). A preset that fails is
    uninstalled (moved to ``zoo/<name>/failed``); the card is kept as
    ``zoo/<name>/CARD.md`` either way. Returns whether the criteria are met."""
    folder = os.path.join(zoo.PRESET_DIR, name)
    info = zoo.preset_info(name)
    if facts is None:
        facts = {k: v for k, v in (info.get("card") or {}).items() if k in FACTS}
    ref = true_reference(name)
    loaded = zoo.load_preset(name)
    scores = preset_scores(loaded, name)
    fates = preset_robustness(loaded, name)
    ok, lines = check_scores(name, scores, ref, robustness=fates, gate_robustness=GATE)
    criteria = {keras.backend.backend(): {"met": ok, "table": lines}}
    # the preset test recomputes the criteria on every backend: so does the build
    criteria.update(_other_backends(name))
    ok = all(r["met"] for r in criteria.values())
    card = dict(facts, scores=scores, floor=ref["floor"], floors=ref["floors"],
                lyap_true=ref["lyap"], criteria_met=ok, criteria=criteria,
                robustness=fates.to_dict(), why=load_why(name))
    # the card joins the very weights that were scored
    loaded.save_to_preset(folder, system=info["system"], dt=info["dt"],
                          recipe=info["recipe"], card=card)
    if not ok:  # a preset ships only when it meets its criteria: uninstall, keep the card
        failed = os.path.join(HERE, name, "failed")  # (the model, outside the package)
        shutil.rmtree(failed, ignore_errors=True)
        os.replace(folder, failed)
        folder = failed
    shutil.copyfile(os.path.join(folder, "README.md"), os.path.join(HERE, name, "CARD.md"))
    print("\n".join(f"{b}: {'met' if r['met'] else 'NOT met'}" for b, r in criteria.items()))
    print("\n".join(lines))
    return ok


def load_why(name):
    """The reasons for the recipe's per-system choices (``"why"`` of ``recipe.json``:
    ``{field: reason}``), shown beside the recipe on the card."""
    with open(os.path.join(HERE, name, "recipe.json")) as fh:
        return json.load(fh).get("why", {})


def _other_backends(name):
    """Recompute the criteria under the other installed Keras backends (subprocesses).

    A chaotic free run differs between backends (float rounding), so measures near a
    bar can pass on one backend and fail on another; a preset ships only if it meets
    the criteria on all of them. Returns ``{backend: {"met", "table"}}`` for the card.
    """
    import importlib.util
    import subprocess

    out = {}
    for backend in ("jax", "tensorflow", "torch"):
        if backend == keras.backend.backend() or importlib.util.find_spec(backend) is None:
            continue
        proc = subprocess.run([sys.executable, "-m", "keras_dsr.zoo.criteria", name],
                              env=dict(os.environ, KERAS_BACKEND=backend), cwd=ROOT,
                              capture_output=True, text=True)
        table = [ln for ln in proc.stdout.splitlines() if ln.startswith("|")]
        if proc.returncode != 0 and not table:
            table = [f"(failed to run: {proc.stderr.strip().splitlines()[-1:]})"]
        out[backend] = {"met": proc.returncode == 0, "table": table}
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help="preset names (folders of zoo/)")
    parser.add_argument("--all", action="store_true", help="rebuild every preset")
    parser.add_argument("--judge", action="store_true",
                        help="do not train: judge the installed presets again and rewrite "
                             "their cards (criteria on every backend, robustness)")
    args = parser.parse_args(argv)
    names = ((zoo.list_presets() if args.judge else recipes()) if args.all else args.names)
    if not names:
        parser.error(f"give preset names or --all; known: {recipes()}")
    unknown = [n for n in names if n not in recipes()]
    if unknown:
        parser.error(f"no recipe for {unknown}; known: {recipes()}")
    from keras_dsr.models.engine import TrainingDiverged

    results = {}
    for n in names:
        try:
            results[n] = judge(n) if args.judge else build(n)
        except TrainingDiverged as e:  # nothing is installed or written
            print(f"zoo/build.py {n}: {e}", file=sys.stderr)
            return 1
    print({n: ("criteria met" if ok else "criteria NOT met") for n, ok in results.items()})
    return 0 if all(results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
