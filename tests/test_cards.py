"""keras_dsr.cards: the pieces of the command's and the presets' model cards."""

import os

import keras

from keras_dsr.cards import final_logs, fmt, machine_info, machine_line, recipe_table, scores_table


def test_machine_info_and_line_name_this_machine():
    info = machine_info()
    assert info["backend"] == keras.backend.backend()
    assert info["cpus"] == os.cpu_count() and 1 <= info["cpus_usable"] <= info["cpus"]
    assert info["keras"] == keras.__version__
    line = machine_line(info)
    assert f"backend {keras.backend.backend()}" in line and f"keras {keras.__version__}" in line
    assert f"{os.cpu_count()} CPU cores" in line
    pinned = dict(info, cpus=8, cpus_usable=2)
    assert "pinned to 2 of 8 CPU cores" in machine_line(pinned)


def test_tables():
    assert recipe_table({"hidden_dim": 8, "alpha": "adaptive", "dt": None}) == [
        "| field | value |", "| --- | --- |", "| hidden_dim | `8` |",
        '| alpha | `"adaptive"` |', "| dt | `null` |"]
    rows = scores_table({"dstsp": 0.123456, "lyap": 0.9}, {"dstsp": 0.05}, lyap_true=0.906)
    assert rows[2] == "| D_stsp | 0.1235 | 0.05 |"
    assert rows[3] == "| lambda_max (per time unit) | 0.9 | 0.906 (true) |"
    assert scores_table({"dh": 0.1})[2] == "| D_H | 0.1 | - |"
    assert fmt(None) == "-" and fmt(True) == "True" and fmt(3) == "3"


def test_final_logs_of_a_history():
    history = keras.callbacks.History()
    history.history = {"loss": [3.0, 2.0], "alpha": [0.2, 0.1], "empty": []}
    assert final_logs(history) == {"loss": 2.0, "alpha": 0.1}
