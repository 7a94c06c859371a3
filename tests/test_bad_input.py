"""Bad input and faults: one clear error (exit 2 for the command), nothing written or lost.

Each case runs through the API and / or the ``keras-dsr`` command (in-process
``keras_dsr.cli.main`` for most, a subprocess where the process itself matters) and
checks the exit code, that the message names the argument or the problem, and that
the output folder holds exactly what it held before.
"""

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import BACKEND, to_np
from keras_dsr import zoo
from keras_dsr.cli import main
from keras_dsr.data import TrajectoryWindows, load_trajectory, standardize
from keras_dsr.io import (atomic_directory, atomic_path, atomic_write, check_writable,
                          remove_stale_temporaries)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--hidden", "8", "--seq-len", "50", "--batch-size", "2", "--steps", "4",
        "--steps-per-epoch", "2", "--method", "sequential", "--quiet"]


def run(argv):
    """``main(argv)`` with stdout and stderr captured: ``(code, out, err)``."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def snapshot(folder):
    """{relative path: bytes} of every file under ``folder`` (to prove nothing changed)."""
    files = {}
    for dirpath, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as fh:
                files[os.path.relpath(path, folder)] = fh.read()
    return files


def lorenz(steps=400, seed=0):
    from keras_dsr.systems import simulate

    return simulate("lorenz63", steps, seed=seed, standardize=False).x


# ------------------------------------------------------------------ data arrays and files
@pytest.mark.backend_independent
def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    path = tmp_path / "a.json"
    path.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(path) as fh:
            fh.write("half")
            raise RuntimeError("killed")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["a.json"]
    with atomic_path(path) as tmp:
        assert tmp.endswith(".json") and os.path.dirname(tmp) == str(tmp_path)
        with open(tmp, "w") as fh:
            fh.write("new")
    assert path.read_text() == "new" and os.listdir(tmp_path) == ["a.json"]
    assert oct(os.stat(path).st_mode & 0o777) != oct(0o600)  # not mkstemp's private mode


@pytest.mark.backend_independent
def test_temporaries_of_killed_writers_are_removed(tmp_path):
    """A killed writer's hidden temporary file goes with the next write of its target;
    a live writer's (here: this process's parent) and other files stay."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    path = tmp_path / "model.keras"
    stale = tmp_path / f".model.keras.{dead.pid}.abc.tmp.keras"
    live = tmp_path / f".model.keras.{os.getppid()}.abc.tmp.keras"
    other = tmp_path / f".other.keras.{dead.pid}.abc.tmp.keras"
    for f in (stale, live, other):
        f.write_bytes(b"partial")
    with atomic_write(path, "wb") as fh:
        fh.write(b"complete")
    assert sorted(os.listdir(tmp_path)) == sorted(["model.keras", live.name, other.name])
    assert path.read_bytes() == b"complete"


@pytest.mark.backend_independent
@pytest.mark.parametrize("what", ["file", "folder"])
def test_ctrl_c_the_instant_the_temporary_exists_leaves_nothing(tmp_path, monkeypatch, what):
    """KeyboardInterrupt right after the temporary file / folder is created (the signal
    landing between its creation and the cleanup's start): nothing is left behind and
    the target keeps its old content."""
    name = "model.keras" if what == "file" else "preset"
    target = tmp_path / name
    if what == "file":
        target.write_text("old")
    else:
        os.makedirs(target)
        (target / "a.txt").write_text("old")
    real_open, real_mkdir = os.open, os.mkdir

    signals = [KeyboardInterrupt]  # one Ctrl-C, at the first creation of a temporary

    def interrupted(real):
        def make(p, *args, **kwargs):
            result = real(p, *args, **kwargs)
            if os.path.basename(os.fspath(p)).startswith(f".{name}.") and signals:
                signals.pop()
                if isinstance(result, int):
                    os.close(result)
                raise KeyboardInterrupt
            return result
        return make

    monkeypatch.setattr(os, "open", interrupted(real_open))
    monkeypatch.setattr(os, "mkdir", interrupted(real_mkdir))
    with pytest.raises(KeyboardInterrupt):
        if what == "file":
            with atomic_path(target) as tmp:
                raise AssertionError(f"not reached: {tmp}")
        else:
            with atomic_directory(target) as tmp:
                raise AssertionError(f"not reached: {tmp}")
    monkeypatch.undo()
    assert os.listdir(tmp_path) == [name]
    assert (target if what == "file" else target / "a.txt").read_text() == "old"


@pytest.mark.backend_independent
def test_atomic_directory_replaces_a_folder_whole(tmp_path):
    """A failed write leaves the old folder; a good one replaces it, leaving nothing
    else; a killed writer's temporary folder goes with the next write."""
    target = tmp_path / "preset"
    with atomic_directory(target) as tmp:
        (tmp_path / os.path.basename(tmp) / "a.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_directory(target) as tmp:
            (tmp_path / os.path.basename(tmp) / "b.txt").write_text("half")
            raise RuntimeError("killed")
    assert os.listdir(tmp_path) == ["preset"] and os.listdir(target) == ["a.txt"]
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    os.makedirs(tmp_path / f".preset.{dead.pid}.abc.tmp-old0" / "sub")
    with atomic_directory(target) as tmp:
        (tmp_path / os.path.basename(tmp) / "b.txt").write_text("new")
    assert os.listdir(tmp_path) == ["preset"] and os.listdir(target) == ["b.txt"]
    assert oct(os.stat(target).st_mode & 0o777) != oct(0o700)  # not mkdtemp's mode


def test_check_writable(tmp_path):
    (tmp_path / "data.npy").write_bytes(b"x")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        check_writable(tmp_path / "data.npy" / "sub" / "m.keras")
    with pytest.raises(ValueError, match="is a folder"):
        check_writable(tmp_path)
    check_writable(tmp_path / "new" / "deeper" / "m.keras")
    assert not (tmp_path / "new").exists()  # the check creates nothing


@pytest.mark.backend_independent
@pytest.mark.parametrize("make, kwargs, exc, message", [
    (lambda x: x * 1e39, {}, ValueError, "too large for float32"),
    (lambda x: x * 1e300, {"standardize_data": True, "dtype": "float64"}, ValueError,
     "too large to standardise in float64"),
    (lambda x: x + 1j, {}, TypeError, "is complex"),
    (lambda x: x.astype(object), {}, ValueError, "holds Python objects"),
])
def test_bad_arrays_in_files(tmp_path, make, kwargs, exc, message):
    path = tmp_path / "x.npy"
    np.save(path, make(lorenz(50)), allow_pickle=True)
    with pytest.raises(exc, match=message):
        load_trajectory(path, **kwargs)


@pytest.mark.backend_independent
def test_garbage_and_truncated_npy(tmp_path):
    (tmp_path / "g.npy").write_bytes(b"garbage!" * 20)
    with pytest.raises(ValueError, match="not a valid .npy file"):
        load_trajectory(tmp_path / "g.npy")
    np.save(tmp_path / "ok.npy", lorenz(100))
    (tmp_path / "t.npy").write_bytes((tmp_path / "ok.npy").read_bytes()[:600])
    with pytest.raises(ValueError, match="not a valid .npy file .corrupt or truncated"):
        load_trajectory(tmp_path / "t.npy")


@pytest.mark.backend_independent
def test_bad_arrays_in_memory():
    x = lorenz(100)
    with pytest.raises(TypeError, match="complex"):
        TrajectoryWindows(x + 0j, seq_len=20)
    with pytest.raises(ValueError, match="too large for float32"):
        TrajectoryWindows(x * 1e39, seq_len=20)
    with pytest.raises(ValueError, match="not finite"):
        standardize(x * 1e300)
    # the same values are fine where the working dtype holds them
    assert TrajectoryWindows(x * 1e39, seq_len=20, dtype="float64")[0][0].shape == (16, 20, 3)


# ------------------------------------------------------------------ the command
@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A data file, a trained model with its card, and bad files beside them."""
    d = tmp_path_factory.mktemp("bad_input")
    raw = lorenz(400)
    np.save(d / "data.npy", raw)
    np.save(d / "short.npy", raw[:30])
    np.save(d / "big.npy", raw * 1e39)
    np.save(d / "complex.npy", raw + 1j)
    (d / "garbage.npy").write_bytes(b"garbage!" * 20)
    code, _, err = run(["train", d / "data.npy", "-o", d / "m" / "model.keras", "--dt", "0.01",
                        *TINY])
    assert code == 0, err
    model = (d / "m" / "model.keras").read_bytes()
    (d / "trunc.keras").write_bytes(model[: len(model) // 2])
    return d


def model_with_card(tmp_path, files, card_change=None, card_text=None, weights_nan=False):
    """A copy of the trained model with its card changed; returns the model path."""
    src = files / "m"
    dst = tmp_path / "c"
    shutil.copytree(src, dst)
    card = json.loads((dst / "model.json").read_text())
    if card_change:
        card_change(card)
    (dst / "model.json").write_text(card_text if card_text is not None else json.dumps(card))
    if weights_nan:
        import keras

        model = keras.saving.load_model(dst / "model.keras", compile=False)
        w = model.trainable_weights[0]
        w.assign(np.full(w.shape, np.nan, dtype="float32"))
        model.save(dst / "model.keras")
    return dst / "model.keras"


CLI_CASES = [
    # (argv, words the message must contain)
    (["train", "{d}/data.npy", "-o", "{d}/data.npy/sub/m.keras"], ["data.npy", "not a folder"]),
    (["train", "{d}/data.npy", "-o", "{d}/m"], ["--output", "expected a file name ending in"]),
    (["train", "{d}/big.npy", "-o", "{o}/m.keras"], ["too large for float32"]),
    (["train", "{d}/complex.npy", "-o", "{o}/m.keras"], ["complex"]),
    (["train", "{d}/garbage.npy", "-o", "{o}/m.keras"], ["not a valid .npy file"]),
    (["train", "{d}/data.npy", "-o", "{o}/m.keras", "--seq-len", "5"],
     ["--seq-len 5", "at least 10"]),
    (["train", "{d}/data.npy", "-o", "{o}/m.keras", "--latent", "2", "--seq-len", "50"],
     ["--latent 2", "observed variables (3)"]),
    (["train", "{d}/data.npy", "-o", "{o}/m.keras", "--seed", "-5"], ["--seed", ">= 0", "-5"]),
    (["train", "{d}/data.npy", "-o", "{o}/m.keras", "--dt", "-1"], ["--dt", "> 0", "-1"]),
    (["train", "{d}/data.npy", "-o", "{o}/m.keras", "--lr", "inf"], ["--lr", "finite", "inf"]),
    (["train", "{d}/data.npy", "-o", "{o}/m.keras", "--lr", "nan"], ["--lr", "finite", "nan"]),
    (["reconstruct", "lorenz63", "--latent", "2", "--output-dir", "{o}/r"], ["--latent 2"]),
    (["reconstruct", "lorenz63", "--output-dir", "{d}/data.npy/r"], ["--output-dir",
                                                                     "not a folder"]),
    (["simulate", "lorenz63", "-o", "{d}/data.npy/x.npy"], ["--output", "not a folder"]),
    (["generate", "{d}/m/model.keras", "--x0=nan,2,3", "-o", "{o}/g.npy"],
     ["--x0 'nan,2,3'", "finite"]),
    (["generate", "{d}/m/model.keras", "--x0=1,inf,3", "-o", "{o}/g.npy"], ["--x0", "finite"]),
    (["generate", "{d}/trunc.keras", "--x0=1,2,3", "-o", "{o}/g.npy"],
     ["trunc.keras", "corrupt or truncated"]),
    (["evaluate", "{d}/m/model.keras", "{d}/short.npy", "-o", "{o}/s.json"],
     ["short.npy", "30 time steps", "at least 200"]),
    (["plot", "{d}/m/model.keras", "{d}/short.npy", "--output-dir", "{o}/figs"],
     ["30 time steps", "at least 200"]),
    (["evaluate", "{d}/m/model.keras", "{d}/data.npy", "--dt", "-1", "--measures", "lyap"],
     ["--dt", "> 0"]),
]


@pytest.mark.parametrize("argv, words", CLI_CASES, ids=lambda v: " ".join(v)[:60]
                         if isinstance(v, list) and v and v[0] in
                         ("train", "reconstruct", "simulate", "generate", "evaluate", "plot")
                         else None)
def test_command_refuses_with_one_line(argv, words, files, tmp_path):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    before, before_d = snapshot(out_dir), snapshot(files)
    code, out, err = run([a.format(d=files, o=out_dir) for a in argv])
    assert code == 2, (code, out, err)
    assert "Traceback" not in out + err
    last = err.strip().splitlines()[-1]
    assert "error:" in last
    for word in words:
        assert word in last, (word, last)
    assert snapshot(out_dir) == before and snapshot(files) == before_d  # nothing written


@pytest.mark.parametrize("change, words", [
    (lambda c: c["standardization"].update(std=[1.0, 0.0, 1.0]), ["std", "> 0"]),
    (lambda c: c["standardization"].update(std=[1.0, float("nan"), 1.0]), ["std", "finite"]),
    (lambda c: c["standardization"].update(std="abc"), ["std = 'abc'", "finite numbers"]),
    (lambda c: c["standardization"].update(mean=[0.0, 0.0]), ["mean has 2", "std has 3"]),
    (lambda c: c["data"].update(dt=-1), ["dt = -1", "positive"]),
])
def test_bad_cards_are_refused(change, words, files, tmp_path):
    model = model_with_card(tmp_path, files, card_change=change)
    code, _, err = run(["generate", model, "--x0=1,2,3", "--steps", "5", "-o", tmp_path / "g.npy"])
    assert code == 2 and "model card" in err and "Traceback" not in err
    for word in words:
        assert word in err, (word, err)
    assert not (tmp_path / "g.npy").exists()


def test_card_that_is_a_list_and_nan_weights(files, tmp_path):
    model = model_with_card(tmp_path, files, card_text="[1, 2, 3]")
    code, _, err = run(["evaluate", model, files / "data.npy"])
    assert code == 2 and "expected a JSON object, got a list" in err
    shutil.rmtree(tmp_path / "c")
    model = model_with_card(tmp_path, files, weights_nan=True)
    code, _, err = run(["generate", model, "--x0=1,2,3", "--steps", "5", "-o", tmp_path / "g.npy"])
    assert code == 2 and "NaN/inf values" in err and "retrain" in err
    assert not (tmp_path / "g.npy").exists()


def test_training_over_an_existing_model_checks_before_work(files, tmp_path):
    """A refused run leaves the previous model, card and everything else untouched."""
    shutil.copytree(files / "m", tmp_path / "m")
    before = snapshot(tmp_path)
    code, _, err = run(["train", files / "data.npy", "-o", tmp_path / "m" / "model.keras",
                        *TINY, "--latent", "1"])
    assert code == 2 and "--latent 1" in err
    assert snapshot(tmp_path) == before


def test_unwritable_folder(files, tmp_path):
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        pytest.skip("permissions do not bind the superuser")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        code, _, err = run(["train", files / "data.npy", "-o", ro / "m.keras", *TINY])
    finally:
        ro.chmod(0o700)
    assert code == 2 and "not writable" in err and os.listdir(ro) == []


def test_backend_that_cannot_be_imported(tmp_path):
    """``--backend torch`` where torch does not import: one line, exit 2 (a subprocess)."""
    code = ("import sys; sys.modules['torch'] = None; import keras_dsr.cli; "
            "sys.exit(keras_dsr.cli.main(['--backend', 'torch', 'systems']))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--backend torch" in lines[0] and "cannot be imported" in lines[0]


# ------------------------------------------------------------------ the zoo
@pytest.fixture(scope="module")
def small_model():
    from keras_dsr.recipes import Recipe, build_model

    model = build_model(Recipe(hidden_dim=4, seq_len=20), 3)
    model.build((None, 20, 3))
    return model


@pytest.mark.parametrize("change, message", [
    ({"dt": float("nan")}, "`dt` must be a finite number > 0 or None, got nan"),
    ({"dt": 0}, "`dt` must be a finite number > 0"),
    ({"system": ""}, "`system` must be a non-empty string or None"),
    ({"recipe": [1]}, "`recipe` must be a dict (or a Recipe) or None, got list"),
    ({"card": {"x": {1, 2}}}, "`card` must be JSON-serialisable (Object of type set"),
    ({"folder": ".hidden"}, "`folder` must name a folder (not hidden)"),
])
def test_save_to_preset_refuses(small_model, tmp_path, change, message):
    kwargs = dict(system="lorenz63", dt=0.01)
    kwargs.update(change)
    folder = tmp_path / kwargs.pop("folder", "p")
    with pytest.raises(ValueError) as info:
        small_model.save_to_preset(folder, **kwargs)
    assert message in str(info.value)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("mean, std, message", [
    ([0.0] * 3, None, "give both `mean` and `std`, or neither"),
    ([0.0] * 3, [1.0, 0.0, 1.0], "every `std` must be > 0"),
    ([0.0] * 2, [1.0] * 3, "`mean` has 2 value(s), `std` 3"),
    ([0.0, float("nan"), 0.0], [1.0] * 3, "`mean` must be a non-empty 1-D list of finite"),
    (["a", 0, 0], [1.0] * 3, "`mean` must be a list of numbers"),
    ([0.0] * 4, [1.0] * 4, "the model observes 3 variable(s)"),
])
def test_set_normalization_refuses(small_model, mean, std, message):
    with pytest.raises(ValueError) as info:
        small_model.set_normalization(mean, std)
    assert message in str(info.value) and "DSRModel.set_normalization" in str(info.value)
    assert small_model.data_mean is None


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.pop("files"), "does not list the SHA-256 of 'config.json'"),
    (lambda m: m["files"].update({"config.json": None}),
     "gives 'config.json' the SHA-256 None"),
    (lambda m: m["files"].update({"../x": "0" * 64}), "lists '../x', not a file name"),
])
def test_bad_preset_metadata(small_model, tmp_path, edit, message, monkeypatch):
    small_model.save_to_preset(tmp_path / "p", system="lorenz63", dt=0.01)
    path = tmp_path / "p" / "metadata.json"
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta))
    with pytest.raises(zoo.PresetError, match=message.replace("(", r"\(").replace(")", r"\)")):
        zoo.load_preset("p", preset_dir=tmp_path)
    monkeypatch.setattr(zoo.preset, "PRESET_DIR", str(tmp_path))
    code, _, err = run(["zoo", "evaluate", "p"])
    assert code == 2 and message in err and "Traceback" not in err


def test_concurrent_saves_of_one_preset(tmp_path):
    """Processes writing the same preset folder: no error, a loadable preset, no stray files."""
    if BACKEND != "jax":
        pytest.skip("folder renames are backend-independent: checked once, under JAX")
    code = (
        "import sys; from keras_dsr.recipes import Recipe, build_model\n"
        "m = build_model(Recipe(hidden_dim=4, seq_len=20, seed=int(sys.argv[2])), 3)\n"
        "m.build((None, 20, 3))\n"
        "for _ in range(4): m.save_to_preset(sys.argv[1] + '/same', system='lorenz63')\n")
    env = dict(os.environ, PYTHONPATH=ROOT, KERAS_BACKEND="jax")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path), str(k)],
                              stderr=subprocess.PIPE, text=True, env=env) for k in range(3)]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-2000:]
    assert sorted(os.listdir(tmp_path)) == ["same"]
    assert zoo.load_preset("same", preset_dir=tmp_path).preset["system"] == "lorenz63"


# ------------------------------------------------------------------ resume
def test_resume_continues_to_the_uninterrupted_result(tmp_path, monkeypatch):
    """train --resume, interrupted after epoch 2 of 4, then rerun == one run of 4 epochs.

    The data hold many window starts, so the windows differ from epoch to epoch:
    what is resumed is the weights, the optimizer state, the learning-rate
    schedule's step, the forcing schedule's state and the epoch the windows are
    drawn for.
    """
    import keras

    from keras_dsr import recipes

    raw = lorenz(400, seed=3)
    np.save(tmp_path / "d.npy", raw)
    argv = ["train", tmp_path / "d.npy", "--hidden", "6", "--seq-len", "60", "--batch-size",
            "2", "--steps", "8", "--steps-per-epoch", "2", "--method", "sequential",
            "--alpha", "0.3", "--lr", "0.01", "--quiet", "--seed", "4"]
    assert run([*argv, "-o", tmp_path / "full.keras"])[0] == 0

    class StopAfter(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    class Epochs(keras.callbacks.Callback):
        seen = []

        def on_epoch_begin(self, epoch, logs=None):
            self.seen.append(epoch)

    real_train = recipes.train

    def interrupted_train(recipe, x, callbacks=(), verbose="auto"):
        return real_train(recipe, x, callbacks=list(callbacks) + [StopAfter()], verbose=verbose)

    def counted_train(recipe, x, callbacks=(), verbose="auto"):
        return real_train(recipe, x, callbacks=list(callbacks) + [Epochs()], verbose=verbose)

    out = tmp_path / "res.keras"
    monkeypatch.setattr(recipes, "train", interrupted_train)
    code, _, err = run([*argv, "-o", out, "--resume"])
    assert code == 130 and "--resume" in err
    assert not out.exists() and os.path.isdir(f"{out}.backup")
    monkeypatch.setattr(recipes, "train", counted_train)
    code, _, err = run([*argv, "-o", out, "--resume"])
    assert code == 0, err
    assert Epochs.seen == [2, 3]  # continued after the two completed epochs
    card = json.loads((tmp_path / "res.json").read_text())
    assert card["training"]["epochs"] == 4 and card["training"]["resumed_at_epoch"] == 2
    assert not os.path.exists(f"{out}.backup")  # deleted once training completed
    a = keras.saving.load_model(tmp_path / "full.keras", compile=False)
    b = keras.saving.load_model(out, compile=False)
    for wa, wb in zip(a.weights, b.weights):
        np.testing.assert_allclose(to_np(wb), to_np(wa), rtol=1e-5, atol=1e-6)
    untrained = recipes.build_model(recipes.Recipe(hidden_dim=6, seq_len=60, seed=4), 3)
    untrained.build((None, 60, 3))
    moved = max(float(np.max(np.abs(to_np(wa) - to_np(wu))))
                for wa, wu in zip(a.trainable_weights, untrained.trainable_weights))
    assert moved > 1e-3  # the comparison is not between two untrained models


def test_swallowed_interrupt_is_raised_at_the_next_safe_point(files, tmp_path, monkeypatch):
    """A Ctrl-C whose KeyboardInterrupt was lost (JAX's gc callback prints and drops it)
    still ends the command with 130 before anything is written."""
    from keras_dsr import cli, recipes

    real_train = recipes.train

    def train_after_a_lost_interrupt(recipe, x, callbacks=(), verbose="auto"):
        try:
            cli._on_sigint(2, None)  # what the SIGINT handler does ...
        except KeyboardInterrupt:
            pass  # ... and the exception swallowed, as in "_xla_gc_callback"
        return real_train(recipe, x, callbacks=callbacks, verbose=verbose)

    monkeypatch.setattr(recipes, "train", train_after_a_lost_interrupt)
    code, _, err = run(["train", files / "data.npy", "-o", tmp_path / "m.keras", *TINY])
    assert code == 130 and "interrupted" in err
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------ kill test
def _model_files_complete(folder):
    """The model, its card and its markdown parse completely (no truncated file)."""
    import zipfile

    with zipfile.ZipFile(folder / "model.keras") as z:
        assert z.testzip() is None
    card = json.loads((folder / "model.json").read_text())
    assert card["standardization"]["std"]
    assert (folder / "model.md").read_text().endswith("\n")


@pytest.mark.slow
def test_kill_train_at_random_moments(files, tmp_path):
    """SIGKILL / SIGINT a ``keras-dsr train`` over a previous model at random moments.

    Moments: uniform over a whole run, or the instant the model's temporary file
    appears (during the save). Each file must afterwards be either its previous
    version or a complete new one; SIGINT ends with exit code 130 (0 if the run had
    finished), never a crash. ``KERAS_DSR_KILL_TRIES`` sets the number of tries
    (default 3; each is a whole process start, 10-40 s on a busy 2-core machine).
    """
    import signal
    import time

    tries = int(os.environ.get("KERAS_DSR_KILL_TRIES", "3"))
    out = tmp_path / "out"
    shutil.copytree(files / "m", out)  # the previous model: the same command, run in-process
    cmd = [sys.executable, "-m", "keras_dsr.cli", "train", files / "data.npy",
           "-o", out / "model.keras", "--dt", "0.01", *TINY]
    env = dict(os.environ, PYTHONPATH=ROOT, KERAS_BACKEND=BACKEND)
    full = float(os.environ.get("KERAS_DSR_KILL_WINDOW", "20"))  # moments in [0, full] s
    names = ["model.json", "model.keras", "model.md"]
    rng = np.random.default_rng(0)
    outcomes = []
    for k in range(tries):
        previous = snapshot(out)
        sig = signal.SIGKILL if k % 2 == 0 else signal.SIGINT
        during_save = k % 3 == 1
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True, env=env)
        t0 = time.perf_counter()
        if during_save:  # the moment the model's temporary file appears
            while p.poll() is None and not any(n.startswith(".model.keras.")
                                               for n in os.listdir(out)):
                time.sleep(0.002)
        else:
            time.sleep(rng.uniform(0.0, full))
        if p.poll() is None:
            p.send_signal(sig)
        _, err = p.communicate(timeout=600)
        outcomes.append((sig.name, during_save, round(time.perf_counter() - t0, 2),
                         p.returncode))
        allowed = {0, -signal.SIGKILL} if sig == signal.SIGKILL else {0, 130}
        if outcomes[-1][2] < 0.3:  # the interpreter itself still starting (its site
            # module), no code of ours has run: CPython ends with -2 or 1; nothing written
            allowed |= {-sig, 1}
        print("kill try", k, outcomes[-1], flush=True)
        assert p.returncode in allowed, (outcomes[-1], err[-2000:])
        visible = sorted(n for n in os.listdir(out) if not n.startswith("."))
        assert visible == names, visible
        if sig == signal.SIGINT:  # an interrupted run removes its temporary files
            assert [n for n in os.listdir(out) if n.startswith(".")] == [], os.listdir(out)
        for name in names:  # each file: its previous version, or a complete new one
            if (out / name).read_bytes() != previous[name]:
                _model_files_complete(out)
        for name in names:  # SIGKILL can leave a hidden temporary file: the next
            remove_stale_temporaries(out / name)  # write of that file removes it
        assert [n for n in os.listdir(out) if n.startswith(".")] == [], os.listdir(out)
    import keras

    model = keras.saving.load_model(out / "model.keras", compile=False)
    assert model.observed_dim == 3
    print("kill outcomes (signal, during save, seconds, exit code):", outcomes)


# ------------------------------------------------------------------ diverging training
@pytest.mark.parametrize("extra", [["--lr", "10", "--steps", "40", "--steps-per-epoch", "20"],
                                   ["--lr", "1e6", "--alpha", "0", "--steps", "2",
                                    "--steps-per-epoch", "2"]],
                         ids=["lr10", "lr1e6-alpha0"])
def test_diverging_training_exits_1_and_writes_nothing(files, tmp_path, extra):
    """A run that diverges ends with exit 1 and one line; the previous model stays."""
    shutil.copytree(files / "m", tmp_path / "m")
    before = snapshot(tmp_path)
    argv = ["--hidden", "8", "--seq-len", "50", "--batch-size", "2", "--method", "sequential",
            "--quiet"]
    code, _, err = run(["train", files / "data.npy", "-o", tmp_path / "m" / "model.keras",
                        *argv, *extra])
    assert code == 1, err
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("keras-dsr")]
    assert len(lines) == 1 and "diverged" in lines[0] and "Nothing was written" in lines[0]
    assert snapshot(tmp_path) == before


def test_diverging_training_raises_from_the_api():
    from keras_dsr.models.engine import TrainingDiverged
    from keras_dsr.recipes import Recipe, train

    recipe = Recipe(hidden_dim=8, seq_len=50, batch_size=2, steps=2, steps_per_epoch=2,
                    learning_rate=1e6, alpha=0.0, method="sequential")
    with pytest.raises(TrainingDiverged, match="diverged"):
        train(recipe, lorenz(400))


def test_zoo_build_of_a_diverging_recipe_installs_nothing(tmp_path, monkeypatch, capsys):
    import sys as _sys

    _sys.path.insert(0, os.path.join(ROOT, "zoo"))
    import build

    from keras_dsr import zoo

    os.makedirs(tmp_path / "bad")
    spec = {"system": "lorenz63", "recipe": {"hidden_dim": 8, "seq_len": 50, "batch_size": 2,
                                             "steps": 2, "steps_per_epoch": 2,
                                             "learning_rate": 1e6, "alpha": 0.0,
                                             "method": "sequential", "train_length": 2000}}
    (tmp_path / "bad" / "recipe.json").write_text(json.dumps(spec))
    monkeypatch.setattr(build, "HERE", str(tmp_path))
    from keras_dsr.zoo import selection

    monkeypatch.setattr(selection, "VALIDATION_LENGTH", 2000)
    before = zoo.list_presets()
    assert build.main(["bad"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "diverged" in err[0]
    assert zoo.list_presets() == before and "bad" not in before
    assert not os.path.exists(tmp_path / "bad" / "CARD.md")
