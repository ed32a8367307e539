"""What an ``mlp()`` stack's epochs cost: a new stack shape, the random knobs, one draw.

Three parts, in one process, on the engine's backend (TensorFlow by default):

* ``shapes``: stacks of one structure (Dense(64)-Dense(64), RMSprop, 24 members, 235
  training rows each, with the README main job's knobs: L1, L2, dropout and both Gaussian
  noises) with batch sizes 16, 32, 64, 256 and 512, then 16 again: the first
  epoch of each (trace and XLA compilation of a new shape, or neither) against its median
  epoch. The epoch is traced once per structure; a shape after the first is XLA's
  compilation only, and 256 and 512 are one shape (all the rows in one step);
* ``knobs``: the median epoch (from the third) of 24 and 96 members, batch 16, with no
  random knob, dropout, dropout and both Gaussian noises, L1/L2 penalties, and all of them;
* ``draws``: microseconds per draw of a (24, 16, 64) tensor inside a compiled loop of
  1,000 draws: the engine's uniform and normal numbers, and the Box-Muller formula the
  engine used for its normal numbers before (``sqrt(-2 log u1) cos(2 pi u2)``).

Usage::

    python benchmarks/engine_epochs.py
    python benchmarks/engine_epochs.py --parts draws
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from tunekit.engine import MemberSpec, StackConfig, train_stack
from tunekit.engine._backend import get_backend

ROWS, FEATURES = 353, 10


def _data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(ROWS, FEATURES)).astype("float32")
    return X, rng.normal(size=(ROWS, 1)).astype("float32")


def _stack(batch: int, n_members: int, epochs: int, **knobs):
    config = StackConfig(FEATURES, (64, 64), "relu", 1, "linear", "rmsprop", batch)
    members = [MemberSpec(train_idx=np.arange(235), epochs=epochs, seed=m, **knobs)
               for m in range(n_members)]  # fmt: skip
    X, Y = _data()
    return train_stack(config, members, X, Y, random_state=0)


def shapes() -> list[str]:
    lines = ["| batch size | first epoch s | median epoch s |", "|---|---|---|"]
    for batch in (16, 32, 64, 256, 512, 16):
        times = _stack(batch, 24, 20, **KNOBS["all"]).epoch_times  # the main job's knobs
        lines.append(f"| {batch} | {times[0]:.3f} | {np.median(times[2:]):.4f} |")
        print(lines[-1], flush=True)
    return lines


KNOBS = {
    "none": {},
    "dropout": {"dropout": 0.1},
    "dropout and noises": {"dropout": 0.1, "noise": 0.02, "activation_noise": 0.03},
    "l1 and l2": {"l1": 1e-3, "l2": 1e-3},
    "all": {"dropout": 0.1, "noise": 0.02, "activation_noise": 0.03, "l1": 1e-3, "l2": 1e-3},
}


def knobs() -> list[str]:
    lines = ["| knobs | 24 members, ms per epoch | 96 members, ms per epoch |", "|---|---|---|"]
    for name, values in KNOBS.items():
        cells = [np.median(_stack(16, m, 30, **values).epoch_times[2:]) * 1e3 for m in (24, 96)]
        lines.append(f"| {name} | {cells[0]:.1f} | {cells[1]:.1f} |")
        print(lines[-1], flush=True)
    return lines


def draws() -> list[str]:
    backend = get_backend()
    if backend.name != "tensorflow":
        return ["draws: TensorFlow only"]
    tf = backend.tf
    seeds = tf.constant(np.arange(24, dtype="int32"))
    shape = (24, 16, 64)

    def box_muller(shape, seeds, counter):
        bits, pcg = backend._bits(shape, seeds, counter)
        u1 = (tf.cast(tf.bitwise.right_shift(bits, 8), tf.float32) + 0.5) * (2.0**-24)
        u2 = tf.cast(tf.bitwise.right_shift(pcg(bits), 8), tf.float32) * (2.0**-24)
        return tf.sqrt(-2.0 * tf.math.log(u1)) * tf.cos(6.283185307179586 * u2)

    lines = ["| draw of (24, 16, 64) | microseconds |", "|---|---|"]
    arms = [("uniform", backend.uniform), ("normal (the engine's)", backend.normal),
            ("normal by Box-Muller (before)", box_muller)]  # fmt: skip
    for name, draw in arms:

        @tf.function(jit_compile=True)
        def loop(acc, draw=draw):
            body = lambda i, a: (i + 1, a + draw(shape, seeds, i))  # noqa: E731
            return tf.while_loop(lambda i, a: i < 1000, body, (0, acc))[1]

        acc = tf.zeros(shape)
        loop(acc)  # compile
        runs = []
        for _ in range(3):
            start = time.perf_counter()
            loop(acc).numpy()
            runs.append(time.perf_counter() - start)
        lines.append(f"| {name} | {np.median(runs) * 1e3:.1f} |")  # s per 1,000 draws = ms
        print(lines[-1], flush=True)
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", default="shapes,knobs,draws")
    args = parser.parse_args(argv)
    parts = {"shapes": shapes, "knobs": knobs, "draws": draws}
    out = []
    for name in args.parts.split(","):
        out += ["", f"{name}:", *parts[name]()]
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
