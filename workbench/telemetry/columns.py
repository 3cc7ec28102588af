"""Column converters of the unified schema: each turns one column into its validated form at once.

:func:`workbench.telemetry.schema.validate` calls one per column kind; each returns the converted
column and boolean masks of the rows that fail (so every failure can be named with its rows).
Vectorised: Arrow and pandas operations over the column; values are only looked at one by one
per *distinct* value (JSON attributes, mixed-type text), never per row.
"""
from __future__ import annotations

import json
import math
import re
from typing import Any

import numpy as np
import pandas as pd

from ..formats import bad_text, text_problem


def to_attributes(value: Any) -> str:
    """Serialise a dict (or JSON text of an object, or None) as sorted-key JSON text."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "{}"
    if isinstance(value, str):
        value = json.loads(value) if value.strip() else {}
    if not isinstance(value, dict):
        raise ValueError("attributes must be a JSON object")
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def parse_attributes(text: str | None) -> dict[str, Any]:
    """Inverse of :func:`to_attributes`."""
    return json.loads(text) if text else {}


# --------------------------------------------------------------------------- helpers

_OFFSET = re.compile(r"(?:Z|[+-]\d{2}:?\d{2}|UTC|GMT)$", re.IGNORECASE)


def to_utc(series: pd.Series, tz: str | None = None) -> tuple[pd.Series, pd.Series | None]:
    """Parse ``series`` as times and convert to UTC; return (UTC series, mask of bad rows).

    The one time parser of the workbench: tz-aware values are converted, naive ones are refused
    (marked bad) unless ``tz`` names the zone they were written in, strings need an offset.
    """
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        return series.dt.tz_convert("UTC").astype("datetime64[ns, UTC]"), series.isna()
    if pd.api.types.is_datetime64_dtype(series.dtype):
        if tz is None:
            return pd.Series(pd.NaT, index=series.index, dtype="datetime64[ns, UTC]"), pd.Series(True, index=series.index)
        loc = series.dt.tz_localize(tz, ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC")
        return loc.astype("datetime64[ns, UTC]"), loc.isna()
    if pd.api.types.is_string_dtype(series.dtype) and pd.api.types.infer_dtype(series, skipna=True) in ("string", "empty"):
        return _text_times(series.astype("str"), tz)
    # Objects: Timestamps/datetimes of one zone convert at once; a mix is sorted out per distinct value.
    values = series.astype(object)
    codes, uniques = pd.factorize(values)
    naive = np.array([_is_naive(v) for v in uniques] + [False], dtype=bool)[codes]
    bad = np.array([isinstance(v, (bytes, bool)) for v in uniques] + [True], dtype=bool)[codes]
    text = np.array([_as_text(v) if not isinstance(v, (bytes, bool)) else None for v in uniques] + [None],
                    dtype=object)[codes]
    if tz is None:
        bad |= naive
    parsed = pd.Series(pd.NaT, index=series.index, dtype="datetime64[ns, UTC]")
    aware = ~naive & ~bad
    if aware.any():
        parsed[aware] = pd.to_datetime(pd.Series(text[aware], index=series.index[aware]), utc=True, errors="coerce",
                                       format="ISO8601")
    local = naive & ~bad
    if tz is not None and local.any():
        times = pd.to_datetime(pd.Series(text[local], index=series.index[local]), errors="coerce", format="ISO8601")
        parsed[local] = times.dt.tz_localize(tz, ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC")
    bad = pd.Series(bad, index=series.index) | parsed.isna()
    return parsed.astype("datetime64[ns, UTC]"), bad


def _text_times(values: pd.Series, tz: str | None) -> tuple[pd.Series, pd.Series]:
    """``to_utc`` of text: an offset (``Z``, ``+02:00``, ``UTC``) makes a time aware."""
    stripped = values.str.strip()
    naive = ~stripped.str.contains(_OFFSET.pattern, case=False, regex=True).fillna(False).astype(bool)
    bad = values.isna()
    if tz is None:
        bad = bad | naive
    parsed = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]")
    aware = ~naive & ~bad
    if aware.all():
        fast = _arrow_times(stripped)
        if fast is not None:
            return fast, bad | fast.isna()
    if aware.any():
        parsed[aware] = pd.to_datetime(stripped[aware], utc=True, errors="coerce", format="ISO8601")
    local = naive & ~bad
    if tz is not None and local.any():
        times = pd.to_datetime(stripped[local], errors="coerce", format="ISO8601")
        parsed[local] = times.dt.tz_localize(tz, ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC")
    return parsed.astype("datetime64[ns, UTC]"), bad | parsed.isna()


def _arrow_times(text: pd.Series) -> pd.Series | None:
    """ISO 8601 texts with offsets through Arrow's parser; None when Arrow refuses one (pandas decides then)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        arr = pc.cast(pa.array(text, from_pandas=True), pa.timestamp("ns", "UTC"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None
    out = arr.to_pandas()
    out.index = text.index
    return out.astype("datetime64[ns, UTC]")


def _as_text(v: Any) -> Any:
    if isinstance(v, pd.Timestamp) or hasattr(v, "isoformat"):
        return pd.Timestamp(v).isoformat()
    return v


def _is_naive(v: Any) -> bool:
    if isinstance(v, pd.Timestamp):
        return v.tzinfo is None
    if hasattr(v, "tzinfo") and hasattr(v, "isoformat"):
        return v.tzinfo is None
    if isinstance(v, str):
        return not _OFFSET.search(v.strip())
    return False


def to_json(series: pd.Series) -> tuple[pd.Series, np.ndarray, np.ndarray, np.ndarray | None]:
    """Attributes as sorted-key JSON text: (text, not-an-object mask, control-character mask, codes).

    ``codes`` number equal texts alike (None when the input held dicts).

    Converted once per distinct value (attributes repeat: pods, versions); dicts, which cannot be
    hashed, are taken per row, as they arrive only from sources that build them.
    """
    coded = categories(series)
    arrow_text = coded is not None or (pd.api.types.is_string_dtype(series.dtype) and series.dtype != object)
    values = series if pd.api.types.is_string_dtype(series.dtype) or coded else series.astype(object)
    hashable = True
    if coded is not None:
        codes, uniques = coded[0], coded[1].tolist()
    elif arrow_text:
        codes, distinct_values = distinct(values)
        uniques = distinct_values.tolist()
    else:
        try:
            codes, uniques = pd.factorize(values)
        except TypeError:  # dicts
            uniques = values.to_numpy(dtype=object)
            codes = np.arange(len(values))
            hashable = False
    canonical = _canonical(uniques) if arrow_text else np.zeros(len(uniques), dtype=bool)
    converted = [(v, False) if ok else _attribute_text(v) for v, ok in zip(uniques, canonical)] + [("{}", False)]
    text = np.array([c[0] for c in converted], dtype=object)
    bad = np.array([c[1] for c in converted], dtype=bool)
    control = _json_control(text)
    codes = np.where(codes < 0, len(converted) - 1, codes)
    if coded is None and arrow_text and not (codes == len(converted) - 1).any() and all(
            t == u for t, u in zip(text, uniques)):
        out = series  # already canonical JSON text: no need to build the column again
    else:
        out = pd.Series(pd.array(text, dtype="str").take(codes), index=series.index)
    if hashable:  # two raw texts may canonicalise to one JSON text: number the JSON texts
        canon = pd.factorize(text)[0]
        return out, bad[codes], control[codes], canon[codes]
    return out, bad[codes], control[codes], None


def _canonical(texts: list[str]) -> np.ndarray:
    """Which ``texts`` are already what :func:`to_attributes` makes of them.

    orjson's round trip decides (ten times json's speed): for an object without floats it writes
    exactly what ``json.dumps(sort_keys=True, ensure_ascii=False, separators=(",", ":"))`` writes
    (every character escaped alike, keys in code point order, integers as written); objects
    holding a float (orjson writes 1e-05 as 0.00001) and texts orjson refuses (lone surrogates,
    integers past 64 bits, NaN) take the json path.
    """
    import orjson

    out = np.zeros(len(texts), dtype=bool)
    for i, text in enumerate(texts):
        try:
            value = orjson.loads(text)
            out[i] = (isinstance(value, dict) and not _has_float(value)
                      and orjson.dumps(value, option=orjson.OPT_SORT_KEYS) == text.encode())
        except (orjson.JSONDecodeError, UnicodeEncodeError, TypeError):
            pass
    return out


def _has_float(value: dict | list) -> bool:
    """Whether a parsed JSON object or array holds a float anywhere (one C-level pass per level)."""
    items = value.values() if isinstance(value, dict) else value
    kinds = set(map(type, items))
    if float in kinds:
        return True
    return (dict in kinds or list in kinds) and any(_has_float(v) for v in items if isinstance(v, (dict, list)))


def _attribute_text(value: Any) -> tuple[str, bool]:
    """(sorted-key JSON, not an object) of one attributes value."""
    try:
        return to_attributes(value), False
    except (ValueError, TypeError):
        return "{}", True


#: A JSON escape of a control character (``\\n``, ``\\u0000`` ...) that is not itself an escaped backslash.
_JSON_CONTROL_ESCAPE = r'(?:^|[^\\])(?:\\\\)*\\(?:[bfnrt]|u00[01][0-9a-fA-F])'


def _json_control(texts: np.ndarray) -> np.ndarray:
    """Which canonical JSON texts break the text rule (keys one line, string values multi-line).

    ``json.dumps`` writes every control character as an escape, so Arrow's regex finds the texts
    holding any; only those are parsed again to see whether the character is allowed where it is.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    out = np.zeros(len(texts), dtype=bool)
    suspects = np.asarray(pc.match_substring_regex(pa.array(texts, type=pa.string()), _JSON_CONTROL_ESCAPE),
                          dtype=bool)
    for i in np.flatnonzero(suspects):
        out[i] = _bad_json_text(json.loads(texts[i]), key=False)
    return out


def _bad_json_text(value: Any, key: bool) -> bool:
    if isinstance(value, dict):
        return any(_bad_json_text(k, key=True) or _bad_json_text(v, key=False) for k, v in value.items())
    if isinstance(value, list):
        return any(_bad_json_text(v, key=False) for v in value)
    if isinstance(value, str):
        return text_problem(value, multiline=not key) is not None
    return False


def to_float(series: pd.Series, nonnegative: bool) -> tuple[pd.Series, pd.Series]:
    if series.dtype == bool:
        values = pd.Series(np.nan, index=series.index)
    else:
        values = pd.to_numeric(series, errors="coerce").astype("float64")
    bad = ~np.isfinite(values.to_numpy(dtype="float64", na_value=np.nan))
    if nonnegative:
        bad |= values.to_numpy(dtype="float64", na_value=np.nan) < 0
    return values, pd.Series(bad, index=series.index)


def to_text(series: pd.Series, allow_empty: bool, fill_missing: Any, multiline: bool,
            by_value: bool = True) -> tuple[pd.Series, np.ndarray, np.ndarray, np.ndarray | None]:
    """Text as ``str``: (text, bad mask: missing/not text/not UTF-8/empty, control-character mask,
    codes of equal values or None).

    ``by_value`` checks each distinct value once (names, environments and attributes repeat on
    every row) and returns their codes; False checks the rows themselves and returns no codes, for
    text that seldom repeats (log bodies: hashing them would copy every byte into a dictionary).
    """
    coded = categories(series)
    if coded is not None:
        return _coded_text(series, *coded, allow_empty, fill_missing, multiline)
    if pd.api.types.is_string_dtype(series.dtype) and not series.dtype == object:
        text = series
    else:
        text = None
        values = series.astype(object)
        if pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):
            try:
                text = values.astype("str")
            except (UnicodeEncodeError, ValueError, TypeError):
                text = None  # lone surrogates: checked per distinct value below
        if text is None:
            return (*_to_text_objects(values, allow_empty, fill_missing, multiline), None)
    missing = text.isna().to_numpy(dtype=bool)
    if fill_missing is not None and missing.any():
        text = text.fillna(fill_missing)
        missing = np.zeros(len(text), dtype=bool)
    if not by_value:
        bad = missing.copy()
        if not allow_empty:
            bad |= blank(text)
        return text, bad, bad_text(text, multiline), None
    codes, values = distinct(text)
    flags = np.zeros(len(values) + 1, dtype=bool)
    if not allow_empty:
        flags[:-1] = values.str.strip().eq("").fillna(False).to_numpy(dtype=bool)
    bad = flags[codes] | missing
    control = np.append(bad_text(values, multiline), False)[codes]
    return text, bad, control, codes


def blank(text: pd.Series) -> np.ndarray:
    """Which texts ``str.strip`` leaves empty (missing values: False), without copying the column:
    a text holding a visible ASCII character is not blank; only the others are stripped."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        arr = pa.array(text, type=pa.large_string(), from_pandas=True)
    except (pa.ArrowException, UnicodeEncodeError, TypeError):  # lone surrogates: refused elsewhere
        return text.str.strip().eq("").fillna(False).to_numpy(dtype=bool)
    seen = np.asarray(pc.fill_null(pc.match_substring_regex(arr, "[!-~]"), True), dtype=bool)
    out = np.zeros(len(text), dtype=bool)
    rest = np.flatnonzero(~seen)
    if len(rest):
        out[rest] = text.iloc[rest].str.strip().eq("").fillna(False).to_numpy(dtype=bool)
    return out


def categories(series: pd.Series) -> tuple[np.ndarray, pd.Series] | None:
    """(codes, categories as ``str``) of a categorical text column, None for any other column.

    A source that builds its text from a small vocabulary hands it in as categories: validation
    checks each category once and keeps the codes instead of hashing every row's text again.
    """
    if not isinstance(series.dtype, pd.CategoricalDtype):
        return None
    cats = series.cat.categories
    if pd.api.types.infer_dtype(cats, skipna=False) not in ("string", "empty"):
        return None
    try:
        words = pd.Series(cats.astype("str"))
    except (UnicodeEncodeError, ValueError, TypeError):
        return None  # lone surrogates: the object path names them
    return series.cat.codes.to_numpy(dtype=np.int64), words


def _coded_text(series: pd.Series, codes: np.ndarray, words: pd.Series, allow_empty: bool, fill_missing: Any,
                multiline: bool) -> tuple[pd.Series, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`to_text` of a categorical column: each category checked once, one take builds the text."""
    import pyarrow as pa

    missing = codes < 0
    if fill_missing is not None and missing.any():
        found = np.flatnonzero(words.to_numpy(dtype=object) == fill_missing)
        if not len(found):
            words = pd.concat([words, pd.Series([fill_missing], dtype="str")], ignore_index=True)
        codes = np.where(missing, found[0] if len(found) else len(words) - 1, codes)
        missing = np.zeros(len(codes), dtype=bool)
    flags = np.zeros(len(words) + 1, dtype=bool)
    if not allow_empty:
        flags[:-1] = words.str.strip().eq("").fillna(False).to_numpy(dtype=bool)
    bad = flags[codes] | missing
    control = np.append(bad_text(words, multiline), False)[codes]
    text = pa.array(words, type=pa.large_string()).take(pa.array(codes, mask=missing)).to_pandas()
    text.index = series.index
    return text, bad, control, codes


def distinct(text: pd.Series) -> tuple[np.ndarray, pd.Series]:
    """(codes, distinct values) of a text column through Arrow's hash; code -1 marks a missing value."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = pa.array(text, from_pandas=True)
    if isinstance(arr, pa.ChunkedArray) and arr.num_chunks == 1:
        arr = arr.chunk(0)
    if isinstance(arr, pa.ChunkedArray):
        if not arr.num_chunks:
            return np.zeros(0, dtype=np.int64), pd.Series([], dtype="str")
        # Arrow hashes the chunks with one memo table: global codes, one dictionary, no copy of
        # the text (a frame concatenated from many files holds one chunk per file).
        encoded = pc.dictionary_encode(arr)
        codes = np.concatenate([c.indices.fill_null(-1).to_numpy(zero_copy_only=False) for c in encoded.chunks])
        return codes.astype(np.int64, copy=False), encoded.chunk(encoded.num_chunks - 1).dictionary.to_pandas()
    encoded = pc.dictionary_encode(arr)
    codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    return codes, encoded.dictionary.to_pandas()


def _to_text_objects(values: pd.Series, allow_empty: bool, fill_missing: Any,
                     multiline: bool) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """The slow path of :func:`_to_text` for mixed objects: decided once per distinct value."""
    if fill_missing is not None:
        values = values.where(values.notna(), fill_missing)
    codes, uniques = pd.factorize(values)
    results = [_one_text(v, allow_empty, multiline) for v in uniques] + [("", True, False)]
    codes = np.where(codes < 0, len(results) - 1, codes)
    text = np.array([r[0] for r in results], dtype=object)[codes]
    bad = np.array([r[1] for r in results], dtype=bool)[codes]
    control = np.array([r[2] for r in results], dtype=bool)[codes]
    try:
        out = pd.Series(text, index=values.index).astype("str")
    except (UnicodeEncodeError, ValueError, TypeError):
        out = pd.Series(text, index=values.index, dtype=object)  # only when validation fails anyway
    return out, bad, control


def _one_text(value: Any, allow_empty: bool, multiline: bool) -> tuple[str, bool, bool]:
    if isinstance(value, bool) or not isinstance(value, (str, int, np.integer)):
        return "", True, False
    text = str(value)
    if not_utf8(text):
        return text, True, False
    if not allow_empty and not text.strip():
        return text, True, False
    return text, False, text_problem(text, multiline) is not None


def not_utf8(text: str) -> bool:
    # Lone surrogates are how undecodable bytes survive ``errors="surrogateescape"``.
    try:
        text.encode("utf-8")
        return False
    except UnicodeEncodeError:
        return True
