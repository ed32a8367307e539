"""The estimators: scikeras's wrappers, fixed and extended (the only scikeras import)."""

from __future__ import annotations

import inspect
import numbers
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
import scipy.sparse as sp
from scikeras import wrappers as _sk
from scikeras._utils import (
    accepts_kwargs,
    get_loss_class_function_or_string,
    has_param,
    route_params,
    try_to_convert_strings_to_classes,
)
from scikeras.utils import metric_name
from sklearn.model_selection import train_test_split
from sklearn.utils import ClassifierTags, RegressorTags

from tunekit import builders
from tunekit._checks import check_estimator_params
from tunekit.estimators.inputs import (
    as_csr,
    as_shape,
    check_fits_floatx,
    check_not_ragged,
    check_sparse,
    count,
    is_numeric_dtype_pd,
    isnan_mask,
    keras_accepts,
    model_input_shapes,
    n_samples_for_full_batch,
    same_value,
    several_outputs,
    shape_message,
)
from tunekit.estimators.seeds import seeded
from tunekit.exceptions import DivergedError, InputShapeError

__all__ = ["KerasClassifier", "KerasRegressor"]


class _DivergenceGuard(keras.callbacks.Callback):
    """Stop training with :class:`DivergedError` when the epoch loss is not finite."""

    def __init__(self, epochs: int):
        super().__init__()
        self.epochs = epochs

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(float(loss)):
            raise DivergedError(
                f"training diverged: the training loss became {float(loss)} at epoch "
                f"{epoch + 1} of {self.epochs}. Lower the learning rate "
                "(optimizer__learning_rate=...), clip gradients (optimizer__clipnorm=1.0) "
                "or scale the inputs (StandardScaler in a Pipeline)."
            )


class KerasEstimator:
    """Behaviour shared by tunekit's classifier and regressor (mixed into scikeras)."""

    _estimator_type_name: str = ""

    def __init__(
        self,
        model: Callable[..., keras.Model] | keras.Model | None = None,
        *,
        input_shape: Sequence[int] | None = None,
        early_stopping: int | None = None,
        validation_fraction: float = 0.1,
        optimizer: Any = "rmsprop",
        loss: Any = None,
        metrics: Any = None,
        epochs: int = 1,
        batch_size: int | None = None,
        random_state: int | np.random.RandomState | None = None,
        verbose: int = 0,
        **kwargs,
    ):
        super().__init__(
            model=model,
            optimizer=optimizer,
            loss=loss,
            metrics=metrics,
            epochs=epochs,
            batch_size=batch_size,
            random_state=random_state,
            verbose=verbose,
            **kwargs,
        )
        self.input_shape = input_shape
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction

    # ------------------------------------------------------------------ input checks
    def _check_input(self, X, y, *, fitting: bool):
        name = type(self).__name__
        if sp.issparse(X):
            shape = check_sparse(X, name)
            self._check_target(y, fitting=fitting)
            return shape
        dtypes = getattr(X, "dtypes", None)
        if dtypes is not None and hasattr(X, "columns"):  # pandas DataFrame
            bad = [
                str(c)
                for c, dt in zip(X.columns, dtypes, strict=True)
                if not is_numeric_dtype_pd(dt)
            ]
            if bad:
                raise ValueError(
                    f"{name} needs numeric features, but X has non-numeric columns {bad}. "
                    "Encode them first, e.g. OneHotEncoder or OrdinalEncoder in a "
                    "ColumnTransformer before the estimator in a Pipeline."
                )
        try:
            arr = np.asarray(X)
        except ValueError:
            check_not_ragged(X, name)
            return None  # exotic input: let scikit-learn's checks speak
        except Exception:
            return None
        if arr.dtype == object and arr.ndim == 1:
            check_not_ragged(X, name)
        if arr.ndim == 0 or arr.ndim == 1:
            raise ValueError(
                f"{name} expects X to be 2-D (n_samples, n_features) or more, but got "
                f"an array of shape {arr.shape}. Reshape your data with X.reshape(-1, 1) "
                "for a single feature or X.reshape(1, -1) for a single sample."
            )
        if arr.shape[0] == 0:
            raise ValueError(
                f"Found array with 0 sample(s) (shape={arr.shape}) while a minimum of 1 is "
                f"required by {name}: X is empty."
            )
        if 0 in arr.shape[1:]:
            raise ValueError(
                f"Found array with 0 feature(s) (shape={arr.shape}) while a minimum of 1 is "
                f"required by {name}."
            )
        if arr.dtype.kind in "OUS":
            try:
                arr = arr.astype(np.float64)
            except TypeError as err:
                raise TypeError(
                    f"{name} needs numeric features, but X has dtype {arr.dtype} holding "
                    f"values that are not numbers ({err}). Encode them first (OneHotEncoder "
                    "or OrdinalEncoder in a Pipeline)."
                ) from None
            except ValueError as err:
                raise ValueError(
                    f"{name} needs numeric features, but X has dtype {arr.dtype} holding "
                    f"values that are not numbers ({err}). Encode them first (OneHotEncoder "
                    "or OrdinalEncoder in a Pipeline)."
                ) from None
        if arr.dtype.kind in "fc" and not np.all(np.isfinite(arr)):
            n_nan = int(np.isnan(arr).sum())
            n_inf = int(np.isinf(arr).sum())
            raise ValueError(
                f"Input X contains NaN or infinity ({n_nan} NaN, {n_inf} infinite "
                f"values); {name} cannot train on them. Impute them first, e.g. "
                "SimpleImputer in a Pipeline."
            )
        if arr.dtype.kind in "fiu":
            check_fits_floatx(arr, name)
        self._check_target(y, fitting=fitting)
        return arr.shape

    def _check_target(self, y, *, fitting: bool) -> None:
        name = type(self).__name__
        if y is None:
            return
        y_arr = np.asarray(y)
        if self._estimator_type_name == "regressor":
            try:
                y_float = y_arr.astype(np.float64)
            except (TypeError, ValueError):
                raise ValueError(
                    f"{name} needs a numeric target, but y has dtype {y_arr.dtype}."
                ) from None
            if not np.all(np.isfinite(y_float)):
                raise ValueError(
                    f"Input y contains NaN or infinity ({int(np.isnan(y_float).sum())} NaN, "
                    f"{int(np.isinf(y_float).sum())} infinite values); drop or impute those "
                    "samples before fitting."
                )
        elif fitting:
            labels = np.unique(y_arr[~isnan_mask(y_arr)]) if y_arr.size else y_arr
            is_column = y_arr.ndim == 2 and y_arr.shape[1] == 1
            if (y_arr.ndim == 1 or is_column) and labels.size < 2:
                raise ValueError(
                    f"{name} needs at least 2 classes in y, but y has 1 class "
                    f"({labels.tolist()}). Check the labels, or use a stratified split so every "
                    "training fold holds each class."
                )

    def _validate_data(self, X=None, y=None, reset: bool = False, y_numeric: bool = False):
        if y is not None and not hasattr(y, "ndim"):
            y = np.asarray(y)
        if y is not None and not reset:
            self._check_target_ndim(y)
        if X is not None:
            shape = self._check_input(X, y, fitting=reset)
            expected = None
            if reset and getattr(self, "input_shape", None) is not None:
                expected = as_shape(self.input_shape)
            elif not reset and hasattr(self, "X_shape_"):
                expected = tuple(self.X_shape_[1:])
            got = None if shape is None else tuple(shape[1:])
            if expected is not None and got is not None and got != expected:
                raise InputShapeError(shape_message(type(self).__name__, got, expected))
        elif y is not None:
            self._check_input(np.zeros((1, 1)), y, fitting=reset)
        if X is None or not sp.issparse(X):
            return super()._validate_data(X=X, y=y, reset=reset, y_numeric=y_numeric)
        return self._validate_sparse(X, y, reset=reset, y_numeric=y_numeric)

    def _validate_sparse(self, X, y, *, reset: bool, y_numeric: bool):
        """scikeras's checks on a sparse ``X``, which reaches the model in CSR, uncopied.

        scikeras converts sparse matrices to LIL, a copy with one Python list
        per row; Keras slices CSR. scikeras's checks get a CSR array that shares
        ``X``'s buffers, and the encoder and the model a CSR matrix (or array,
        as ``X`` was) on the same buffers.
        """
        matrix = sp.isspmatrix(X)
        X = as_csr(X)
        view = sp.csr_array(X) if matrix else X  # a sparse array is not converted to LIL
        view, y = super()._validate_data(X=view, y=y, reset=reset, y_numeric=y_numeric)
        return (sp.csr_matrix(view) if matrix else view), y

    def _check_target_ndim(self, y) -> None:
        """Refuse a target whose number of dimensions changed since the model was built.

        Like scikeras, ``y`` keeps the dimensions it was fitted with (a column
        ``(n, 1)`` stays a column in ``predict``), so ``partial_fit`` and warm
        starts must pass the same kind of ``y``.
        """
        expected = getattr(self, "y_ndim_", None)
        if expected is None or y.ndim == expected:
            return
        how = "y.reshape(-1, 1)" if expected == 2 else "np.ravel(y)"
        raise ValueError(
            f"y has {y.ndim} dimensions, but this {type(self).__name__} is expecting "
            f"{expected} dimensions in y: it was fitted on y of {expected} dimensions, and "
            f"the target's dimensions cannot change between fits. Pass y as at the first "
            f"fit ({how}), or call fit() without warm_start to start over."
        )

    def fit(self, X, y, sample_weight=None, **kwargs):
        """Build a new model with the builder and train it on ``(X, y)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, *input_shape)
            Training samples; numeric, finite, dense.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Per-sample weights of the loss.
        **kwargs
            Passed to ``keras.Model.fit`` (prefer ``fit__<name>`` parameters).

        Returns
        -------
        self : object
            The fitted estimator.
        """
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None."
            )
        check_estimator_params(self)  # every knob in its valid range, before any training
        return super().fit(X, y, sample_weight=sample_weight, **kwargs)

    # ------------------------------------------------------------------ model building
    def _check_model_param(self):
        """Return the function that builds the model.

        :func:`tunekit.builders.mlp` is the default only when nothing else
        says how to build: no ``model``, no ``build_fn`` and no
        ``_keras_build_fn`` method on a subclass. Everything else is
        scikeras's rule.
        """
        if self.model is None and self.build_fn is None and not hasattr(self, "_keras_build_fn"):
            return builders.mlp
        return super()._check_model_param()

    def _default_loss(self):
        raise NotImplementedError

    def _output_spec(self) -> dict:
        raise NotImplementedError

    def _resolved_loss(self):
        return self.loss if self.loss is not None else self._default_loss()

    def _get_compile_kwargs(self):
        kwargs = super()._get_compile_kwargs()
        if self.loss is None:
            loss = self._default_loss()
            kwargs["loss"] = try_to_convert_strings_to_classes(
                loss, get_loss_class_function_or_string
            )
        return kwargs

    def _build_keras_model(self) -> keras.Model:
        final_build_fn = self._check_model_param()
        params = self.get_params()
        build_params = route_params(
            params,
            destination="model",
            pass_filter=getattr(self, "_user_params", set()),
            strict=True,
        )
        is_model_instance = isinstance(self.model, keras.Model)
        if not is_model_instance:
            takes_kwargs = accepts_kwargs(final_build_fn)
            sample_shape = tuple(self.X_shape_[1:])

            def wants(name):
                return has_param(final_build_fn, name) or takes_kwargs

            if has_param(final_build_fn, "input_shape"):
                build_params.setdefault("input_shape", sample_shape)
            asked = [
                key for key in _OUTPUT_KEYS
                if has_param(final_build_fn, key) and key not in build_params
            ]
            if asked:  # only a builder that asks for the output layer gets one inferred
                spec = self._output_spec()
                build_params.update({key: spec[key] for key in asked if key in spec})
            if has_param(final_build_fn, "seed"):
                build_params.setdefault("seed", self._random_state)
            if wants("meta"):
                build_params["meta"] = self._get_metadata()
            if wants("compile_kwargs"):
                build_params["compile_kwargs"] = self._get_compile_kwargs()
            if wants("params"):
                build_params["params"] = self.get_params()
        with seeded(self._random_state):
            model = final_build_fn(**build_params)
        return model

    def _check_model_input(self, X) -> None:
        """Check what the model receives (``X`` after the ``feature_encoder``) against its inputs.

        Every input of the model is compared with the array that feeds it (by
        position, or by name for a dict), so a reshaping encoder is judged by
        its output, and a multi-input model input by input.
        """
        for declared, got in model_input_shapes(self.model_, X):
            if not keras_accepts(declared, got):
                raise InputShapeError(
                    shape_message(type(self).__name__, got, declared, where="the built model")
                )

    # ------------------------------------------------------------------ training
    def _fit_keras_model(
        self, X, y, sample_weight, warm_start: bool, epochs: int, initial_epoch: int, **kwargs
    ) -> None:
        self._check_compiled_loss()
        self._check_model_input(X)
        params = self.get_params()
        fit_args = route_params(params, destination="fit", pass_filter=self._fit_kwargs)
        fit_args["epochs"] = initial_epoch + epochs
        fit_args["initial_epoch"] = initial_epoch
        extra_callbacks = kwargs.pop("callbacks", None) or []
        fit_args.update(kwargs)
        for key in ("batch_size", "validation_batch_size"):
            if fit_args.get(key) == -1:
                fit_args[key] = n_samples_for_full_batch(X, key)
        fit_args = {k: v for k, v in fit_args.items() if not k.startswith("callbacks")}
        callbacks = [*self._fit_callbacks, *extra_callbacks]
        callbacks.append(_DivergenceGuard(fit_args["epochs"]))

        stopper = None
        patience = self.early_stopping
        if patience is not None:
            if isinstance(patience, bool) or not isinstance(patience, numbers.Integral):
                raise TypeError(
                    f"early_stopping must be None or a patience in epochs (int >= 0), "
                    f"got {patience!r}"
                )
            if patience < 0:
                raise ValueError(f"early_stopping must be >= 0 epochs, got {patience}")
            frac = self.validation_fraction
            if not (isinstance(frac, numbers.Real) and 0.0 < frac < 1.0):
                raise ValueError(
                    f"validation_fraction must lie in (0, 1) when early_stopping is set, "
                    f"got validation_fraction={frac!r}"
                )
            X, y, sample_weight, val = self._carve_validation(X, y, sample_weight, frac)
            fit_args["validation_data"] = val
            fit_args.pop("validation_split", None)
            stopper = keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=int(patience), restore_best_weights=True
            )
            callbacks.append(stopper)
        fit_args["sample_weight"] = sample_weight
        fit_args["callbacks"] = callbacks

        with seeded(self._random_state):
            hist = self.model_.fit(x=X, y=y, **fit_args)

        if not warm_start or not hasattr(self, "history_") or initial_epoch == 0:
            self.history_ = defaultdict(list)
        for key, val in hist.history.items():
            if not (key == "loss" or key.startswith("val_")):
                try:
                    key = metric_name(key)
                except ValueError:
                    pass
            self.history_[key] += list(val)
        self.n_epochs_ = len(self.history_["loss"])
        self.best_epoch_ = None if stopper is None else initial_epoch + int(stopper.best_epoch) + 1

    def _check_compiled_loss(self) -> None:
        """Refuse a model compiled with a list or dict of losses that holds no loss at all."""
        loss = self.model_.loss
        entries = loss.values() if isinstance(loss, dict) else loss
        if not isinstance(loss, (list, tuple, dict)):
            return
        if any(callable(entry) or isinstance(entry, str) for entry in entries):
            return
        shown = dict(loss) if isinstance(loss, dict) else list(loss)
        raise ValueError(
            f"No valid loss function found: the model is compiled with loss={shown!r}, which "
            "names no loss. You must provide a loss function to train: pass one (loss=\"mse\", "
            "loss=[\"mse\", \"binary_crossentropy\"] for two outputs, or loss=None for the "
            "loss inferred from the target), or compile the model with a loss inside the "
            "builder."
        )

    def _carve_validation(self, X, y, sample_weight, fraction):
        """Split a validation part off the data given to ``fit`` (never another set)."""
        n = X.shape[0]
        n_val = int(np.ceil(fraction * n))
        if n_val < 1 or n - n_val < 1:
            raise ValueError(
                f"validation_fraction={fraction} of {n} samples leaves "
                f"{n_val} for validation and {n - n_val} for training; both need at least "
                "1 sample. Use more data or early_stopping=None."
            )
        seed = self._random_state if self._random_state is not None else None
        stratify = None
        if self._estimator_type_name == "classifier" and y.ndim == 1:
            _, counts = np.unique(y, return_counts=True)
            if counts.min() >= 2 and n_val >= counts.size:
                stratify = y
        idx = np.arange(n)
        train_idx, val_idx = train_test_split(
            idx, test_size=n_val, random_state=seed, stratify=stratify
        )
        val = (X[val_idx], y[val_idx])
        if sample_weight is not None:
            val = (X[val_idx], y[val_idx], sample_weight[val_idx])
            sample_weight = sample_weight[train_idx]
        return X[train_idx], y[train_idx], sample_weight, val

    def __repr__(self) -> str:
        defaults = {}
        for klass in reversed(type(self).__mro__):
            init = klass.__dict__.get("__init__")
            if init is None or klass is object:
                continue
            for param in inspect.signature(init).parameters.values():
                if param.default is not inspect.Parameter.empty:
                    defaults[param.name] = param.default
        parts = []
        for key, value in self.get_params(deep=False).items():
            if key in defaults and same_value(defaults[key], value):
                continue
            shown = getattr(value, "__name__", None) if callable(value) else None
            parts.append(f"{key}={shown or repr(value)}")
        return f"{type(self).__name__}({', '.join(parts)})"

    # ------------------------------------------------------------------ tags
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.input_tags.allow_nan = False
        tags.input_tags.two_d_array = True
        tags.target_tags.required = True
        tags.target_tags.multi_output = True  # scikeras's "multioutput" tag
        tags.non_deterministic = self.random_state is None
        return tags


_OUTPUT_KEYS = ("output_units", "output_activation")


_DOC_COMMON = """
    Parameters
    ----------
    model : callable or keras.Model, default=None
        The builder (see :mod:`tunekit.builders`): a function returning a
        ``keras.Model``. ``None`` uses a subclass's ``_keras_build_fn`` method
        when it defines one (as in scikeras), else :func:`tunekit.builders.mlp`.
        Its keyword arguments are set as ``model__<name>`` parameters and can be
        searched.
    input_shape : tuple of int, default=None
        The shape of one sample, without the batch axis. ``None`` takes it from
        ``X`` at fit. When given, ``fit`` and ``predict`` raise a ``ValueError``
        naming both shapes if ``X`` does not match, before any training.
    early_stopping : int or None, default=None
        Patience in epochs. When set, a ``validation_fraction`` part of the data
        passed to ``fit`` is held out, training stops once the validation loss
        has not improved for this many epochs, and the best epoch's weights are
        restored (Keras's ``EarlyStopping(restore_best_weights=True)``).
    validation_fraction : float, default=0.1
        Fraction of the data passed to ``fit`` held out for early stopping
        (stratified for classifiers). Used only when ``early_stopping`` is set.
    optimizer : str or keras.optimizers.Optimizer, default="rmsprop"
        Optimizer; its parameters can be routed as ``optimizer__learning_rate``.
    loss : str, keras.losses.Loss or None, default=None
        ``None`` picks the loss from the target (see the class notes).
    metrics : list or None, default=None
        Keras metrics reported in ``history_``.
    epochs : int, default=1
        Number of epochs (the maximum when early stopping is on).
    batch_size : int or None, default=None
        Minibatch size (Keras's default of 32 when ``None``; ``-1`` for all samples).
    random_state : int, RandomState or None, default=None
        Seeds weight initialization, shuffling, dropout and noise. The same
        value gives identical results on the CPU, run to run. Unlike scikeras,
        TensorFlow op determinism is not switched on for the process.
    verbose : int, default=0
        Keras's verbosity during ``fit`` and ``predict``.
    **kwargs
        Any other scikeras parameter, and routed parameters such as
        ``model__l2``, ``fit__shuffle`` or ``optimizer__learning_rate``.

    Attributes
    ----------
    model_ : keras.Model
        The fitted Keras model.
    history_ : dict of list
        Per-epoch values of the loss and metrics (``val_*`` entries when early
        stopping ran).
    best_epoch_ : int or None
        The 1-based epoch whose weights were kept by early stopping; ``None``
        when early stopping did not run.
    n_epochs_ : int
        Number of epochs trained.
    n_features_in_ : int
        Number of features seen at fit.
"""


class KerasClassifier(KerasEstimator, _sk.KerasClassifier):
    __doc__ = (
        """A Keras classifier that is a scikit-learn classifier.

    With ``loss=None`` the loss and output layer follow the labels: binary
    labels get one sigmoid unit and binary cross-entropy; multiclass labels get
    one softmax unit per class and sparse categorical cross-entropy (categorical
    cross-entropy on one-hot labels when ``model__label_smoothing > 0``). Labels
    may be strings, booleans or any integers.
"""
        + _DOC_COMMON
        + """
    classes_ : ndarray of shape (n_classes,)
        The class labels.

    Examples
    --------
    >>> import numpy as np, tunekit as tk
    >>> X = np.random.RandomState(0).normal(size=(60, 4)).astype("float32")
    >>> y = (X[:, 0] > 0).astype(int)
    >>> clf = tk.KerasClassifier(tk.builders.mlp, model__hidden=(8,), epochs=2,
    ...                          random_state=0).fit(X, y)
    >>> clf.predict_proba(X[:2]).shape
    (2, 2)
    """
    )

    _estimator_type_name = "classifier"

    def _label_smoothing(self) -> float:
        return float(getattr(self, "model__label_smoothing", 0.0) or 0.0)

    def _default_loss(self):
        target_type = getattr(self, "target_type_", None)
        if target_type in ("multiclass", "multiclass-multioutput"):
            if self._label_smoothing() > 0:
                return "categorical_crossentropy"
            return "sparse_categorical_crossentropy"
        return "binary_crossentropy"

    @property
    def target_encoder(self):
        categories = "auto" if self.classes_ is None else [self.classes_]
        return _sk.ClassifierLabelEncoder(loss=self._resolved_loss(), categories=categories)

    def _output_spec(self) -> dict:
        if several_outputs(self):
            return {}
        n_classes = count(getattr(self, "n_classes_", None))
        if self.target_type_ == "binary":
            return {"output_units": 1, "output_activation": "sigmoid"}
        if self.target_type_ == "multiclass" and n_classes is not None:
            return {"output_units": n_classes, "output_activation": "softmax"}
        if self.target_type_ == "multilabel-indicator" and n_classes is not None:
            return {"output_units": n_classes, "output_activation": "sigmoid"}
        return {}

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.estimator_type = "classifier"
        # scikeras's "poor_score": its default fits are too short for sklearn's score checks
        tags.classifier_tags = ClassifierTags(poor_score=True)
        tags.regressor_tags = None
        return tags


class KerasRegressor(KerasEstimator, _sk.KerasRegressor):
    __doc__ = (
        """A Keras regressor that is a scikit-learn regressor.

    With ``loss=None`` the loss is the mean squared error and the output layer
    has one linear unit per target column.
"""
        + _DOC_COMMON
        + """
    Examples
    --------
    >>> import numpy as np, tunekit as tk
    >>> X = np.random.RandomState(0).normal(size=(60, 3)).astype("float32")
    >>> y = X @ np.array([1.0, -1.0, 0.5])
    >>> reg = tk.KerasRegressor(tk.builders.mlp, model__hidden=(8,), epochs=2,
    ...                         random_state=0).fit(X, y)
    >>> reg.predict(X[:2]).shape
    (2,)
    """
    )

    _estimator_type_name = "regressor"

    def _default_loss(self):
        return "mean_squared_error"

    def _output_spec(self) -> dict:
        if several_outputs(self):
            return {"output_activation": "linear"}
        ndim = getattr(self, "y_ndim_", 1)
        units = 1 if ndim == 1 else int(self._n_targets)
        return {"output_units": units, "output_activation": "linear"}

    def _validate_data(self, X=None, y=None, reset: bool = False, y_numeric: bool = False):
        X, y = super()._validate_data(X=X, y=y, reset=reset, y_numeric=y_numeric)
        if reset and y is not None:
            self._n_targets = 1 if y.ndim == 1 else y.shape[1]
        return X, y

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.estimator_type = "regressor"
        tags.regressor_tags = RegressorTags(poor_score=True)
        tags.classifier_tags = None
        return tags
