"""Continue training a saved Lorenz-63 model with adaptive GTF (alpha_0 given), scoring every 500 steps.

Usage:
    KERAS_BACKEND=jax python research/recipe_search/continue_training.py MODEL.keras \
        ALPHA0 LR STEPS T B
"""
import sys, time, numpy as np, keras_dsr, keras
from keras_dsr.callbacks import ConstantAlpha, AdaptiveGTF
from keras_dsr.data import TrajectoryWindows
from keras_dsr.measures import evaluate
from keras_dsr.systems import simulate
src, alpha, lr, steps, T, B = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
m = keras.saving.load_model(src, compile=False)
m.compile(optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(lr, steps, alpha=0.01)))
train = simulate("lorenz63", 100_000, seed=0); test = simulate("lorenz63", 100_000, seed=1)
w = TrajectoryWindows(train.x, seq_len=T, batch_size=B, steps_per_epoch=100, seed=5)
class A(AdaptiveGTF):
    def on_train_begin(self, logs=None):
        if not hasattr(self, "_started"):
            self._started = True; super().on_train_begin(logs)
cb = A(alpha_0=alpha, gamma=0.99)
print("before", evaluate(m, test.x), flush=True)
t0=time.time()
for ep in range(steps // 500):
    h = m.fit(w, epochs=5, verbose=0, callbacks=[cb])
    print(ep, {k: round(float(v[-1]), 5) for k, v in h.history.items()}, evaluate(m, test.x), round(time.time()-t0), flush=True)
m.save(f"ft_{alpha}.keras")
