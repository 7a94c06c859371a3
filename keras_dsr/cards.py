"""Model cards: the pieces that every card of keras_dsr is written from.

The command's cards (``MODEL.md`` beside a model trained by ``keras-dsr train`` or
``reconstruct``) and the presets' cards (the ``README.md`` of a preset folder) are
Markdown written from a JSON-able record; both use these functions, so a recipe, a
table of scores against the floor and the machine read the same everywhere.

Example:
    >>> print("\\n".join(scores_table({"dstsp": 0.136, "dh": 0.0617},
    ...                               {"dstsp": 0.0268, "dh": 0.0473})))
    | measure | model | floor (independent true trajectory) |
    | --- | --- | --- |
    | D_stsp | 0.136 | 0.0268 |
    | D_H | 0.0617 | 0.0473 |
"""

import json
import os
import platform

__all__ = ["LABELS", "fmt", "machine_info", "machine_line", "final_logs", "recipe_table",
           "scores_table"]

#: The measures' names on cards and in the command's output.
LABELS = {"dstsp": "D_stsp", "dh": "D_H", "pe": "PE(20)", "lyap": "lambda_max"}


def fmt(value):
    """A number with 4 significant digits; ``-`` for None; anything else as ``str``."""
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return f"{value:.4g}"


def _cores():
    n = os.cpu_count()
    if hasattr(os, "sched_getaffinity") and len(os.sched_getaffinity(0)) < (n or 0):
        return len(os.sched_getaffinity(0)), n
    return n, n


def machine_info():
    """Where a model was trained: platform, Python, CPU cores, backend, device, versions."""
    import keras

    import keras_dsr

    backend = keras.backend.backend()
    device = "cpu"
    try:
        if backend == "jax":
            import jax

            d = jax.devices()[0]
            device = f"{d.platform}: {d.device_kind} x{jax.device_count()}"
        elif backend == "torch":
            import torch

            if torch.cuda.is_available():
                device = f"cuda: {torch.cuda.get_device_name(0)}"
        elif backend == "tensorflow":
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
            device = f"gpu x{len(gpus)}" if gpus else "cpu"
    except Exception:  # noqa: BLE001 - device details are informative only
        pass
    usable, total = _cores()
    return {"platform": platform.platform(), "python": platform.python_version(),
            "cpus": total, "cpus_usable": usable, "backend": backend, "device": device,
            "keras": keras.__version__, "keras_dsr": keras_dsr.__version__}


def machine_line(info=None):
    """:func:`machine_info` in one line, e.g. "Linux x86_64, 2 CPU cores, Python 3.11.7,
    keras 3.15.1, backend jax"."""
    info = machine_info() if info is None else info
    usable, total = info.get("cpus_usable", info["cpus"]), info["cpus"]
    cores = (f"{total} CPU cores" if usable == total
             else f"pinned to {usable} of {total} CPU cores")
    device = info.get("device", "cpu")
    return (f"{platform.system()} {platform.machine()}, {cores}, Python {info['python']}, "
            f"keras {info['keras']}, backend {info['backend']}"
            + ("" if device == "cpu" else f" ({device})"))


def final_logs(history):
    """The last value of every metric of a Keras ``History``."""
    return {k: float(v[-1]) for k, v in getattr(history, "history", {}).items() if v}


def recipe_table(recipe):
    """Markdown lines: a two-column table of a recipe's fields (a dict), in its order."""
    lines = ["| field | value |", "| --- | --- |"]
    return lines + [f"| {k} | `{json.dumps(v)}` |" for k, v in recipe.items()]


def scores_table(scores, floor=None, lyap_true=None):
    """Markdown lines: each measure of ``scores`` beside the floor (an independent true
    trajectory against the same test data), and lambda_max beside the true value; in
    the order of :data:`LABELS`."""
    floor = floor or {}
    lines = ["| measure | model | floor (independent true trajectory) |", "| --- | --- | --- |"]
    order = list(LABELS)
    for key in sorted(scores, key=lambda k: order.index(k) if k in order else len(order)):
        value = scores[key]
        if key == "lyap":
            ref = f"{fmt(lyap_true)} (true)" if lyap_true is not None else "-"
            lines.append(f"| {LABELS[key]} (per time unit) | {fmt(value)} | {ref} |")
        else:
            lines.append(f"| {LABELS.get(key, key)} | {fmt(value)} | {fmt(floor.get(key))} |")
    return lines
