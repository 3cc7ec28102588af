"""The knowledge base: incidents, hypotheses, reviews, runs and checks in one SQL database.

``KnowledgeBase("sqlite:///workspace/kb.sqlite")`` (embedded default) or
``KnowledgeBase("postgresql+psycopg://user@host/db")`` (teams). Opening runs the Alembic
migrations up to the newest revision, so a new file gets the schema and an old one is upgraded.

Guarantees
----------
- Every API call is one transaction; ``with kb.transaction():`` makes several calls commit together
  or not at all. Inside one, each call runs in a savepoint: a call that fails changes nothing and
  the transaction can go on (or be abandoned by letting the exception leave the block).
- Versioned records (incidents, hypotheses, conclusions, action items) change only through
  ``update_*(id, expected_version, who, **changes)``: a stale ``expected_version`` raises
  :class:`~workbench.errors.ConflictError` and changes nothing; the UPDATE itself also carries
  ``WHERE version = ...`` so two writers racing between read and write cannot both win.
- History is append-only: a created record writes one row with field ``"*"`` (``old`` None,
  ``new`` the record); every update writes one row per changed field (old, new, who, at); a
  deleted proposed hypothesis writes field ``"*"`` with ``new`` None (a re-analysis updates the
  proposed hypotheses it ranks again in place and deletes only those it drops). An update that
  changes nothing bumps no version and writes no history.
- Records come back as frozen dataclasses (:mod:`workbench.store.records`), times as aware UTC.
- Values are checked before anything is written (:func:`workbench.store.records.clean`): a bad
  enumeration, a naive time or text containing NUL (which PostgreSQL cannot store) raises
  :class:`~workbench.errors.StoreError` naming the field, the allowed values and the value.
- On SQLite every transaction starts with ``BEGIN IMMEDIATE`` (see :mod:`workbench.store.engine`):
  writers queue for the file instead of failing half-way.
- Notifications (:meth:`KnowledgeBase.enqueue_notification`) are outbox rows written like any other
  record: inside ``kb.transaction()`` they commit together with the change that causes them (see
  :mod:`workbench.store.outbox`); sending them is :func:`workbench.loop.notify.deliver`'s job.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from ..errors import ConflictError, NotFoundError, StoreError
from ..formats import key_value
from . import documents, migrations, writes
from .engine import connect
from .importer import apply_document
from .models import ENTITY_MODELS, ActionItemRow, HistoryRow, HypothesisRow, IncidentRow, SignOffRow
from .inbound import InboundMethods
from .jobs import JobMethods
from .decisions import DecisionMethods
from .outbox import OutboxMethods
from .runs import RunMethods
from .tokens import TokenMethods
from .records import (ACTION_STATUSES, HYPOTHESIS_STATUSES, INCIDENT_STATUSES, LABELS, SEVERITIES,
                      TIMELINE, ActionItem, Conclusion, HistoryEntry, Hypothesis, Incident, SignOff,
                      as_list, check_date, check_enum, check_id, check_json, check_review, check_time,
                      check_timeline, check_who, clean, fail, to_record)

#: What a new hypothesis takes from a candidate record in :meth:`replace_proposed_hypotheses`.
_HYPOTHESIS_INPUT = ("service", "cause", "summary", "score", "rank", "evidence", "similar", "status",
                     "reviewer", "rationale", "confidence")


class _Tx:
    def __init__(self, session: Session):
        self.session = session


class KnowledgeBase(RunMethods, OutboxMethods, JobMethods, TokenMethods, InboundMethods, DecisionMethods):
    """The store of incidents and everything decided about them.

    Parameters
    ----------
    url : str or pathlib.Path
        A SQLAlchemy URL (``sqlite:///path/kb.sqlite``, ``postgresql+psycopg://...``); a plain path
        means a SQLite file.
    clock : callable, optional
        Returns the current aware time; used for ``created``/``updated``/history times (tests).

    Raises
    ------
    StoreError
        The URL is invalid, the database cannot be opened, or its schema is newer than this code.
    MissingDependencyError
        The database driver is not installed (PostgreSQL needs the ``postgres`` extra).
    """

    def __init__(self, url: str | Path, *, clock: Callable[[], datetime] | None = None):
        self.url = str(url) if "://" in str(url) else f"sqlite:///{url}"
        self._clock = clock or (lambda: datetime.now(timezone.utc))
        self._engine = connect(self.url)
        self._display = self._engine.url.render_as_string(hide_password=True)
        self._sessions = sessionmaker(self._engine, expire_on_commit=False, autoflush=True)
        self._local = threading.local()
        #: Webhook target name -> the notification kinds it takes (``None``: every kind); where
        #: :meth:`enqueue_notification` sends when it is given no ``targets``.
        self.notification_targets: dict[str, tuple[str, ...] | None] = {}
        self._migrate()

    # ------------------------------------------------------------------ lifecycle

    def _migrate(self) -> None:
        try:
            with self._engine.connect() as connection:
                current = migrations.current(connection)
            if current is not None and current not in migrations.known_revisions():
                raise StoreError(f"{self._display}: schema revision {current!r} is newer than this workbench "
                                 f"knows (head {migrations.head()!r}); upgrade postmortem-workbench")
            if current != migrations.head():
                migrations.upgrade(self._engine)
        except SQLAlchemyError as exc:
            self._engine.dispose()
            reason = getattr(exc, "orig", None) or exc
            raise StoreError(f"cannot open knowledge base {self._display}: {reason}") from exc
        except BaseException:
            self._engine.dispose()
            raise

    def schema_version(self) -> str | None:
        """The Alembic revision the database is at (``"0001"`` ...)."""
        with self._engine.connect() as connection:
            return migrations.current(connection)

    def close(self) -> None:
        """Release every connection (the object is unusable afterwards)."""
        self._engine.dispose()

    def __enter__(self) -> "KnowledgeBase":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"KnowledgeBase({self._display!r})"

    # ------------------------------------------------------------------ transactions

    @contextmanager
    def transaction(self) -> Iterator["KnowledgeBase"]:
        """Group API calls: all commit at the end of the block, or none if an exception leaves it.

        Nested ``transaction()`` blocks join the outer one. The grouping is per thread.
        """
        if getattr(self._local, "tx", None) is not None:
            yield self
            return
        session = self._sessions()
        self._local.tx = _Tx(session)
        try:
            with session.begin():
                yield self
        except SQLAlchemyError as exc:
            raise self._db_error(exc) from exc
        finally:
            self._local.tx = None
            session.close()

    @contextmanager
    def _session(self, write: bool) -> Iterator[Session]:
        tx = getattr(self._local, "tx", None)
        try:
            if tx is None:
                with self._sessions() as session, session.begin():
                    yield session
            elif write:
                with tx.session.begin_nested():
                    yield tx.session
            else:
                yield tx.session
        except SQLAlchemyError as exc:
            raise self._db_error(exc) from exc

    def _db_error(self, exc: SQLAlchemyError) -> StoreError:
        if isinstance(exc, StaleDataError):
            return ConflictError(f"{self._display}: a record changed while it was being written; reload and retry")
        if isinstance(exc, IntegrityError):
            return ConflictError(f"{self._display}: conflicting write ({exc.orig}); reload and retry")
        return StoreError(f"{self._display}: database error: {getattr(exc, 'orig', None) or exc}")

    # ------------------------------------------------------------------ incidents

    def create_incident(self, *, title: str, started: Any, services: Iterable[str], severity: str = "SEV3",
                        environment: str = "production", detected: Any = None, mitigated: Any = None,
                        resolved: Any = None, status: str = "open", labels: Mapping[str, Any] | None = None,
                        links: Iterable[Mapping[str, str]] | None = None, window_start: Any = None,
                        window_end: Any = None, follow_up_of: str | None = None, id: str | None = None,
                        who: str) -> Incident:
        """Create an incident; ``id`` defaults to ``INC-YYYYMMDD-NNN`` (UTC date of ``started``).

        ``follow_up_of`` links a follow-up review to the incident it reviews again (which must exist).
        Raises ``ConflictError`` when ``id`` exists, ``NotFoundError`` when ``follow_up_of`` does not,
        ``StoreError`` naming any invalid field.
        """
        values = clean("incident", dict(
            title=title, started=started, services=list(services) if not isinstance(services, str) else services,
            severity=severity, environment=environment, detected=detected, mitigated=mitigated,
            resolved=resolved, status=status, labels=labels, links=links, window_start=window_start,
            window_end=window_end, follow_up_of=follow_up_of))
        check_timeline(values)
        who = check_who(who)
        with self._session(write=True) as s:
            self._check_follow_up(s, id, values.get("follow_up_of"))
            row = writes.create(s, "incident", values, id=None if id is None else check_id(id, "id"),
                                incident_id=None, version=None, who=who, now=self._clock())
            return to_record("incident", row)

    def get_incident(self, id: str) -> Incident:
        with self._session(write=False) as s:
            return to_record("incident", self._get(s, "incident", id))

    def list_incidents(self, status: str | None = None, service: str | None = None, severity: str | None = None,
                       since: Any = None, label: Mapping[str, Any] | str | None = None,
                       follow_up_of: str | None = None) -> list[Incident]:
        """Incidents ordered by ``started``; each filter narrows (``label``: ``{"symptom": "latency"}``
        or ``"symptom=latency"``, all given labels must match; ``follow_up_of``: the follow-up
        reviews of that incident)."""
        query = select(IncidentRow).order_by(IncidentRow.started, IncidentRow.id)
        if follow_up_of is not None:
            query = query.where(IncidentRow.follow_up_of == check_id(follow_up_of, "follow_up_of"))
        if status is not None:
            query = query.where(IncidentRow.status == check_enum(status, "status", INCIDENT_STATUSES))
        if severity is not None:
            query = query.where(IncidentRow.severity == check_enum(severity, "severity", SEVERITIES))
        if since is not None:
            query = query.where(IncidentRow.started >= check_time(since, "since"))
        wanted = _label_filter(label)
        out = self._rows("incident", query)
        # services and labels are JSON: filtered here, portably, rather than with per-backend SQL.
        if service is not None:
            out = [i for i in out if service in i.services]
        return [i for i in out if all(i.labels.get(k) == v for k, v in wanted.items())]

    def update_incident(self, id: str, expected_version: int, who: str, **changes: Any) -> Incident:
        """Change incident fields (see :meth:`create_incident` for names) if still at ``expected_version``."""
        values = clean("incident", changes)
        who = check_who(who)
        with self._session(write=True) as s:
            row = self._get(s, "incident", id)
            merged = {k: getattr(row, k) for k in TIMELINE} | values
            check_timeline(merged)
            if "follow_up_of" in values:
                self._check_follow_up(s, id, values["follow_up_of"])
            writes.update(s, "incident", row, expected_version, values, who, self._clock())
            return to_record("incident", row)

    # ------------------------------------------------------------------ hypotheses

    def add_hypothesis(self, incident_id: str, *, service: str, cause: str, summary: str, score: float,
                       rank: int | None = None, evidence: Iterable[Any] = (), similar: Iterable[Any] = (),
                       status: str = "proposed", reviewer: str | None = None, rationale: str | None = None,
                       confidence: float | None = None, id: str | None = None, who: str) -> Hypothesis:
        """Add a root-cause hypothesis. A confirmed/rejected one needs ``reviewer`` and ``rationale``.

        ``confidence`` is the engine's calibrated probability that the hypothesis is the root cause
        (in [0, 1]; None for a hypothesis a human added or one stored before it existed).
        """
        values = clean("hypothesis", dict(service=service, cause=cause, summary=summary, score=score, rank=rank,
                                          evidence=as_list(evidence), similar=as_list(similar), status=status,
                                          reviewer=reviewer, rationale=rationale, confidence=confidence))
        return self._add_child("hypothesis", incident_id, values, id, who)

    def replace_proposed_hypotheses(self, incident_id: str, hypotheses: Iterable[Any], who: str) -> list[Hypothesis]:
        """Replace the still-proposed hypotheses of an incident with a new ranking.

        Confirmed and rejected hypotheses stay; a candidate with the same (service, cause) as one
        of them is skipped (a human already decided it). A candidate with the same (service, cause)
        as a proposed hypothesis updates it in place (same id; version and history move only for
        the fields that changed); proposed hypotheses the new ranking leaves out are deleted. Each
        candidate is a mapping (or has ``to_dict()``) with the keys of :meth:`add_hypothesis`; its
        status must be ``proposed``.
        Returns the incident's hypotheses afterwards.
        """
        who = check_who(who)
        candidates = []
        for i, item in enumerate(hypotheses):
            if hasattr(item, "to_dict"):  # a record: keep the fields a new hypothesis takes
                raw = {k: v for k, v in item.to_dict().items() if k in _HYPOTHESIS_INPUT}
            elif isinstance(item, Mapping):
                raw = dict(item)
            else:
                raise fail(f"hypotheses[{i}]", "a mapping of hypothesis fields", item)
            values = clean("hypothesis", writes.DEFAULTS["hypothesis"] | raw, where=f"hypotheses[{i}].")
            if values["status"] != "proposed":
                raise fail(f"hypotheses[{i}].status", "proposed (only a human confirms or rejects)", values["status"])
            candidates.append(values)
        with self._session(write=True) as s:
            self._get(s, "incident", incident_id)
            now, reviewed, proposed = self._clock(), set(), {}
            for row in s.scalars(select(HypothesisRow).where(HypothesisRow.incident_id == incident_id)
                                 .order_by(HypothesisRow.seq)):
                if row.status == "proposed":
                    proposed.setdefault((row.service, row.cause), []).append(row)
                else:
                    reviewed.add((row.service, row.cause))
            # A candidate the ranking proposed before keeps its id and version when nothing changed
            # (a re-analysis of the same evidence changes no content hash, no link, no open form);
            # what changed is recorded field by field, what the ranking dropped is deleted.
            matched = [(values, proposed[key].pop(0) if proposed.get(key) else None) for values in candidates
                       if (key := (values["service"], values["cause"])) not in reviewed]
            for row in (r for rows in proposed.values() for r in rows):
                writes.delete(s, "hypothesis", row, who, now)
            s.flush()
            for values, row in matched:
                if row is None:
                    writes.create(s, "hypothesis", values, id=None, incident_id=incident_id, version=None, who=who,
                                  now=now)
                else:
                    writes.update(s, "hypothesis", row, row.version, values, who, now)
            return [to_record("hypothesis", r) for r in s.scalars(_children("hypothesis", incident_id))]

    def update_hypothesis(self, id: str, expected_version: int, who: str, **changes: Any) -> Hypothesis:
        """Change a hypothesis; confirming or rejecting it needs ``reviewer`` and ``rationale`` in
        the same call (the decision and its reason are recorded together)."""
        values = clean("hypothesis", changes)
        who = check_who(who)
        with self._session(write=True) as s:
            row = self._get(s, "hypothesis", id)
            if values.get("status") in ("confirmed", "rejected") and values["status"] != row.status:
                check_review({"status": values["status"], "reviewer": values.get("reviewer"),
                              "rationale": values.get("rationale")})
            check_review({k: getattr(row, k) for k in ("status", "reviewer", "rationale")} | values)
            writes.update(s, "hypothesis", row, expected_version, values, who, self._clock())
            return to_record("hypothesis", row)

    def list_hypotheses(self, incident_id: str, status: str | None = None) -> list[Hypothesis]:
        """Hypotheses by rank (unranked last), then score (highest first)."""
        query = _children("hypothesis", incident_id)
        if status is not None:
            query = query.where(HypothesisRow.status == check_enum(status, "status", HYPOTHESIS_STATUSES))
        return self._list_children("hypothesis", incident_id, query)

    def confirmed_hypotheses(self) -> dict[str, list[Hypothesis]]:
        """Every confirmed hypothesis, by incident id (each incident's in :meth:`list_hypotheses`
        order), in one query: what the similar-incident search and the accuracy ledger need of
        every incident, without one query per incident."""
        query = (select(HypothesisRow).where(HypothesisRow.status == "confirmed")
                 .order_by(HypothesisRow.incident_id, HypothesisRow.rank.is_(None), HypothesisRow.rank,
                           HypothesisRow.score.desc(), HypothesisRow.seq))
        out: dict[str, list[Hypothesis]] = {}
        for h in self._rows("hypothesis", query):
            out.setdefault(h.incident_id, []).append(h)
        return out

    # ------------------------------------------------------------------ conclusions

    def add_conclusion(self, incident_id: str, *, kind: str, text: str, author: str | None = None,
                       id: str | None = None, who: str) -> Conclusion:
        """Add a conclusion (summary, impact, contributing_factor, lesson, conclusion); ``author``
        defaults to ``who``."""
        values = clean("conclusion", dict(kind=kind, text=text, author=who if author is None else author))
        return self._add_child("conclusion", incident_id, values, id, who)

    def update_conclusion(self, id: str, expected_version: int, who: str, **changes: Any) -> Conclusion:
        return self._update_child("conclusion", id, expected_version, who, changes)

    def list_conclusions(self, incident_id: str) -> list[Conclusion]:
        return self._list_children("conclusion", incident_id, _children("conclusion", incident_id))

    # ------------------------------------------------------------------ action items

    def add_action_item(self, incident_id: str, *, title: str, owner: str, kind: str, due: Any = None,
                        status: str = "open", verification: Any = None, ticket: str | None = None,
                        id: str | None = None, who: str) -> ActionItem:
        """Add an action item (kind prevent/detect/mitigate/process) with an optional due date,
        verification criterion (JSON, evaluated by the recheck loop) and tracker key (``ticket``)."""
        values = clean("action_item", dict(title=title, owner=owner, kind=kind, due=due, status=status,
                                           verification=verification, ticket=ticket))
        return self._add_child("action_item", incident_id, values, id, who)

    def get_action_item(self, id: str) -> ActionItem:
        with self._session(write=False) as s:
            return to_record("action_item", self._get(s, "action_item", id))

    def update_action_item(self, id: str, expected_version: int, who: str, **changes: Any) -> ActionItem:
        return self._update_child("action_item", id, expected_version, who, changes)

    def list_action_items(self, incident_id: str | None = None, owner: str | None = None, status: str | None = None,
                          overdue_on: Any = None) -> list[ActionItem]:
        """Action items: of one incident in creation order, or across incidents by due date.

        ``overdue_on`` keeps open/in-progress items due before that date.
        """
        if incident_id is not None:
            query = _children("action_item", incident_id)
        else:
            query = select(ActionItemRow).order_by(ActionItemRow.due.is_(None), ActionItemRow.due,
                                                   ActionItemRow.incident_id, ActionItemRow.seq)
        if owner is not None:
            query = query.where(ActionItemRow.owner == owner)
        if status is not None:
            query = query.where(ActionItemRow.status == check_enum(status, "status", ACTION_STATUSES))
        if overdue_on is not None:
            query = query.where(ActionItemRow.due < check_date(overdue_on, "overdue_on"),
                                ActionItemRow.status.in_(("open", "in_progress")))
        if incident_id is not None:
            return self._list_children("action_item", incident_id, query)
        return self._rows("action_item", query)

    # ------------------------------------------------------------------ sign-offs

    def content_hash(self, incident_id: str) -> str:
        """``sha256:...`` of the incident's reviewable content (see :func:`documents.content_hash`)."""
        with self._session(write=False) as s:
            return documents.content_hash(self._document(s, incident_id))

    def add_signoff(self, incident_id: str, *, name: str, role: str, content_hash: str | None = None,
                    at: Any = None, id: str | None = None, who: str) -> SignOff:
        """Record a sign-off; ``content_hash`` defaults to the current :meth:`content_hash`."""
        with self._session(write=True) as s:
            if content_hash is None:
                content_hash = documents.content_hash(self._document(s, incident_id))
            values = clean("signoff", dict(name=name, role=role, content_hash=content_hash,
                                           at=self._clock() if at is None else at))
            return self._add_child("signoff", incident_id, values, id, who, s)

    def list_signoffs(self, incident_id: str) -> list[SignOff]:
        return self._list_children("signoff", incident_id, _children("signoff", incident_id))

    # ------------------------------------------------------------------ history

    def record_evidence(self, incident_id: str, evidence: Mapping[str, Any], who: str) -> None:
        """Append where an incident's evidence came from to its history (``field = "evidence"``).

        ``evidence`` is a JSON object, e.g. a live source's fetch: ``{"source", "url", "start",
        "end", "rows"}`` (:mod:`workbench.live`). The incident itself is not changed.
        """
        value = check_json(dict(evidence), "evidence")
        who = check_who(who)
        with self._session(write=True) as s:
            self._get(s, "incident", incident_id)
            writes.log(s, "incident", incident_id, incident_id, "evidence", None, value, who, self._clock())

    def history(self, entity: str | None = None, entity_id: str | None = None,
                incident_id: str | None = None) -> list[HistoryEntry]:
        """Audit entries in the order they were written. ``entity`` is one of incident, hypothesis,
        conclusion, action_item, signoff, run, check; ``incident_id`` gathers an incident and all
        records attached to it."""
        query = select(HistoryRow).order_by(HistoryRow.id)
        if entity is not None:
            query = query.where(HistoryRow.entity == check_enum(entity, "entity", tuple(ENTITY_MODELS)))
        if entity_id is not None:
            query = query.where(HistoryRow.entity_id == entity_id)
        if incident_id is not None:
            query = query.where(HistoryRow.incident_id == incident_id)
        return self._rows("history", query)

    # ------------------------------------------------------------------ documents

    def incident_document(self, id: str) -> dict[str, Any]:
        """The incident and its children as a document dict (see :mod:`workbench.store.documents`)."""
        with self._session(write=False) as s:
            return self._document(s, id)

    def export_incident(self, id: str) -> str:
        """The incident's YAML document."""
        return documents.dump_document(self.incident_document(id))

    def import_incident(self, document: str | Mapping[str, Any] | Path, who: str,
                        origin: str | None = None) -> Incident:
        """Create or update an incident from a YAML text, a path or a dict, in one transaction.

        See :mod:`workbench.store.documents` for the shape and the matching rules. Re-importing the
        same document changes nothing.
        """
        if isinstance(document, Path):
            origin, document = origin or str(document), documents.read_document(document)
        elif isinstance(document, str):
            document = documents.load_document(document, origin or "<document>")
        doc = documents.validate_document(document, origin or "<document>")
        who = check_who(who)
        with self._session(write=True) as s:
            row = apply_document(s, doc, who, self._clock())
            return to_record("incident", row)

    # ------------------------------------------------------------------ internals

    def _get(self, s: Session, entity: str, id: Any) -> Any:
        if not isinstance(id, str):
            raise fail(f"{entity} id", "a string id", id)
        row = s.get(ENTITY_MODELS[entity], id)
        if row is None:
            raise NotFoundError(f"{LABELS[entity]} {id!r} not found in {self._display}")
        return row

    def _check_follow_up(self, s: Session, id: str | None, target: str | None) -> None:
        """A follow-up link names another incident that exists (a clear error, not a foreign-key one)."""
        if target is None:
            return
        if target == id:
            raise fail("follow_up_of", "the id of another incident", target)
        if s.get(IncidentRow, target) is None:
            raise NotFoundError(f"field 'follow_up_of': incident {target!r} not found in {self._display}")

    def _rows(self, entity: str, query: Any) -> list[Any]:
        with self._session(write=False) as s:
            return [to_record(entity, r) for r in s.scalars(query)]

    def _document(self, s: Session, id: str) -> dict[str, Any]:
        incident = to_record("incident", self._get(s, "incident", id))
        lists = [self._list_children(e, id, _children(e, id), s)
                 for e in ("hypothesis", "conclusion", "action_item", "signoff")]
        return documents.to_document(incident, *lists)

    def _list_children(self, entity: str, incident_id: str, query: Any, s: Session | None = None) -> list[Any]:
        if s is None:
            with self._session(write=False) as s:
                return self._list_children(entity, incident_id, query, s)
        self._get(s, "incident", incident_id)
        return [to_record(entity, r) for r in s.scalars(query)]

    def _add_child(self, entity: str, incident_id: str, values: dict[str, Any], id: str | None, who: str,
                   s: Session | None = None) -> Any:
        if entity == "hypothesis":
            check_review(values)
        who = check_who(who)
        id = None if id is None else check_id(id, "id")
        if s is None:  # one session per call: a second one would wait on SQLite's write lock
            with self._session(write=True) as s:
                return self._add_child(entity, incident_id, values, id, who, s)
        self._get(s, "incident", incident_id)
        row = writes.create(s, entity, values, id=id, incident_id=incident_id, version=None, who=who,
                            now=self._clock())
        return to_record(entity, row)

    def _update_child(self, entity: str, id: str, expected_version: int, who: str, changes: dict[str, Any]) -> Any:
        values = clean(entity, changes)
        who = check_who(who)
        with self._session(write=True) as s:
            row = self._get(s, entity, id)
            writes.update(s, entity, row, expected_version, values, who, self._clock())
            return to_record(entity, row)


def _children(entity: str, incident_id: str) -> Any:
    """The query of an incident's children in their documented order."""
    model = ENTITY_MODELS[entity]
    order = {
        "hypothesis": (HypothesisRow.rank.is_(None), HypothesisRow.rank, HypothesisRow.score.desc()),
        "signoff": (SignOffRow.at,),
    }.get(entity, ())
    return select(model).where(model.incident_id == incident_id).order_by(*order, model.seq)


def _label_filter(label: Mapping[str, Any] | str | None) -> dict[str, Any]:
    if label is None:
        return {}
    if isinstance(label, str):
        key, value = key_value(label, "field 'label'", StoreError)
        label = {key: value}
    return dict(label)
