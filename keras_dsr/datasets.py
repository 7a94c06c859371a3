"""Benchmark data sets of the Durstewitz lab, downloaded on first use (like ``keras.datasets``).

The files are those of the ``ICML2023_datasets`` folder of the lab's repository
DurstewitzLab/GTF-shPLRNN (Hess, Monfared, Brenner & Durstewitz, ICML 2023),
fetched from GitHub at a pinned commit with ``keras.utils.get_file`` into the
Keras cache (``~/.keras/datasets/keras_dsr/icml2023/`` by default) and checked
against pinned hashes: SHA-256 for every file whose content was available when
this module was written, the git blob SHA-1 of the pinned commit's tree for the
two Lorenz-96 files (their content was not available to hash; the commit pins
them just as well).

Licence: the data are the lab's. The repository that distributes them is
released under the GNU General Public License v3.0 and states no separate
licence for its data; use them under that licence and cite the paper. They are
downloaded to your machine, never shipped with keras_dsr.

Every loader returns ``(train, test)``, numpy float32 arrays ``[T, N]`` (time
steps x variables), as stored by the lab (already standardised per variable;
the sampling interval is not stated in the repository, so time is in samples):

========================  ================  ================  ==============================
loader                    train             test              content
========================  ================  ================  ==============================
:func:`load_ecg`          [100000, 5]       [100000, 5]       5-d delay embedding (PECUZAL)
                                                              of one ECG lead
:func:`load_eeg`          [7712, 64]        [1928, 64]        64-channel EEG, time split of
                                                              the lab's training file
:func:`load_lorenz63`     [100000, 3]       [100000, 3]       train with 5 % observation
                                                              noise ("on0.05"), test clean
:func:`load_lorenz96`     as stored         as stored         train with 5 % observation
                                                              noise, test clean
========================  ================  ================  ==============================

Offline use: every file is downloaded once. Without network, put the file in
the cache folder yourself (``<cache_dir>/datasets/keras_dsr/icml2023/<name>``);
it is used when its hash matches. The error raised offline says which URL and
which path.

Example (needs network on first use):
    >>> from keras_dsr import datasets
    >>> train, test = datasets.load_ecg()          # doctest: +SKIP
    >>> train.shape, test.shape                    # doctest: +SKIP
    ((100000, 5), (100000, 5))
"""

import hashlib
import os

import keras
import numpy as np

__all__ = ["FILES", "load_ecg", "load_eeg", "load_lorenz63", "load_lorenz96"]

COMMIT = "b6172ce816f1910e54c30776ff49e52b5489430a"
BASE_URL = (
    f"https://raw.githubusercontent.com/DurstewitzLab/GTF-shPLRNN/{COMMIT}/ICML2023_datasets/"
)
CACHE_SUBDIR = os.path.join("datasets", "keras_dsr", "icml2023")
EEG_TEST_FRACTION = 0.2

# key -> (path under BASE_URL, hash algorithm, hash). "git-blob-sha1" is the
# object id git stores for the file in the pinned commit's tree.
FILES = {
    "ecg_train": ("ECG/ECG_pecuzal_5d_train.npy", "sha256",
                  "b79deb8b054486360233bb4cefdb154dc5f6b0a55b1a713cd76378606d936185"),
    "ecg_test": ("ECG/ECG_pecuzal_5d_test.npy", "sha256",
                 "7c17fe9b9e90d0610f817a53e73ec8389b30763ce36985cfcadc1459dd89c654"),
    # EEG_test.npy of the repository is byte-identical to EEG_train.npy (same
    # SHA-256): only the training file is used, split in time by load_eeg.
    "eeg_train": ("EEG/EEG_train.npy", "sha256",
                  "7cc56e3b648ce492e1ac3d4284c46ccd1092e4abbc4c45f020b8c4a0b2a994bf"),
    "lorenz63_train": ("Lorenz63/lorenz63_on0.05_train.npy", "sha256",
                       "2246dfc44bf3a02090cdb5264dd836c18143e5bac4297807f4c62e153a39c1eb"),
    "lorenz63_test": ("Lorenz63/lorenz63_test.npy", "sha256",
                      "21be3a05a58724c4c1bbdf419ac644c45e6a9fbbf4093108a70fd80f93d7b7e3"),
    "lorenz96_train": ("Lorenz96/lorenz96_on0.05_train.npy", "git-blob-sha1",
                       "efde3cf4cd2facb5bcdbc95e2c1e2b6065cbce02"),
    "lorenz96_test": ("Lorenz96/lorenz96_test.npy", "git-blob-sha1",
                      "7f602802d3dccc9e80ed72af681344b657161e66"),
}


def _git_blob_sha1(path):
    h = hashlib.sha1()
    h.update(b"blob %d\0" % os.path.getsize(path))
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fetch(key, origin=None, cache_dir=None, files=None):
    """Path of the cached, verified file ``key`` (downloaded when missing)."""
    files = FILES if files is None else files
    if key not in files:
        raise ValueError(f"Unknown data file {key!r}; expected one of {sorted(files)}.")
    rel, algorithm, digest = files[key]
    base = BASE_URL if origin is None else origin
    if not base.endswith("/"):
        base += "/"
    url = base + rel
    fname = os.path.basename(rel)
    root = cache_dir if cache_dir is not None else os.environ.get("KERAS_HOME", "~/.keras")
    root = os.path.expanduser(root)
    where = os.path.join(root, CACHE_SUBDIR, fname)
    if cache_dir is not None:
        # keras.utils.get_file silently falls back to a temporary folder when the
        # cache root does not exist yet (it tests it for write access)
        os.makedirs(root, exist_ok=True)
    sha256 = digest if algorithm == "sha256" else None
    try:
        path = keras.utils.get_file(
            fname, origin=url, file_hash=sha256, hash_algorithm="sha256",
            cache_subdir=CACHE_SUBDIR, cache_dir=cache_dir,
        )
    except ValueError as e:
        if os.path.exists(where):
            os.remove(where)
        raise ValueError(
            f"The file downloaded from {url} does not match its pinned SHA-256 "
            f"{digest}; it was removed. The source changed or the download was "
            f"corrupted."
        ) from e
    except Exception as e:  # noqa: BLE001  (keras raises a bare Exception offline)
        raise ConnectionError(
            f"Could not download {url} ({e}). The benchmark files need network access "
            f"once; afterwards they are read from the Keras cache. Offline, download "
            f"the file elsewhere and place it at {where} (it is used when its hash "
            f"matches {digest})."
        ) from e
    if algorithm == "git-blob-sha1" and _git_blob_sha1(path) != digest:
        os.remove(path)
        raise ValueError(
            f"The file downloaded from {url} does not match its pinned git blob SHA-1 "
            f"{digest}; it was removed. The source changed or the download was "
            f"corrupted."
        )
    return path


def _load(key, **kwargs):
    path = _fetch(key, **kwargs)
    x = np.load(path, allow_pickle=False)
    if x.ndim != 2:
        raise ValueError(f"{path} holds an array of shape {x.shape}; expected [T, N].")
    return np.asarray(x, dtype=np.float32)


def load_ecg(origin=None, cache_dir=None, files=None):
    """The lab's ECG benchmark: a 5-d PECUZAL delay embedding of one ECG lead.

    Returns ``(train, test)``: float32 ``[100000, 5]`` each (the lab's two files,
    ``ECG_pecuzal_5d_train.npy`` and ``ECG_pecuzal_5d_test.npy``), time in
    samples. Data: the Durstewitz lab's, distributed with DurstewitzLab/GTF-shPLRNN
    under the GNU GPL v3.0 (see the module docstring); downloaded on first use.

    Args:
        origin: base URL replacing the pinned GitHub address (a mirror, or a
            local ``file://`` folder); the pinned hashes are checked all the same.
        cache_dir: Keras cache root (default ``~/.keras``).
        files: a table like :data:`FILES` (tests); default the pinned one.

    Raises:
        ConnectionError: the file is not cached and cannot be downloaded (the
            message names the URL and where to put the file by hand).
        ValueError: the file does not match its pinned hash (it is deleted).
    """
    kw = dict(origin=origin, cache_dir=cache_dir, files=files)
    return _load("ecg_train", **kw), _load("ecg_test", **kw)


def load_eeg(test_fraction=EEG_TEST_FRACTION, origin=None, cache_dir=None, files=None):
    """The lab's 64-channel EEG benchmark, split in time.

    In the repository, ``EEG_test.npy`` is byte-identical to ``EEG_train.npy``
    (same SHA-256), so scoring on it would score on the training data. This
    loader reads the training file only ([9640, 64], standardised per channel)
    and returns its first ``1 - test_fraction`` as ``train`` and the last
    ``test_fraction`` as ``test``: with the default 0.2, float32 ``[7712, 64]``
    and ``[1928, 64]``. Time in samples. Data: the Durstewitz lab's, distributed
    with DurstewitzLab/GTF-shPLRNN under the GNU GPL v3.0; downloaded on first
    use. Other arguments and errors as in :func:`load_ecg`.
    """
    if not (np.isscalar(test_fraction) and 0 < test_fraction < 1):
        raise ValueError(f"test_fraction must be a number in (0, 1), got {test_fraction!r}.")
    x = _load("eeg_train", origin=origin, cache_dir=cache_dir, files=files)
    cut = x.shape[0] - int(round(test_fraction * x.shape[0]))
    if cut < 1 or cut >= x.shape[0]:
        raise ValueError(
            f"test_fraction={test_fraction} leaves an empty part of {x.shape[0]} samples."
        )
    return x[:cut], x[cut:]


def load_lorenz63(origin=None, cache_dir=None, files=None):
    """The lab's Lorenz-63 benchmark: train with 5 % observation noise, test clean.

    Returns ``(train, test)``: float32 ``[100000, 3]`` each
    (``lorenz63_on0.05_train.npy``, ``lorenz63_test.npy``), standardised, time in
    samples. Data: the Durstewitz lab's, distributed with
    DurstewitzLab/GTF-shPLRNN under the GNU GPL v3.0; downloaded on first use.
    Other arguments and errors as in :func:`load_ecg`.
    """
    kw = dict(origin=origin, cache_dir=cache_dir, files=files)
    return _load("lorenz63_train", **kw), _load("lorenz63_test", **kw)


def load_lorenz96(origin=None, cache_dir=None, files=None):
    """The lab's Lorenz-96 benchmark: train with 5 % observation noise, test clean.

    Returns ``(train, test)``, float32 ``[T, N]`` as stored
    (``lorenz96_on0.05_train.npy``, ``lorenz96_test.npy``); checked against the
    git blob SHA-1 of the pinned commit (see the module docstring). Data: the
    Durstewitz lab's, distributed with DurstewitzLab/GTF-shPLRNN under the GNU
    GPL v3.0; downloaded on first use. Other arguments and errors as in
    :func:`load_ecg`.
    """
    kw = dict(origin=origin, cache_dir=cache_dir, files=files)
    return _load("lorenz96_train", **kw), _load("lorenz96_test", **kw)
