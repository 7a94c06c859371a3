"""The examples run end to end in their smoke mode (CI)."""

import importlib.util
import math
import os
import re
import subprocess
import sys

import pytest

from conftest import BACKEND

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")


def jax_session_only(what="example"):
    if BACKEND != "jax":
        pytest.skip(f"the {what} runs once, in the JAX session")


def run_python(*args, what="example"):
    """Run ``python ARGS`` from the repository root (JAX session only); returns stdout.

    Fails with the end of stdout and stderr when the process exits non-zero.
    """
    jax_session_only(what)
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc.stdout


def experiment_module(name):
    """``experiments/NAME/run.py`` imported as a module."""
    path = os.path.join(ROOT, "experiments", name, "run.py")
    spec = importlib.util.spec_from_file_location(f"experiment_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_experiment(name, *args):
    """``experiments/NAME/run.py``'s ``main(["--smoke", *ARGS])`` in this process
    (JAX session only); returns what it returns (the results it writes to results.json).
    """
    jax_session_only("experiment")
    return experiment_module(name).main(["--smoke", *map(str, args)])


def example(name, *args):
    """``examples/NAME --smoke ARGS``; returns stdout."""
    return run_python(os.path.join(EXAMPLES, name), "--smoke", *args)


def number_after(text, label):
    """The number printed right after ``label`` (e.g. ``"D_stsp = "``) in ``text``."""
    match = re.search(re.escape(label) + r"\s*([-+]?(?:[0-9.]+(?:e[-+]?[0-9]+)?|inf|nan))", text)
    assert match, f"{label!r} not in the output:\n{text[-2000:]}"
    return float(match.group(1))


@pytest.mark.slow
def test_train_lorenz63_smoke():
    out = example("train_lorenz63.py")
    assert "D_stsp =" in out and "D_H =" in out


@pytest.mark.slow
def test_cli_demo_smoke():
    out = run_python("-m", "keras_dsr.cli", "demo", "--steps", "2000", "--repeats", "1",
                     what="demo")
    assert "result: OK" in out


@pytest.mark.slow
def test_tune_lorenz63_smoke(tmp_path):
    jax_session_only()
    pytest.importorskip("keras_tuner")
    out = example("tune_lorenz63.py", "--directory", tmp_path)
    assert "search: 2 trials" in out and "best configuration" in out
    assert "D_stsp =" in out


@pytest.mark.slow
def test_gru_deer_smoke():
    out = example("gru_deer.py")
    diff = float(out.split("max |DEER - RNN| = ")[1].split(";")[0])
    assert diff < 1e-4
    assert "DEERLayer(GRUCell) trained" in out


@pytest.mark.slow
def test_load_preset_smoke(tmp_path):
    jax_session_only()
    from keras_dsr import zoo

    names = zoo.list_presets()
    if names:
        args = ["--preset", names[0]]
    else:  # nothing ships yet (see zoo/*/CARD.md): run it on a stand-in preset
        from test_zoo import tiny_model

        model, traj, recipe = tiny_model()
        local = str(tmp_path / "presets")
        model.set_normalization(traj.mean, traj.std)
        model.save_to_preset(os.path.join(local, "lorenz63"), system="lorenz63", dt=traj.dt,
                             recipe=recipe)
        args = ["--preset-dir", local]
    out = example("load_preset.py", *args, "--output", tmp_path)
    for label in ("D_stsp = ", "D_H = ", "floor of an independent true trajectory: "):
        assert math.isfinite(number_after(out, label)), out[-2000:]
    assert (tmp_path / "attractor.png").is_file() and (tmp_path / "power_spectrum.png").is_file()


@pytest.mark.slow
def test_train_with_callbacks_smoke(tmp_path):
    out = example("train_with_callbacks.py", "--output", tmp_path)
    # the reloaded best checkpoint scores what DSRMeasures logged for its epoch
    assert number_after(out, "val D_stsp = ") == number_after(out, "(logged ")
    assert math.isfinite(number_after(out, "test: D_stsp = "))
    assert (tmp_path / "best.keras").is_file()
    with open(tmp_path / "training.csv") as fh:
        header, *rows = fh.read().splitlines()
    assert "val_dstsp" in header and "val_dh" in header and len(rows) == 3


@pytest.mark.slow
def test_long_sequence_smoke():
    out = example("long_sequence.py")
    assert "one window of T = 100000 steps" in out
    assert 1 <= number_after(out, "Newton iterations per step: mean ") <= 50
    assert number_after(out, "time per step: ") > 0
    assert number_after(out, "max relative gradient difference DEER vs BPTT = ") < 1e-4


@pytest.mark.slow
def test_ssm_vs_gtf_deer_smoke(tmp_path):
    out = example("ssm_vs_gtf_deer.py", "--output", tmp_path)
    table = out.split("PE(20)")[-1]
    for row in ("GTF-DEER", "SSM", "floor (true)"):
        assert re.search(rf"^{re.escape(row)}\s+\S+\s+\S+", table, re.M), out[-2000:]
    assert (tmp_path / "attractors.png").is_file()
