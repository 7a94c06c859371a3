"""Atomic file writes: a file is either its old version or its complete new one.

Every file keras_dsr writes (models, model cards, figures, data files) goes through
:func:`atomic_write` or :func:`atomic_save_model`: the content is written to a
uniquely named temporary file in the target's folder, flushed and fsync'ed, then
moved over the target with ``os.replace`` (atomic on POSIX and Windows). A folder
written as one unit (a zoo preset) goes through :func:`atomic_directory` (a
temporary sibling folder, renamed into place). A process killed at any moment
leaves the previous file intact; the hidden temporary file a killed process
leaves (``.NAME.PID.*.tmp*``) is removed by the next write of the same target
once no process with that PID is alive. Two processes writing the same target
never share a temporary name.

Example:
    >>> import json, os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "card.json")
    >>> with atomic_write(path) as fh:
    ...     json.dump({"a": 1}, fh)
    >>> open(path).read()
    '{"a": 1}'
"""

import contextlib
import errno
import os
import secrets
import shutil

__all__ = ["atomic_write", "atomic_path", "atomic_save_model", "atomic_directory",
           "check_writable", "fsync_dir", "remove_stale_temporaries"]


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


def _temporary_name(directory, base, suffix):
    """``DIRECTORY/.BASE.PID.RANDOM<suffix>``, chosen before the file exists.

    The name holds this process's id and 64 random bits, so no other writer uses it;
    being known before the file is created, a cleanup that runs the instant after the
    creation (a Ctrl-C there) knows what to remove.
    """
    return os.path.join(directory, f".{base}.{os.getpid()}.{secrets.token_hex(8)}{suffix}")


def _fsync_file(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _alive(pid):
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):  # exists (another user's) or cannot tell
        return True
    return True


def remove_stale_temporaries(path):
    """Remove the hidden temporary files of ``path`` left by writers that were killed.

    A temporary file of :func:`atomic_path` is named ``.NAME.PID.RANDOM.tmpEXT`` (a
    temporary folder of :func:`atomic_directory` likewise); one whose process ``PID``
    is no longer alive can never be completed and is deleted. Files of live processes (a concurrent writer) and any other file are
    left alone. Returns the names removed.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    prefix = f".{os.path.basename(path)}."
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        if not name.startswith(prefix) or ".tmp" not in name:
            continue
        pid = name[len(prefix):].split(".", 1)[0]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        full = os.path.join(directory, name)
        with contextlib.suppress(OSError):
            if os.path.isdir(full) and not os.path.islink(full):
                shutil.rmtree(full)
            else:
                os.remove(full)
            removed.append(name)
    return removed


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
    remove_stale_temporaries(path)
    tmp = _temporary_name(directory, base, ".tmp" + suffix)
    try:  # created inside the try: a Ctrl-C the instant it exists still removes it
        os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))  # as open()
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


@contextlib.contextmanager
def atomic_directory(path):
    """Yield a fresh temporary folder beside ``path``; on success it becomes ``path``.

    The block fills the temporary folder; when it succeeds every file in it is
    fsync'ed and the folder is renamed to ``path``. An existing ``path`` is first
    renamed aside and removed after the new folder is in place (a process killed
    between the two renames leaves it as a hidden ``.NAME.PID.*.tmp-old*``
    sibling; a reader at that moment finds no folder). On an
    exception the temporary folder is removed and ``path`` is untouched.

    Example:
        >>> import tempfile
        >>> target = os.path.join(tempfile.mkdtemp(), "preset")
        >>> with atomic_directory(target) as tmp:
        ...     with open(os.path.join(tmp, "a.txt"), "w") as fh:
        ...         _ = fh.write("a")
        >>> sorted(os.listdir(target))
        ['a.txt']
    """
    path = os.path.normpath(os.path.abspath(os.fspath(path)))
    parent, base = os.path.dirname(path), os.path.basename(path)
    os.makedirs(parent, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = _temporary_name(parent, base, ".tmp")
    try:  # created inside the try, as in atomic_path
        os.mkdir(tmp, 0o777)
        yield tmp
        for name in os.listdir(tmp):
            if os.path.isfile(os.path.join(tmp, name)):
                _fsync_file(os.path.join(tmp, name))
        fsync_dir(tmp)
        aside = _rename_into(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_dir(parent)
    for old in aside:
        shutil.rmtree(old, ignore_errors=True)


def _rename_into(tmp, path, tries=100):
    """Rename folder ``tmp`` to ``path``, moving an existing ``path`` aside first.

    Another writer may put its folder at ``path`` between the two renames; that one
    is moved aside too and the rename retried. Returns the folders moved aside (to
    delete); on a failure the last of them is put back if ``path`` is empty.
    """
    aside = []
    try:
        for attempt in range(tries):
            if os.path.lexists(path):
                with contextlib.suppress(FileNotFoundError):
                    os.rename(path, f"{tmp}-old{attempt}")
                    aside.append(f"{tmp}-old{attempt}")
            try:
                os.rename(tmp, path)
                return aside
            except OSError as e:
                if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
        raise OSError(f"could not rename {tmp!r} to {path!r}: other writers kept "
                      "replacing it.")
    except BaseException:
        if aside and not os.path.lexists(path):
            with contextlib.suppress(OSError):
                os.rename(aside.pop(), path)
        raise


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
