"""Rebuild a zoo preset from scratch: simulate, train with GTF-DEER, evaluate, ship.

Each preset has a folder ``zoo/<name>/`` with ``recipe.json`` (the system and the
:class:`keras_dsr.recipes.Recipe` fields). This script trains it with
:func:`keras_dsr.recipes.reconstruct`, measures the free-running model against a
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
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
NOT_SHIPPED = "not shipped"
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np  # noqa: E402

import keras_dsr  # noqa: E402,F401
import keras  # noqa: E402
from keras_dsr import zoo  # noqa: E402
from keras_dsr.recipes import Recipe, reconstruct  # noqa: E402
from keras_dsr.zoo.criteria import check_scores, preset_scores, true_reference  # noqa: E402


def recipes():
    """Names of the preset folders that hold a ``recipe.json``."""
    return sorted(d for d in os.listdir(HERE)
                  if os.path.isfile(os.path.join(HERE, d, "recipe.json")))


def load_recipe(name):
    with open(os.path.join(HERE, name, "recipe.json")) as fh:
        spec = json.load(fh)
    return spec["system"], Recipe.from_dict(spec["recipe"])


def machine():
    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores, "
            f"Python {platform.python_version()}, keras {keras.__version__}, "
            f"backend {keras.backend.backend()}")


def build(name, verbose=2):
    system, recipe = load_recipe(name)
    print(f"== {name}: {system}, recipe {recipe.to_dict()}", flush=True)
    result = reconstruct(system, recipe, measures=("dstsp", "dh"), verbose=verbose)
    model = result.model
    # Install into the package first, then score the installed file (what users load).
    os.makedirs(zoo.PRESET_DIR, exist_ok=True)
    target = os.path.join(zoo.PRESET_DIR, f"{name}.keras")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, f"{name}.keras")
        model.save(path)
        shutil.copyfile(path, target)
    entry = {
        "file": f"{name}.keras",
        "sha256": zoo.sha256(target),
        "system": system,
        "dt": float(result.train.dt),
        "mean": np.asarray(result.train.mean, dtype=float).round(8).tolist(),
        "std": np.asarray(result.train.std, dtype=float).round(8).tolist(),
        "recipe": recipe.to_dict(),
    }
    manifest = zoo._manifest()
    manifest[name] = entry
    _write_manifest(manifest)
    ref = true_reference(name)
    loaded = zoo.load_preset(name)
    scores = preset_scores(loaded, name)
    ok, lines = check_scores(name, scores, ref)
    final = {k: float(v[-1]) for k, v in result.history.history.items()}
    entry["card"] = {
        "scores": scores, "floor": ref["floor"], "lyap_true": ref["lyap"],
        "criteria_met": ok, "train_seconds": round(result.seconds, 1),
        "final_logs": final, "machine": machine(),
        "date": datetime.date.today().isoformat(),
    }
    if ok:
        manifest[name] = entry
    else:  # a preset ships only when it meets its criteria: uninstall, keep the card
        manifest.pop(name, None)
        os.remove(target)
    _write_manifest(manifest)
    _write_card(name, system, recipe, entry, lines, ok)
    print("\n".join(lines))
    return ok


def _write_manifest(manifest):
    with open(os.path.join(zoo.PRESET_DIR, zoo.MANIFEST), "w") as fh:
        json.dump(manifest, fh, indent=1, sort_keys=True)
        fh.write("\n")


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
        f"- Final logs: {json.dumps({k: round(v, 5) for k, v in card['final_logs'].items()})}",
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
