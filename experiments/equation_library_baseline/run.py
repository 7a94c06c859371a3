"""How much of each zoo result does a plain least-squares cubic library fit already give?

The Hindmarsh-Rose preset is not a black-box reconstruction: its cell is
:class:`keras_dsr.cells.PolynomialFlow` (a cubic vector field over the standardised
variables, two RK4 substeps per sampling step, ``Recipe(cell="polynomial")``) started
from ``cell.fit_field`` (least squares of the field on fourth-order finite
differences: SINDy without sparsity) and then trained by GTF-DEER. This experiment
applies the least-squares step alone (no gradient training at all) to every system
and judges the fitted model exactly like a zoo preset (``keras_dsr.zoo.criteria``).

Per system (``--systems``; default: every ``zoo/<name>/recipe.json`` and ``thomas``):

1. training data as the zoo builds make it: ``simulate(system, train_length, dt, seed)``
   with the recipe's ``train_length``, ``dt`` and data ``seed`` (``thomas``, which has no
   recipe: the defaults, seed 0), standardised;
2. ``build_model(Recipe(cell="polynomial", cell_init="least_squares"), n)``, built, and
   ``model.cell.fit_field(train.x)`` (its RMS residual per unit is reported);
3. the criteria's five (test, floor) pairs (``held_out_pairs``), floors
   (``pair_floors``), scores (``pair_scores``), the true lambda_max
   (``keras_dsr.systems.lyapunov_max``) and the verdict (``check_scores``). A free run
   that does not stay finite scores inf (the measures' ``nonfinite="warn"``) and the
   row is marked diverged.

Beside it: whether the true vector field lies in the cubic library (the exact field of
the system at the training states, least-squares fitted on the same monomials:
relative residual ~0 when it does), and the shipped preset's own scores from its card
(``keras_dsr.zoo.preset_info(name)["card"]``) where a preset ships.

``results.json`` and ``table.md`` in ``--out`` are rewritten (atomically) after every
system.

Usage (from the repository root):
    KERAS_BACKEND=jax python experiments/equation_library_baseline/run.py          # ~12 min on 2 CPUs
    KERAS_BACKEND=jax python experiments/equation_library_baseline/run.py --smoke  # < 1 min
    options: --systems lorenz63,thomas,... --out DIR
"""

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

import keras_dsr  # noqa: F401  (selects the backend before keras)
import keras

from keras_dsr import zoo
from keras_dsr.cells import monomial_exponents
from keras_dsr.cards import machine_line
from keras_dsr.io import atomic_write
from keras_dsr.recipes import Recipe, build_model
from keras_dsr.systems import get_system, lyapunov_max, simulate
from keras_dsr.zoo.criteria import check_scores, held_out_pairs, pair_floors, pair_scores

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
EXTRA = ("thomas",)  # systems without a zoo recipe that are run too (defaults, seed 0)
SMOKE_SYSTEMS = ("lorenz63", "thomas")
LIBRARY_TOL = 1e-6  # relative residual of the exact field below which it is "in the library"


def zoo_recipes():
    """``{system: Recipe}`` of every ``zoo/<name>/recipe.json`` (the zoo's data recipes)."""
    out = {}
    for name in sorted(os.listdir(os.path.join(ROOT, "zoo"))):
        path = os.path.join(ROOT, "zoo", name, "recipe.json")
        if os.path.isfile(path):
            with open(path) as fh:
                spec = json.load(fh)
            out[spec["system"]] = Recipe.from_dict(spec["recipe"])
    return out


def default_systems():
    """Every zoo folder with a recipe.json (its system), plus :data:`EXTRA`."""
    return list(zoo_recipes()) + list(EXTRA)


def data_recipe(system):
    """``(train_length, dt, seed)`` of ``system``'s zoo recipe (defaults without one)."""
    r = zoo_recipes().get(system, Recipe())
    return r.train_length, r.dt, r.seed


def library_residual(system, states):
    """Relative RMS residual of the system's exact field at ``states`` (raw, [T, D])
    least-squares fitted on the cubic monomials of the states: ~1e-12 when the field is
    a polynomial of degree <= 3, O(1e-2) and more when it is not."""
    s = get_system(system)
    f = s.f(states)
    z = (states - states.mean(0)) / states.std(0)  # conditioning; same polynomial class
    phi = np.prod(z[:, None, :] ** monomial_exponents(s.dim, 3), axis=-1)
    coef = np.linalg.lstsq(phi, f, rcond=None)[0]
    return float(np.sqrt(np.mean((phi @ coef - f) ** 2)) / np.sqrt(np.mean(f ** 2)))


def preset_row(system):
    """The shipped preset's card scores for ``system``, or None where none ships."""
    if system not in zoo.list_presets():
        return None
    card = zoo.preset_info(system).get("card") or {}
    if "scores" not in card:
        return None
    sc, fl, lt = card["scores"], card["floor"], float(card["lyap_true"])
    return {"dstsp": float(sc["dstsp"]), "dh": float(sc["dh"]), "lyap": float(sc["lyap"]),
            "lyap_true": lt, "lyap_rel_err": abs(float(sc["lyap"]) - lt) / abs(lt),
            "floor": {k: float(v) for k, v in fl.items()},
            "criteria_met": bool(card.get("criteria_met", False))}


def _finite_or_inf(v):
    v = float(v)
    return v if np.isfinite(v) else float("inf")


def run_system(system, smoke=False):
    """The least-squares library fit of ``system`` judged by the zoo criteria (a dict)."""
    t0 = time.perf_counter()
    train_length, dt, seed = data_recipe(system)
    if smoke:
        train_length = 5_000
    train = simulate(system, train_length, dt=dt, seed=seed)
    n = train.x.shape[1]
    model = build_model(Recipe(cell="polynomial", cell_init="least_squares", seed=seed), n)
    model.build((None, 100, n))
    resid = np.asarray(model.cell.fit_field(train.x), dtype=float)
    step_rms = np.sqrt(np.mean(np.diff(train.x, axis=0) ** 2, axis=0))
    pairs = held_out_pairs(system, seed, train.mean, train.std, dt=train.dt,
                           length=3_000 if smoke else None)
    floor, _ = pair_floors(pairs)
    lyap_true = (float(lyapunov_max(system, time=20.0, n_traj=2)) if smoke
                 else float(lyapunov_max(system)))
    scores = pair_scores(model, pairs, train.dt, system)
    for k in ("dstsp", "dh", "pe", "lyap"):
        scores[k] = _finite_or_inf(scores[k])
    diverged = not all(np.isfinite(scores[k]) for k in ("dstsp", "dh", "lyap"))
    ok, lines = check_scores(system, scores, {"floor": floor, "lyap": lyap_true})
    lib = library_residual(system, train.states)
    return {
        "system": system, "seed": int(seed), "dt": float(train.dt),
        "train_length": int(train_length),
        "library_residual": lib, "in_library": bool(lib < LIBRARY_TOL),
        "fit_residual": resid.tolist(),
        "fit_residual_rel": (resid / step_rms).tolist(),
        "scores": {k: v for k, v in scores.items()},
        "floor": floor, "lyap_true": lyap_true,
        "lyap_rel_err": abs(scores["lyap"] - lyap_true) / abs(lyap_true),
        "diverged": bool(diverged), "criteria_met": bool(ok), "criteria": lines,
        "preset": preset_row(system), "seconds": time.perf_counter() - t0,
    }


def _f(v, d=3):
    return "inf" if np.isinf(v) else "nan" if not np.isfinite(v) else f"{v:.{d}f}"


def table(results):
    """The markdown table of ``results["rows"]``."""
    head = ("| system | true field in library (exact-field residual) | fit residual "
            "(max, % of RMS step) | D_stsp (bar) | D_H (bar) | lambda_max model / true "
            "(error) | criteria met | preset D_stsp / D_H / lambda error |")
    lines = [head, "|---|---|---|---|---|---|---|---|"]
    for r in results["rows"]:
        s, fl = r["scores"], r["floor"]
        p = r["preset"]
        preset = ("no preset" if p is None else
                  f"{p['dstsp']:.3f} / {p['dh']:.3f} / {100 * p['lyap_rel_err']:.1f} %")
        verdict = "yes" if r["criteria_met"] else "no"
        if r["diverged"]:
            verdict += " (diverged)"
        lines.append(
            f"| {r['system']} | {'yes' if r['in_library'] else 'no'} "
            f"({r['library_residual']:.1e}) | {100 * max(r['fit_residual_rel']):.3g} % | "
            f"{_f(s['dstsp'])} ({fl['dstsp'] + 0.2:.3f}) | {_f(s['dh'])} "
            f"({2 * fl['dh']:.3f}) | {_f(s['lyap'])} / {r['lyap_true']:.3f} "
            f"({_f(100 * r['lyap_rel_err'], 1)} %) | {verdict} | {preset} |")
    return "\n".join(lines) + "\n"


def write_results(out_dir, results):
    with atomic_write(os.path.join(out_dir, "results.json")) as fh:
        json.dump(results, fh, indent=1)
    text = f"Command: `{results['meta']['command']}`\n\n" + table(results)
    with atomic_write(os.path.join(out_dir, "table.md")) as fh:
        fh.write(text)
    return text


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--systems", default=None,
                   help="comma-separated systems (default: every zoo recipe's, and thomas)")
    p.add_argument("--out", default=None,
                   help="output folder (default: this folder; --smoke: a temporary one)")
    p.add_argument("--smoke", action="store_true",
                   help="tiny (lorenz63 and thomas, 5 000 training and 3 000 test steps)")
    return p.parse_args(argv)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    a = parse_args(argv)
    systems = ([s.strip() for s in a.systems.split(",") if s.strip()] if a.systems
               else list(SMOKE_SYSTEMS) if a.smoke else default_systems())
    out = a.out or (tempfile.mkdtemp(prefix="library_smoke_") if a.smoke else HERE)
    os.makedirs(out, exist_ok=True)
    script = "experiments/equation_library_baseline/run.py"
    shown = "".join(" " + s for s in argv if not os.path.isabs(s))
    results = {"meta": {
        "command": f"KERAS_BACKEND={keras.backend.backend()} python {script}{shown}",
        "machine": machine_line(), "library_tol": LIBRARY_TOL}, "rows": []}
    for system in systems:
        row = run_system(system, smoke=a.smoke)
        results["rows"].append(row)
        s = row["scores"]
        print(f"{system}: D_stsp {_f(s['dstsp'])}, D_H {_f(s['dh'])}, lambda_max "
              f"{_f(s['lyap'])} (true {row['lyap_true']:.3f}), criteria "
              f"{'met' if row['criteria_met'] else 'not met'} ({row['seconds']:.0f} s)",
              flush=True)
        write_results(out, results)
    print(table(results), flush=True)
    return results


if __name__ == "__main__":
    main()
