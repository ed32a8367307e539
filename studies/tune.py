"""Steps 2 and 3 at once: an Optuna study over every technique together, with pruning.

TPE samples tunekit.spaces.overfitting() (L2, L1, dropout, input and activation noise,
batch size 16 to 512, epochs 5 to 100) for a Dense(64)-Dense(64) regressor of disease
progression on the diabetes data; the median pruner stops hopeless trials inside their
first folds. The study is kept in its storage: run it again, or with more --n-trials, and
it continues; several workers (tunekit run --workers N, or --gpus 0,1) share it.
"""

import sys

import tunekit as tk
from tunekit import cli, datasets


def main(argv=None) -> int:
    opts = cli.study_options("tune", argv, description=__doc__, n_trials=(2, 200, 1000))
    X, y = datasets.load("diabetes", n_samples=opts.pick(100, None, None), random_state=opts.seed)
    reg = tk.KerasRegressor(tk.builders.mlp, model__hidden=(64, 64), random_state=opts.seed)
    space = tk.Space(
        {
            **tk.spaces.overfitting(label_smoothing=False),
            "epochs": opts.pick(tk.Int(1, 2), tk.Int(5, 100, log=True), tk.Int(5, 100, log=True)),
        }
    )
    return cli.study_main(opts, reg, X, y, space=space, scale=True, cv=opts.pick(2, 3, 5))


if __name__ == "__main__":
    sys.exit(main())
