"""The pretrained zoo: preset folders, physical units, safe loading with SHA-256 checks,
errors, criteria, wheel."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import keras_dsr  # noqa: F401
import keras
from keras_dsr import zoo
from keras_dsr.models import DSRModel
from keras_dsr.recipes import Recipe
from keras_dsr.systems import get_system
from keras_dsr.zoo.criteria import check_scores, preset_scores, true_reference

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRESETS = zoo.list_presets()
BACKEND = keras.backend.backend()


def test_every_recipe_is_shipped_or_carded_as_failed():
    recipes = sorted(d for d in os.listdir(os.path.join(ROOT, "zoo"))
                     if os.path.isfile(os.path.join(ROOT, "zoo", d, "recipe.json")))
    assert set(PRESETS) <= set(recipes)
    for name in set(recipes) - set(PRESETS):  # a failed build says so in its card
        with open(os.path.join(ROOT, "zoo", name, "CARD.md")) as fh:
            assert "Status: not shipped" in fh.read()
    for name in PRESETS:
        info = zoo.preset_info(name)
        with open(os.path.join(ROOT, "zoo", name, "recipe.json")) as fh:
            spec = json.load(fh)
        base = Recipe.from_dict(spec["recipe"])
        # The shipped model is the recipe's, up to the initialisation chosen ("tries")
        # and the model selection (beside the recipe in recipe.json; Recipe fields in
        # the metadata of a build that had them)
        selection = {k: spec[k] for k in ("tries", "select_epochs", "finetune") if k in spec}
        shipped = Recipe.from_dict(info["recipe"]).replace(init_seed=base.init_seed)
        assert shipped in (base, base.replace(**selection)), name
        # the data's sampling interval: the recipe's, or the system's default
        assert info["dt"] == (base.dt or get_system(info["system"]).dt)
        # one card: the build's CARD.md is the preset's README.md
        with open(os.path.join(ROOT, "zoo", name, "CARD.md")) as a, \
                open(os.path.join(zoo.PRESET_DIR, name, "README.md")) as b:
            assert a.read() == b.read(), name


def test_the_readme_shows_the_zoo_status_table_of_the_cards():
    """The README's, the zoo guide's and the zoo folder's tables are
    keras_dsr.zoo.card.status_table() of the shipped cards, row for row (printed by
    ``python -m keras_dsr.zoo.card``, ``--plain``, ``--link '{name}/CARD.md'``)."""
    from keras_dsr.zoo.card import status_table

    for page, link in (("README.md", "keras_dsr/zoo/presets/{name}/README.md"),
                       (os.path.join("docs", "guide", "zoo.md"), None),
                       (os.path.join("zoo", "README.md"), "{name}/CARD.md")):
        with open(os.path.join(ROOT, page)) as fh:
            text = fh.read().splitlines()
        table = status_table(link=link)
        assert len(table) == 2 + len(PRESETS)
        start = text.index(table[0])
        assert text[start:start + len(table)] == table, page


def test_the_status_table_command(capsys):
    """``python -m keras_dsr.zoo.card``: the table with the README's links, none with
    --plain, the given template with --link; a template without {name} is refused."""
    from keras_dsr.zoo.card import main, status_table

    for argv, link in (([], "keras_dsr/zoo/presets/{name}/README.md"), (["--plain"], None),
                       (["--link", "{name}/CARD.md"], "{name}/CARD.md")):
        main(argv)
        assert capsys.readouterr().out.splitlines() == status_table(link=link)
    with pytest.raises(SystemExit):
        main(["--link", "cards/x.md"])
    assert "--link must contain" in capsys.readouterr().err


def _units(name):
    """mean, std of preset ``name``, read from its metadata.json directly."""
    with open(os.path.join(zoo.PRESET_DIR, name, "metadata.json")) as fh:
        norm = json.load(fh)["normalization"]
    return np.asarray(norm["mean"], np.float64), np.asarray(norm["std"], np.float64)


@pytest.mark.parametrize("name", PRESETS)
def test_preset_generates_in_physical_units(name):
    """generate(x0) of a preset = its standardised free run from (x0 - mean) / std,
    un-standardised by hand; load_preset is from_preset; the config round-trips."""
    mean, std = _units(name)
    model = DSRModel.from_preset(name)
    assert model.preset["system"] == name and model.preset["name"] == name
    np.testing.assert_array_equal(model.data_mean, mean)
    np.testing.assert_array_equal(model.data_std, std)
    x0 = mean + std * np.linspace(-0.5, 0.5, mean.size)  # physical units
    x = model.generate(x0, 50)
    assert x.shape == (50, mean.size) and np.all(np.isfinite(x))
    plain = zoo.load_preset(name)
    for a, b in zip(model.get_weights(), plain.get_weights()):
        np.testing.assert_array_equal(a, b)
    plain.set_normalization(None, None)
    ref = plain.generate(((x0 - mean) / std).astype("float32"), 50) * std + mean
    np.testing.assert_allclose(x, ref, rtol=1e-6, atol=1e-6 * std.max())
    # the standardised run is on the data's scale: not the physical one
    assert np.abs(plain.generate(((x0 - mean) / std), 50)).max() < 10
    # config: what from_config rebuilds serialises the same, and is config.json's
    config = model.get_config()
    assert DSRModel.from_config(config).get_config() == config
    with open(os.path.join(zoo.PRESET_DIR, name, "config.json")) as fh:
        assert json.load(fh)["config"] == json.loads(json.dumps(config))


def tiny_model(seed=0):
    """A small DSRModel trained for two steps on Lorenz-63 (a stand-in preset)."""
    from keras_dsr.recipes import Recipe, train
    from keras_dsr.systems import simulate

    traj = simulate("lorenz63", 600, seed=seed)
    recipe = Recipe(hidden_dim=8, seq_len=50, batch_size=2, steps=2, steps_per_epoch=2,
                    alpha=0.5, train_length=600, seed=seed)
    model, _, _ = train(recipe, traj.x, verbose=0)
    return model, traj, recipe


def same_config(a, b):
    return json.loads(json.dumps(a.get_config())) == json.loads(json.dumps(b.get_config()))


def test_save_to_preset_round_trip(tmp_path):
    import pathlib

    model, traj, recipe = tiny_model()
    model.set_normalization(traj.mean, traj.std)
    local = tmp_path / "presets"
    meta = model.save_to_preset(local / "mine", system="lorenz63", dt=traj.dt,
                                recipe=recipe, card={"note": "test"})
    assert sorted(os.listdir(local)) == ["mine"]  # no temporary folder left
    assert sorted(os.listdir(local / "mine")) == ["README.md", "config.json", "metadata.json",
                                                  "model.weights.h5"]
    for f, digest in meta["files"].items():
        assert digest == zoo.sha256(str(local / "mine" / f))
    assert zoo.list_presets(local) == ["mine"]
    info = zoo.preset_info("mine", local)
    assert info["recipe"] == recipe.to_dict() and info["card"] == {"note": "test"}
    assert info["dt"] == traj.dt and info["system"] == "lorenz63" and info["name"] == "mine"
    np.testing.assert_array_equal(info["std"], np.asarray(traj.std, np.float64))
    readme = (local / "mine" / "README.md").read_text()
    assert "# Preset `mine`" in readme and "System: lorenz63" in readme
    assert "| hidden_dim | `8` |" in readme
    x0 = traj.x[0] * traj.std + traj.mean
    for loaded in (DSRModel.from_preset(local / "mine"),
                   DSRModel.from_preset(str(local / "mine")),
                   zoo.load_preset("mine", preset_dir=local)):
        for a, b in zip(loaded.get_weights(), model.get_weights()):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(loaded.generate(x0, 50), model.generate(x0, 50))
        assert same_config(loaded, model)
    # writing again replaces the folder; a model without units stores none
    model.set_normalization(None, None)
    meta = model.save_to_preset(pathlib.Path(local, "mine"))
    assert meta["normalization"] is None and meta["system"] is None
    assert sorted(os.listdir(local)) == ["mine"]
    loaded = DSRModel.from_preset(local / "mine")
    assert loaded.data_mean is None
    np.testing.assert_array_equal(loaded.generate(traj.x[0], 20), model.generate(traj.x[0], 20))


def test_unknown_missing_and_corrupted(tmp_path):
    with pytest.raises(zoo.PresetError, match=r"Unknown preset 'nope'; known presets: \["):
        zoo.load_preset("nope")
    with pytest.raises(zoo.PresetError, match="Unknown preset 'nope'.*lorenz63"):
        DSRModel.from_preset("nope")
    with pytest.raises(zoo.PresetError, match="No preset folder at"):
        DSRModel.from_preset(str(tmp_path / "nope"))
    local = tmp_path / "presets"
    name = "lorenz63"
    shutil.copytree(os.path.join(zoo.PRESET_DIR, name), local / name)
    for file in ("model.weights.h5", "config.json", "README.md"):
        path = local / name / file
        good = path.read_bytes()
        data = bytearray(good)
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
        with pytest.raises(zoo.PresetError, match=f"Preset 'lorenz63': file '{file}' is "
                           "corrupted"):
            DSRModel.from_preset(local / name)
        path.unlink()
        with pytest.raises(zoo.PresetError, match=f"file '{file}' is missing"):
            zoo.load_preset(name, preset_dir=local)
        path.write_bytes(good)
    DSRModel.from_preset(local / name)  # intact again
    (local / name / "metadata.json").write_text("{not json")
    with pytest.raises(zoo.PresetError, match="file 'metadata.json' is unreadable"):
        DSRModel.from_preset(local / name)
    (local / name / "metadata.json").unlink()
    with pytest.raises(zoo.PresetError, match="file 'metadata.json' is missing"):
        DSRModel.from_preset(local / name)
    assert zoo.list_presets(local) == []  # a folder without metadata is no preset


def test_normalization_is_part_of_the_model(tmp_path):
    """Saved in a .keras, absent from old configs; generate from a latent state returns
    physical observations; training stays in the standardised units."""
    model, traj, _ = tiny_model()
    z = np.linspace(-0.3, 0.3, model.cell.latent_dim).astype("float32")
    x_std = model.generate(state=z, steps=30)
    loss_std = model.evaluate(traj.x[None, :200], verbose=0, return_dict=True)["loss"]
    model.set_normalization(traj.mean, traj.std)
    mean, std = np.asarray(traj.mean, np.float64), np.asarray(traj.std, np.float64)
    np.testing.assert_allclose(model.generate(state=z, steps=30), x_std * std + mean,
                               rtol=1e-6, atol=1e-6 * std.max())
    loss = model.evaluate(traj.x[None, :200], verbose=0, return_dict=True)["loss"]
    assert loss == pytest.approx(loss_std, rel=1e-6)  # training: standardised units
    x, lat = model.generate(traj.x[0] * std + mean, 30, return_latent=True)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert loaded.data_mean == model.data_mean and loaded.data_std == model.data_std
    x2, lat2 = loaded.generate(traj.x[0] * std + mean, 30, return_latent=True)
    np.testing.assert_array_equal(x2, x)
    np.testing.assert_array_equal(lat2, lat)
    config = model.get_config()
    for key in ("data_mean", "data_std"):  # a config written before the normalization
        config.pop(key)
    assert DSRModel.from_config(config).data_mean is None


def test_lyap_steps_span_100k_steps_and_200_time_units():
    from keras_dsr.zoo.criteria import lyap_steps

    # every preset's dt (>= 0.002): 100 000 steps; finer sampling: 200 time units.
    assert [lyap_steps(dt) for dt in (0.05, 0.02, 0.01, 0.002, 0.001, 0.0003)] == [
        100_000, 100_000, 100_000, 100_000, 200_000, 666_667]


@pytest.mark.backend_independent
def test_finer_dt_is_judged_over_the_same_time(monkeypatch):
    """Sampled finer than its system's default dt, a preset's test and floor trajectories,
    its validation trajectories and its lambda_max average span the time they span at
    the default; at the default or a coarser dt nothing changes."""
    from keras_dsr.systems import get_system
    from keras_dsr.zoo import criteria
    from keras_dsr.zoo.criteria import held_out_length, held_out_pair, lyap_steps
    from keras_dsr.zoo.selection import validation_length as val_length

    assert get_system("hindmarsh_rose").dt == 0.05 and get_system("rossler").dt == 0.05
    for dt in (None, 0.05, 0.1, 0.2):
        assert held_out_length("hindmarsh_rose", dt) == 100_000
        assert val_length("hindmarsh_rose", dt) == 100_000
    assert held_out_length("rossler", 0.1) == 100_000  # the shipped Rössler preset
    assert [held_out_length("hindmarsh_rose", dt) for dt in (0.025, 0.0125, 0.01)] == [
        200_000, 400_000, 500_000]
    assert val_length("hindmarsh_rose", 0.0125) == 400_000
    assert lyap_steps(0.0125, "hindmarsh_rose") == 400_000
    assert lyap_steps(0.05, "hindmarsh_rose") == lyap_steps(0.05) == 100_000
    assert lyap_steps(0.001, "lorenz63") == 1_000_000  # 10x finer than 0.01: 10x the steps
    # every shipped preset keeps 100 000 test steps (its dt is its default or coarser)
    for name in PRESETS:
        info = zoo.preset_info(name)
        assert held_out_length(info["system"], info["dt"]) == 100_000, name
    # the trajectories themselves, with the test length cut to 2 000 default steps
    monkeypatch.setattr(criteria, "TEST_LENGTH", 2_000)
    test, other = held_out_pair("hindmarsh_rose", 0, np.zeros(3), np.ones(3), dt=0.025)
    assert test.shape == other.shape == (4_000, 3)
    # the same time as the default: 4 000 steps at 0.025 hold the 2 000 at 0.05
    coarse, _ = held_out_pair("hindmarsh_rose", 0, np.zeros(3), np.ones(3))
    np.testing.assert_allclose(test[::2][:1000], coarse[:1000], rtol=1e-4, atol=1e-4)


def _numpy_map(cell):
    """The preset's map in float64 numpy, from the independent references of
    tests/test_cells.py (PLRNN family) and tests/test_polynomial_cell.py (Runge-Kutta)."""
    from keras_dsr.cells import ClippedShallowPLRNN, PolynomialFlow
    from test_cells import np_map, params_of
    from test_polynomial_cell import np_step

    if isinstance(cell, PolynomialFlow):
        w = np.asarray(keras.ops.convert_to_numpy(cell.W), np.float64)
        c = cell.get_config()
        return lambda z: np_step(w, z, c["degree"], c["integrator"], c["substeps"], c["bound"])
    assert isinstance(cell, ClippedShallowPLRNN), type(cell).__name__
    p = params_of(cell)
    return lambda z: np_map("clipped", p, z)


@pytest.mark.parametrize("name", PRESETS)
def test_preset_runs_its_numpy_map_on_this_backend(name):
    """Loaded on this backend, a preset's free run on its attractor is its map iterated
    in float64 numpy (40 steps after a burn-in of 300, from the data's mean), latent
    states and observations (un-standardised)."""
    model = DSRModel.from_preset(name)
    mean, std = _units(name)
    n = mean.size
    x, z = model.generate(mean, 41, burn_in=300, return_latent=True)
    f = _numpy_map(model.cell)
    ref = [z[0].astype(np.float64)]
    for _ in range(40):
        ref.append(f(ref[-1]))
    ref = np.stack(ref)
    scale = np.abs(ref).max(0)
    np.testing.assert_allclose(z, ref, rtol=0, atol=1e-4 * scale.max())
    # observations: the first N latent units, in the data's physical units
    np.testing.assert_allclose(x, z[:, :n] * std + mean, rtol=0,
                               atol=1e-6 * (scale.max() * std.max() + np.abs(mean).max()))


@pytest.mark.slow
@pytest.mark.parametrize("name", PRESETS)
def test_preset_meets_criteria(name):
    """Recomputed against the held-out test trajectories (not the card): every preset in
    the JAX session, Lorenz-63 on every backend (the others run each preset's map
    against numpy on every backend: test_preset_runs_its_numpy_map_on_this_backend)."""
    if BACKEND != "jax" and name != "lorenz63":
        pytest.skip("judged in the JAX session; this backend runs its map against numpy")
    model = zoo.load_preset(name)
    scores = preset_scores(model, name)
    ok, lines = check_scores(name, scores, true_reference(name))
    assert ok, "\n".join(lines)


@pytest.mark.slow
@pytest.mark.skipif(BACKEND != "jax", reason="builds the wheel once (JAX session); it then "
                    "checks all three backends in subprocesses")
def test_wheel_ships_presets(tmp_path):
    """The built wheel (not the source tree) lists and loads every preset offline, in
    physical units."""
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(wheels), ROOT], check=True)
    (wheel,) = list(wheels.glob("keras_dsr-*.whl"))
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                    str(target), str(wheel)], check=True)
    script = textwrap.dedent("""
        import os, sys, numpy as np
        import keras_dsr
        from keras_dsr import zoo
        assert keras_dsr.__file__.startswith(sys.argv[1]), keras_dsr.__file__
        names = zoo.list_presets()
        assert names == [n for n in sys.argv[2].split(",") if n], names
        for name in names:
            m = zoo.load_preset(name)
            x = m.generate(np.asarray(m.preset["mean"]), 50)
            assert np.all(np.isfinite(x)) and np.abs(x - m.preset["mean"]).max() > 1e-3
        print("OK", len(names))
    """)
    env = dict(os.environ, PYTHONPATH=str(target), PYTHONNOUSERSITE="1")
    for backend in ("jax", "tensorflow", "torch"):
        env["KERAS_BACKEND"] = backend
        out = subprocess.run([sys.executable, "-c", script, str(target), ",".join(PRESETS)],
                             env=env, cwd=str(tmp_path), capture_output=True, text=True)
        assert out.returncode == 0, out.stderr[-3000:]
        assert f"OK {len(PRESETS)}" in out.stdout
