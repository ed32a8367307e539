"""Several user attributes of a trial, or several trials' reports, in one storage transaction."""

from __future__ import annotations

import json

# Optuna has no public call that writes several attributes in one transaction
from optuna.storages._rdb import models
from optuna.storages._rdb.storage import _create_scoped_session
from sqlalchemy.dialects import postgresql, sqlite

from tunekit.storage.reconnect import ReconnectingRDBStorage, rdb_backend, with_reconnects

__all__ = ["report_all", "set_user_attrs"]


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
    model = models.TrialUserAttributeModel
    dialect = backend.engine.name
    with _create_scoped_session(backend.scoped_session, True) as session:
        trial = models.TrialModel.find_or_raise_by_id(trial_id, session)
        backend.check_trial_is_updatable(trial_id, trial.state)
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
