"""One free run for every DSR model: a compiled loop over the model's own step.

A model that mixes in :class:`FreeRunning` defines three things:

* ``run_initial_state(x0)``: the state (a tuple of tensors) from which the first
  generated step follows, given observations ``x0`` ``[B, N]`` (or a warm-up window);
* ``run_step(state)``: the next state;
* ``run_observe(states)``: observations ``[B, T, N]`` of stacked states.

:meth:`FreeRunning.free_run` then runs ``steps`` steps in one compiled loop:
``jax.lax.scan`` inside ``jax.jit`` with the weights as arguments (cached per number of
steps), one cached ``tf.function`` per number of steps on TensorFlow (no retracing
from call to call), and on PyTorch a loop over the step traced once with
``torch.jit.trace`` (the weights are inputs of the trace, so it never holds stale
values; a step that cannot be traced runs eagerly), all without autograd.
"""

import keras
from keras import ops


def _stack_time(states):
    return tuple(ops.stack(list(parts), axis=1) for parts in zip(*states))


class FreeRunning:
    """Mixin: a compiled free run from the model's ``run_*`` methods."""

    def _run_cache(self):
        cache = self.__dict__.get("_free_run_cache")
        if cache is None:
            cache = {}
            self.__dict__["_free_run_cache"] = cache
        return cache

    def free_run(self, state, steps):
        """``steps`` states after ``state`` (a tuple ``[B, ...]``), each stacked ``[B, steps, ...]``."""
        state = tuple(ops.convert_to_tensor(s) for s in state)
        backend = keras.backend.backend()
        if backend == "jax":
            return self._jax_run(state, steps)
        if backend == "tensorflow":
            return self._tf_run(state, steps)
        return self._torch_run(state, steps)

    # ------------------------------------------------------------- backends
    def _jax_run(self, state, steps):
        import jax

        cache = self._run_cache()
        variables = self.variables
        fn = cache.get(("jax", steps, len(variables)))
        if fn is None:
            def pure(values, state):
                with keras.StatelessScope(state_mapping=list(zip(variables, values))):
                    def body(carry, _):
                        nxt = tuple(self.run_step(carry))
                        return nxt, nxt

                    _, states = jax.lax.scan(body, state, None, length=steps)
                return tuple(jax.numpy.moveaxis(s, 0, 1) for s in states)

            fn = jax.jit(pure)
            cache[("jax", steps, len(variables))] = fn
        return fn([v.value for v in variables], state)

    def _tf_run(self, state, steps):
        import tensorflow as tf

        cache = self._run_cache()
        key = ("tf", steps, tuple(id(v) for v in self.variables))
        fn = cache.get(key)
        if fn is None:
            @tf.function(reduce_retracing=True)
            def fn(state):
                def body(carry, _):
                    return tuple(self.run_step(carry))

                states = tf.scan(body, tf.zeros((steps,)), initializer=state)
                return tuple(tf.transpose(s, [1, 0] + list(range(2, len(s.shape))))
                             for s in states)

            cache[key] = fn
        return fn(state)

    def _torch_run(self, state, steps):
        import torch

        variables = self.variables
        values = [v.value.detach() for v in variables]
        with torch.no_grad():
            step = self._torch_step(state, variables, values)
            out = []
            for _ in range(steps):
                state = tuple(step(state, values))
                out.append(state)
        return _stack_time(out)

    def _torch_step(self, state, variables, values):
        """The step, traced for these shapes (cached), or eager if it cannot be traced."""
        import torch

        cache = self._run_cache()
        key = ("torch", tuple(tuple(s.shape) for s in state), len(variables))
        traced = cache.get(key)

        def eager(state, values):
            return self.run_step(state)

        if traced is None:
            def pure(*args):
                n = len(state)
                mapping = list(zip(variables, args[n:]))
                with keras.StatelessScope(state_mapping=mapping):
                    return tuple(self.run_step(tuple(args[:n])))

            try:
                fn = torch.jit.trace(pure, (*state, *values), check_trace=False)
                ref = eager(state, values)
                got = fn(*state, *values)
                if not all(torch.allclose(a, b, rtol=1e-5, atol=1e-6, equal_nan=True)
                           for a, b in zip(ref, got)):
                    raise RuntimeError("traced step differs")
                traced = lambda state, values: fn(*state, *values)  # noqa: E731
            except Exception:  # noqa: BLE001 - data-dependent Python control flow etc.
                traced = eager
            cache[key] = traced
        return traced
