"""experiments/ssm_vs_gtf_deer/run.py runs end to end in its smoke mode."""

import math
import os

import pytest

from test_examples import run_python

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "experiments", "ssm_vs_gtf_deer", "run.py")


@pytest.mark.slow
def test_ssm_vs_gtf_deer_smoke(tmp_path):
    stdout = run_python(SCRIPT, "--smoke", "--out", tmp_path, what="experiment")
    rows = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 10 and cells[0] == "lorenz63":
            rows[cells[2]] = cells
    assert {"GTF-DEER shPLRNN", "SSM (LRU + MLP)", "true (floor)"} <= set(rows), stdout
    for name in ("GTF-DEER shPLRNN", "SSM (LRU + MLP)"):
        dstsp, dh, pe, lyap = (float(rows[name][k]) for k in (3, 4, 5, 7))
        assert all(math.isfinite(v) for v in (dstsp, dh, pe, lyap)), rows[name]
        assert dstsp >= 0 and 0 <= dh <= 1 and pe >= 0
    assert os.path.isfile(tmp_path / "results.json")
    assert os.path.isfile(tmp_path / "free_runs.png")
