"""A study's configuration fingerprint: trials of different experiments are never mixed."""

from __future__ import annotations

import hashlib
import json

import numpy as np

__all__ = ["check_config", "study_config"]


def _jsonable_param(value):
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    if isinstance(value, np.integer | np.floating):
        return value.item()
    if isinstance(value, tuple | list):
        return [_jsonable_param(v) for v in value]
    if callable(value):
        return f"{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', '?')}"
    return None


def _fingerprint(data) -> str:
    if data is None:
        return "none"
    arr = np.ascontiguousarray(np.asarray(data))
    step = max(1, len(arr) // 2000)
    digest = hashlib.sha1(str((arr.shape, arr.dtype.str)).encode())
    digest.update(np.ascontiguousarray(arr[::step]).tobytes())
    return digest.hexdigest()[:16]


def study_config(estimator, X, y, **settings) -> dict:
    params = {}
    for name, value in sorted(estimator.get_params(deep=True).items()):
        encoded = _jsonable_param(value)
        if encoded is not None or value is None:
            params[name] = encoded
    return {
        "estimator": type(estimator).__name__,
        "params": params,
        "X": _fingerprint(X),
        "y": _fingerprint(y),
        **{k: v if isinstance(v, list | dict) else _jsonable_param(v) for k, v in settings.items()},
    }


def check_config(study, config: dict, label: str) -> None:
    stored = study.user_attrs.get("tunekit_config")
    if stored is None:
        study.set_user_attr("tunekit_config", json.loads(json.dumps(config)))
        return
    config = json.loads(json.dumps(config))
    if stored == config:
        return
    diffs = []
    for key in sorted(set(stored) | set(config)):
        a, b = stored.get(key), config.get(key)
        if key == "params" and isinstance(a, dict) and isinstance(b, dict):
            diffs += [
                f"{k}: {a.get(k)!r} -> {b.get(k)!r}"
                for k in sorted(set(a) | set(b))
                if a.get(k) != b.get(k)
            ]
        elif a != b:
            diffs.append(f"{key}: {a!r} -> {b!r}" if len(repr(a)) < 80 else f"{key} changed")
    raise ValueError(
        f"study {study.study_name!r} in {label} was run with other settings, so its trials "
        f"cannot be mixed with these ({'; '.join(diffs[:6])}). Resume it with the same "
        "settings, or start a new study: --study-name NAME (or a new --storage)."
    )
