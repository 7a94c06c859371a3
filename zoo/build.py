"""Rebuild a zoo preset from scratch: simulate, train with GTF-DEER, evaluate, ship.

Each preset has a folder ``zoo/<name>/`` with ``recipe.json`` (the system, the
:class:`keras_dsr.recipes.Recipe` fields and optionally ``tries``, the number of
initialisations to train; the best on a validation trajectory is kept; ``select_epochs``,
checkpoints that compete too; ``finetune``, a second phase from the winner, see
:func:`load_finetune`). This script
trains it with :func:`keras_dsr.recipes.train`, measures the free-running model against a
held-out test trajectory (D_stsp, D_H, PE(20), lambda_max) next to the floor of an
independent true trajectory and the true lambda_max, writes the model card
``zoo/<name>/CARD.md`` and installs the model into the package
(``keras_dsr/zoo/presets/<name>.keras`` and its ``manifest.json`` entry with the
file's SHA-256) — only when the model meets the acceptance criteria of
``keras_dsr/zoo/criteria.py``; otherwise the card records the failed build and the
preset is not installed.

Usage (from the repository root):
    KERAS_BACKEND=jax python zoo/build.py lorenz63
    KERAS_BACKEND=jax python zoo/build.py --all
"""

import argparse
import datetime
import json
import os
import platform
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
VAL_LENGTH = 100_000  # steps of the validation trajectories at the system's default dt
NOT_SHIPPED = "not shipped"
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
os.environ.setdefault("KERAS_BACKEND", "jax")

import keras_dsr  # noqa: E402,F401
import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras_dsr import zoo  # noqa: E402
from keras_dsr.measures import evaluate  # noqa: E402
from keras_dsr.recipes import (  # noqa: E402
    Recipe, _simulate_like, _true_scores, train, training_windows)
from keras_dsr.systems import lyapunov_max, simulate  # noqa: E402
from keras_dsr.zoo.criteria import (  # noqa: E402
    TEST_LENGTH, check_scores, held_out_length, lyap_steps, preset_scores, true_reference)


def val_length(system, dt=None):
    """Steps of the validation trajectories: ``VAL_LENGTH``, more at a dt finer than the
    system's default (the same time, as the criteria's ``held_out_length``)."""
    return held_out_length(system, dt) * VAL_LENGTH // TEST_LENGTH


def recipes():
    """Names of the preset folders that hold a ``recipe.json``."""
    return sorted(d for d in os.listdir(HERE)
                  if os.path.isfile(os.path.join(HERE, d, "recipe.json")))


def load_recipe(name):
    """``(system, recipe, tries, select_epochs)`` of preset ``name`` (``zoo/<name>/recipe.json``).

    ``select_epochs`` (optional, default none): epochs (1-based, ``steps_per_epoch``
    Adam steps each) after which every initialisation is also scored on the
    validation trajectory; the best checkpoint, these or the final one, is kept.
    """
    with open(os.path.join(HERE, name, "recipe.json")) as fh:
        spec = json.load(fh)
    epochs = sorted(int(e) for e in spec.get("select_epochs", ()))
    n_epochs = -(-spec["recipe"].get("steps", Recipe().steps)
                 // spec["recipe"].get("steps_per_epoch", Recipe().steps_per_epoch))
    if any(not 1 <= e < n_epochs for e in epochs):
        raise ValueError(f"{name}: select_epochs must lie in [1, {n_epochs}) (the final "
                         f"epoch {n_epochs} is always scored), got {epochs}.")
    return (spec["system"], Recipe.from_dict(spec["recipe"]), int(spec.get("tries", 1)),
            epochs)


FINETUNE_KEYS = {"alpha", "learning_rate", "steps", "every"}


def load_finetune(name):
    """The optional ``"finetune"`` phase of preset ``name``'s ``recipe.json`` (or None).

    ``{"alpha": a, "learning_rate": lr, "steps": S, "every": E}``: after the model
    selection, the winner trains ``S`` more Adam steps (learning rate ``lr``
    cosine-decayed to 1 %) with a constant GTF ``alpha`` (``a`` in (0, 1)), and is
    scored on the validation trajectory every ``E`` steps; the best of these checkpoints
    and the starting weights is kept. Why: adaptive GTF's alpha corrects a model's phase
    at every step, so its loss barely sees a small time-scale error that D_H punishes;
    a weaker constant forcing at a low learning rate refines it (Rössler at dt 0.1,
    ``benchmarks/recipe_search/RESULTS_zoo.md``, session 9).
    """
    with open(os.path.join(HERE, name, "recipe.json")) as fh:
        spec = json.load(fh)
    ft = spec.get("finetune")
    if ft is None:
        return None
    if not isinstance(ft, dict) or set(ft) != FINETUNE_KEYS:
        raise ValueError(f"{name}: finetune must be a dict with keys {sorted(FINETUNE_KEYS)}, "
                         f"got {ft!r}.")
    steps_per_epoch = spec["recipe"].get("steps_per_epoch", Recipe().steps_per_epoch)
    if not 0.0 < ft["alpha"] < 1.0 or not ft["learning_rate"] > 0:
        raise ValueError(f"{name}: finetune alpha must be in (0, 1) and learning_rate > 0, "
                         f"got {ft!r}.")
    if (ft["every"] < 1 or ft["every"] % steps_per_epoch or ft["steps"] < ft["every"]
            or ft["steps"] % ft["every"]):
        raise ValueError(f"{name}: finetune steps must be a multiple of every, and every "
                         f"a positive multiple of steps_per_epoch ({steps_per_epoch}), "
                         f"got {ft!r}.")
    return dict(ft)


def finetune(model, recipe, x, ft, score_fn, start_score, verbose=0):
    """The ``finetune`` phase (:func:`load_finetune`) from ``model``'s weights, in place.

    ``score_fn(model) -> (score, scores)`` scores on validation data; the best of the
    checkpoints every ``ft["every"]`` steps and the start (``start_score``) is kept.
    Keras's ``fit`` permutes the order of each epoch's batches with Python's global
    ``random`` (its default ``shuffle=True``; :class:`~keras_dsr.data.TrajectoryWindows`),
    so two unseeded runs from the same weights differ (``RESULTS_zoo.md``, sessions 9
    and 10); here the state continues from :func:`~keras_dsr.recipes.train`'s
    ``set_random_seed`` in the same build, which keeps builds reproducible.

    Returns:
        ``(row, seconds)``: ``row`` for the card (scores per step, the kept step, 0 for
        the start) and the wall-clock time of the phase.
    """
    import time

    from keras_dsr.callbacks import ConstantAlpha

    model.compile(optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(
        ft["learning_rate"], ft["steps"], alpha=0.01)))
    windows = training_windows(recipe, x, seed=recipe.weight_seed + 7)
    best = (start_score, 0, None, [np.array(w) for w in model.get_weights()])
    scores, t0 = {}, time.perf_counter()
    for k in range(ft["steps"] // ft["every"]):
        model.fit(windows, epochs=ft["every"] // recipe.steps_per_epoch, verbose=verbose,
                  callbacks=[ConstantAlpha(ft["alpha"])])
        score, s = score_fn(model)
        step = (k + 1) * ft["every"]
        scores[step] = round(float(score), 3)
        print(f"   finetune step {step}: validation score {score:.3f}", flush=True)
        if score < best[0]:
            best = (score, step, s, [np.array(w) for w in model.get_weights()])
    model.set_weights(best[3])
    row = {"scores": scores, "kept_step": best[1], "val_score": float(best[0])}
    if best[2] is not None:
        row.update(val_dstsp=float(best[2]["dstsp"]), val_dh=float(best[2]["dh"]),
                   val_lyap=float(best[2]["lyap"]))
    return row, time.perf_counter() - t0


def machine():
    cores = f"{os.cpu_count()} CPU cores"
    if hasattr(os, "sched_getaffinity") and len(os.sched_getaffinity(0)) < (os.cpu_count() or 0):
        cores = f"pinned to {len(os.sched_getaffinity(0))} of {os.cpu_count()} CPU cores"
    return (f"{platform.system()} {platform.machine()}, {cores}, "
            f"Python {platform.python_version()}, keras {keras.__version__}, "
            f"backend {keras.backend.backend()}")


def validation_score(scores, floor, lyap_true):
    """How far a candidate is from the criteria on the validation set (<= 1: met).

    The largest of ``D_stsp / (floor + 0.2)``, ``D_H / (2 floor)`` (validation floor)
    and ``|lambda_max - true| / (0.15 |true|)``: each criterion of
    ``keras_dsr/zoo/criteria.py`` scaled so that 1 is its bar.

    Example:
        >>> round(validation_score({"dstsp": 0.15, "dh": 0.05, "lyap": 1.17},
        ...                        {"dstsp": 0.1, "dh": 0.05}, 0.9), 3)  # lambda: 30 % off
        2.0
    """
    rel = abs(scores["lyap"] - lyap_true) / (0.15 * abs(lyap_true))
    return max(scores["dstsp"] / (floor["dstsp"] + 0.2), scores["dh"] / (2 * floor["dh"]), rel)


class _Checkpoints(keras.callbacks.Callback):
    """Scores the model on validation data after the given epochs; keeps every result.

    ``score_fn(model) -> (score, scores)``; ``self.rows`` collects
    ``(score, epoch, scores, weights)``.
    """

    def __init__(self, epochs, score_fn):
        super().__init__()
        self.epochs, self.score_fn, self.rows = set(epochs), score_fn, []

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 in self.epochs:
            score, s = self.score_fn(self.model)
            self.rows.append((score, epoch + 1, s, [np.array(w) for w in self.model.get_weights()]))
            print(f"   checkpoint epoch {epoch + 1}: validation score {score:.3f}", flush=True)


def train_candidates(system, recipe, tries, verbose=2, select_epochs=(), finetune_spec=None):
    """Train ``tries`` initialisations of ``recipe`` on the same data; keep the best.

    With ``tries > 1`` (or ``select_epochs``) each candidate (weights and window order
    from ``init_seed = weight_seed + 1000 i``) is scored on a *validation* trajectory
    (data seed + 3; its floor: seed + 4), never on the test set (seed + 1) that the
    criteria use, and the one with the lowest :func:`validation_score` wins (its
    lambda_max term needs no data: the model's own exponent against the true one).
    With ``select_epochs`` the checkpoints after those epochs compete too (early
    stopping on the validation score): a candidate is a (initialisation, epoch) pair.
    With ``finetune_spec`` (:func:`load_finetune`) the winner then runs :func:`finetune`.

    Returns:
        ``(model, recipe, train_traj, seconds, history, candidates, ft_row)``; ``recipe``
        is the winner's (with its ``init_seed``), ``seconds`` its training time (with the
        checkpoint scoring and fine-tuning), ``candidates`` one row per initialisation
        for the card and ``ft_row`` the fine-tuning's (None without one).
    """
    train_traj = simulate(system, recipe.train_length, dt=recipe.dt, seed=recipe.seed)
    validate = tries > 1 or bool(select_epochs) or finetune_spec is not None
    if validate:
        n_val = val_length(system, train_traj.dt)
        val = _simulate_like(system, n_val, recipe.seed + 3, train_traj)
        other = _simulate_like(system, n_val, recipe.seed + 4, train_traj)
        val_floor = _true_scores(val.x, other.x, ("dstsp", "dh"))
        lyap_true = float(lyapunov_max(system))

    def score_fn(model):
        s = evaluate(model, val.x, measures=("dstsp", "dh", "lyap"), dt=train_traj.dt,
                     lyap_steps=lyap_steps(train_traj.dt, system))
        return validation_score(s, val_floor, lyap_true), s

    best, candidates = None, []
    for i in range(tries):
        r = recipe if i == 0 else recipe.replace(init_seed=recipe.weight_seed + 1000 * i)
        ckpt = _Checkpoints(select_epochs, score_fn)
        model, history, seconds = train(r, train_traj.x, verbose=verbose,
                                        callbacks=[ckpt] if select_epochs else ())
        row = {"init_seed": r.weight_seed, "train_seconds": round(seconds, 1)}
        score = 0.0
        if validate:
            score, s = score_fn(model)
            n_epochs = len(history.history.get("loss", ())) or max(select_epochs, default=0) + 1
            epoch, weights = n_epochs, None
            if ckpt.rows:
                row["checkpoints"] = {e: round(float(c), 3) for c, e, _, _ in ckpt.rows}
                row["checkpoints"][n_epochs] = round(float(score), 3)
                c_score, c_epoch, c_s, c_w = min(ckpt.rows, key=lambda c: c[0])
                if c_score < score:  # an earlier checkpoint beats the final weights
                    score, epoch, s, weights = c_score, c_epoch, c_s, c_w
                    model.set_weights(weights)
            row.update(val_dstsp=float(s["dstsp"]), val_dh=float(s["dh"]),
                       val_lyap=float(s["lyap"]), val_floor=val_floor, val_score=float(score),
                       epoch=epoch)
            print(f"   candidate {i}: {row}", flush=True)
        candidates.append(row)
        if best is None or score < best[0]:
            best = (score, model, r, seconds, history)
    score, model, r, seconds, history = best
    ft_row = None
    if finetune_spec is not None:
        ft_row, ft_seconds = finetune(model, r, train_traj.x, finetune_spec, score_fn, score)
        ft_row.update(finetune_spec, seconds=round(ft_seconds, 1))
        seconds += ft_seconds
        print(f"   finetune: {ft_row}", flush=True)
    return model, r, train_traj, seconds, history, candidates, ft_row


def build(name, verbose=2):
    system, recipe, tries, select_epochs = load_recipe(name)
    print(f"== {name}: {system}, {tries} tries, checkpoints after epochs {select_epochs}, "
          f"recipe {recipe.to_dict()}", flush=True)
    ft_spec = load_finetune(name)
    model, recipe, train_traj, seconds, history, candidates, ft_row = train_candidates(
        system, recipe, tries, verbose=verbose, select_epochs=select_epochs,
        finetune_spec=ft_spec)
    # Install into the package first, then score the installed file (what users load).
    entry = zoo.install_preset(model, name, system, train_traj.dt, train_traj.mean,
                               train_traj.std, recipe=recipe)
    ref = true_reference(name)
    loaded = zoo.load_preset(name)
    scores = preset_scores(loaded, name)
    ok, lines = check_scores(name, scores, ref)
    if ok:  # the preset test recomputes the criteria on every backend: so does the build
        ok = _other_backends_agree(name, lines)
    final = {k: float(v[-1]) for k, v in history.history.items()}
    entry["card"] = {
        "scores": scores, "floor": ref["floor"], "lyap_true": ref["lyap"],
        "criteria_met": ok, "train_seconds": round(seconds, 1), "candidates": candidates,
        "finetune": ft_row,
        "final_logs": final, "machine": machine(),
        "date": datetime.date.today().isoformat(),
    }
    if ok:  # the card joins the entry of the very file that was scored
        zoo._update_manifest(name, entry, None)
    else:  # a preset ships only when it meets its criteria: uninstall, keep the card
        path = zoo.remove_preset(name)  # (and the model, outside the package, for a look)
        os.replace(path, os.path.join(HERE, name, "failed.keras"))
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


def _candidate_lines(candidates):
    """Card lines on the initialisations tried (model selection on validation data)."""
    if len(candidates) < 2 and not candidates[0].get("checkpoints"):
        return []
    per = (" after the epochs listed and at the end"
           if any(c.get("checkpoints") for c in candidates) else "")
    n = len(candidates)
    out = [f"- Model selection: {n} initialisation{'s' if n > 1 else ''} on the same data, each "
           f"scored{per} on a validation trajectory (data seed + 3, floor seed + 4; not the "
           "test set); kept the lowest max(D_stsp / (floor + 0.2), D_H / (2 floor), "
           "|lambda_max - true| / (0.15 true)):"]
    for c in candidates:
        lyap = f"lambda_max {c['val_lyap']:.4g}, " if "val_lyap" in c else ""
        ckpts = ""
        if c.get("checkpoints"):
            ckpts = (f" (kept epoch {c['epoch']}; scores after epochs " + ", ".join(
                f"{e}: {v:.2f}" for e, v in sorted(c["checkpoints"].items(),
                                                  key=lambda kv: int(kv[0]))) + ")")
        out.append(f"  - init_seed {c['init_seed']}: {c['train_seconds']} s, validation "
                   f"D_stsp {c['val_dstsp']:.3f} (floor {c['val_floor']['dstsp']:.3f}), "
                   f"D_H {c['val_dh']:.3f} (floor {c['val_floor']['dh']:.3f}), {lyap}"
                   f"score {c['val_score']:.2f}{ckpts}")
    return out


def _finetune_lines(row):
    """Card lines on the fine-tuning phase (:func:`finetune`), if any."""
    if not row:
        return []
    kept = ("the starting weights (no checkpoint beat them)" if row["kept_step"] == 0
            else f"the weights after {row['kept_step']} steps")
    return [f"- Fine-tuning of the winner: {row['steps']} Adam steps at learning rate "
            f"{row['learning_rate']} (cosine to 1 %), constant GTF alpha {row['alpha']}, "
            f"{row['seconds']} s; validation score every {row['every']} steps: "
            + ", ".join(f"{k}: {v:.2f}" for k, v in sorted(row["scores"].items(),
                                                          key=lambda kv: int(kv[0])))
            + f"; kept {kept} (score {row['val_score']:.2f})."]


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
        "(the mean/std are in the manifest).",
        f"- Test trajectory: seed {recipe.seed + 1}, standardised with the training statistics; "
        f"floor: an independent true trajectory (seed {recipe.seed + 2}) against the same test set.",
        "",
        "## Training",
        f"- Recipe: `{json.dumps(recipe.to_dict())}`",
        f"- Time: {card['train_seconds']} s on {card['machine']} ({card['date']}).",
        *_candidate_lines(card["candidates"]),
        *_finetune_lines(card.get("finetune")),
        f"- Final logs (last epoch{' of phase one' if card.get('finetune') else ''}): "
        f"{json.dumps({k: float(f'{v:.5g}') for k, v in card['final_logs'].items()})}",
        "",
        "## Measures (DESIGN §3 protocol, recomputed by tests/test_zoo.py)",
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
    results = {n: build(n) for n in names}
    print({n: ("criteria met" if ok else "criteria NOT met") for n, ok in results.items()})
    return 0 if all(results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
