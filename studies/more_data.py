"""Get more data: the learning curve, training-set size against train and validation score.

"This is the approach that often yields the best marginal returns": the same network
(Dense(64), rmsprop, 30 epochs) is trained on 5% to 100% of each cross-validation training
fold of the digits data. The training score is measured on the rows it trained on, the
validation score on the fold's held-apart part: the gap between them, large on little
data, closes as data grows. The report's gap plot is the learning curve.
"""

import sys

import tunekit as tk
from tunekit import cli, datasets


def main(argv=None) -> int:
    opts = cli.study_options("more_data", argv, description=__doc__)
    X, y = datasets.load("digits", n_samples=opts.pick(150, None, None), random_state=opts.seed)
    clf = tk.KerasClassifier(
        tk.builders.mlp, model__hidden=(64,), epochs=opts.pick(2, 30, 100), random_state=opts.seed
    )
    sizes = opts.pick(
        [0.3, 1.0], [0.05, 0.1, 0.2, 0.4, 0.7, 1.0], [0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0]
    )
    return cli.study_main(opts, clf, X, y, train_sizes=sizes, cv=opts.pick(2, 5, 5))


if __name__ == "__main__":
    sys.exit(main())
