"""``keras-dsr zoo``: the shipped pretrained presets (list, show NAME, evaluate NAME)."""

import json

from keras_dsr.cli._shared import UsageError, _fmt


def cmd_zoo(args):
    """``zoo list | show NAME | evaluate NAME``: the shipped pretrained presets."""
    from keras_dsr import zoo

    try:
        return _zoo(args)
    except zoo.PresetError as e:  # an unknown name, a missing or corrupted preset file
        raise UsageError(str(e)) from None


def _zoo(args):
    from keras_dsr import zoo
    from keras_dsr.zoo.criteria import check_scores, preset_scores, true_reference

    names = zoo.list_presets()
    if args.action == "list":
        if not names:
            print("no presets are shipped with this installation (see zoo/README.md).")
            return 0
        print(f"{'name':<14}{'system':<18}{'D_stsp':>9}{'D_H':>9}{'lambda_max':>12}")
        for name in names:
            info = zoo.preset_info(name)
            sc = (info.get("card") or {}).get("scores", {})
            print(f"{name:<14}{str(info.get('system')):<18}{_fmt(sc.get('dstsp')):>9}"
                  f"{_fmt(sc.get('dh')):>9}{_fmt(sc.get('lyap')):>12}")
        return 0
    if not args.name:
        raise UsageError(f"zoo {args.action} needs a preset name; shipped: {names}")
    try:
        info = zoo.preset_info(args.name)
        if args.action == "show":
            print(json.dumps(info, indent=1, sort_keys=True))
            return 0
        model = zoo.load_preset(args.name)
    except zoo.PresetError as e:
        raise UsageError(str(e)) from None
    ok, lines = check_scores(args.name, preset_scores(model, args.name),
                             true_reference(args.name))
    print("\n".join(lines))
    print("criteria met" if ok else "criteria NOT met")
    return 0 if ok else 1


HELP = ("pretrained presets: list, show NAME, evaluate NAME "
        "(recomputes the measures and checks the criteria; exit 1 if not met)")
run = cmd_zoo


def add_arguments(p):
    p.add_argument("action", choices=("list", "show", "evaluate"))
    p.add_argument("name", nargs="?", help="preset name (for show / evaluate)")
