"""The model card of a preset, generated from its metadata: the one writer of the
preset folder's ``README.md`` and of the build's ``zoo/<name>/CARD.md`` (the same text).

Everything on the card comes from the preset's ``metadata.json`` (its ``card`` record,
written by ``zoo/build.py`` or refreshed by ``python -m keras_dsr.zoo.criteria
--update-cards``) and its Keras config: status, data and seeds, the recipe with the
reason for each per-system choice, scores against the floors, the criteria on each
backend, robustness, the initialisations tried (how many met the criteria on
validation), fine-tuning and training facts.
"""

import json

from keras_dsr.cards import fmt as _num
from keras_dsr.cards import scores_table

__all__ = ["card_text", "status_table"]


def _model_lines(config):
    inner = config.get("config", {}) if isinstance(config, dict) else {}
    cell = inner.get("cell") or {}
    cell_cfg = cell.get("config", {}) if isinstance(cell, dict) else {}
    kind = cell.get("class_name", "ClippedShallowPLRNN (default)") if cell else \
        "ClippedShallowPLRNN (default)"
    sizes = ", ".join(f"{k} {cell_cfg[k]}" for k in ("latent_dim", "hidden_dim", "degree")
                      if cell_cfg.get(k) is not None)
    gtf = inner.get("gtf") or {}
    return [f"- `{config.get('class_name', '?')}` with the cell `{kind}`"
            + (f" ({sizes})" if sizes else "") + ".",
            f"- Observation: {inner.get('observation', '?')}; forcing: "
            f"{inner.get('forcing', '?')}; schedule: "
            f"{gtf.get('class_name', gtf) if isinstance(gtf, dict) else gtf}; "
            f"solver: {inner.get('method', '?')}."]


def _status_line(card):
    if "criteria_met" not in card:
        return []
    per = card.get("criteria") or {}
    where = (" on " + ", ".join(f"{b} ({'met' if r['met'] else 'NOT met'})"
                                for b, r in per.items())) if per else ""
    if card["criteria_met"]:
        return [f"Status: shipped; acceptance criteria (`keras_dsr/zoo/criteria.py`) "
                f"met{where}.", ""]
    return [f"Status: not shipped; acceptance criteria (`keras_dsr/zoo/criteria.py`) NOT "
            f"met{where}.", ""]


def _data_lines(meta):
    recipe, system = meta.get("recipe") or {}, meta.get("system")
    if system is None or "seed" not in recipe:
        return []
    s = int(recipe["seed"])
    card = meta.get("card") or {}
    n = len((card.get("scores") or {}).get("per_pair") or ()) or 1
    val = (card.get("validation") or {}).get("pairs", 1)
    out = ["## Data", "",
           f"- Training: {system} simulated with `keras_dsr.systems.simulate` (DOP853), "
           f"dt = {_num(meta.get('dt'))}, {recipe.get('train_length', '?')} steps from "
           f"initial-condition seed {s}, standardised (the mean and std are the preset's "
           "normalization).",
           f"- Test: {n} trajectories (seeds {s} + 1 + 10 k, k < {n}), each with its floor "
           f"(an independent true trajectory, seed {s} + 2 + 10 k), standardised with the "
           "training statistics."]
    if card.get("candidates"):
        out.append(f"- Model selection: {val} validation trajector{'ies' if val > 1 else 'y'} "
                   f"(seeds {s} + 3 + 10 k, floors {s} + 4 + 10 k), never the test ones.")
    return out + [""]


def _recipe_lines(recipe, why):
    why = why or {}
    lines = ["## Recipe", "", "| field | value | why |", "| --- | --- | --- |"]
    return lines + [f"| {k} | `{json.dumps(v)}` | {why.get(k, '')} |"
                    for k, v in sorted(recipe.items())] + [""]


def _scores_lines(card):
    scores = {k: v for k, v in (card.get("scores") or {}).items()
              if k in ("dstsp", "dh", "pe", "lyap")}
    if not scores:
        return []
    per_pair = (card.get("scores") or {}).get("per_pair") or []
    floors = card.get("floors") or []
    title = (f"## Scores (medians over {len(per_pair)} held-out test trajectories)"
             if len(per_pair) > 1 else "## Scores (held-out test trajectory)")
    out = [title, "", *scores_table(scores, card.get("floor"), card.get("lyap_true")), ""]
    if len(per_pair) > 1:
        out += ["| test trajectory | D_stsp | floor | D_H | floor |", "|---|---|---|---|---|"]
        for k, p in enumerate(per_pair):
            f = floors[k] if k < len(floors) else {}
            out.append(f"| {k} | {_num(p['dstsp'])} | {_num(f.get('dstsp'))} | "
                       f"{_num(p['dh'])} | {_num(f.get('dh'))} |")
        out.append("")
    return out


def _criteria_lines(card):
    per = card.get("criteria") or {}
    out = []
    for backend, result in per.items():
        out += [f"Criteria recomputed on {backend}: {'met' if result['met'] else 'NOT met'}",
                "", *result["table"], ""]
    return (["## Acceptance criteria on each backend", ""] + out) if out else []


def _failed(rob):
    """Fraction of a robustness record's runs off the attractor (records written before
    the true-system calibration have no ``failed``: all runs count)."""
    return rob.get("failed", 1 - rob["counts"]["reached"] / rob["n"])


def _robustness_lines(card):
    rob = card.get("robustness")
    if not rob:
        return []
    c, n = rob["counts"], rob["n"]
    ref = rob.get("reference_counts")
    kept = ref["reached"] if ref else n  # starts from which the true system reached it
    failed = _failed(rob)
    text = (f"Free runs from {n} initial conditions around the attractor "
            "(`keras_dsr.zoo.criteria.preset_robustness`): "
            f"{100 * failed:.0f} % missed the data's attractor (of all {n}: diverged "
            f"{c['diverged']}, fixed point {c['fixed_point']}, cycle {c['cycle']}, other "
            f"{c['other']}); bound of a reached run: D_stsp <= {rob['max_dstsp']:.3f}")
    if ref:
        text += (" (the true system's worst run from the same starts + 0.2). The true "
                 f"system's own runs, classified the same way: {n - kept} of {n} off"
                 + ("; the fraction counts only the starts from which it reached the "
                    "attractor." if kept < n else "."))
    else:
        text += "."
    return ["## Robustness", "", text, ""]


def _candidate_lines(card):
    cands = card.get("candidates") or []
    if not cands:
        return []
    scores = [c.get("score", c.get("val_score")) for c in cands]
    met = sum(1 for v in scores if v is not None and v <= 1)
    out = ["## Candidates tried", "",
           f"{met} of {len(cands)} initialisation{'s' if len(cands) > 1 else ''} met every "
           "criterion on the validation data (validation score <= 1, "
           "`keras_dsr.zoo.selection.validation_score`); the lowest score was kept.", "",
           "| init_seed | training (s) | validation score | met on validation | kept epoch "
           "| score at each scored epoch |", "|---|---|---|---|---|---|"]
    for c, score in zip(cands, scores):
        ok = "-" if score is None else ("yes" if score <= 1 else "no")
        ckpts = ", ".join(f"{e}: {_num(v)}" for e, v in sorted(
            (c.get("checkpoints") or {}).items(), key=lambda kv: int(kv[0])))
        out.append(f"| {c.get('init_seed', '-')} | {_num(c.get('train_seconds'))} | "
                   f"{_num(score)} | {ok} | {c.get('epoch', '-')} | {ckpts or '-'} |")
    val = card.get("validation")
    if val and val.get("measures"):
        m, f = val["measures"], val["floor"]
        out += ["", f"Kept model on validation: D_stsp {m['dstsp']:.3f} (floor "
                    f"{f['dstsp']:.3f}), D_H {m['dh']:.3f} (floor {f['dh']:.3f}), lambda_max "
                    f"{m['lyap']:.4g}."]
    return out + [""]


def _finetune_lines(card):
    row = card.get("finetune")
    if not row:
        return []
    kept = ("the starting weights (no checkpoint beat them)" if row["kept_step"] == 0
            else f"the weights after {row['kept_step']} steps")
    return ["## Fine-tuning", "",
            f"{row['steps']} Adam steps for the winner at learning rate "
            f"{row['learning_rate']} (cosine to 1 %), constant GTF alpha {row['alpha']}, "
            f"{row['seconds']} s; validation score every {row['every']} steps: "
            + ", ".join(f"{k}: {v:.2f}" for k, v in sorted(row["scores"].items(),
                                                          key=lambda kv: int(kv[0])))
            + f"; kept {kept} (score {row.get('score', row.get('val_score')):.2f}).", ""]


def card_text(name, meta, config):
    """The card of preset ``name`` from its metadata and Keras config (Markdown).

    Sections: status, system and units, usage, model, data and seeds, recipe (a table
    with the reason for each per-system choice, ``card["why"]``), scores against the
    floors (per test trajectory), the criteria on each backend, robustness,
    candidates tried (how many met the criteria on validation), fine-tuning and
    training facts; a section whose record is absent is left out.
    """
    card = meta.get("card") or {}
    norm = meta.get("normalization")
    lines = [f"# Preset `{name}`", "", *_status_line(card),
             f"- System: {meta.get('system') or 'not given'}; sampling interval dt = "
             f"{_num(meta.get('dt'))}.",
             "- Observation units: " + (
                 f"the data's own (mean {[round(v, 4) for v in norm['mean']]}, std "
                 f"{[round(v, 4) for v in norm['std']]}); `generate` takes and returns them."
                 if norm else "the model's standardised units (no normalization stored)."),
             f"- Written by keras_dsr {meta.get('keras_dsr_version')} with Keras "
             f"{meta.get('keras_version')}."]
    if meta.get("recipe") and meta.get("system"):
        lines.append(f"- Rebuild: `KERAS_BACKEND=jax python zoo/build.py {name}` (from the "
                     "root of the keras_dsr repository).")
    lines += ["", "## Usage", "", "```python",
              "from keras_dsr.models import DSRModel",
              f'model = DSRModel.from_preset("{name}")   # or the path of this folder',
              "traj = model.generate(x0, 10_000)   # x0 [N] -> [10000, N]",
              "```", "", "## Model", "", *_model_lines(config), "", *_data_lines(meta)]
    if meta.get("recipe"):
        lines += _recipe_lines(meta["recipe"], card.get("why"))
    lines += (_scores_lines(card) + _criteria_lines(card) + _robustness_lines(card)
              + _candidate_lines(card) + _finetune_lines(card))
    facts = [f"- {label}: {card[key]}" for label, key in
             (("Training time (s)", "train_seconds"), ("Machine", "machine"),
              ("Built on", "date")) if key in card]
    if card.get("final_logs"):
        facts.append("- Final logs: " + json.dumps(
            {k: float(f"{v:.5g}") for k, v in card["final_logs"].items()}))
    if facts:
        lines += ["## Training", "", *facts, ""]
    return "\n".join(lines)


def _status_row(name, meta, link):
    card = meta.get("card") or {}
    scores, floor = card.get("scores") or {}, card.get("floor") or {}
    lyap, true = scores.get("lyap"), card.get("lyap_true")
    err = "-" if lyap is None or not true else f"{100 * (lyap - true) / abs(true):+.1f} %"
    rob = card.get("robustness")
    off = "-" if not rob else \
        f"{100 * _failed(rob):.0f} %"
    cands = card.get("candidates") or []
    scored = [c.get("score", c.get("val_score")) for c in cands]
    rate = (f"{sum(1 for v in scored if v is not None and v <= 1)} of {len(cands)}"
            if any(v is not None for v in scored) else
            (f"{len(cands)} tried, not scored" if cands else "-"))

    def pair(key):
        return (f"{scores[key]:.3f} ({floor[key]:.3f})" if key in scores and key in floor
                else "-")
    cell = (meta.get("recipe") or {}).get("cell", "?")
    if cell == "polynomial":  # a function library that holds the true field, not a black box
        cell = "polynomial (equation library)"
    backends = ", ".join(b for b, r in (card.get("criteria") or {}).items() if r["met"])
    label = f"`{name}`" if link is None else f"[`{name}`]({link.format(name=name)})"
    return (f"| {label} | {meta.get('system')} | {cell} | "
            f"{pair('dstsp')} | {pair('dh')} | {err} | {off} | {rate} | "
            f"{backends or ('yes' if card.get('criteria_met') else 'no')} |")


def status_table(names=None, link="keras_dsr/zoo/presets/{name}/README.md"):
    """The zoo's status table (Markdown lines), one row per shipped preset, from the
    cards in the presets' metadata: model, D_stsp and D_H (medians) beside their
    floors, the lambda_max error, the fraction of free runs off the attractor, how
    many initialisations met the criteria on validation, and the backends on which
    the criteria are met. ``link``: where each preset's name links to (``{name}`` is
    replaced; None: no link)."""
    from keras_dsr import zoo

    head = ["| preset | system | model | D_stsp (floor) | D_H (floor) | lambda_max error | "
            "free runs off the attractor | initialisations met on validation | criteria "
            "met on |", "|---|---|---|---|---|---|---|---|---|"]
    return head + [_status_row(n, zoo.preset_info(n), link)
                   for n in (zoo.list_presets() if names is None else names)]


def main(argv=None):
    """``python -m keras_dsr.zoo.card [--plain | --link TEMPLATE]``: print the status
    table; links to the installed cards (the README's) by default, none with
    ``--plain`` (the docs'), or ``--link '{name}/CARD.md'`` (the zoo folder's)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m keras_dsr.zoo.card",
                                     description="Print the zoo's status table.")
    parser.add_argument("--plain", action="store_true", help="no links")
    parser.add_argument("--link", default="keras_dsr/zoo/presets/{name}/README.md",
                        help="link template of each preset ({name} is replaced)")
    args = parser.parse_args(argv)
    if "{name}" not in args.link:
        parser.error(f"--link must contain '{{name}}' (got {args.link!r}).")
    print("\n".join(status_table(link=None if args.plain else args.link)))


if __name__ == "__main__":
    main()
