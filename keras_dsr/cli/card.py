"""The model card that ``keras-dsr train`` and ``reconstruct`` write next to the model (``MODEL.json``, ``MODEL.md``)."""

import datetime
import json
import os

from keras_dsr.cards import final_logs, machine_info, recipe_table, scores_table
from keras_dsr.io import atomic_path, atomic_write
from keras_dsr.cli._shared import _fmt_list, _say


def _card_paths(model_path):
    stem = os.path.splitext(model_path)[0]
    return stem + ".json", stem + ".md"


def _card_markdown(model_path, card):
    """The readable MODEL.md of ``card``."""
    recipe = card["recipe"]
    lines = [f"# Model card: {os.path.basename(model_path)}", "",
             f"Created {card['created']} by `{card['command']}`.", "",
             "## Data", ""]
    lines += [f"- {k}: {v}" for k, v in card["data"].items()]
    lines += ["- standardisation: x_model = (x - mean) / std, mean = "
              f"{_fmt_list(card['standardization']['mean'])}, std = "
              f"{_fmt_list(card['standardization']['std'])}", "", "## Recipe", ""]
    lines += recipe_table(recipe)
    tr = card["training"]
    lines += ["", "## Training", "", f"- time: {tr['seconds']:.1f} s",
              f"- epochs: {tr['epochs']}"]
    lines += [f"- final {k}: {v:.4g}" for k, v in tr["final"].items()]
    if card.get("scores"):
        lines += ["", "## Measures", ""] + scores_table(card["scores"], card.get("floor"))
    lines += ["", "## Machine", ""] + [f"- {k}: {v}" for k, v in card["machine"].items()]
    return "\n".join(lines) + "\n"


def _make_card(args, data, recipe, history, seconds, scores=None, floor=None):
    card = {
        "keras_dsr_model_card": 1,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "keras-dsr " + " ".join(args.argv),
        "data": data.info,
        "standardization": {"mean": [float(v) for v in data.mean],
                            "std": [float(v) for v in data.std]},
        "recipe": recipe.to_dict(),
        "training": {"seconds": seconds,
                     "epochs": history.epoch[-1] + 1 if history.epoch else 0,
                     "final": final_logs(history)},
        "machine": machine_info(),
    }
    if history.epoch and history.epoch[0] > 0:  # train --resume continued a run
        card["training"]["resumed_at_epoch"] = history.epoch[0]
    if scores is not None:
        card["scores"], card["floor"] = scores, floor
    return card


def _backup_dir(model_path):
    return model_path + ".backup"


def _save_model(args, model, path, card):
    d = os.path.dirname(path)
    if d:
        os.makedirs(d, exist_ok=True)
    import signal
    import threading

    json_path, md_path = _card_paths(path)
    text = json.dumps(card, indent=2, default=float)
    markdown = _card_markdown(path, card)
    # Model and card go to temporary files beside them first (a Ctrl-C or a kill there
    # leaves the previous files untouched); then the three are moved into place one after
    # the other, with Ctrl-C held back for those microseconds so they stay a set.
    block = threading.current_thread() is threading.main_thread() and hasattr(
        signal, "pthread_sigmask")
    try:
        with atomic_path(path) as tmp_model:
            model.save(tmp_model)
            with atomic_write(json_path) as fh:
                fh.write(text)
                with atomic_write(md_path) as fm:
                    fm.write(markdown)
                    if block:
                        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    finally:
        if block:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    _say(args, f"wrote {path}, {json_path}, {md_path}")
