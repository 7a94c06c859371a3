"""The zoo's acceptance protocol: how a preset is scored and what it must meet.

A preset of system S, trained on data seed s (its recipe), is scored against
:data:`N_PAIRS` (5) independent test trajectories of S (initial-condition seeds
s + 1 + 10 k, k = 0..4), standardised with the training statistics (the preset's
normalization, in its metadata), under the protocol of docs/method.md §Evaluation
measures (generate 1.25 T from each test trajectory's first point, drop the first
quarter). Each test trajectory has its *floor*: what an independent true trajectory
(seed s + 2 + 10 k, same standardisation) scores against it. One test trajectory and
one floor scatter a lot (for Lorenz-63 the floor of D_stsp ranges 0.04-0.4 between
pairs, and a chaotic trajectory differs between CPUs), so the criteria compare
medians over the pairs:

* median D_stsp <= median floor + 0.2 and median D_H <= 2 x median floor;
* |lambda_max(model) - lambda_max(S)| <= 15 % of lambda_max(S) (the model's averaged
  over at least 100 000 steps and 200 time units, :func:`lyap_steps`);
* a preset sampled more finely than its system's default ``dt`` is judged over the same
  physical time as at the default: test trajectories and the lambda_max average get
  proportionally more steps (:func:`held_out_length`, :func:`lyap_steps`).
* Lorenz-63 additionally: median D_stsp <= 0.2 and median D_H <= 0.08;
* robustness (``--robustness 100``, :func:`preset_robustness`; reported on the cards,
  not yet a gate): at most 5 % of free runs from 100 initial conditions around the
  attractor should miss it (:mod:`keras_dsr.robustness`). The bound of a run that
  reached it is calibrated on the true system run from the same starts (its worst
  run's D_stsp + 0.2); a fixed point or a cycle never counts as reached, and a start
  from which the true system itself leaves is not held against the model.

From the command line (exit status 0 when every named preset meets its criteria on
the current backend): ``KERAS_BACKEND=torch python -m keras_dsr.zoo.criteria lorenz63``;
``--robustness 100`` adds the robustness criterion (reported). The zoo's status table, from the
cards that ``zoo/build.py`` writes: :func:`keras_dsr.zoo.card.status_table`.

Example:
    >>> from keras_dsr import zoo
    >>> from keras_dsr.zoo.criteria import check_scores, preset_scores, true_reference
    >>> model = zoo.load_preset("sprott_b")                        # doctest: +SKIP
    >>> ok, lines = check_scores("sprott_b", preset_scores(model, "sprott_b"),
    ...                          true_reference("sprott_b"))       # doctest: +SKIP
"""

import contextlib
import functools
import sys

import numpy as np

TEST_LENGTH = 100_000  # steps of the test trajectories at the system's default dt
LYAP_STEPS = 100_000  # at least this many steps of the model's lambda_max average ...
LYAP_TIME = 200.0  # ... and at least this many time units (dt < 0.002: more steps)


def _finer(system, dt):
    """``max(1, default dt / dt)``: how much finer than its system's default ``dt`` is."""
    if system is None or dt is None:
        return 1.0
    from keras_dsr.systems import get_system

    ratio = float(get_system(system).dt) / float(dt)
    return ratio if ratio > 1.0 + 1e-9 else 1.0


def held_out_length(system, dt=None):
    """Steps of the criteria's test (and the builds' validation) trajectories.

    ``TEST_LENGTH`` (100 000) at the system's default sampling interval or a coarser one;
    at a finer ``dt`` the steps that span the same time as ``TEST_LENGTH`` default steps.
    A fixed number of steps would shorten the test in time: Hindmarsh-Rose at dt 0.0125
    (a quarter of its default 0.05) would see ~12 bursts instead of ~48, and an
    independent true trajectory would score D_stsp 3.17 against the test set instead of
    0.41 (``research/recipe_search/RESULTS_zoo.md``).

    Example:
        >>> held_out_length("lorenz63"), held_out_length("hindmarsh_rose", 0.0125)
        (100000, 400000)
        >>> held_out_length("rossler", 0.1)                 # coarser than the default 0.05
        100000
    """
    return int(np.ceil(TEST_LENGTH * _finer(system, dt) - 1e-9))


def lyap_steps(dt, system=None):
    """Steps averaged for a model's lambda_max: ``max(LYAP_STEPS, ceil(LYAP_TIME / dt))``,
    times ``default dt / dt`` when ``system`` is given and ``dt`` is finer than its default
    (the same time as at the default, as :func:`held_out_length`).

    The estimate from a finite average scatters with the start point, and the 15 %
    bar makes that matter: from four start points on its test trajectory (JAX), a
    Halvorsen model gave 0.79-0.92 (sd 0.048) over 20 000 steps and 0.80-0.86 (sd
    0.023) over 100 000 (true 0.70); a Chen model gave 1.71-2.07 from three start
    points with 20 000 steps (40 time units at dt 0.002), 1.77-1.95 with 100 000
    (TensorFlow; true 2.04); the probes are in ``research/recipe_search/RESULTS_zoo.md``.
    100 000 steps cost ~4 s on a CPU. So the
    average spans at least 100 000 steps and 200 time units.

    Example:
        >>> lyap_steps(0.01), lyap_steps(0.002), lyap_steps(0.001)
        (100000, 100000, 200000)
        >>> lyap_steps(0.0125, "hindmarsh_rose")
        400000
    """
    return max(int(np.ceil(LYAP_STEPS * _finer(system, dt) - 1e-9)),
               int(np.ceil(LYAP_TIME / dt - 1e-9)))


ABSOLUTE = {"lorenz63": {"dstsp": 0.2, "dh": 0.08}}


N_PAIRS = 5  # independent (test, floor) pairs: the criteria compare medians over them


def pair_seeds(seed, k, offset=0):
    """Initial-condition seeds of the k-th (test, floor) pair of data seed ``seed``:
    ``seed + 1 + offset + 10 k`` and ``seed + 2 + offset + 10 k``. The criteria's test
    pairs have ``offset`` 0; the builds' validation pairs offset 2
    (:func:`keras_dsr.zoo.selection.validation_pairs`), so the two never share a seed."""
    return seed + 1 + offset + 10 * k, seed + 2 + offset + 10 * k


def held_out_pairs(system, seed, mean, std, dt=None, n=N_PAIRS, offset=0, length=None):
    """The criteria's ``n`` (test, floor) pairs of true trajectories of ``system``.

    Pair k starts from the seeds :func:`pair_seeds` ``(seed, k, offset)``; all ``2 n``
    trajectories come from one ensemble solve of ``length`` steps each (None:
    :func:`held_out_length`), sampled every ``dt`` (None: the system's default),
    z-scored with the training statistics ``mean``, ``std`` (shape ``[D]``).

    Returns:
        a list of ``n`` pairs of float32 arrays ``[length, D]``.
    """
    from keras_dsr.systems import simulate_ensemble

    seeds = tuple(s for k in range(n) for s in pair_seeds(seed, k, offset))
    length = held_out_length(system, dt) if length is None else length
    runs = simulate_ensemble(system, length, seeds=seeds, dt=dt, standardize=False)
    mean, std = np.asarray(mean), np.asarray(std)
    x = [((r.clean - mean) / std).astype("float32") for r in runs]
    return [(x[2 * k], x[2 * k + 1]) for k in range(n)]


def pair_floors(pairs):
    """The floor of each (test, other) pair: what the independent true trajectory
    ``other`` scores against ``test``; returns ``(medians, per_pair)`` of
    ``{"dstsp", "dh"}``."""
    from keras_dsr.measures import power_spectrum_distance, state_space_divergence

    floors = [{"dstsp": float(state_space_divergence(test, other)),
               "dh": float(power_spectrum_distance(test, other))} for test, other in pairs]
    return {k: float(np.median([f[k] for f in floors])) for k in ("dstsp", "dh")}, floors


def pair_scores(model, pairs, dt, system):
    """A model's measures against the test trajectories of ``pairs`` (its own units).

    D_stsp and D_H: medians over the pairs (each scored from a free run started at the
    test trajectory's first point, :func:`keras_dsr.measures.evaluate`); PE(20) and
    lambda_max (per time unit, :func:`lyap_steps` steps) on the first.

    Returns:
        ``{"dstsp", "dh", "pe", "lyap"}`` and ``"per_pair"``: the D_stsp and D_H of
        each test trajectory.
    """
    from keras_dsr.measures import evaluate

    first = evaluate(model, pairs[0][0], measures=("dstsp", "dh", "pe", "lyap"),
                     dt=dt, lyap_steps=lyap_steps(dt, system))
    per_pair = [{k: float(first[k]) for k in ("dstsp", "dh")}]
    per_pair += [{k: float(v) for k, v in evaluate(model, test, ("dstsp", "dh")).items()}
                 for test, _ in pairs[1:]]
    scores = {k: float(np.median([p[k] for p in per_pair])) for k in ("dstsp", "dh")}
    scores.update(pe=float(first["pe"]), lyap=float(first["lyap"]), per_pair=per_pair)
    return scores


def held_out_pair(system, seed, mean, std, dt=None):
    """One (test, floor) pair (seeds ``seed + 1``, ``seed + 2``): :func:`held_out_pairs`
    with ``n = 1``, for research scripts that score a candidate quickly."""
    return held_out_pairs(system, seed, mean, std, dt=dt, n=1)[0]


def _test_pairs(name):
    """The (test, floor) pairs of preset ``name`` (:func:`held_out_pairs`), read-only.

    Cached per process on the system, seed and standardisation, so that the floor
    (:func:`true_reference`) and the model's scores (:func:`preset_scores`) share one
    solve.
    """
    from keras_dsr import zoo

    info = zoo.preset_info(name)
    return _held_out_cached(info["system"], int(info["recipe"]["seed"]),
                            tuple(float(v) for v in info["mean"]),
                            tuple(float(v) for v in info["std"]), float(info["dt"]))


@functools.lru_cache(maxsize=2)
def _held_out_cached(system, seed, mean, std, dt):
    pairs = held_out_pairs(system, seed, np.array(mean), np.array(std), dt=dt)
    for pair in pairs:
        for x in pair:
            x.setflags(write=False)
    return pairs


@functools.lru_cache(maxsize=None)
def true_reference(name):
    """Floor measures (medians over the pairs) and the true lambda_max of preset ``name``.

    Returns:
        ``{"floor": {"dstsp", "dh"}, "floors": [{"dstsp", "dh"} per pair], "lyap": float}``.
    """
    from keras_dsr import zoo
    from keras_dsr.systems import lyapunov_max

    floor, floors = pair_floors(_test_pairs(name))
    return {"floor": floor, "floors": floors,
            "lyap": float(lyapunov_max(zoo.preset_info(name)["system"]))}


@contextlib.contextmanager
def _standardised(model):
    """``model`` generating in its standardised units (a normalization set aside, then
    restored)."""
    units = (getattr(model, "data_mean", None), getattr(model, "data_std", None))
    if units[0] is not None:
        model.set_normalization(None, None)
    try:
        yield model
    finally:
        if units[0] is not None:
            model.set_normalization(*units)


def preset_scores(model, name):
    """Scores of ``model`` on preset ``name``'s test trajectories (standardised units):
    :func:`pair_scores` on the preset's pairs. A normalization of ``model`` is set aside
    for the measurement and restored.

    Returns:
        ``{"dstsp", "dh", "pe", "lyap"}`` and ``"per_pair"``: the D_stsp and D_H of
        each test trajectory.
    """
    from keras_dsr import zoo

    info = zoo.preset_info(name)
    with _standardised(model):  # the measures compare standardised trajectories
        return pair_scores(model, _test_pairs(name), info["dt"], info["system"])


MAX_FAILED = 0.05  # at most this fraction of the free runs may miss the data's attractor


def preset_robustness(model, name, n=100, seed=0):
    """Free runs of ``model`` from ``n`` initial conditions around preset ``name``'s first
    test trajectory, classified by :func:`keras_dsr.robustness.free_run_fates`.

    Each run: ``held_out_length / 20`` steps of burn-in, then ``held_out_length / 5``
    steps scored (20 000 at the system's default dt), in the standardised units (a
    normalization of ``model`` is set aside and restored). The bound of a run that
    reached the attractor is calibrated on the true system run from the same initial
    conditions (:func:`keras_dsr.robustness.system_generator`). A preset ships when at
    most :data:`MAX_FAILED` of the runs miss the data's attractor.
    """
    from keras_dsr import zoo
    from keras_dsr.robustness import free_run_fates, system_generator

    info = zoo.preset_info(name)
    length = held_out_length(info["system"], info["dt"])
    test = _test_pairs(name)[0][0]
    truth = system_generator(info["system"], info["dt"], info["mean"], info["std"])
    with _standardised(model):
        return free_run_fates(model, test, n=n, steps=length // 5, burn_in=length // 20,
                              seed=seed, reference=truth)


def check_scores(name, scores, reference, robustness=None, gate_robustness=False):
    """Apply the criteria; returns ``(all_met, lines)`` with a markdown table in ``lines``.

    ``robustness``: a :class:`keras_dsr.robustness.Fates` (:func:`preset_robustness`)
    to judge against :data:`MAX_FAILED`; it decides ``all_met`` only with
    ``gate_robustness`` (``zoo/build.py`` ``GATE``), otherwise it is reported.
    """
    floor, lyap = reference["floor"], reference["lyap"]
    n = len(scores.get("per_pair", ())) or 1
    rows = [
        (f"D_stsp (median of {n})", scores["dstsp"], floor["dstsp"], floor["dstsp"] + 0.2, "<="),
        (f"D_H (median of {n})", scores["dh"], floor["dh"], 2 * floor["dh"], "<="),
    ]
    for key, bound in ABSOLUTE.get(name, {}).items():
        rows.append(("D_stsp (median, absolute)" if key == "dstsp" else "D_H (median, absolute)",
                     scores[key], None, bound, "<="))
    lines = ["| measure | model | floor / true | criterion | met |", "|---|---|---|---|---|"]
    ok = True
    for label, value, ref, bound, _ in rows:
        met = bool(np.isfinite(value) and value <= bound)
        ok &= met
        lines.append(f"| {label} | {value:.4f} | {'' if ref is None else f'{ref:.4f}'} | "
                     f"<= {bound:.4f} | {'yes' if met else 'NO'} |")
    rel = abs(scores["lyap"] - lyap) / abs(lyap)
    met = bool(np.isfinite(rel) and rel <= 0.15)
    ok &= met
    lines.append(f"| lambda_max (1/time) | {scores['lyap']:.4f} | {lyap:.4f} | within 15 % "
                 f"({100 * rel:.1f} %) | {'yes' if met else 'NO'} |")
    if robustness is not None:
        failed = robustness.failed
        met = failed <= MAX_FAILED
        if gate_robustness:
            ok &= met
        c, ref = robustness.counts, robustness.reference_counts
        true_off = "" if ref is None else \
            f"true system: {100 * (1 - ref['reached'] / sum(ref.values())):.0f} %"
        lines.append(f"| free runs off the attractor (of {len(robustness.labels)}) | "
                     f"{100 * failed:.0f} % (diverged {c['diverged']}, fixed point "
                     f"{c['fixed_point']}, cycle {c['cycle']}, other {c['other']}) | "
                     f"{true_off} | <= {100 * MAX_FAILED:.0f} %"
                     f"{'' if gate_robustness else ' (reported)'} | {'yes' if met else 'NO'} |")
    lines.append(f"| PE(20) | {scores['pe']:.3g} | | (reported) | |")
    return ok, lines


def main(argv=None):
    """Recompute and print the criteria of the named presets on this backend."""
    import argparse

    import keras

    from keras_dsr import zoo

    p = argparse.ArgumentParser(prog="python -m keras_dsr.zoo.criteria",
                                description=main.__doc__)
    p.add_argument("names", nargs="*", help="presets (default: all)")
    p.add_argument("--robustness", type=int, default=0, metavar="N",
                   help="also judge free runs from N initial conditions (the card's: 100)")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    all_ok = True
    for name in args.names or zoo.list_presets():
        model = zoo.load_preset(name)
        fates = preset_robustness(model, name, args.robustness) if args.robustness else None
        scores, reference = preset_scores(model, name), true_reference(name)
        ok, lines = check_scores(name, scores, reference, robustness=fates)
        print(f"{name} on {keras.backend.backend()}: criteria {'met' if ok else 'NOT met'}")
        print("\n".join(lines), flush=True)
        all_ok &= ok
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
