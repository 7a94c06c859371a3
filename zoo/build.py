"""Rebuild a zoo preset from scratch: simulate, train with GTF-DEER, evaluate, ship.

Each preset has a folder ``zoo/<name>/`` with ``recipe.json`` (the system and the
:class:`keras_dsr.recipes.Recipe` fields, among them ``tries``, ``select_epochs`` and
``finetune``: the model selection on validation trajectories). This script
trains it with :func:`keras_dsr.recipes.train`, measures the free-running model against a
held-out test trajectory (D_stsp, D_H, PE(20), lambda_max) next to the floor of an
independent true trajectory and the true lambda_max, writes the model card
``zoo/<name>/CARD.md`` and installs the model into the package as the preset folder
``keras_dsr/zoo/presets/<name>/`` (``DSRModel.save_to_preset``: config, weights,
metadata with the normalization, recipe, card and SHA-256s, and the README card) —
only when the model meets the acceptance criteria of ``keras_dsr/zoo/criteria.py``;
otherwise the card records the failed build and the preset is not installed.

Usage (from the repository root):
    KERAS_BACKEND=jax python zoo/build.py lorenz63
    KERAS_BACKEND=jax python zoo/build.py --all
"""

import argparse
import datetime
import json
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
NOT_SHIPPED = "not shipped"
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
os.environ.setdefault("KERAS_BACKEND", "jax")

import keras_dsr  # noqa: E402,F401
import keras  # noqa: E402
from keras_dsr import zoo  # noqa: E402
from keras_dsr.cards import machine_line  # noqa: E402
from keras_dsr.recipes import Recipe, train  # noqa: E402
from keras_dsr.systems import lyapunov_max, simulate  # noqa: E402
from keras_dsr.zoo.criteria import (  # noqa: E402
    check_scores, pair_floors, pair_scores, preset_scores, true_reference)
from keras_dsr.zoo.selection import validation_pairs, validation_score  # noqa: E402


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
    folder = os.path.join(zoo.PRESET_DIR, name)
    entry = model.save_to_preset(folder, system=system, dt=train_traj.dt, recipe=recipe)
    ref = true_reference(name)
    loaded = zoo.load_preset(name)
    scores = preset_scores(loaded, name)
    ok, lines = check_scores(name, scores, ref)
    if ok:  # the preset test recomputes the criteria on every backend: so does the build
        ok = _other_backends_agree(name, lines)
    final = {k: float(v[-1]) for k, v in history.history.items()}
    entry["card"] = {
        "scores": scores, "floor": ref["floor"], "lyap_true": ref["lyap"],
        "criteria_met": ok, "train_seconds": round(seconds, 1),
        "candidates": report["candidates"], "finetune": report["finetune"],
        "validation": {"floor": report["val_floor"], "measures": report["val_measures"],
                       "pairs": report["val_pairs"]},
        "final_logs": final, "machine": machine_line(),
        "date": datetime.date.today().isoformat(),
    }
    if ok:  # the card joins the very weights that were scored
        loaded.save_to_preset(folder, system=system, dt=train_traj.dt, recipe=recipe,
                              card=entry["card"])
    else:  # a preset ships only when it meets its criteria: uninstall, keep the card
        failed = os.path.join(HERE, name, "failed")  # (the model, outside the package)
        shutil.rmtree(failed, ignore_errors=True)
        os.replace(folder, failed)
    _write_card(name, system, recipe, entry, lines, ok)
    print("\n".join(lines))
    return ok


def _other_backends_agree(name, lines):
    """Recompute the criteria under the other installed Keras backends (subprocesses).

    A chaotic free run differs between backends (float rounding), so measures near a
    bar can pass on one backend and fail on another; a preset ships only if it meets
    the criteria on all of them. The results are appended to ``lines`` (the card).
    """
    import importlib.util
    import subprocess

    ok = True
    for backend in ("jax", "tensorflow", "torch"):
        if backend == keras.backend.backend() or importlib.util.find_spec(backend) is None:
            continue
        proc = subprocess.run([sys.executable, "-m", "keras_dsr.zoo.criteria", name],
                              env=dict(os.environ, KERAS_BACKEND=backend), cwd=ROOT,
                              capture_output=True, text=True)
        table = [ln for ln in proc.stdout.splitlines() if ln.startswith("|")]
        lines += ["", f"Recomputed on {backend}: criteria "
                  f"{'met' if proc.returncode == 0 else 'NOT met'}", "", *table]
        if proc.returncode != 0 and not table:
            lines.append(f"(failed to run: {proc.stderr.strip().splitlines()[-1:]})")
        ok &= proc.returncode == 0
    return ok


def _candidate_lines(card):
    """Card lines on the initialisations tried (model selection on validation data)."""
    candidates = card["candidates"]
    if len(candidates) < 2 and not candidates[0].get("checkpoints"):
        return []
    n = len(candidates)
    val = card.get("validation") or {}
    k = val.get("pairs", 1)
    where = ("a validation trajectory (data seed + 3, floor seed + 4" if k == 1 else
             f"{k} validation trajectories (medians; data seeds + 3 + 10 k, floors + 4 + 10 k")
    out = [f"- Model selection: {n} initialisation{'s' if n > 1 else ''} on the same data, each "
           f"scored on {where}; not the test set); kept the lowest max(D_stsp / (floor + 0.2), D_H / (2 floor), "
           "|lambda_max - true| / (0.15 true)) (<= 1: every criterion met):"]
    for c in candidates:
        ckpts = ", ".join(f"epoch {e}: {v:.2f}" for e, v in sorted(
            c.get("checkpoints", {}).items(), key=lambda kv: int(kv[0])))
        out.append(f"  - init_seed {c['init_seed']}: {c['train_seconds']} s; kept epoch "
                   f"{c['epoch']}, score {c['score']:.2f} ({ckpts})")
    if val:
        m, f = val["measures"], val["floor"]
        out.append(f"  - kept model on validation: D_stsp {m['dstsp']:.3f} (floor "
                   f"{f['dstsp']:.3f}), D_H {m['dh']:.3f} (floor {f['dh']:.3f}), lambda_max "
                   f"{m['lyap']:.4g}")
    return out


def _finetune_lines(row):
    """Card lines on the fine-tuning phase (Recipe ``finetune``), if any."""
    if not row:
        return []
    kept = ("the starting weights (no checkpoint beat them)" if row["kept_step"] == 0
            else f"the weights after {row['kept_step']} steps")
    return [f"- Fine-tuning of the winner: {row['steps']} Adam steps at learning rate "
            f"{row['learning_rate']} (cosine to 1 %), constant GTF alpha {row['alpha']}, "
            f"{row['seconds']} s; validation score every {row['every']} steps: "
            + ", ".join(f"{k}: {v:.2f}" for k, v in sorted(row["scores"].items(),
                                                          key=lambda kv: int(kv[0])))
            + f"; kept {kept} (score {row['score']:.2f})."]


def _write_card(name, system, recipe, entry, lines, ok):
    card = entry["card"]
    status = ("Status: shipped (criteria met)." if ok else
              f"Status: {NOT_SHIPPED} (criteria NOT met by this build; not installed).")
    text = [
        f"# Preset `{name}`: {system}",
        "",
        status,
        "",
        f"Rebuild: `KERAS_BACKEND=jax python zoo/build.py {name}` (from the repository root).",
        "",
        "## Data",
        f"- {system}, simulated with `keras_dsr.systems.simulate` (DOP853), dt = {entry['dt']}, "
        f"{recipe.train_length} steps from initial-condition seed {recipe.seed}, standardised "
        "(the mean/std are the preset's normalization, in its metadata.json).",
        f"- Test trajectory: seed {recipe.seed + 1}, standardised with the training statistics; "
        f"floor: an independent true trajectory (seed {recipe.seed + 2}) against the same test set.",
        "",
        "## Training",
        f"- Recipe: `{json.dumps(recipe.to_dict())}`",
        f"- Time: {card['train_seconds']} s on {card['machine']} ({card['date']}).",
        *_candidate_lines(card),
        *_finetune_lines(card.get("finetune")),
        f"- Final logs (last epoch{' of phase one' if card.get('finetune') else ''}): "
        f"{json.dumps({k: float(f'{v:.5g}') for k, v in card['final_logs'].items()})}",
        "",
        "## Measures (docs/method.md protocol, recomputed by tests/test_zoo.py)",
        "",
        *lines,
        "",
    ]
    with open(os.path.join(HERE, name, "CARD.md"), "w") as fh:
        fh.write("\n".join(text))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help="preset names (folders of zoo/)")
    parser.add_argument("--all", action="store_true", help="rebuild every preset")
    args = parser.parse_args(argv)
    names = recipes() if args.all else args.names
    if not names:
        parser.error(f"give preset names or --all; known: {recipes()}")
    unknown = [n for n in names if n not in recipes()]
    if unknown:
        parser.error(f"no recipe for {unknown}; known: {recipes()}")
    from keras_dsr.models.engine import TrainingDiverged

    results = {}
    for n in names:
        try:
            results[n] = build(n)
        except TrainingDiverged as e:  # nothing is installed or written
            print(f"zoo/build.py {n}: {e}", file=sys.stderr)
            return 1
    print({n: ("criteria met" if ok else "criteria NOT met") for n, ok in results.items()})
    return 0 if all(results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
