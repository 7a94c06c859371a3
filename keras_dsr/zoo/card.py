"""The model card of a preset (its ``README.md``), generated from its metadata."""

from keras_dsr.cards import fmt as _num
from keras_dsr.cards import recipe_table, scores_table

__all__ = ["card_text"]


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


def _scores_lines(card):
    scores = {k: v for k, v in (card.get("scores") or {}).items()
              if k in ("dstsp", "dh", "pe", "lyap")}
    if not scores:
        return []
    out = ["## Scores (held-out test trajectory)", "",
           *scores_table(scores, card.get("floor"), card.get("lyap_true"))]
    if "criteria_met" in card:
        out += ["", f"Acceptance criteria (`keras_dsr/zoo/criteria.py`): "
                    f"{'met' if card['criteria_met'] else 'NOT met'}."]
    return out + [""]


def _candidate_lines(card):
    cands = card.get("candidates") or []
    if not cands:
        return []
    out = ["## Candidates tried", "",
           "| init_seed | training (s) | validation score | kept epoch |", "|---|---|---|---|"]
    for c in cands:
        score = c.get("score", c.get("val_score"))
        out.append(f"| {c.get('init_seed', '-')} | {_num(c.get('train_seconds'))} | "
                   f"{_num(score)} | {c.get('epoch', '-')} |")
    return out + [""]


def card_text(name, meta, config):
    """The ``README.md`` of preset ``name`` from its metadata and Keras config.

    Sections: system and data, usage, model, recipe (a table), scores against the
    floor, candidates tried, training facts.
    """
    card = meta.get("card") or {}
    norm = meta.get("normalization")
    lines = [f"# Preset `{name}`", "",
             f"- System: {meta.get('system') or 'not given'}; sampling interval dt = "
             f"{_num(meta.get('dt'))}.",
             "- Observation units: " + (
                 f"the data's own (mean {[round(v, 4) for v in norm['mean']]}, std "
                 f"{[round(v, 4) for v in norm['std']]}); `generate` takes and returns them."
                 if norm else "the model's standardised units (no normalization stored)."),
             f"- Written by keras_dsr {meta.get('keras_dsr_version')} with Keras "
             f"{meta.get('keras_version')}.", "",
             "## Usage", "", "```python",
             "from keras_dsr.models import DSRModel",
             f'model = DSRModel.from_preset("{name}")   # or the path of this folder',
             "traj = model.generate(x0, 10_000)   # x0 [N] -> [10000, N]",
             "```", "", "## Model", "", *_model_lines(config), ""]
    recipe = meta.get("recipe")
    if recipe:
        lines += ["## Recipe", "", *recipe_table(dict(sorted(recipe.items()))), ""]
    lines += _scores_lines(card) + _candidate_lines(card)
    facts = [f"- {label}: {card[key]}" for label, key in
             (("Training time (s)", "train_seconds"), ("Machine", "machine")) if key in card]
    if facts:
        lines += ["## Training", "", *facts, ""]
    return "\n".join(lines)
