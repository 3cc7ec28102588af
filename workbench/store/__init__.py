"""The knowledge base: incidents, hypotheses, reviews, runs, checks and their history in SQL.

``KnowledgeBase(url)`` opens (and migrates) a database; records come back as frozen dataclasses;
:mod:`workbench.store.documents` defines the YAML/dict shape of one incident.
"""
from .documents import content_hash, dump_document, load_document, read_document, validate_document, write_document
from .inbound import AlertGroup
from .jobs import JOB_KINDS, JOB_STATUSES, Job
from .decisions import DECISIONS, ReviewSignOff, SuggestionDecision
from .kb import KnowledgeBase
from .outbox import NOTIFICATION_KINDS, NOTIFICATION_STATUSES, Notification
from .records import (ACTION_KINDS, ACTION_STATUSES, CAUSES, CHECK_VERDICTS, CONCLUSION_KINDS, HYPOTHESIS_STATUSES,
                      INCIDENT_STATUSES, LABEL_KEYS, RUN_STATUSES, SEVERITIES, ActionItem, Check, Conclusion,
                      HistoryEntry, Hypothesis, Incident, Run, SignOff)
from .tokens import SCOPES, Token

__all__ = [
    "KnowledgeBase", "Incident", "Hypothesis", "Conclusion", "ActionItem", "SignOff", "Run", "Check",
    "HistoryEntry", "Notification", "NOTIFICATION_KINDS", "NOTIFICATION_STATUSES", "validate_document",
    "load_document", "read_document", "dump_document", "write_document",
    "content_hash", "SEVERITIES", "INCIDENT_STATUSES", "CAUSES", "HYPOTHESIS_STATUSES", "CONCLUSION_KINDS",
    "ACTION_KINDS", "ACTION_STATUSES", "RUN_STATUSES", "CHECK_VERDICTS", "LABEL_KEYS", "Job", "JOB_KINDS",
    "JOB_STATUSES", "Token", "SCOPES", "AlertGroup", "DECISIONS", "SuggestionDecision", "ReviewSignOff",
]
