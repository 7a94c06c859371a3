"""``benchmarks/gpu_profile.py --smoke`` runs end to end on the CPU and writes its table."""

import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import BACKEND

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.skipif(BACKEND != "jax", reason="the profile is a JAX script")
def test_gpu_profile_smoke(tmp_path):
    out = tmp_path / "profile.md"
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "gpu_profile.py"), "--smoke",
         "--output", str(out)],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line.split("|")[1:-1] for line in out.read_text().splitlines()
            if line.startswith("| 64 | 4 |")]
    variants = {r[2].strip(): r for r in rows}
    assert set(variants) == {"deer", "quasi", "seq_layer", "lax_scan"}
    for name, r in variants.items():
        # Every variant's outputs and gradients against jax.lax.scan's (BPTT).
        assert float(r[10]) <= 1e-5, (name, r)
        assert float(r[11]) <= 1e-4, (name, r)
        assert float(r[3]) > 0
    assert int(variants["deer"][9]) >= 1
    assert np.isclose(float(variants["lax_scan"][4]), 1.0)
