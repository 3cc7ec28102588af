"""The loop after an incident: scheduled rechecks, verification criteria, notifications.

:mod:`.rechecks` runs :func:`recheck` over the watched incidents (fanned out by
:mod:`.executors`) and records every check; :mod:`.checks` is the per-incident work (signature
similarity, criteria); :mod:`.criteria` defines and evaluates action items' verification criteria
on the signal readers of :mod:`.readers`; :mod:`.suggestions` proposes runbook and alert changes;
:mod:`.notify` delivers the outbox as signed webhooks; :mod:`.nudge` reminds owners.
"""
from .criteria import Criterion, CriterionError, evaluate
from .executors import ExecutorError, fan_out
from .notify import Webhook, deliver, load_webhooks, verify_signature
from .rechecks import RecheckError, RecheckReport, recheck

__all__ = ["Criterion", "CriterionError", "ExecutorError", "RecheckError", "RecheckReport", "Webhook", "deliver",
           "evaluate", "fan_out", "load_webhooks", "recheck", "verify_signature"]
