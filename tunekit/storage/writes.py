"""Several user attributes of a trial, its parameters, or several trials' reports, in one
storage transaction."""

from __future__ import annotations

import json
from typing import Any

# Optuna has no public call that writes several attributes in one transaction
from optuna import distributions
from optuna.storages._rdb import models
from optuna.storages._rdb.storage import _create_scoped_session
from sqlalchemy.dialects import postgresql, sqlite

from tunekit.storage.reconnect import ReconnectingRDBStorage, rdb_backend, with_reconnects

__all__ = ["report_all", "set_user_attrs", "suggest_in_one_transaction"]


def set_user_attrs(trial, attrs: dict) -> None:
    """Set several user attributes of a running trial in one storage transaction.

    ``trial.set_user_attr`` commits each attribute on its own (a transaction
    and a few round trips each); a database storage gets them all in one
    transaction here, as one multi-row upsert on SQLite and PostgreSQL. The
    stored layout is the same as with ``set_user_attr`` one by one.

    Parameters
    ----------
    trial : optuna.Trial
        A running trial.
    attrs : dict
        Attribute names and JSON-serializable values.
    """
    if not attrs:
        return
    backend = rdb_backend(trial.storage)
    if backend is None:
        for key, value in attrs.items():
            trial.storage.set_trial_user_attr(trial._trial_id, key, value)
    elif isinstance(backend, ReconnectingRDBStorage):
        with_reconnects(
            lambda: _upsert_user_attrs(backend, trial._trial_id, attrs), "set_user_attrs", backend
        )
    else:
        _upsert_user_attrs(backend, trial._trial_id, attrs)
    trial._cached_frozen_trial.user_attrs.update(attrs)


def _upsert_user_attrs(backend, trial_id: int, attrs: dict) -> None:
    with _create_scoped_session(backend.scoped_session, True) as session:
        trial = models.TrialModel.find_or_raise_by_id(trial_id, session)
        backend.check_trial_is_updatable(trial_id, trial.state)
        _upsert_user_attrs_in(session, backend, trial_id, attrs)


def _upsert_user_attrs_in(session, backend, trial_id: int, attrs: dict) -> None:
    """The attributes' rows, in ``session``'s transaction (the trial already checked)."""
    model = models.TrialUserAttributeModel
    dialect = backend.engine.name
    if dialect in ("sqlite", "postgresql"):
        insert = sqlite.insert if dialect == "sqlite" else postgresql.insert
        rows = [
            {"trial_id": trial_id, "key": key, "value_json": json.dumps(value)}
            for key, value in attrs.items()
        ]
        statement = insert(model).values(rows)
        session.execute(
            statement.on_conflict_do_update(
                index_elements=[model.trial_id, model.key],
                set_={"value_json": statement.excluded.value_json},
            )
        )
    else:  # other databases: Optuna's own statement per attribute, still one transaction
        for key, value in attrs.items():
            backend._set_trial_attr_without_commit(session, model, trial_id, key, value)


def report_all(reports: list) -> None:
    """``trial.report(value, step)`` for every ``(trial, step, value)``, in one transaction.

    An Optuna batch reports every trial's score after every epoch: one
    transaction each was one commit per trial and epoch (on SQLite, about
    5 ms each). A database storage gets one epoch's reports in one
    transaction here (on SQLite and PostgreSQL one query for the trials'
    states and one multi-row insert); the stored rows are ``trial.report``'s. As
    ``trial.report`` does, a step a trial has already reported is left as it
    was. The trials must share one storage.

    Parameters
    ----------
    reports : list of (optuna.Trial, int, float)
        Running trials, the step and the value each reports.
    """
    fresh, seen = [], set()
    for trial, step, value in reports:
        step = int(step)
        if step in trial._cached_frozen_trial.intermediate_values or (id(trial), step) in seen:
            continue
        seen.add((id(trial), step))
        fresh.append((trial, step, float(value)))
    if not fresh:
        return
    backend = rdb_backend(fresh[0][0].storage)
    if backend is None:
        for trial, step, value in fresh:
            trial.report(value, step)
        return
    if isinstance(backend, ReconnectingRDBStorage):
        with_reconnects(lambda: _write_reports(backend, fresh), "report", backend)
    else:
        _write_reports(backend, fresh)
    for trial, step, value in fresh:
        trial._cached_frozen_trial.intermediate_values[step] = value


def _write_reports(backend, reports: list) -> None:
    model, trials = models.TrialIntermediateValueModel, models.TrialModel
    dialect = backend.engine.name
    with _create_scoped_session(backend.scoped_session, True) as session:
        if dialect not in ("sqlite", "postgresql"):  # Optuna's own statements, one transaction
            for trial, step, value in reports:
                backend._set_trial_intermediate_value_without_commit(
                    session, trial._trial_id, step, value
                )
            return
        # one query for the trials' states, one multi-row insert for the values
        ids = sorted({trial._trial_id for trial, _, _ in reports})
        query = session.query(trials.trial_id, trials.state).filter(trials.trial_id.in_(ids))
        states = dict(query.all())
        for trial_id in ids:
            if trial_id not in states:
                raise KeyError(models.NOT_FOUND_MSG)
            backend.check_trial_is_updatable(trial_id, states[trial_id])
        rows = []
        for trial, step, value in reports:
            stored, kind = model.intermediate_value_to_stored_repr(value)
            rows.append(
                {"trial_id": trial._trial_id, "step": step, "intermediate_value": stored,
                 "intermediate_value_type": kind}
            )  # fmt: skip
        insert = sqlite.insert if dialect == "sqlite" else postgresql.insert
        # a step already stored keeps its value, as trial.report leaves it
        statement = (
            insert(model)
            .values(rows)
            .on_conflict_do_nothing(index_elements=[model.trial_id, model.step])
        )
        session.execute(statement)


def suggest_in_one_transaction(space, trial, user_attrs: dict | None = None) -> dict[str, Any]:
    """``space.suggest(trial)``, the drawn parameters written in one storage transaction.

    Optuna writes each suggested parameter as it is drawn, one commit each;
    on a database storage they are collected here while ``space`` draws them
    (the draws themselves are Optuna's, in the same order) and written
    together: the stored rows are ``suggest``'s. Nothing is written if a draw
    fails. Other storages keep Optuna's own writes.

    Parameters
    ----------
    space : tunekit.Space
    trial : optuna.Trial
        A running trial.
    user_attrs : dict or None, default=None
        User attributes written after the parameters, in the same transaction
        on a database storage (as :func:`set_user_attrs` writes them).

    Returns
    -------
    params : dict
        What ``space.suggest(trial)`` returns.
    """
    storage = trial.storage
    backend = rdb_backend(storage)
    cache = getattr(storage, "_trial_id_to_study_id_and_number", None)
    if backend is None or cache is None or not hasattr(storage, "_studies"):
        params = space.suggest(trial)
        set_user_attrs(trial, user_attrs or {})
        return params
    pending: list = []
    trial.storage = _Collecting(storage, pending)
    try:
        params = space.suggest(trial)
    finally:
        trial.storage = storage
    attrs = dict(user_attrs or {})
    if pending or attrs:

        def write() -> None:
            _write_params(storage, backend, trial._trial_id, pending, attrs)

        if isinstance(backend, ReconnectingRDBStorage):
            with_reconnects(write, "suggest", backend)
        else:
            write()
        trial._cached_frozen_trial.user_attrs.update(attrs)
    return params


class _Collecting:
    """A trial's storage that keeps the parameters it is given; anything else goes through."""

    def __init__(self, storage, pending: list) -> None:
        self._storage, self._pending = storage, pending

    def set_trial_param(self, trial_id, param_name, param_value_internal, distribution) -> None:
        self._pending.append((param_name, param_value_internal, distribution))

    def __getattr__(self, name: str):
        return getattr(self._storage, name)


def _write_params(cached, backend, trial_id: int, pending: list, attrs: dict) -> None:
    """What Optuna's cached storage does for each parameter, then ``attrs``, in one transaction.

    Once every parameter's distribution is known to the cache (from the second
    trial on), the trial is read and checked once and the rows are added
    together; before that, Optuna's own statement per parameter looks the
    study's earlier distributions up.
    """
    with cached._lock:
        study_id, _ = cached._trial_id_to_study_id_and_number[trial_id]
        known = cached._studies[study_id].param_distribution
        with _create_scoped_session(backend.scoped_session, True) as session:
            if pending and all(name in known for name, _, _ in pending):
                trial = models.TrialModel.find_or_raise_by_id(trial_id, session)
                backend.check_trial_is_updatable(trial_id, trial.state)
                rows = []
                for name, value, distribution in pending:
                    distributions.check_distribution_compatibility(known[name], distribution)
                    rows.append(models.TrialParamModel(
                        trial_id=trial_id, param_name=name, param_value=value,
                        distribution_json=distributions.distribution_to_json(distribution),
                    ))  # fmt: skip
                session.add_all(rows)
            elif pending:
                for name, value, distribution in pending:
                    backend._set_trial_param_without_commit(
                        session, trial_id, name, value, distribution, known.get(name)
                    )
            else:
                trial = models.TrialModel.find_or_raise_by_id(trial_id, session)
                backend.check_trial_is_updatable(trial_id, trial.state)
            if attrs:
                session.flush()  # the attributes' rows follow the parameters'
                _upsert_user_attrs_in(session, backend, trial_id, attrs)
        for name, _, distribution in pending:
            known.setdefault(name, distribution)
