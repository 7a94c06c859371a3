"""The keras-dsr command, run in-process with tiny settings (and once as a console script)."""

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest

from conftest import BACKEND
from keras_dsr.cli import main
from keras_dsr.recipes import Recipe
from keras_dsr.systems import list_systems

# sequential GTF: the cheapest compile; the CLI only passes --method through
TINY = ["--hidden", "8", "--seq-len", "50", "--batch-size", "2", "--steps", "4",
        "--steps-per-epoch", "2", "--method", "sequential"]


def run(argv):
    """``main(argv)`` with stdout and stderr captured: ``(code, out, err)``."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def reconstructed(tmp_path_factory):
    """``keras-dsr reconstruct lorenz63`` (tiny, with progress output) in a fresh folder."""
    out = tmp_path_factory.mktemp("cli") / "l63"
    code, stdout, err = run(["reconstruct", "lorenz63", *TINY, "--train-length", "600",
                             "--test-length", "300", "--output-dir", out])
    assert code == 0, err
    return out, stdout


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    """A raw (unstandardised) Lorenz-63 CSV written by ``keras-dsr simulate``."""
    path = tmp_path_factory.mktemp("data") / "l63.csv"
    assert run(["simulate", "lorenz63", "--steps", "400", "--seed", "2", "--burn-in", "5",
                "-o", path])[0] == 0
    return path


def test_systems_table():
    code, out, _ = run(["systems"])
    assert code == 0
    for name in list_systems():
        assert f"\n{name} " in out
    assert "0.9056" in out and "lambda_max" in out  # Lorenz-63's published exponent


def test_simulate_npy_csv_standardize(tmp_path, data_file):
    npy, std_csv = tmp_path / "a.npy", tmp_path / "b.csv"
    assert run(["simulate", "lorenz63", "--steps", "400", "--seed", "2", "--burn-in", "5",
                "-o", npy, "--quiet"])[0] == 0
    code, out, _ = run(["--seed", "2", "simulate", "lorenz63", "--steps", "400", "--burn-in",
                        "5", "-o", std_csv, "--standardize"])
    assert code == 0 and "400 steps x 3 variables" in out
    raw = np.load(npy)
    assert raw.shape == (400, 3) and raw[:, 2].mean() > 10  # raw units (z around 23)
    np.testing.assert_allclose(np.loadtxt(data_file, delimiter=",", skiprows=1), raw)
    z = np.loadtxt(std_csv, delimiter=",", skiprows=1)
    np.testing.assert_allclose(z, (raw - raw.mean(0)) / raw.std(0), atol=1e-8)


def test_reconstruct_outputs(reconstructed):
    out, stdout = reconstructed
    for name in ("model.keras", "model.json", "model.md", "attractor.png",
                 "power_spectrum.png", "time_series.png", "training.png"):
        assert (out / name).stat().st_size > 0, name
    assert "Epoch 1/2" in stdout and "Epoch 2/2" in stdout  # a progress line per epoch
    assert "D_stsp" in stdout and "D_H" in stdout and "floor" in stdout
    card = json.loads((out / "model.json").read_text())
    expected = Recipe().replace(hidden_dim=8, seq_len=50, batch_size=2, steps=4,
                                steps_per_epoch=2, method="sequential", train_length=600)
    assert card["recipe"] == expected.to_dict()  # Recipe() defaults + the options given
    assert card["data"]["system"] == "lorenz63" and card["data"]["dt"] == 0.01
    assert set(card["scores"]) == set(card["floor"]) == {"dstsp", "dh"}
    assert all(np.isfinite(v) for v in card["floor"].values())
    assert card["machine"]["backend"] == BACKEND
    assert card["training"]["epochs"] == 2 and "loss" in card["training"]["final"]
    assert "| hidden_dim | `8` |" in (out / "model.md").read_text()
    model = keras.saving.load_model(out / "model.keras", compile=False)
    assert model.observed_dim == 3


def test_evaluate_generate_plot(reconstructed, data_file, tmp_path):
    model = reconstructed[0] / "model.keras"
    code, out, err = run(["evaluate", model, data_file, "--dt", "0.01",
                          "--measures", "dstsp,dh,pe,lyap", "-o", tmp_path / "s.json"])
    assert code == 0, err
    for label in ("D_stsp", "D_H", "PE(20)", "lambda_max"):
        assert label in out
    scores = json.loads((tmp_path / "s.json").read_text())["scores"]
    assert set(scores) == {"dstsp", "dh", "pe", "lyap"}
    # every column of this model is recorded: --score-on recorded is a usage error
    code, _, err = run(["evaluate", model, data_file, "--score-on", "recorded"])
    assert code == 2 and "use --score-on all" in err and err.count("\n") == 1, err
    # files and --x0 are in the training data's units (the card's standardisation)
    raw = np.loadtxt(data_file, delimiter=",", skiprows=1)
    x0 = ",".join(repr(float(v)) for v in raw[3])
    assert run(["generate", model, "--from", data_file, "--index", 3, "--steps", 50,
                "-o", tmp_path / "a.npy"])[0] == 0
    assert run(["generate", model, f"--x0={x0}", "--steps", 50, "-o", tmp_path / "b.csv"])[0] == 0
    a, b = np.load(tmp_path / "a.npy"), np.loadtxt(tmp_path / "b.csv", delimiter=",", skiprows=1)
    assert a.shape == (50, 3)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    code, out, err = run(["plot", model, data_file, "--output-dir", tmp_path / "figs", "--quiet"])
    assert code == 0, err
    assert sorted(os.listdir(tmp_path / "figs")) == ["attractor.png", "power_spectrum.png",
                                                    "time_series.png"]


def test_train_on_a_file(data_file, tmp_path):
    path = tmp_path / "m" / "model.keras"
    code, out, err = run(["train", data_file, "-o", path, *TINY, "--alpha", "0.2", "--seed", 5,
                          "--dt", "0.01", "--quiet"])
    assert code == 0, err
    assert out == ""  # --quiet
    card = json.loads((tmp_path / "m" / "model.json").read_text())
    raw = np.loadtxt(data_file, delimiter=",", skiprows=1)
    assert card["data"]["source"] == "file" and card["data"]["shape"] == [400, 3]
    np.testing.assert_allclose(card["standardization"]["mean"], raw.mean(0), rtol=1e-5)
    np.testing.assert_allclose(card["standardization"]["std"], raw.std(0), rtol=1e-5)
    assert card["recipe"]["alpha"] == 0.2 and card["recipe"]["seed"] == 5
    assert card["training"]["final"]["alpha"] == pytest.approx(0.2)
    assert (tmp_path / "m" / "model.md").exists()


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    np.save(d / "wide.npy", np.zeros((20, 50)))  # transposed: more variables than steps
    (d / "text.csv").write_text("a,b\n1,x\n2,3\n")
    (d / "junk.keras").write_text("not a model")
    np.save(d / "two.npy", np.random.default_rng(0).normal(size=(100, 2)))
    return d


@pytest.mark.parametrize("argv, message", [
    (["simulate", "nosuch", "-o", "{d}/x.npy"], "unknown system 'nosuch'; known systems: aizawa"),
    (["simulate", "lorenz63", "-o", "{d}/x.txt"], "expected a file name ending in .npy or .csv"),
    (["train", "{d}/missing.npy", "-o", "{d}/m.keras"], "No trajectory file"),
    (["train", "{d}/wide.npy", "-o", "{d}/m.keras"], "transpose"),
    (["train", "{d}/text.csv", "-o", "{d}/m.keras"], "Could not parse"),
    (["train", "{d}/two.npy", "-o", "{d}/m.keras", "--seq-len", "500"], "--seq-len 500 is longer"),
    (["train", "lorenz63", "-o", "{d}/m.keras", "--estimator", "x"], "--estimator must be one of"),
    (["train", "lorenz63", "-o", "{d}/m.keras", "--alpha", "2"], "alpha must be in [0, 1]"),
    (["evaluate", "{d}/none.keras", "lorenz63"], "no model file"),
    (["evaluate", "{d}/junk.keras", "lorenz63"], "could not load"),
    (["evaluate", "{model}", "{d}/two.npy"], "the data have 2 variable(s)"),
    (["evaluate", "{model}", "lorenz63", "--measures", "dstsp,foo"], "unknown measure(s) ['foo']"),
    (["generate", "{model}", "--x0", "1,2", "-o", "{d}/g.npy"], "--x0 has 2 value(s)"),
    (["generate", "{model}", "-o", "{d}/g.npy"], "exactly one of --x0 and --from"),
    (["reconstruct", "lorenz63", "--train-length", "100", "--seq-len", "200"], "longer than"),
    (["nosuchcommand"], "invalid choice"),
    (["reconstruct", "duffing"], "'duffing' is driven by an external input"),
    (["train", "duffing", "-o", "{d}/m.keras"], "'duffing' is driven by an external input"),
    (["train", "lorenz63", "-o", "{d}/m.keras", "--chunk-size", "0"], "expected an integer >= 1"),
])
def test_user_errors_exit_2_without_traceback(argv, message, bad_files, reconstructed):
    argv = [a.format(d=bad_files, model=reconstructed[0] / "model.keras") for a in argv]
    code, out, err = run(argv)
    assert code == 2
    assert message in err and "Traceback" not in err + out
    assert "error:" in err


def test_help_exits_0():
    code, out, _ = run(["--help"])
    assert code == 0 and "reconstruct" in out and "--backend" in out
    code, out, _ = run(["train", "--help"])
    assert code == 0 and f"(default: {Recipe().seq_len})" in out  # Recipe defaults shown


def test_console_script(tmp_path):
    if BACKEND != "jax":
        pytest.skip("the console entry point is checked once, in the JAX session")
    exe = shutil.which("keras-dsr", path=os.path.dirname(sys.executable)) or shutil.which(
        "keras-dsr")
    if exe is None:
        pytest.skip("keras-dsr is not installed as a console script")
    proc = subprocess.run([exe, "--backend", "jax", "train", "nosuch", "-o", tmp_path / "m.keras"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "unknown system 'nosuch'" in proc.stderr and "Traceback" not in proc.stderr
    # --backend switches the backend of the script whatever KERAS_BACKEND says
    for backend in ("torch", "tensorflow"):
        proc = subprocess.run([exe, "--backend", backend, "--version"], capture_output=True,
                              text=True, timeout=300, env=dict(os.environ, KERAS_BACKEND="jax"))
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert proc.stdout.strip().endswith(f"backend {backend})"), proc.stdout


def test_zoo_commands():
    from keras_dsr import zoo

    code, out, _ = run(["zoo", "list"])
    assert code == 0
    if not zoo.list_presets():
        assert "no presets are shipped" in out
    else:
        assert all(name in out for name in zoo.list_presets())
    code, _, err = run(["zoo", "show", "no_such_preset"])
    assert code == 2 and "Unknown preset 'no_such_preset'" in err
    code, _, err = run(["zoo", "evaluate"])
    assert code == 2 and "needs a preset name" in err


@pytest.mark.parametrize("flags,want", [
    ([], "cpu"),                                 # auto: 250-step chunks on a CPU
    (["--seq-len", "200"], None),                # auto: a window shorter than a chunk
    (["--chunk-size", "none"], None),
    (["--chunk-size", "64"], 64),
])
def test_chunk_size_option(flags, want):
    from keras_dsr.cli import _recipe, build_parser

    from keras_dsr.ops.auto import current_platform

    if want == "cpu":
        want = 250 if current_platform() == "cpu" else None
    args = build_parser().parse_args(["train", "lorenz63", "-o", "m.keras", *flags])
    assert _recipe(args).chunk_size == want


@pytest.mark.parametrize("argv, names", [
    (["train"], "data, --output/-o"),
    (["train", "x.npy", "-o", "m.keras", "--seq-len", "abc"], "--seq-len"),
    (["frob"], "'frob'"),
])
def test_usage_error_is_one_line(capsys, argv, names):
    """A usage error is one line on stderr (the problem, then where to look) and exit 2."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and names in err and "--help" in err, err
    assert err.startswith("keras-dsr")


def test_train_observed_and_embedded_then_evaluate_in_that_space(tmp_path):
    """``train --observe x --embed 3:5`` trains on the delay embedding of x alone; the card
    records the measurement; ``evaluate`` maps a data file and a simulated system through
    it, and its scores equal the measures computed here from the card by hand."""
    from keras_dsr.embedding import delay_embed
    from keras_dsr.measures import evaluate
    from keras_dsr.observed import evaluate_observed
    from keras_dsr.systems import simulate

    raw = simulate("lorenz63", 1_200, seed=3, standardize=False).states
    np.save(tmp_path / "d.npy", raw)
    code, _, err = run(["train", tmp_path / "d.npy", "-o", tmp_path / "m.keras", "--observe",
                        "x", "--embed", "3:5", "--dt", "0.01", *TINY])
    assert code == 0, err
    card = json.loads((tmp_path / "m.json").read_text())
    assert card["data"]["observation"] == {"columns": [0], "dim": 3, "lag": 5}
    x = raw[:, 0]
    np.testing.assert_allclose(card["standardization"]["mean"], [x.mean()] * 3, rtol=1e-6)
    np.testing.assert_allclose(card["standardization"]["std"], [x.std()] * 3, rtol=1e-6)
    model = keras.saving.load_model(tmp_path / "m.keras", compile=False)
    assert model.observed_dim == 3
    # evaluate on the file: the embedding of its x column, in the card's units
    code, _, err = run(["evaluate", tmp_path / "m.keras", tmp_path / "d.npy", "--measures",
                        "dstsp,dh", "-o", tmp_path / "s.json"])
    assert code == 0, err
    scores = json.loads((tmp_path / "s.json").read_text())["scores"]
    emb = delay_embed(x[:, None], 3, 5)
    ref = evaluate(model, ((emb - x.mean()) / x.std()).astype("float32"), measures=("dstsp", "dh"))
    for k in ("dstsp", "dh"):
        np.testing.assert_allclose(scores[k], ref[k], rtol=1e-4)
    # a system: simulated, then observed the same way (three columns)
    code, out, err = run(["evaluate", tmp_path / "m.keras", "lorenz63", "--length", "400",
                          "--measures", "dstsp"])
    assert code == 0, err
    # the recorded channel alone (x, delay 0), from a warm-started free run
    code, _, err = run(["evaluate", tmp_path / "m.keras", tmp_path / "d.npy", "--measures",
                        "dstsp,dh", "--score-on", "recorded", "-o", tmp_path / "r.json"])
    assert code == 0, err
    rec = json.loads((tmp_path / "r.json").read_text())
    assert rec["score_on"] == "recorded"
    ref = evaluate_observed(model, ((emb - x.mean()) / x.std()).astype("float32"),
                            measures=("dstsp", "dh"), channels=[0])
    for k in ("dstsp", "dh"):
        np.testing.assert_allclose(rec["scores"][k], ref[k], rtol=1e-4)


def test_reconstruct_observed_noisy_and_embedded(tmp_path):
    out = tmp_path / "obs"
    code, stdout, err = run(["reconstruct", "lorenz63", "--observe", "x", "--embed", "2:8",
                             "--noise", "0.1", "--latent", "3", *TINY, "--train-length",
                             "600", "--test-length", "300", "--output-dir", out])
    assert code == 0, err
    assert "D_stsp" in stdout and (out / "attractor.png").is_file()
    card = json.loads((out / "model.json").read_text())
    assert card["data"]["observation"] == {"columns": [0], "dim": 2, "lag": 8}
    assert card["data"]["noise"] == 0.1 and len(card["standardization"]["mean"]) == 2
    assert card["recipe"]["latent_dim"] == 3


@pytest.mark.parametrize("args, message", [
    (["--observe", "q"], "'q' is not a variable"),
    (["--embed", "3"], "DIM:LAG"),
    (["--observe", "x", "--embed", "3:5", "--latent", "2"], "latent (M = 2)"),
    (["--observation", "linear"], "--observation"),
])
def test_bad_observation_options_exit_2_and_write_nothing(tmp_path, args, message):
    for argv in (["reconstruct", "lorenz63", "--output-dir", tmp_path / "r"],
                 ["train", "lorenz63", "-o", tmp_path / "m.keras", "--train-length", "600"]):
        code, _, err = run([*argv, *args, *TINY])
        assert code == 2 and message in err and err.count("\n") == 1, err
    assert os.listdir(tmp_path) == []


def test_train_affine_observation_with_fewer_latent_units(tmp_path, data_file):
    code, _, err = run(["train", data_file, "-o", tmp_path / "m.keras", "--latent", "2",
                        "--observation", "affine", *TINY])
    assert code == 0, err
    card = json.loads((tmp_path / "m.json").read_text())
    assert card["recipe"]["latent_dim"] == 2 and card["recipe"]["observation"] == "affine"
    code, _, err = run(["train", data_file, "-o", tmp_path / "n.keras", "--latent", "2",
                        *TINY])
    assert code == 2 and "--observation affine" in err


def test_a_model_that_carries_its_units_works_in_them_without_a_card(tmp_path):
    """A ``.keras`` model with a normalization (``DSRModel.set_normalization``) and no card:
    ``generate --x0`` takes and returns physical units (once, not twice), and ``evaluate``
    maps a raw data file with the model's own units."""
    from keras_dsr.cells import ClippedShallowPLRNN
    from keras_dsr.measures import evaluate
    from keras_dsr.models import DSRModel
    from keras_dsr.systems import simulate

    model = DSRModel(cell=ClippedShallowPLRNN(3, 8, seed=0), gtf=0.5)
    model.build((None, 10, 3))
    mean, std = np.array([1.0, -2.0, 20.0]), np.array([8.0, 9.0, 8.5])
    model.set_normalization(mean, std)
    model.save(tmp_path / "u.keras")
    x0 = np.array([2.0, 3.0, 25.0])
    code, _, err = run(["generate", tmp_path / "u.keras", "--x0=" + ",".join(map(str, x0)),
                        "--steps", "30", "-o", tmp_path / "g.npy"])
    assert code == 0, err
    model.set_normalization(None, None)  # the same model in its standardised units, by hand
    ref = np.asarray(model.generate(((x0 - mean) / std).astype("float32"), 30)) * std + mean
    np.testing.assert_allclose(np.load(tmp_path / "g.npy"), ref, rtol=1e-5, atol=1e-5)
    raw = simulate("lorenz63", 600, seed=1, standardize=False).states
    np.save(tmp_path / "d.npy", raw)
    code, _, err = run(["evaluate", tmp_path / "u.keras", tmp_path / "d.npy", "--measures",
                        "dstsp,dh", "-o", tmp_path / "s.json"])
    assert code == 0, err
    scores = json.loads((tmp_path / "s.json").read_text())["scores"]
    expected = evaluate(model, ((raw - mean) / std).astype("float32"), measures=("dstsp", "dh"))
    for k in ("dstsp", "dh"):
        np.testing.assert_allclose(scores[k], expected[k], rtol=1e-4)
