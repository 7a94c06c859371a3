"""The lab's ECG and EEG recipes hold the settings of its published experiment files."""

import pytest

from keras_dsr.recipes import Recipe

pytestmark = pytest.mark.backend_independent

# Transcribed from the lab's experiment settings (GTF-shPLRNN repository,
# paper_experiments/{ECG,EEG}/Table1/shPLRNN_{GTF,aGTF}.jl): model, sizes, forcing,
# sequence length, batch size, epochs x batches per epoch, learning rates.
COMMON = dict(cell="clipped_shplrnn", observation="affine", forcing="full", batch_size=16,
              steps=5000 * 50, steps_per_epoch=50, learning_rate=1e-3)
LAB = {
    ("ecg", False): dict(COMMON, latent_dim=5, hidden_dim=250, seq_len=200, alpha=0.3,
                         latent_l2=0.0),
    ("ecg", True): dict(COMMON, latent_dim=5, hidden_dim=250, seq_len=200, alpha="adaptive",
                        alpha_estimator="product_upper_bound", gtf_gamma=0.999, gtf_k=5,
                        latent_l2=1e-5),
    ("eeg", False): dict(COMMON, latent_dim=16, hidden_dim=512, seq_len=50, alpha=0.1,
                         latent_l2=1e-4),
    ("eeg", True): dict(COMMON, latent_dim=16, hidden_dim=512, seq_len=50, alpha="adaptive",
                        alpha_estimator="arithmetic_mean", gtf_gamma=0.999, gtf_k=5,
                        latent_l2=1e-4),
}


@pytest.mark.parametrize("data,adaptive", list(LAB))
def test_lab_recipes_hold_the_lab_settings(data, adaptive):
    recipe = getattr(Recipe, f"lab_{data}")(adaptive=adaptive)
    for field, value in LAB[data, adaptive].items():
        assert getattr(recipe, field) == value, field
    # end learning rate 1e-6
    assert recipe.learning_rate * recipe.final_lr_fraction == pytest.approx(1e-6)
    assert Recipe.from_dict(recipe.to_dict()) == recipe


def test_lab_recipes_take_changes_and_check_them():
    r = Recipe.lab_ecg(steps=300, seed=3)
    assert (r.steps, r.seed, r.hidden_dim) == (300, 3, 250)
    with pytest.raises(ValueError, match="`seq_len` must be >= 10"):
        Recipe.lab_eeg(seq_len=5)
    with pytest.raises(TypeError, match="`adaptive` must be True or False"):
        Recipe.lab_ecg(adaptive="yes")
