"""The pretrained zoo: reconstructions of standard chaotic systems shipped in the wheel.

Each preset is a folder ``keras_dsr/zoo/presets/<name>/`` (the format:
:mod:`keras_dsr.zoo.preset`): ``config.json`` (the model's Keras config, its
normalization included), ``model.weights.h5``, ``metadata.json`` (the system, dt,
the training data's ``mean``/``std``, the recipe that trained it
(:class:`keras_dsr.recipes.Recipe`; rebuilt from scratch by
``python zoo/build.py NAME`` in the repository), the model card's measures
against a held-out test trajectory and the floor of an independent true
trajectory, and the SHA-256 of every other file) and ``README.md`` (the card).
Loading checks every checksum and uses Keras' safe mode.

A preset carries the units of its data: ``generate`` takes the initial condition
and returns the trajectory in the system's physical units.

Example:
    >>> from keras_dsr import zoo
    >>> zoo.list_presets()                       # doctest: +SKIP
    ['chen', 'chua', 'halvorsen', 'hindmarsh_rose', 'lorenz63', ...]
    >>> model = zoo.load_preset("lorenz63")      # = DSRModel.from_preset("lorenz63")
    >>> traj = model.generate([1.0, 1.0, 20.0], steps=10_000)   # [10000, 3]
"""

from keras_dsr.zoo.preset import (PRESET_DIR, PresetError, info, preset_names, read_metadata,
                                  resolve, sha256)

__all__ = ["list_presets", "preset_info", "load_preset", "sha256", "PresetError",
           "PRESET_DIR"]


def list_presets(preset_dir=None):
    """Names of the presets (sorted): the shipped ones, or those in ``preset_dir``."""
    return preset_names(preset_dir)


def preset_info(name, preset_dir=None):
    """The metadata of preset ``name``: system, dt, ``mean``/``std``, recipe, card, files.

    Also ``name``; ``mean`` and ``std`` are the normalization's (the observation
    units). Nothing is loaded; the checksums are not checked (see :func:`load_preset`).

    Raises:
        PresetError: unknown name (the message lists the known ones), a missing or
            unreadable ``metadata.json``, or a file it lists missing.
    """
    folder = resolve(name, preset_dir)
    return info(folder, read_metadata(folder, verify=False))


def load_preset(name, compile=False, preset_dir=None):
    """Load preset ``name``: :meth:`keras_dsr.models.DSRModel.from_preset`.

    Args:
        name: a name from :func:`list_presets` (e.g. ``"lorenz63"``) or a preset
            folder's path.
        compile: also compile it (Adam, observation MSE) for further training.
        preset_dir: the folder holding the presets (default: the shipped ones).

    Returns:
        the model (its ``generate`` in physical units); ``model.preset`` holds the
        metadata (:func:`preset_info`).

    Raises:
        PresetError: unknown, missing or corrupted preset.
    """
    from keras_dsr.models import DSRModel

    return DSRModel.from_preset(resolve(name, preset_dir), compile=compile)
