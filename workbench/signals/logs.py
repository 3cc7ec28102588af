"""Log templates: Drain3 with one shared configuration, mined per service.

A log line becomes a *template* (``Connection to <IP> refused after <DUR>``) with a stable id, so
the detector can score template counts like any metric, and the hypotheses can name a template
that is new or that carries errors.

How a line is mined (:class:`TemplateMiner`):

1. **Masking.** :data:`DEFAULT_MASKS` replaces values that are variables in any log format (URLs,
   UUIDs, timestamps, IPs, paths, hex, sizes, durations, numbers) by ``<NAME>``; runs of masks
   separated only by blanks collapse into one, so a list of 3 or 30 numbers is the same message.
2. **Drain** (drain3) groups the masked lines by token count, leading tokens and a similarity
   threshold; tokens that differ inside a group become ``<*>``.
3. **Split.** A ``<*>`` position that only ever held a few unmasked words (``Paused``/``Resumed``,
   ``begin``/``end``) is an enumeration, not a parameter: the group is split by that word.
4. **Merge.** A template absorbs the templates it covers (same length, differing only where it has
   a variable), then templates that are equal once their mask-only tokens are dropped (an optional
   ``(<SIZE>)`` or a masked value of varying length) are merged.

Every choice is generic (nothing is keyed by a log format) and was measured on loghub 2k:
``python benchmarks/loghub.py --data ../shared/data/loghub`` (grouping accuracy, 16 systems).
"""
from __future__ import annotations

import hashlib
import re
from collections import Counter, defaultdict
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd
from drain3.masking import MaskingInstruction
from drain3.template_miner import TemplateMiner as _Drain3Miner
from drain3.template_miner_config import TemplateMinerConfig

from ..errors import ParameterError, SchemaError

_B = r"(?<![A-Za-z0-9])"  # not inside a word on the left
_E = r"(?![A-Za-z0-9])"  # ... nor on the right
_MON = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*"
_DAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]*"

#: The shared masks, applied in this order: ``(name, regex)``; a match becomes ``<name>``.
#: Order matters: a URL or path swallows the numbers inside it, a timestamp its colons.
DEFAULT_MASKS: tuple[tuple[str, str], ...] = (
    ("URL", r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>]+"),
    ("UUID", _B + r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}" + _E),
    # 2017-05-16, 2005.06.03, 2016/9/27, optionally with a time and a zone
    ("TS", _B + r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}(?:[T ]\d{1,2}:\d{2}(?::\d{2})?(?:[.,]\d+)?"
           r"(?:Z|[+-]\d{2}:?\d{2})?)?" + _E),
    # Sun Jul 3 12:00:00 2005, Dec 10 06:55:46, Mon Sep 26 10:02:39 EDT 2005
    ("TS", r"\b(?:" + _DAY + r",?\s+)?" + _MON + r"\s+\d{1,2},?\s+(?:\d{4}\s+)?\d{1,2}:\d{2}"
           r"(?::\d{2})?(?:[.,]\d+)?(?:\s+[A-Z]{3,4})?(?:\s+\d{4})?" + _E),
    ("TS", _B + r"\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?" + _E),
    ("IP", _B + r"\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?" + _E),
    ("IP", r"(?<![\w:])(?:[0-9a-fA-F]{1,4}:){2,7}(?::|(?::[0-9a-fA-F]{1,4}){1,6}|[0-9a-fA-F]{1,4})(?![\w:])"),
    ("PATH", _B + r"[A-Za-z]:\\[^\s\"'<>]*"),
    ("PATH", r"(?<![\w.:/])(?:/[\w.@%+~=-]+)+/?"),
    ("HEX", _B + r"0[xX][0-9a-fA-F]+" + _E),
    # 12 KB, 1.5MiB, 512 bytes, (3.2 KB): the optional brackets go with it
    ("SIZE", r"\(?" + _B + r"\d+(?:\.\d+)?\s?(?:[KMGTP]i?B|B|bytes)" + _E + r"\)?"),
    # 250ms, 1.5 s, <1 sec, 3 minutes
    ("DUR", r"<?" + _B + r"\d+(?:\.\d+)?\s?(?:ms|us|µs|ns|s|sec|secs|seconds?|mins?|minutes?|h|hrs?|hours?|days?)" + _E),
    # ids such as c0000700 or a commit hash: hex with at least one digit and one letter
    ("HEX", _B + r"(?=[0-9a-fA-F]*[0-9])(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{6,}" + _E),
    ("NUM", _B + r"[-+]?\d+(?:\.\d+)?" + _E),
)

#: Drain's wildcard for tokens that differ inside a group.
WILDCARD = "<*>"

#: Text that marks a template as an error whatever its severity.
ERROR_TEXT = re.compile(r"exception|error|fail|fatal|panic|timeout|timed out|refused|denied|unreachable"
                        r"|traceback", re.IGNORECASE)


class TemplateMiner:
    """Drain3 with the workbench's masking, enumeration split and template merge.

    Hyper-parameters are stored unchanged (``get_params`` returns them), so a miner can be cloned
    per service. The defaults are the one shared configuration, tuned on loghub 2k.

    Parameters
    ----------
    sim_th : float
        Drain similarity threshold in [0, 1]: the share of equal tokens a line needs to join a group.
    depth : int
        Drain tree depth (>= 3); ``depth - 2`` leading tokens route a line.
    max_children : int
        Most children of a Drain tree node (>= 2).
    masks : sequence of (str, str)
        ``(name, regex)`` pairs applied in order; a match becomes ``<name>``. Names are letters,
        digits or ``_``.
    extra_delimiters : sequence of str
        Characters split on besides whitespace (none by default: they measured worse).
    collapse_masks : bool
        Collapse runs of blank-separated mask-only tokens into one.
    split_max_values : int
        Split a group on a ``<*>`` position that held at most this many distinct unmasked words
        (an enumeration such as ``begin``/``end``); 0 disables the split.
    merge : bool
        Merge templates that another template covers, then templates equal up to mask-only tokens.
    namespace : str
        Mixed into every template id (:func:`mine` passes the service), so equal templates of
        different services get different ids.

    Attributes
    ----------
    n_lines_ : int
        Lines learned so far.
    """

    def __init__(self, sim_th: float = 0.6, depth: int = 4, max_children: int = 100,
                 masks: Sequence[tuple[str, str]] = DEFAULT_MASKS, extra_delimiters: Sequence[str] = (),
                 collapse_masks: bool = True, split_max_values: int = 3, merge: bool = True,
                 namespace: str = ""):
        self.sim_th = sim_th
        self.depth = depth
        self.max_children = max_children
        self.masks = masks
        self.extra_delimiters = extra_delimiters
        self.collapse_masks = collapse_masks
        self.split_max_values = split_max_values
        self.merge = merge
        self.namespace = namespace
        self._check_params()

        config = TemplateMinerConfig()  # built in code: never reads a drain3.ini
        config.drain_sim_th = float(sim_th)
        config.drain_depth = int(depth)
        config.drain_max_children = int(max_children)
        config.drain_extra_delimiters = list(extra_delimiters)
        config.masking_instructions = [MaskingInstruction(pattern, name) for name, pattern in masks]
        config.parametrize_numeric_tokens = True
        self._drain3 = _Drain3Miner(persistence_handler=None, config=config)
        names = sorted({name for name, _ in masks} | {"*"}, key=len, reverse=True)
        mask = "|".join(re.escape(f"<{n}>") for n in names)
        self._mask_run = re.compile(rf"^(?:{mask})+$")  # a token made only of masks
        # a variable token: masks (or <*>) and punctuation only
        self._var_token = re.compile(rf"^(?=.*(?:{mask}))(?:{mask}|[^\w<>])*$")
        concrete = "|".join(re.escape(f"<{n}>") for n in names if n != "*") or r"(?!)"
        self._mask_only = re.compile(rf"^(?=.*(?:{concrete}))(?:{concrete}|[^\w<>*])*$")
        self._has_mask = re.compile(mask)
        self._stats: dict[int, _ClusterStats] = {}
        self._groups: dict[tuple[str, ...], tuple[str, str]] = {}  # sub-template -> (id, template)
        self._group_counts: dict[str, int] = {}
        self._dirty = False
        self.n_lines_ = 0

    # ------------------------------------------------------------------ public API

    def get_params(self) -> dict[str, Any]:
        """The hyper-parameters, as given to ``__init__``."""
        return {k: getattr(self, k) for k in ("sim_th", "depth", "max_children", "masks", "extra_delimiters",
                                              "collapse_masks", "split_max_values", "merge", "namespace")}

    def fit(self, lines: Iterable[str]) -> "TemplateMiner":
        """Learn templates from ``lines`` (in order; Drain is order-dependent). Returns ``self``."""
        for line in lines:
            self._learn(line)
        return self

    def fit_predict(self, lines: Iterable[str]) -> list[str]:
        """Learn ``lines`` and return each line's template id under the final model.

        Unlike calling :meth:`add` per line, every line gets the id of the template it ends up in
        after all lines were seen (templates generalise as lines arrive).
        """
        learned = [self._learn(line) for line in lines]
        self._refresh()
        return [self._resolve(cid, tokens)[0] for cid, tokens in learned]

    def add(self, line: str) -> str:
        """Learn one line and return its template id under the model as it stands now.

        Templates generalise as lines arrive, so an earlier line's template may since have been
        absorbed by a more general one (:meth:`match` gives its current id; :meth:`fit_predict`
        gives every line its final id in one pass). Each call that changed the model recomputes
        the split and merge (cheap while templates are few, and rare once they settle).
        """
        cid, tokens = self._learn(line)
        self._refresh()
        return self._resolve(cid, tokens)[0]

    def match(self, line: str) -> str | None:
        """The template id of ``line`` without learning it, or None when no template covers it."""
        tokens = self._tokens(line)
        cluster = self._drain3.drain.match(" ".join(tokens), full_search_strategy="fallback")
        if cluster is None:
            return None
        self._refresh()
        found = self._resolve(cluster.cluster_id, tokens, strict=True)
        return found[0] if found else None

    def templates(self) -> pd.DataFrame:
        """The templates learned so far.

        Returns
        -------
        pandas.DataFrame
            ``template_id`` (str), ``template`` (str, masks as ``<NAME>``, other variables as
            ``<*>``), ``count`` (int, lines learned), most frequent first.
        """
        self._refresh()
        seen: dict[str, str] = {}
        for tid, text in self._groups.values():
            seen.setdefault(tid, text)
        frame = pd.DataFrame({"template_id": list(seen), "template": list(seen.values()),
                              "count": [self._group_counts[t] for t in seen]})
        frame["count"] = frame["count"].astype("int64")
        return frame.sort_values(["count", "template_id"], ascending=[False, True], kind="stable").reset_index(drop=True)

    def _texts(self) -> dict[str, str]:
        """Template id -> text of every template learned so far (what :meth:`templates` lists)."""
        self._refresh()
        return {tid: text for tid, text in self._groups.values()}

    # ------------------------------------------------------------------ learning

    def _check_params(self) -> None:
        if not isinstance(self.sim_th, (int, float)) or not 0.0 <= float(self.sim_th) <= 1.0:
            raise ParameterError(f"sim_th must be a number in [0, 1], got {self.sim_th!r}")
        for name, low in (("depth", 3), ("max_children", 2), ("split_max_values", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ParameterError(f"{name} must be an integer >= {low}, got {value!r}")
        if isinstance(self.extra_delimiters, str):
            raise ParameterError(f"extra_delimiters must be a sequence of strings, got the string {self.extra_delimiters!r}")
        for item in self.masks:
            if not (isinstance(item, (tuple, list)) and len(item) == 2):
                raise ParameterError(f"each mask must be a (name, regex) pair, got {item!r}")
            name, pattern = item
            if not isinstance(name, str) or not re.fullmatch(r"\w+", name):
                raise ParameterError(f"mask name must be letters, digits or '_', got {name!r}")
            try:
                re.compile(pattern)
            except (re.error, TypeError) as exc:
                raise ParameterError(f"mask {name!r} has an invalid regex {pattern!r}: {exc}") from None

    def mask(self, line: Any) -> str:
        """``line`` as the miner sees it before clustering: masked (``<NUM>``, ``<IP>`` ...), mask
        runs collapsed, blanks single spaces. Matching a line against a shown template starts here."""
        return " ".join(self._tokens(line))

    def _tokens(self, line: Any) -> list[str]:
        text = line if isinstance(line, str) else ("" if line is None or pd.isna(line) else str(line))
        tokens = self._drain3.drain.get_content_as_tokens(self._drain3.masker.mask(text))
        if not self.collapse_masks:
            return tokens
        out: list[str] = []
        for token in tokens:
            if out and self._mask_run.match(token) and self._mask_run.match(out[-1]):
                continue
            out.append(token)
        return out

    def _learn(self, line: Any) -> tuple[int, list[str]]:
        tokens = self._tokens(line)
        cluster, change = self._drain3.drain.add_log_message(" ".join(tokens))
        self.n_lines_ += 1
        stats = self._stats.get(cluster.cluster_id)
        if stats is None:
            stats = self._stats[cluster.cluster_id] = _ClusterStats(len(tokens), self.split_max_values)
        if stats.add(tokens, self._is_word) or change != "none":
            self._dirty = True
        return cluster.cluster_id, tokens

    def _is_word(self, token: str) -> bool:
        # a masked value is a parameter by construction; anything else may be an enumerated word
        return not self._has_mask.search(token)

    # ------------------------------------------------------------------ split and merge

    def _split_positions(self, cid: int, template: tuple[str, ...]) -> list[int]:
        stats = self._stats[cid]
        return [j for j in stats.small if template[j] == WILDCARD]

    def _resolve(self, cid: int, tokens: list[str], strict: bool = False) -> tuple[str, str] | None:
        template = self._drain3.drain.id_to_cluster[cid].log_template_tokens
        sub = list(template)
        for j in self._split_positions(cid, template):
            sub[j] = tokens[j]
        found = self._groups.get(tuple(sub))
        if found is None and not strict:  # cannot happen for a learned line; keep the raw template
            text = " ".join(sub)
            return self._id(text), text
        return found

    def _id(self, text: str) -> str:
        return hashlib.blake2b(f"{self.namespace}\x1f{text}".encode(), digest_size=8).hexdigest()

    def _refresh(self) -> None:
        """Recompute split templates and the merge map, only when the model changed."""
        if not self._dirty:
            return
        subs: dict[tuple[str, ...], list[int]] = {}  # sub-template -> [count, first seen]
        order = 0
        for cid in sorted(self._drain3.drain.id_to_cluster):
            cluster = self._drain3.drain.id_to_cluster[cid]
            template = cluster.log_template_tokens
            stats = self._stats[cid]
            split = self._split_positions(cid, template)
            if not split:
                parts = [(template, cluster.size)]
            else:
                where = [stats.small.index(j) for j in split]
                parts = []
                for key, n in stats.joint.items():
                    sub = list(template)
                    for j, k in zip(split, where):
                        sub[j] = key[k]
                    parts.append((tuple(sub), n))
            for sub, n in parts:
                entry = subs.setdefault(sub, [0, order])
                entry[0] += n
                order += 1

        if self.merge:
            first = self._cover(subs)
            skeleton = {s: tuple(t for t in first[s] if not self._mask_only.match(t)) for s in subs}
            skel_stats: dict[tuple[str, ...], list[int]] = {}
            for s, (n, o) in subs.items():
                entry = skel_stats.setdefault(skeleton[s], [0, o])
                entry[0] += n
                entry[1] = min(entry[1], o)
            second = self._cover(skel_stats)
            group_of = {s: second[skeleton[s]] for s in subs}
        else:
            group_of = {s: s for s in subs}

        # a group shows its most general member (it covers every line), then the most frequent
        def rank(s: tuple[str, ...]) -> tuple[int, int, int]:
            return (self._n_vars(s), subs[s][0], -subs[s][1])

        best: dict[tuple[str, ...], tuple[str, ...]] = {}
        totals: dict[tuple[str, ...], int] = defaultdict(int)
        for s, (n, _) in subs.items():
            g = group_of[s]
            totals[g] += n
            if g not in best or rank(s) > rank(best[g]):
                best[g] = s
        self._groups, self._group_counts = {}, {}
        for s in subs:
            g = group_of[s]
            text = " ".join(best[g])
            tid = self._id(text)
            self._groups[s] = (tid, text)
            self._group_counts[tid] = totals[g]
        self._dirty = False

    def _n_vars(self, template: tuple[str, ...]) -> int:
        return sum(1 for tok in template if self._var_token.match(tok))

    def _cover(self, items: dict[tuple[str, ...], list[int]]) -> dict[tuple[str, ...], tuple[str, ...]]:
        """Map each template to the first more general template of the same length that covers it.

        ``G`` covers ``T`` when at every position the tokens are equal or ``G``'s is a variable
        token. Most general first, then most frequent, then first seen: deterministic.
        """
        ordered = sorted(items, key=lambda t: (-self._n_vars(t), -items[t][0], items[t][1]))
        generals: dict[int, list[tuple[str, ...]]] = defaultdict(list)
        target: dict[tuple[str, ...], tuple[str, ...]] = {}
        for t in ordered:
            for g in generals[len(t)]:
                if all(a == b or self._var_token.match(a) for a, b in zip(g, t)):
                    target[t] = g
                    break
            else:
                generals[len(t)].append(t)
                target[t] = t
        return target


class _ClusterStats:
    """Per Drain group: positions that so far held few unmasked words, and line counts per combination.

    ``small`` only shrinks: a position leaves it for good once it holds a masked value or more
    than ``limit`` distinct words. ``joint`` counts lines per tuple of words at ``small``.
    """

    __slots__ = ("small", "values", "joint", "limit")

    def __init__(self, length: int, limit: int):
        self.limit = limit
        self.small: list[int] = list(range(length)) if limit > 0 else []
        self.values: dict[int, set[str]] = {j: set() for j in self.small}
        self.joint: Counter[tuple[str, ...]] = Counter()

    def add(self, tokens: list[str], is_word) -> bool:
        """Count one line; True when the split candidates changed (the templates may change)."""
        changed = False
        drop = []
        for j in self.small:
            value = tokens[j]
            seen = self.values[j]
            if value in seen:
                continue
            changed = True
            seen.add(value)
            if len(seen) > self.limit or not is_word(value):
                drop.append(j)
        if drop:
            keep = [k for k, j in enumerate(self.small) if j not in drop]
            joint: Counter[tuple[str, ...]] = Counter()
            for key, n in self.joint.items():
                joint[tuple(key[k] for k in keep)] += n
            self.joint = joint
            for j in drop:
                del self.values[j]
            self.small = [j for j in self.small if j not in drop]
        key = tuple(tokens[j] for j in self.small)
        if key not in self.joint:
            changed = True
        self.joint[key] += 1
        return changed


# ---------------------------------------------------------------------- logs tables

def mine(logs: pd.DataFrame, miner: TemplateMiner | None = None) -> pd.DataFrame:
    """Add a template to every log line, mined per service (templates never mix across services).

    Parameters
    ----------
    logs : pandas.DataFrame
        Unified ``logs`` rows: ``timestamp``, ``service``, ``body`` are used (``environment``,
        ``severity``, ``trace_id``, ``attributes`` and any other column pass through).
    miner : TemplateMiner, optional
        Prototype whose parameters are used for each service's miner; the shared default otherwise.

    Returns
    -------
    pandas.DataFrame
        A copy of ``logs`` (same index and row order) with ``template_id`` (str: a hash of service
        and template text, stable across runs on the same data) and ``template`` (str).
    """
    _require(logs, ("timestamp", "service", "body"), "logs")
    params = miner.get_params() if miner is not None else {}
    out = logs.copy()
    n = len(logs)
    ids = np.empty(n, dtype=object)
    texts = np.empty(n, dtype=object)
    # learn in time order (Drain is order-dependent), write back by position
    order = logs["timestamp"].reset_index(drop=True).sort_values(kind="stable").index.to_numpy()
    services = logs["service"].astype(str).to_numpy()[order]
    bodies = logs["body"].to_numpy()[order]
    for service in pd.unique(services):
        sel = services == service
        service_miner = TemplateMiner(**{**params, "namespace": service})
        line_ids = service_miner.fit_predict(bodies[sel])
        text_of = service_miner._texts()  # id -> text, without building templates()' sorted frame
        ids[order[sel]] = line_ids
        texts[order[sel]] = [text_of[t] for t in line_ids]
    out["template_id"] = pd.Series(ids, index=logs.index, dtype=object)
    out["template"] = pd.Series(texts, index=logs.index, dtype=object)
    return out


def template_counts(mined: pd.DataFrame, step: str = "1min", fill_zeros: bool = True) -> pd.DataFrame:
    """Lines per template per time step: the frame the detector scores.

    Parameters
    ----------
    mined : pandas.DataFrame
        Output of :func:`mine` (``timestamp``, ``service``, ``template_id`` are used).
    step : str
        A pandas frequency (``"1min"``, ``"30s"``, ``"5min"``).
    fill_zeros : bool
        Add zero rows for every step of the service's time range and every template of that
        service (a template that stops appearing is a signal too). False keeps non-zero rows only.

    Returns
    -------
    pandas.DataFrame
        ``timestamp`` (start of the step), ``service``, ``template_id``, ``count`` (int64), sorted by
        service, timestamp, template_id.
    """
    _require(mined, ("timestamp", "service", "template_id"), "mined logs")
    cols = ["timestamp", "service", "template_id", "count"]
    if mined.empty:
        return pd.DataFrame({c: pd.Series([], dtype=mined["timestamp"].dtype if c == "timestamp" else
                                          ("int64" if c == "count" else object)) for c in cols})
    frame = mined[["timestamp", "service", "template_id"]].assign(timestamp=mined["timestamp"].dt.floor(step))
    counts = frame.groupby(["service", "timestamp", "template_id"], sort=True).size().rename("count")
    if fill_zeros:
        parts = []
        for service, part in counts.groupby(level="service", sort=True):
            times = part.index.get_level_values("timestamp")
            steps = pd.date_range(times.min(), times.max(), freq=step)
            templates = part.index.get_level_values("template_id").unique().sort_values()
            full = pd.MultiIndex.from_product([[service], steps, templates], names=counts.index.names)
            parts.append(part.reindex(full, fill_value=0))
        counts = pd.concat(parts)
    out = counts.reset_index()[cols]
    out["count"] = out["count"].astype("int64")
    return out.reset_index(drop=True)


def new_templates(mined: pd.DataFrame, baseline_end: Any) -> pd.DataFrame:
    """Templates whose first line is at or after ``baseline_end`` (never seen in the baseline).

    Parameters
    ----------
    mined : pandas.DataFrame
        Output of :func:`mine` (``timestamp``, ``service``, ``template_id``, ``template`` are used).
    baseline_end : str or datetime-like
        End of the baseline, timezone-aware (naive times are refused, as everywhere).

    Returns
    -------
    pandas.DataFrame
        ``service``, ``template_id``, ``template``, ``first_seen`` (timestamp), ``count`` (int64,
        lines of the template), sorted by first_seen.
    """
    _require(mined, ("timestamp", "service", "template_id", "template"), "mined logs")
    end = pd.Timestamp(baseline_end)
    if end.tzinfo is None:
        raise ParameterError(f"baseline_end must be timezone-aware (e.g. '2024-01-01T00:00Z'), got {baseline_end!r}")
    summary = _per_template(mined)
    new = summary[summary["first_seen"] >= end]
    return new.sort_values(["first_seen", "service", "template_id"], kind="stable").reset_index(drop=True)


def error_templates(mined: pd.DataFrame, min_error_share: float = 0.5) -> pd.DataFrame:
    """Templates that carry errors: mostly ERROR/FATAL lines, or error words in the text.

    Parameters
    ----------
    mined : pandas.DataFrame
        Output of :func:`mine` (``service``, ``template_id``, ``template``, ``severity``, ``timestamp``
        are used).
    min_error_share : float
        Share of ERROR/FATAL lines above which a template is an error template.

    Returns
    -------
    pandas.DataFrame
        ``service``, ``template_id``, ``template``, ``first_seen``, ``count`` (int64),
        ``error_share`` (float, share of ERROR/FATAL lines), ``text_match`` (bool: the text matches
        :data:`ERROR_TEXT`: exception, error, fail, timeout, refused ...), most lines first.
    """
    _require(mined, ("timestamp", "service", "template_id", "template", "severity"), "mined logs")
    summary = _per_template(mined)
    if summary.empty:
        return summary.assign(error_share=pd.Series([], dtype="float64"), text_match=pd.Series([], dtype=bool))
    is_error = mined["severity"].astype(str).str.upper().isin(("ERROR", "FATAL"))
    share = is_error.groupby([mined["service"], mined["template_id"]]).mean().rename("error_share")
    summary = summary.join(share, on=["service", "template_id"])
    summary["text_match"] = summary["template"].str.contains(ERROR_TEXT)
    keep = (summary["error_share"] > min_error_share) | summary["text_match"]
    return (summary[keep].sort_values(["count", "service", "template_id"], ascending=[False, True, True], kind="stable")
            .reset_index(drop=True))


def _per_template(mined: pd.DataFrame) -> pd.DataFrame:
    grouped = mined.groupby(["service", "template_id"], sort=True)
    out = grouped.agg(template=("template", "first"), first_seen=("timestamp", "min"), count=("timestamp", "size"))
    out = out.reset_index()
    out["count"] = out["count"].astype("int64")
    return out[["service", "template_id", "template", "first_seen", "count"]]


def _require(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SchemaError("logs", what, [{"column": ", ".join(missing), "check": "a required column, missing",
                                          "count": len(frame), "rows": []}])
