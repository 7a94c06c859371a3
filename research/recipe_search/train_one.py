"""Lorenz-63 recipe search: train one configuration, score its free run (D_stsp, D_H).

Trains a DSRModel (clipped shPLRNN) on windows of a 100 000-step Lorenz-63
trajectory (seed 0) with Adam + cosine decay and adaptive GTF (or a constant /
exponentially decaying alpha), then scores the free run against an independent
test trajectory (seed 1) with keras_dsr.measures.evaluate (the protocol of docs/method.md §Evaluation measures).
Results and the commands that made them: RESULTS.md next to this file.

Usage:
    KERAS_BACKEND=jax python research/recipe_search/train_one.py --T 200 --B 16 \
        --steps 3000 --spe 100 --lr 1e-2 --gamma 0.99 --hidden 300 --evalevery 10
"""
import argparse, time, sys
import numpy as np
import keras_dsr, keras
from keras_dsr.callbacks import AdaptiveGTF, ConstantAlpha
from keras_dsr.data import TrajectoryWindows
from keras_dsr.measures import evaluate
from keras_dsr.models import DSRModel
from keras_dsr.systems import simulate
p = argparse.ArgumentParser()
p.add_argument("--T", type=int, default=10000); p.add_argument("--B", type=int, default=4)
p.add_argument("--steps", type=int, default=600); p.add_argument("--spe", type=int, default=50)
p.add_argument("--lr", type=float, default=3e-3); p.add_argument("--gamma", type=float, default=0.9)
p.add_argument("--hidden", type=int, default=100); p.add_argument("--alpha", type=float, default=None)
p.add_argument("--method", default="deer"); p.add_argument("--est", default=None)
p.add_argument("--opt", default="adam"); p.add_argument("--final", type=float, default=1e-2)
p.add_argument("--seed", type=int, default=0); p.add_argument("--aend", type=float, default=None); p.add_argument("--half", type=int, default=300); p.add_argument("--evalevery", type=int, default=0)
a = p.parse_args()
keras.utils.set_random_seed(a.seed)
train = simulate("lorenz63", 100_000, seed=a.seed); test = simulate("lorenz63", 100_000, seed=a.seed + 1)
w = TrajectoryWindows(train.x, seq_len=a.T, batch_size=a.B, steps_per_epoch=a.spe, seed=a.seed)
model = DSRModel(hidden_dim=a.hidden, method=a.method, **({"alpha_estimator": a.est} if a.est else {}))
lr = keras.optimizers.schedules.CosineDecay(a.lr, decay_steps=a.steps, alpha=a.final)
opt = keras.optimizers.Adam(lr) if a.opt == "adam" else keras.optimizers.get({"class_name": a.opt, "config": {"learning_rate": lr}})
model.compile(optimizer=opt)
from keras_dsr.callbacks.gtf import ExponentialAlpha
cb = [AdaptiveGTF(k=5, gamma=a.gamma) if a.alpha is None else ConstantAlpha(a.alpha)]
if a.aend is not None: cb = [ExponentialAlpha(1.0, a.aend, 0.5, a.half)]
class Ev(keras.callbacks.Callback):
    def on_epoch_end(self, ep, logs=None):
        if a.evalevery and (ep + 1) % a.evalevery == 0:
            s = evaluate(self.model, test.x[:20000], measures=("dstsp", "dh"))
            print(f"  [ep {ep+1}] dstsp={s['dstsp']:.3f} dh={s['dh']:.3f}", flush=True)
t0 = time.time()
h = model.fit(w, epochs=a.steps // a.spe, verbose=0, callbacks=cb + [Ev()])
for i in range(len(h.history["loss"])):
    print(i, {k: round(float(v[i]), 5) for k, v in h.history.items()}, flush=True)
tt = time.time() - t0
s = evaluate(model, test.x, measures=("dstsp", "dh"))
g = model.generate(test.x[0], 20000)
g = np.asarray(g)
print(f"ARGS {vars(a)}\nRESULT time={tt:.0f}s dstsp={s['dstsp']:.3f} dh={s['dh']:.3f} alpha={model.alpha:.3f} gen_std={g[-10000:].std(0).round(3)}", flush=True)
model.save(f"m_{a.T}_{a.B}_{a.lr}_{a.seed}.keras")
