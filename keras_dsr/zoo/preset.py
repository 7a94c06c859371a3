"""The preset folder: what ``save_to_preset`` writes and ``from_preset`` reads.

A preset is one folder (its name is the preset's name) holding

* ``config.json``: the model's Keras serialized config (``keras.saving.
  serialize_keras_object``, with its build config, without a compile config), the
  normalization (``data_mean``, ``data_std``) included;
* ``model.weights.h5``: the weights (``model.save_weights``);
* ``README.md``: the model card, generated from the metadata
  (:func:`keras_dsr.zoo.card.card_text`);
* ``metadata.json``: ``format`` and ``format_version``, ``system``, ``dt``, the
  normalization's ``mean`` and ``std`` (the observation units), ``recipe``, ``card``
  (scores, floor, candidates tried, ...), ``keras_dsr_version``, ``keras_version``
  and ``files``: the SHA-256 of each other file.

Loading checks every listed file's SHA-256 before reading it and rebuilds the
model in Keras' safe mode; anything wrong raises :class:`PresetError` naming the
file. Writing goes through :func:`keras_dsr.io.atomic_directory` (a temporary
sibling folder, renamed into place).
"""

import hashlib
import json
import os

__all__ = ["PresetError", "PRESET_DIR", "sha256", "resolve", "read_metadata",
           "load_preset_folder", "save_preset", "CONFIG_FILE", "WEIGHTS_FILE",
           "METADATA_FILE", "CARD_FILE", "FORMAT", "FORMAT_VERSION"]

PRESET_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "presets")
CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.weights.h5"
METADATA_FILE, CARD_FILE = "metadata.json", "README.md"
FORMAT, FORMAT_VERSION = "keras_dsr.preset", 1
_SHA_HEX = frozenset("0123456789abcdef")


class PresetError(ValueError):
    """A preset is unknown, or one of its files is missing, unreadable or corrupted."""


def sha256(path):
    """Hex SHA-256 of the file at ``path``."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def preset_names(preset_dir=None):
    """Sorted names of the preset folders (those with a ``metadata.json``) in ``preset_dir``."""
    directory = PRESET_DIR if preset_dir is None else os.fspath(preset_dir)
    if not os.path.isdir(directory):
        return []
    return sorted(d for d in os.listdir(directory) if not d.startswith(".")
                  and os.path.isfile(os.path.join(directory, d, METADATA_FILE)))


def resolve(name_or_path, preset_dir=None):
    """The folder of a preset: a bare name in ``preset_dir`` (default: the shipped
    presets), or a path (a ``pathlib.Path`` or a string with a path separator)."""
    if isinstance(name_or_path, os.PathLike):
        name_or_path = os.fspath(name_or_path)
    if not isinstance(name_or_path, str) or not name_or_path:
        raise PresetError(f"A preset name or folder path (a string) is needed, got "
                          f"{name_or_path!r}.")
    seps = {os.sep, os.altsep or os.sep, "/"}
    if any(s in name_or_path for s in seps) or name_or_path in (".", ".."):
        if not os.path.isdir(name_or_path):
            raise PresetError(f"No preset folder at {name_or_path!r}.")
        return name_or_path
    names = preset_names(preset_dir)
    if name_or_path not in names:
        raise PresetError(f"Unknown preset {name_or_path!r}; known presets: {names}.")
    return os.path.join(PRESET_DIR if preset_dir is None else os.fspath(preset_dir),
                        name_or_path)


def _where(folder):
    return f"Preset {os.path.basename(os.path.normpath(folder))!r}"


def read_metadata(folder, verify=True):
    """``metadata.json`` of the preset ``folder``, each listed file checked (``verify``).

    Raises:
        PresetError: ``metadata.json`` missing or unreadable, a listed file missing,
            or its SHA-256 not the recorded one (the message names the file).
    """
    where = _where(folder)
    path = os.path.join(folder, METADATA_FILE)
    if not os.path.isfile(path):
        raise PresetError(f"{where}: file {METADATA_FILE!r} is missing.")
    try:
        with open(path, encoding="utf-8") as fh:
            meta = json.load(fh)
    except (OSError, ValueError) as e:
        raise PresetError(f"{where}: file {METADATA_FILE!r} is unreadable ({e}).") from e
    files = meta.get("files") if isinstance(meta, dict) else None
    if not isinstance(files, dict) or not {CONFIG_FILE, WEIGHTS_FILE} <= set(files):
        raise PresetError(f"{where}: file {METADATA_FILE!r} does not list the SHA-256 of "
                          f"{CONFIG_FILE!r} and {WEIGHTS_FILE!r}.")
    for name, digest in sorted(files.items()):
        if not isinstance(name, str) or os.path.basename(name) != name or name in ("", ".", ".."):
            raise PresetError(f"{where}: file {METADATA_FILE!r} lists {name!r}, not a file "
                              "name in the preset folder.")
        if not (isinstance(digest, str) and len(digest) == 64 and set(digest) <= _SHA_HEX):
            raise PresetError(f"{where}: file {METADATA_FILE!r} gives {name!r} the SHA-256 "
                              f"{digest!r}; expected 64 lowercase hex digits.")
        file = os.path.join(folder, name)
        if not os.path.isfile(file):
            raise PresetError(f"{where}: file {name!r} is missing.")
        if verify and (got := sha256(file)) != digest:
            raise PresetError(f"{where}: file {name!r} is corrupted (SHA-256 {got[:12]}..., "
                              f"expected {digest[:12]}...).")
    return meta


def info(folder, meta):
    """The metadata as the zoo's functions return it: plus ``name``, ``mean`` and ``std``."""
    norm = meta.get("normalization") or {}
    return dict(meta, name=os.path.basename(os.path.normpath(folder)),
                mean=norm.get("mean"), std=norm.get("std"))


def load_preset_folder(folder, compile=False):
    """The model of the preset ``folder`` (checksums verified, safe mode); see the module."""
    import keras

    from keras_dsr import _imports

    _imports.register()  # keras_dsr's serialisable classes, for deserialisation
    meta = read_metadata(folder)
    where = _where(folder)
    try:
        with open(os.path.join(folder, CONFIG_FILE), encoding="utf-8") as fh:
            config = json.load(fh)
        config.pop("compile_config", None)
        model = keras.saving.deserialize_keras_object(config, safe_mode=True)
        build = config.get("build_config")
        if build and not model.built:
            model.build_from_config(build)
    except Exception as e:  # noqa: BLE001 - any failure to rebuild names the file
        raise PresetError(f"{where}: file {CONFIG_FILE!r} does not rebuild a model "
                          f"({type(e).__name__}: {e}).") from e
    try:
        model.load_weights(os.path.join(folder, WEIGHTS_FILE))
    except Exception as e:  # noqa: BLE001
        raise PresetError(f"{where}: file {WEIGHTS_FILE!r} does not load into the model "
                          f"({type(e).__name__}: {e}).") from e
    norm = meta.get("normalization")
    have = None if getattr(model, "data_mean", None) is None else \
        {"mean": list(model.data_mean), "std": list(model.data_std)}
    if norm != have:
        raise PresetError(f"{where}: the normalization in {METADATA_FILE!r} ({norm}) is not "
                          f"the model's in {CONFIG_FILE!r} ({have}).")
    if compile:
        model.compile(optimizer="adam")
    model.preset = info(folder, meta)
    return model


def _check_fields(system, dt, recipe, card):
    import numpy as np

    where = "save_to_preset"
    if system is not None and (not isinstance(system, str) or not system):
        raise ValueError(f"{where}: `system` must be a non-empty string or None, got "
                         f"{system!r}.")
    if dt is not None:
        if isinstance(dt, bool) or not isinstance(dt, (int, float, np.floating, np.integer)) \
                or not np.isfinite(dt) or dt <= 0:
            raise ValueError(f"{where}: `dt` must be a finite number > 0 or None, got {dt!r}.")
        dt = float(dt)
    if recipe is not None and hasattr(recipe, "to_dict"):
        recipe = recipe.to_dict()
    for key, value in (("recipe", recipe), ("card", card)):
        if value is None:
            continue
        if not isinstance(value, dict):
            raise ValueError(f"{where}: `{key}` must be a dict (or a Recipe) or None, got "
                             f"{type(value).__name__}.")
        try:
            json.dumps(value)  # (a diverged candidate's inf score is kept, as Infinity)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{where}: `{key}` must be JSON-serialisable ({e}).") from None
    return system, dt, recipe, card


def save_preset(model, folder, system=None, dt=None, recipe=None, card=None):
    """Write ``model`` as the preset ``folder`` (``DSRModel.save_to_preset``)."""
    import keras

    import keras_dsr
    from keras_dsr.io import atomic_directory
    from keras_dsr.zoo.card import card_text

    folder = os.fspath(folder)
    name = os.path.basename(os.path.normpath(folder))
    if not name or name.startswith(".") or name in ("..",):
        raise ValueError(f"save_to_preset: `folder` must name a folder (not hidden), got "
                         f"{folder!r}.")
    system, dt, recipe, card = _check_fields(system, dt, recipe, card)
    if not model.built:
        raise ValueError("save_to_preset: the model is not built; fit or build it first.")
    config = keras.saving.serialize_keras_object(model)
    config.pop("compile_config", None)  # a preset is loaded uncompiled (``compile=``)
    norm = None if getattr(model, "data_mean", None) is None else \
        {"mean": list(model.data_mean), "std": list(model.data_std)}
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "system": system, "dt": dt,
            "normalization": norm, "recipe": recipe, "card": card,
            "keras_dsr_version": keras_dsr.__version__, "keras_version": keras.__version__}
    with atomic_directory(folder) as tmp:
        with open(os.path.join(tmp, CONFIG_FILE), "w", encoding="utf-8") as fh:
            json.dump(config, fh, indent=1, sort_keys=True)
            fh.write("\n")
        model.save_weights(os.path.join(tmp, WEIGHTS_FILE))
        with open(os.path.join(tmp, CARD_FILE), "w", encoding="utf-8") as fh:
            fh.write(card_text(name, meta, config))
        meta["files"] = {f: sha256(os.path.join(tmp, f))
                         for f in (CARD_FILE, CONFIG_FILE, WEIGHTS_FILE)}
        with open(os.path.join(tmp, METADATA_FILE), "w", encoding="utf-8") as fh:
            json.dump(meta, fh, indent=1, sort_keys=True)
            fh.write("\n")
    return meta
