"""``keras-dsr train``: train a GTF-DEER model on a system or a data file; model + card."""

import os
import sys

from keras_dsr.cli._args import _check_length, _recipe
from keras_dsr.cli._data import _check_observation_options, _observed_training_data, _training_data
from keras_dsr.cli._interrupt import _InterruptCheck, _raise_if_interrupted
from keras_dsr.cli._shared import _check_out, _check_output, _say, _verbose
from keras_dsr.cards import final_logs
from keras_dsr.cli.card import _backup_dir, _card_paths, _make_card, _save_model
from keras_dsr.cli._args import _add_recipe_options, _nonneg_float, _positive_float, add_observation_options
from keras_dsr.cli._shared import DATA_HELP


def cmd_train(args):
    recipe = _recipe(args)
    _check_output(args.output, (".keras",))
    for path in (args.output, *_card_paths(args.output)):
        _check_out(path)
    _check_observation_options(args)
    data, recipe = _observed_training_data(_training_data(args.data, args, recipe), args, recipe)
    _check_length(recipe, data)
    from keras_dsr.recipes import train

    _say(args, f"training on {data.x.shape[0]} steps x {data.x.shape[1]} variables: {recipe}")
    callbacks = [_InterruptCheck()]
    backup = _backup_dir(args.output)
    if args.resume:
        import keras

        if os.path.isdir(backup):
            _say(args, f"resuming from the backup in {backup}")
        # after each epoch: weights, optimizer state and epoch count; deleted on success
        callbacks.insert(0, keras.callbacks.BackupAndRestore(backup, save_freq="epoch",
                                                             delete_checkpoint=True))
    try:
        model, history, seconds = train(recipe, data.x, callbacks=callbacks,
                                        verbose=_verbose(args))
    except KeyboardInterrupt:
        if args.resume:
            print(f"keras-dsr: the last completed epoch is kept in {backup}; run the same "
                  "command again (with --resume) to continue", file=sys.stderr)
        raise
    _raise_if_interrupted()
    final = final_logs(history)
    _say(args, f"trained in {seconds:.1f} s; final loss {final.get('loss', float('nan')):.4g}, "
               f"alpha {final.get('alpha', float('nan')):.3f}")
    _save_model(args, model, args.output, _make_card(args, data, recipe, history, seconds))
    _raise_if_interrupted()
    return 0


HELP = "train a GTF-DEER model; writes MODEL.keras and its card"
run = cmd_train


def add_arguments(p):
    p.add_argument("data", help=DATA_HELP + " (standardised for training)")
    p.add_argument("--output", "-o", required=True, help="model file (.keras); the card "
                   "goes next to it (.json, .md)")
    p.add_argument("--dt", type=_positive_float, help="sampling interval: of the file's data (recorded "
                   "in the card), or to simulate a system with")
    p.add_argument("--noise", type=_nonneg_float, default=0.0,
                   help="observation noise of simulated data (default 0)")
    add_observation_options(p)
    p.add_argument("--resume", action="store_true", help="keep the state of the last "
                   "completed epoch in MODEL.keras.backup/ while training (Keras "
                   "BackupAndRestore) and continue from it if it exists; pass it to the first "
                   "run too. Deleted when training completes")
    _add_recipe_options(p)
