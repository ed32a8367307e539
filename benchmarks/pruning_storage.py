"""What pruning costs and saves once the study lives in a storage, with refilled slots.

    python benchmarks/pruning_storage.py [--trials 150] [--seeds 0 1 2] [--storage sqlite]
                                         [--builder mlp]

The headline study (the lecture's MLP (16, 16) on breast cancer, 20 epochs, l2 and
dropout, 5-fold CV, batches on the engine) in an SQLite study (``--storage memory``: in
memory; ``--storage URL``: that database); ``--builder any``: the same network from a
user's own Keras builder, on any builder's trainer (``engine.keras_stack``). Three arms
side by side for each seed:

- ``median``: the median pruner, refilled slots (the default);
- ``none``: ``NopPruner``, refilled slots;
- ``median, whole``: the median pruner, whole batches (``refill_slots=False``).

Every arm samples with ``RandomSampler(seed)``, which draws each trial's parameters in
order from one generator whatever the pruner does, so the arms run the same parameter
sets (an enqueued list in all but name; the script checks that they are equal). Prints
the wall time, member-epochs, trials pruned and best CV of each arm, and the fractions
of wall time and member-epochs that pruning saved against ``none``.
"""

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import optuna
from sklearn.datasets import load_breast_cancer
from sklearn.preprocessing import StandardScaler

import tunekit as tk
from tunekit.space import Space
from tunekit.strategies.optuna_search import OptunaSearchCV

SPACE = {"model__l2": tk.Float(1e-5, 1e-2, log=True), "model__dropout": tk.Float(0.0, 0.5)}


def dense_16_16(input_shape, l2=0.0, dropout=0.0, output_units=1, output_activation="sigmoid"):
    """``mlp(hidden=(16, 16))``'s network, written as a user's own builder."""
    import keras

    x = inputs = keras.Input(input_shape)
    for _ in range(2):
        x = keras.layers.Dense(16, activation="relu",
                               kernel_regularizer=keras.regularizers.L2(l2))(x)  # fmt: skip
        x = keras.layers.Dropout(dropout)(x)
    return keras.Model(inputs, keras.layers.Dense(output_units, activation=output_activation)(x))


BUILDERS = {"mlp": (tk.builders.mlp, {"model__hidden": (16, 16)}), "any": (dense_16_16, {})}
ARMS = (("median", None, True), ("none", "nop", True), ("median, whole", None, False))


def run(X, y, seed: int, trials: int, pruner, refill: bool, storage: str, name: str,
        builder: str = "mlp") -> dict:  # fmt: skip
    fn, own = BUILDERS[builder]
    est = tk.KerasClassifier(fn, **own, epochs=20, batch_size=32, verbose=0, random_state=seed)
    search = OptunaSearchCV(
        est, Space(SPACE), cv=5, n_trials=trials, storage=storage, study_name=name,
        sampler=optuna.samplers.RandomSampler(seed=seed),
        pruner=optuna.pruners.NopPruner() if pruner == "nop" else None,
        refit=False, verbose=0, random_state=seed, refill_slots=refill,
    )  # fmt: skip
    start = time.perf_counter()
    search.fit(X, y)
    wall = time.perf_counter() - start
    study = search.study_
    epochs = sum(t.user_attrs.get("epochs_spent", 0) for t in study.trials)
    pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)
    params = sorted(tuple(sorted(t.params.items())) for t in study.trials)
    return {"wall": wall, "epochs": epochs, "pruned": pruned, "best": search.best_score_,
            "params": params}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=150)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--storage", default="sqlite",
                        help="'sqlite' (a temporary file), 'memory' (Optuna's in-memory "
                        "storage) or a URL")  # fmt: skip
    parser.add_argument("--builder", choices=sorted(BUILDERS), default="mlp",
                        help="mlp: tunekit.builders.mlp; any: the same network from a "
                        "builder of one's own, on any builder's trainer")  # fmt: skip
    args = parser.parse_args()
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X).astype("float32")
    print(f"{args.trials} trials, builder {args.builder}, storage {args.storage}, "
          f"load {os.getloadavg()[0]:.1f}")  # fmt: skip
    print("| seed | arm | wall s | member-epochs | pruned | best CV | wall saved | "
          "member-epochs saved | saved ratio |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        run(X, y, 0, 12, None, True, None, None, args.builder)  # warm-up: the compiled step
        for seed in args.seeds:
            out = {}
            for label, pruner, refill in ARMS:
                storage = args.storage
                if storage == "sqlite":
                    storage = f"sqlite:///{tmp}/{label.replace(', ', '-')}-{seed}.db"
                name = f"pruning-{label}-{seed}-{time.time_ns()}"
                if storage == "memory":
                    storage = name = None
                out[label] = run(X, y, seed, args.trials, pruner, refill, storage, name,
                                 args.builder)  # fmt: skip
            none = out["none"]
            same = all(arm["params"] == none["params"] for arm in out.values())
            for label, arm in out.items():
                wall = 1 - arm["wall"] / none["wall"]
                epochs = 1 - arm["epochs"] / none["epochs"]
                ratio = f"{wall / epochs:.2f}" if epochs > 0 else "-"
                print(f"| {seed} | {label} | {arm['wall']:.1f} | {arm['epochs']} | "
                      f"{arm['pruned']} | {arm['best']:.4f} | {wall:.0%} | {epochs:.0%} | "
                      f"{ratio} |", flush=True)  # fmt: skip
            print(f"seed {seed}: the arms ran the same {len(none['params'])} parameter sets: "
                  f"{same}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
