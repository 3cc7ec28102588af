"""The periodic review meeting: one pack of what happened, how the engine did against the reviewers,
which fixes held and which kinds of fixes reduce recurrence.

:func:`review_pack` reads a workspace (:mod:`.records`) and computes every section with pure
functions (:mod:`.figures`, :mod:`.interventions`) over one :class:`Period`; the pack's content
hash binds what a sign-off (:func:`sign`) approves; :mod:`.decisions` records what the meeting
decides. ``workbench review-pack`` writes it as one offline HTML file (``workbench.reports.review``)
and the served app shows it as a tab. Definitions: ``docs/review-pack.md``.
"""
from .decisions import accept_suggestion, reject_suggestion, suggestions
from .pack import ReviewPack, announce, build, review_pack, sign
from .period import Period
from .records import Records, read

__all__ = ["Period", "Records", "ReviewPack", "accept_suggestion", "announce", "build", "read", "reject_suggestion",
           "review_pack", "sign", "suggestions"]
