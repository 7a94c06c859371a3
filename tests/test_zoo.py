"""The pretrained zoo: listing, safe loading with SHA-256 checks, errors, criteria, wheel."""

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
            assert json.load(fh)["recipe"] == info["recipe"]
        assert os.path.isfile(os.path.join(ROOT, "zoo", name, "CARD.md"))


@pytest.mark.parametrize("name", PRESETS)
def test_load_and_generate(name):
    model = DSRModel.from_preset(name)
    info = model.preset
    n = len(info["mean"])
    x = model.generate(np.zeros(n, dtype="float32"), 200)
    assert x.shape == (200, n) and np.all(np.isfinite(x))
    # from_preset and load_preset give the same weights.
    other = zoo.load_preset(name)
    for a, b in zip(model.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_unknown_missing_and_corrupted(tmp_path):
    with pytest.raises(zoo.PresetError, match="Unknown preset 'nope'"):
        zoo.load_preset("nope")
    if not PRESETS:
        pytest.skip("no presets shipped")
    name = PRESETS[0]
    local = tmp_path / "presets"
    shutil.copytree(zoo.PRESET_DIR, local)
    path = local / zoo.preset_info(name)["file"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(zoo.PresetError, match="corrupted"):
        zoo.load_preset(name, preset_dir=str(local))
    path.unlink()
    with pytest.raises(zoo.PresetError, match="missing"):
        zoo.load_preset(name, preset_dir=str(local))


@pytest.mark.slow
@pytest.mark.parametrize("name", PRESETS)
def test_preset_meets_criteria(name):
    """Recomputed on this backend against a held-out test trajectory (not the card)."""
    model = zoo.load_preset(name)
    scores = preset_scores(model, name)
    ok, lines = check_scores(name, scores, true_reference(name))
    assert ok, "\n".join(lines)


@pytest.mark.slow
@pytest.mark.skipif(BACKEND != "jax", reason="builds the wheel once (JAX session); it then "
                    "checks all three backends in subprocesses")
def test_wheel_ships_presets(tmp_path):
    """The built wheel (not the source tree) lists and loads every preset offline."""
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
            x = m.generate(np.zeros(len(m.preset["mean"]), "float32"), 50)
            assert np.all(np.isfinite(x))
        print("OK", len(names))
    """)
    env = dict(os.environ, PYTHONPATH=str(target), PYTHONNOUSERSITE="1")
    for backend in ("jax", "tensorflow", "torch"):
        env["KERAS_BACKEND"] = backend
        out = subprocess.run([sys.executable, "-c", script, str(target), ",".join(PRESETS)],
                             env=env, cwd=str(tmp_path), capture_output=True, text=True)
        assert out.returncode == 0, out.stderr[-3000:]
        assert f"OK {len(PRESETS)}" in out.stdout
