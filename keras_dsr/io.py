"""Atomic file writes: a file is either its old version or its complete new one.

Every file keras_dsr writes (models, model cards, figures, data files, the zoo
manifest and presets) goes through :func:`atomic_write` or
:func:`atomic_save_model`: the content is written to a uniquely named temporary
file in the target's folder, flushed and fsync'ed, then moved over the target
with ``os.replace`` (atomic on POSIX and Windows). A process killed at any moment
leaves the previous file intact (and at worst a stray hidden ``.NAME.*.tmp*``
file); two processes writing the same target never share a temporary name.

Example:
    >>> import json, os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "card.json")
    >>> with atomic_write(path) as fh:
    ...     json.dump({"a": 1}, fh)
    >>> open(path).read()
    '{"a": 1}'
"""

import contextlib
import os
import tempfile

__all__ = ["atomic_write", "atomic_path", "atomic_save_model", "check_writable",
           "fsync_dir"]


def fsync_dir(directory):
    """fsync a folder so a rename in it survives a power loss (no-op where unsupported)."""
    try:
        fd = os.open(directory or ".", os.O_RDONLY)
    except OSError:  # pragma: no cover - Windows cannot open folders
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_file(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path):
    """Yield a fresh temporary path beside ``path`` (same suffix); on success move it there.

    For writers that need a file name rather than a handle (``model.save``,
    ``np.save``, ``fig.savefig``): the temporary name keeps ``path``'s extension
    (``.keras``, ``.npy``, ``.png`` ...) so the writer does not change it. On an
    exception (``KeyboardInterrupt`` included) the temporary file is removed and
    ``path`` is untouched.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    suffix = os.path.splitext(base)[1]
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=".tmp" + suffix, dir=directory)
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # as open() would create it (mkstemp: 0600)
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    fsync_dir(directory)


@contextlib.contextmanager
def atomic_write(path, mode="w", **kwargs):
    """``open(path, mode)`` that replaces ``path`` atomically when the block succeeds.

    Args:
        path: the target file (its folder must exist).
        mode: ``"w"`` (text) or ``"wb"`` (binary).
        **kwargs: passed to ``open`` (e.g. ``encoding``).
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write: `mode` must be 'w' or 'wb', got {mode!r}.")
    with atomic_path(path) as tmp:
        with open(tmp, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())


def atomic_save_model(model, path):
    """``model.save(path)`` through a temporary ``.keras`` file in the same folder."""
    with atomic_path(path) as tmp:
        model.save(tmp)


def check_writable(path):
    """Raise ``ValueError`` unless a file can be created at ``path``.

    Nothing is created: the nearest existing folder on the way to ``path`` must
    be a writable folder (a file there, as in ``data.npy/sub/m.keras``, or a
    read-only folder is refused); an existing target must be a file.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ValueError(f"{path!r} is a folder; expected a file name.")
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise ValueError(f"cannot write {path!r}: {parent!r} is a file, not a folder.")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write {path!r}: the folder {parent!r} is not writable.")
