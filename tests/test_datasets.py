"""Dataset loaders, offline: small files served from a folder or a loopback HTTP server."""

import functools
import hashlib
import http.server
import os
import threading

import numpy as np
import pytest

from keras_dsr import datasets


def _sha256(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def _git_blob(path):
    data = open(path, "rb").read()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@pytest.fixture
def served(tmp_path):
    """Small .npy files laid out like the lab's folder, and a table of their hashes."""
    src = tmp_path / "src"
    rng = np.random.default_rng(0)
    arrays = {
        "ecg_train": rng.standard_normal((50, 5)), "ecg_test": rng.standard_normal((40, 5)),
        "eeg_train": np.arange(100 * 3, dtype=np.float32).reshape(100, 3),
        "lorenz63_train": rng.standard_normal((30, 3)).astype(np.float32),
        "lorenz63_test": rng.standard_normal((20, 3)).astype(np.float32),
        "lorenz96_train": rng.standard_normal((30, 10)), "lorenz96_test": rng.standard_normal((20, 10)),
    }
    table = {}
    for key, arr in arrays.items():
        rel, algorithm, _ = datasets.FILES[key]
        path = src / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, arr)
        digest = _sha256(path) if algorithm == "sha256" else _git_blob(path)
        table[key] = (rel, algorithm, digest)
    return src, table, arrays


@pytest.fixture
def http_origin(served):
    """A loopback HTTP server on 127.0.0.1 over the folder, stopped after the test."""
    src = served[0]
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(src))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_pinned_table_is_the_commit_and_real_hashes():
    assert datasets.BASE_URL == (
        "https://raw.githubusercontent.com/DurstewitzLab/GTF-shPLRNN/"
        "b6172ce816f1910e54c30776ff49e52b5489430a/ICML2023_datasets/")
    for rel, algorithm, digest in datasets.FILES.values():
        assert algorithm in ("sha256", "git-blob-sha1")
        assert len(digest) == (64 if algorithm == "sha256" else 40)
        int(digest, 16)
    # the EEG test file of the repository is its training file: not in the table
    assert "eeg_test" not in datasets.FILES


def test_loaders_over_http_with_correct_hashes(served, http_origin, tmp_path):
    _, table, arrays = served
    cache = str(tmp_path / "cache")
    for loader, name in [(datasets.load_ecg, "ecg"), (datasets.load_lorenz63, "lorenz63"),
                         (datasets.load_lorenz96, "lorenz96")]:
        train, test = loader(origin=http_origin, cache_dir=cache, files=table)
        assert train.dtype == np.float32 and test.dtype == np.float32
        np.testing.assert_array_equal(train, arrays[f"{name}_train"].astype(np.float32))
        np.testing.assert_array_equal(test, arrays[f"{name}_test"].astype(np.float32))
    cached = os.path.join(cache, datasets.CACHE_SUBDIR, "ECG_pecuzal_5d_train.npy")
    assert os.path.exists(cached)


def test_eeg_is_a_time_split_of_the_training_file(served, tmp_path):
    src, table, arrays = served
    origin = src.as_uri() + "/"
    train, test = datasets.load_eeg(origin=origin, cache_dir=str(tmp_path / "c"), files=table)
    x = arrays["eeg_train"]
    assert train.shape == (80, 3) and test.shape == (20, 3)
    np.testing.assert_array_equal(train, x[:80])
    np.testing.assert_array_equal(test, x[80:])
    train, test = datasets.load_eeg(0.3, origin=origin, cache_dir=str(tmp_path / "c"),
                                    files=table)
    assert train.shape == (70, 3) and test[0, 0] == x[70, 0]
    with pytest.raises(ValueError, match="test_fraction must be a number in"):
        datasets.load_eeg(1.0, origin=origin, files=table)


def test_wrong_sha256_raises_and_removes_the_file(served, http_origin, tmp_path):
    _, table, _ = served
    table = dict(table)
    rel, alg, _ = table["ecg_train"]
    table["ecg_train"] = (rel, alg, "0" * 64)
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match="does not match its pinned SHA-256 0000"):
        datasets.load_ecg(origin=http_origin, cache_dir=str(cache), files=table)
    assert not (cache / datasets.CACHE_SUBDIR / "ECG_pecuzal_5d_train.npy").exists()


def test_wrong_git_blob_raises(served, tmp_path):
    src, table, _ = served
    table = dict(table)
    rel, alg, _ = table["lorenz96_test"]
    table["lorenz96_test"] = (rel, alg, "f" * 40)
    with pytest.raises(ValueError, match="does not match its pinned git blob SHA-1"):
        datasets.load_lorenz96(origin=src.as_uri() + "/", cache_dir=str(tmp_path / "c"),
                               files=table)


def test_offline_raises_a_clear_message_and_a_placed_file_is_used(served, tmp_path):
    src, table, arrays = served
    # a loopback port with nothing listening: the download fails at once, no internet
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    origin = f"http://127.0.0.1:{port}/"
    cache = tmp_path / "cache"
    with pytest.raises(ConnectionError) as info:
        datasets.load_lorenz63(origin=origin, cache_dir=str(cache), files=table)
    msg = str(info.value)
    assert f"{origin}Lorenz63/lorenz63_on0.05_train.npy" in msg
    assert "network access once" in msg
    target = cache / datasets.CACHE_SUBDIR / "lorenz63_on0.05_train.npy"
    assert str(target) in msg
    # placing the files by hand makes the loader work offline
    for key in ("lorenz63_train", "lorenz63_test"):
        rel = table[key][0]
        dst = cache / datasets.CACHE_SUBDIR / os.path.basename(rel)
        dst.write_bytes((src / rel).read_bytes())
    train, test = datasets.load_lorenz63(origin=origin, cache_dir=str(cache), files=table)
    np.testing.assert_array_equal(test, arrays["lorenz63_test"])


def test_unknown_key():
    with pytest.raises(ValueError, match="Unknown data file 'nope'"):
        datasets._fetch("nope")
