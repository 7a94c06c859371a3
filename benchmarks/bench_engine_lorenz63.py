"""The Lorenz-63 default recipe trained by this checkout against an earlier commit.

For each seed, one after the other in the same run (alternating old and new, so that
both see the same machine load), ``keras_dsr.recipes.reconstruct("lorenz63",
Recipe(seed=s), with_floor=True)`` runs in a fresh process of each checkout: the
training time (``Reconstruction.seconds``, compilation included) and D_stsp / D_H of
the free run against the test trajectory are recorded, and the medians over seeds
are compared. The other checkout is a folder holding that commit's ``keras_dsr``
(make it with ``git worktree add /some/dir COMMIT``); it is put first on
``PYTHONPATH`` of its processes.

Each model is also judged as the zoo judges presets: free runs from the first points
of the five test trajectories of ``keras_dsr.zoo.criteria.held_out_pairs`` (simulated
here in the system's units, z-scored by each checkout with its own training
statistics), 1.25 T steps each with the first quarter dropped, scored here by this
checkout's measures; medians over the five, beside the medians of their floors.

Usage:
    KERAS_BACKEND=jax python benchmarks/bench_engine_lorenz63.py --old /some/dir \\
        --seeds 0,1,2,3,4 --output benchmarks/RESULTS_engine_lorenz63.md
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

RUN = """
import json, sys
import keras_dsr
from keras_dsr.recipes import Recipe, reconstruct
import numpy as np
r = reconstruct("lorenz63", Recipe(seed=int(sys.argv[1])), with_floor=True, verbose=0)
if len(sys.argv) > 3:  # free runs from the given starts (standardised), saved for scoring
    starts = ((np.load(sys.argv[2]) - r.train.mean) / r.train.std).astype("float32")
    steps = int(sys.argv[4])
    runs = np.asarray(r.model.generate(starts, steps))
    np.savez(sys.argv[3], runs=runs, mean=np.asarray(r.train.mean), std=np.asarray(r.train.std))
test = np.asarray(r.test.x, dtype="float64")
x0 = test[np.random.default_rng(0).integers(0, len(test), 40)].astype("float32")
tail = np.asarray(r.model.generate(x0, 20_000))[:, -5_000:]
# An initial condition reaches the data's attractor when the last 5000 steps of its
# free run span the data's spread (each variable's std within 30 %) and visit both
# signs of x (both wings).
std_ok = np.all(np.abs(tail.std(1) / test.std(0) - 1) < 0.3, axis=1)
wings = (tail[..., 0] < 0).any(1) & (tail[..., 0] > 0).any(1)
print("RESULT " + json.dumps({"seconds": r.seconds, "dstsp": r.scores["dstsp"],
      "dh": r.scores["dh"], "floor": r.floor, "reach": int(np.sum(std_ok & wings)),
      "spe": int(getattr(r.model, "steps_per_execution", 1))}))
"""


def criteria_pairs(seed, n):
    """The zoo criteria's ``n`` (test, floor) pairs of Lorenz-63 data seed ``seed``, in
    the system's own units (each checkout z-scores them with its training statistics)."""
    from keras_dsr.zoo.criteria import held_out_pairs

    return held_out_pairs("lorenz63", seed, np.zeros(3), np.ones(3), n=n)


def pair_medians(runs, raw_pairs, mean, std):
    """Median D_stsp / D_H of the free runs ``runs [n, 1.25 T, 3]`` (the first quarter
    dropped, as ``keras_dsr.measures.generate_for_evaluation`` does) against the test
    trajectories, and of the floors, all z-scored with the checkout's ``mean``, ``std``."""
    from keras_dsr.measures import power_spectrum_distance, state_space_divergence
    from keras_dsr.zoo.criteria import pair_floors

    pairs = [tuple(((x - mean) / std).astype("float32") for x in p) for p in raw_pairs]
    per = []
    for (test, _), run in zip(pairs, runs):
        gen = run[-len(test):]
        per.append((float(state_space_divergence(test, gen)),
                    float(power_spectrum_distance(test, gen))))
    floor, _ = pair_floors(pairs)
    return {"pairs_dstsp": float(np.median([p[0] for p in per])),
            "pairs_dh": float(np.median([p[1] for p in per])),
            "pairs_per": per, "pairs_floor": floor}


def run(root, seed, n_pairs=0):
    env = dict(os.environ, PYTHONPATH=root, KERAS_BACKEND=os.environ.get("KERAS_BACKEND", "jax"))
    args = [sys.executable, "-c", RUN, str(seed)]
    with tempfile.TemporaryDirectory() as tmp:
        if n_pairs:
            pairs = criteria_pairs(seed, n_pairs)
            np.save(os.path.join(tmp, "starts.npy"), np.stack([t[0] for t, _ in pairs]))
            steps = len(pairs[0][0]) + round(0.25 * len(pairs[0][0]))
            args += [os.path.join(tmp, "starts.npy"), os.path.join(tmp, "runs.npz"), str(steps)]
        proc = subprocess.run(args, check=False, cwd=root, env=env, capture_output=True, text=True)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            tail = proc.stderr.strip().splitlines()[-3:]
            return {"error": " / ".join(tail)}
        res = json.loads(lines[-1][len("RESULT "):])
        if n_pairs:
            out = np.load(os.path.join(tmp, "runs.npz"))
            res.update(pair_medians(out["runs"], pairs, out["mean"], out["std"]))
    return res


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--old", required=True, help="folder holding the earlier commit's keras_dsr")
    p.add_argument("--old-name", default="0718ff0", help="the earlier commit, for the table")
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--pairs", type=int, default=5,
                   help="test trajectories per model, judged as the zoo's criteria (0: none)")
    p.add_argument("--output")
    p.add_argument("--rows", help="JSON file of result rows: read first (seeds already "
                   "there are not run again), written after every run")
    a = p.parse_args(argv)
    seeds = [int(s) for s in a.seeds.split(",")]
    rows = []
    if a.rows and os.path.exists(a.rows):
        with open(a.rows) as fh:
            rows = [tuple(r) for r in json.load(fh)]
    for seed in seeds:
        for name, root in ((a.old_name, a.old), ("this checkout", ROOT)):
            if any(s == seed and n == name for s, n, _ in rows):
                continue
            res = run(root, seed, a.pairs)
            rows.append((seed, name, res))
            print(seed, name, res, flush=True)
            if a.rows:
                from keras_dsr.io import atomic_write

                with atomic_write(a.rows) as fh:
                    json.dump(rows, fh, indent=1)
    rows.sort(key=lambda r: (r[0], r[1] != a.old_name))
    seeds = sorted({s for s, _, _ in rows})
    lines = ["# Lorenz-63 default recipe: this checkout against an earlier commit", "",
             "Command: `KERAS_BACKEND=jax python benchmarks/bench_engine_lorenz63.py --old DIR "
             f"--old-name {a.old_name} --seeds {','.join(map(str, seeds))}`", "",
             f"Machine: {platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores, "
             f"Python {platform.python_version()}; old and new alternate per seed.", "",
             "Training seconds compare only within a seed (old and new ran back to back); "
             "rows of different seeds may have run under different machine load.", "",
             "Reach: of 40 initial conditions drawn from the test trajectory, how many "
             "free runs (20 000 steps) end on the data's attractor (the last 5 000 steps "
             "span each variable's std within 30 % and visit both signs of x); D_stsp and "
             "D_H score one free run from the test trajectory's start; the five-trajectory "
             "columns are the medians over the zoo criteria's five test trajectories "
             "(`keras_dsr.zoo.criteria.held_out_pairs`, one free run from each start) and "
             "over their floors.", "",
             "| seed | code | steps/execution | training s | D_stsp | D_H | floor D_stsp | "
             "floor D_H | reach | D_stsp, 5 test trajectories (floor) | D_H, 5 (floor) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for seed, name, r in rows:
        if "error" in r:
            lines.append(f"| {seed} | {name} | | failed: {r['error']} | | | | |")
            continue
        reach = f"{r['reach']}/40" if "reach" in r else "not measured"
        five = (f"{r['pairs_dstsp']:.3f} ({r['pairs_floor']['dstsp']:.3f}) | "
                f"{r['pairs_dh']:.3f} ({r['pairs_floor']['dh']:.3f})" if "pairs_dstsp" in r
                else "not measured | not measured")
        lines.append(f"| {seed} | {name} | {r['spe']} | {r['seconds']:.1f} | {r['dstsp']:.3f} | "
                     f"{r['dh']:.3f} | {r['floor']['dstsp']:.3f} | {r['floor']['dh']:.3f} | "
                     f"{reach} | {five} |")
    lines += ["", "| code | median training s | median D_stsp | median D_H | median of the "
              "five-trajectory D_stsp | median of the five-trajectory D_H |",
              "|---|---|---|---|---|---|"]
    for name in (a.old_name, "this checkout"):
        ok = [r for _, n, r in rows if n == name and "error" not in r]
        five = [r for r in ok if "pairs_dstsp" in r]
        if ok:
            lines.append(f"| {name} | {statistics.median(r['seconds'] for r in ok):.1f} | "
                         f"{statistics.median(r['dstsp'] for r in ok):.3f} | "
                         f"{statistics.median(r['dh'] for r in ok):.3f} | " + (
                             f"{statistics.median(r['pairs_dstsp'] for r in five):.3f} | "
                             f"{statistics.median(r['pairs_dh'] for r in five):.3f} |"
                             if five else "- | - |"))
    text = "\n".join(lines) + "\n"
    print(text)
    if a.output:
        from keras_dsr.io import atomic_write

        with atomic_write(a.output) as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
