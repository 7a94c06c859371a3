"""The zoo's acceptance protocol: how a preset is scored and what it must meet.

A preset of system S, trained on seed s (its recipe), is scored against a test
trajectory of S from seed s + 1, standardised with the training statistics (the
preset's normalization, in its metadata), under the protocol of docs/method.md §Evaluation measures (generate 1.25 T from the first
test point, drop the first quarter). The *floor* is what an independent true
trajectory (seed s + 2, same standardisation) scores against the same test set.
Criteria (issue "pretrained zoo"):

* D_stsp <= floor + 0.2 and D_H <= 2 x floor;
* |lambda_max(model) - lambda_max(S)| <= 15 % of lambda_max(S) (the model's averaged
  over at least 100 000 steps and 200 time units, :func:`lyap_steps`);
* a preset sampled more finely than its system's default ``dt`` is judged over the same
  physical time as at the default: test trajectories and the lambda_max average get
  proportionally more steps (:func:`held_out_length`, :func:`lyap_steps`).
* Lorenz-63 additionally: D_stsp <= 0.2 and D_H <= 0.08.

From the command line (exit status 0 when every named preset meets its criteria on
the current backend): ``KERAS_BACKEND=torch python -m keras_dsr.zoo.criteria chen``.

Example:
    >>> from keras_dsr import zoo
    >>> from keras_dsr.zoo.criteria import check_scores, preset_scores, true_reference
    >>> model = zoo.load_preset("sprott_b")                        # doctest: +SKIP
    >>> ok, lines = check_scores("sprott_b", preset_scores(model, "sprott_b"),
    ...                          true_reference("sprott_b"))       # doctest: +SKIP
"""

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
    bar makes that matter. Measured (2026-11-29, four start points on the test
    trajectory, JAX): a Halvorsen model gave 0.79-0.92 (sd 0.048) over 20 000 steps
    and 0.80-0.86 (sd 0.023) over 100 000 (true 0.70); a Chen model gave 1.71-2.07
    from three start points with 20 000 steps (40 time units at dt 0.002), 1.77-1.95
    with 100 000 (TensorFlow; true 2.04). 100 000 steps cost ~4 s on a CPU. So the
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


def held_out_pair(system, seed, mean, std, dt=None):
    """The criteria's (test, other) true trajectories of ``system``, standardised like training.

    Test trajectory: data seed + 1; floor trajectory: seed + 2 (one ensemble solve of
    :func:`held_out_length` steps each, sampled every ``dt``: None is the system's default);
    both z-scored with the training statistics ``mean``,
    ``std`` (shape ``[D]``). Used for shipped presets and for candidates alike
    (``research/recipe_search/zoo_candidate.py``).

    Returns:
        two float32 arrays ``[held_out_length(system, dt), D]``.
    """
    from keras_dsr.systems import simulate_ensemble

    test, other = simulate_ensemble(system, held_out_length(system, dt),
                                    seeds=(seed + 1, seed + 2), dt=dt, standardize=False)
    mean, std = np.asarray(mean), np.asarray(std)
    return ((test.clean - mean) / std).astype("float32"), ((other.clean - mean) / std).astype(
        "float32")


def _test_pair(name):
    """(test, other) true trajectories of preset ``name`` (:func:`held_out_pair`), read-only.

    Cached per process on the system, seed and standardisation, so that the floor
    (:func:`true_reference`) and the model's scores (:func:`preset_scores`) share one
    solve: 100 000 steps of Lorenz-96 take about a minute on one CPU core.
    """
    from keras_dsr import zoo

    info = zoo.preset_info(name)
    return _held_out_cached(info["system"], int(info["recipe"]["seed"]),
                            tuple(float(v) for v in info["mean"]),
                            tuple(float(v) for v in info["std"]), float(info["dt"]))


@functools.lru_cache(maxsize=4)
def _held_out_cached(system, seed, mean, std, dt):
    pair = held_out_pair(system, seed, np.array(mean), np.array(std), dt=dt)
    for x in pair:
        x.setflags(write=False)
    return pair


@functools.lru_cache(maxsize=None)
def true_reference(name):
    """Floor measures and the true lambda_max for preset ``name`` (cached per process).

    Returns:
        ``{"floor": {"dstsp", "dh"}, "lyap": float}``.
    """
    from keras_dsr import zoo
    from keras_dsr.measures import power_spectrum_distance, state_space_divergence
    from keras_dsr.systems import lyapunov_max

    test, other = _test_pair(name)
    floor = {"dstsp": float(state_space_divergence(test, other)),
             "dh": float(power_spectrum_distance(test, other))}
    return {"floor": floor, "lyap": float(lyapunov_max(zoo.preset_info(name)["system"]))}


def preset_scores(model, name):
    """D_stsp, D_H, PE(20) and lambda_max (per time unit) of ``model`` on preset ``name``'s test set.

    Measured in the standardised units (a normalization of ``model`` is set aside
    for the measurement and restored).
    """
    from keras_dsr import zoo
    from keras_dsr.measures import evaluate

    test, _ = _test_pair(name)
    info = zoo.preset_info(name)
    dt = info["dt"]
    # the measures compare standardised trajectories: run the model in its own units
    units = (getattr(model, "data_mean", None), getattr(model, "data_std", None))
    if units[0] is not None:
        model.set_normalization(None, None)
    try:
        scores = evaluate(model, test, measures=("dstsp", "dh", "pe", "lyap"),
                          dt=dt, lyap_steps=lyap_steps(dt, info["system"]))
    finally:
        if units[0] is not None:
            model.set_normalization(*units)
    return {k: float(v) for k, v in scores.items()}


def check_scores(name, scores, reference):
    """Apply the criteria; returns ``(all_met, lines)`` with a markdown table in ``lines``."""
    floor, lyap = reference["floor"], reference["lyap"]
    rows = [
        ("D_stsp", scores["dstsp"], floor["dstsp"], floor["dstsp"] + 0.2, "<="),
        ("D_H", scores["dh"], floor["dh"], 2 * floor["dh"], "<="),
    ]
    for key, bound in ABSOLUTE.get(name, {}).items():
        rows.append(("D_stsp (absolute)" if key == "dstsp" else "D_H (absolute)",
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
    lines.append(f"| PE(20) | {scores['pe']:.3g} | | (reported) | |")
    return ok, lines


def main(argv=None):
    """Recompute and print the criteria of the named presets on this backend."""
    import keras

    from keras_dsr import zoo

    names = list(sys.argv[1:] if argv is None else argv) or zoo.list_presets()
    all_ok = True
    for name in names:
        ok, lines = check_scores(name, preset_scores(zoo.load_preset(name), name),
                                 true_reference(name))
        print(f"{name} on {keras.backend.backend()}: criteria {'met' if ok else 'NOT met'}")
        print("\n".join(lines), flush=True)
        all_ok &= ok
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
