"""experiments/ssm_vs_gtf_deer/run.py runs end to end in its smoke mode."""

import math
import os
import subprocess
import sys

import pytest

from conftest import BACKEND

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "experiments", "ssm_vs_gtf_deer", "run.py")


@pytest.mark.slow
def test_ssm_vs_gtf_deer_smoke(tmp_path):
    if BACKEND != "jax":
        pytest.skip("the experiment runs once, in the JAX session")
    env = dict(os.environ, KERAS_BACKEND="jax",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, SCRIPT, "--smoke", "--out", str(tmp_path)],
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {}
    for line in proc.stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 10 and cells[0] == "lorenz63":
            rows[cells[2]] = cells
    assert {"GTF-DEER shPLRNN", "SSM (LRU + MLP)", "true (floor)"} <= set(rows), proc.stdout
    for name in ("GTF-DEER shPLRNN", "SSM (LRU + MLP)"):
        dstsp, dh, pe, lyap = (float(rows[name][k]) for k in (3, 4, 5, 7))
        assert all(math.isfinite(v) for v in (dstsp, dh, pe, lyap)), rows[name]
        assert dstsp >= 0 and 0 <= dh <= 1 and pe >= 0
    assert os.path.isfile(tmp_path / "results.json")
    assert os.path.isfile(tmp_path / "free_runs.png")
