"""Fuzzing the label parser: whatever text comes in (inline lists, file names, TOML
documents), the result is a valid LabelSet or a one-line LabelError/UsageError.

Hypothesis runs derandomized and without an example database, so CI sees the same
examples every run.
"""

from __future__ import annotations

import math
import sys
import unicodedata
from collections.abc import Callable
from datetime import date, datetime, time, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scenecls.errors import UsageError
from scenecls.model.labels import (
    UNKNOWN,
    LabelSet,
    _from_toml_text,
    load_toml,
    parse_templates,
    resolve_labels,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

FUZZ = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# -- the property ----------------------------------------------------------------------


def check_one_line(err: UsageError) -> None:
    """A clear error: one printable line (no newline, no NUL), not empty."""
    msg = str(err)
    assert msg.strip(), f"empty message from {type(err).__name__}"
    assert msg.isprintable(), f"message is not one printable line: {msg!r}"


def check_labelset(ls: LabelSet) -> None:
    """Every name non-empty and unique (case-insensitively), every prompt renders."""
    assert isinstance(ls, LabelSet) and ls.labels
    keys = [n.strip().casefold() for n in ls.names]
    assert all(keys) and len(set(keys)) == len(keys) and UNKNOWN not in keys
    assert not any(unicodedata.category(c) in {"Cc", "Zl", "Zp"} for n in ls.names for c in n)
    prompts = ls.prompts()
    assert len(prompts) == len(ls.labels)
    for label, texts in zip(ls.labels, prompts, strict=True):
        assert len(texts) == len(label.phrasings) * len(ls.templates)
        assert all(isinstance(t, str) and t.strip() for t in texts)


def outcome(call: Callable[[], Any]) -> Any:
    """Run ``call``: a clear error is checked and gives None; anything else propagates."""
    try:
        result = call()
    except UsageError as e:
        check_one_line(e)
        return None
    return result


# -- strategies ------------------------------------------------------------------------

# Characters that matter to the parsers, mixed into arbitrary (surrogate-free) text.
ODD = [",", " ", "\x00", "\n", "\r", "\t", "{}", "{", "}", "|", "/", ".toml", ".txt"]
ODD += ["unknown", "UNKNOWN", "\u2028", "\x85", "\u200b", "#", "\\", '"', "'", "default"]
pieces = st.one_of(st.text(max_size=12), st.sampled_from(ODD))
odd_text = st.lists(pieces, max_size=12).map("".join)
inline_lists = st.lists(odd_text, min_size=1, max_size=8).map(",".join)
long_text = st.tuples(st.integers(200, 6000), st.sampled_from(["x", "a/", "é", ", "])).map(
    lambda t: t[1] * (t[0] // len(t[1]))
)
specs = st.one_of(
    st.text(),
    odd_text,
    inline_lists,
    long_text,
    st.tuples(st.one_of(odd_text, long_text), st.sampled_from([".toml", ".txt"])).map("".join),
    st.sampled_from(["scenes", "pizza", "cars", "cups", "default", ".", "/", "..", "/tmp"]),
)


def toml_string(s: str) -> str:
    """A TOML basic string (control characters and DEL escaped)."""
    out = []
    for c in s:
        if c in '"\\':
            out.append("\\" + c)
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def toml_value(v: Any) -> str:
    """A tiny TOML emitter for inline values: scalars, arrays and inline tables."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return toml_string(v)
    if isinstance(v, datetime | date | time):
        return v.isoformat()
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{toml_string(k)} = {toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"no TOML for {v!r}")


def toml_document(doc: dict[str, Any], sections: bool) -> str:
    """Top-level keys as ``key = value``; with ``sections``, tables as ``[key]`` blocks."""
    lines, tables = [], []
    for key, value in doc.items():
        if sections and isinstance(value, dict):
            tables.append(f"[{toml_string(key)}]")
            tables += [f"{toml_string(k)} = {toml_value(v)}" for k, v in value.items()]
        else:
            lines.append(f"{toml_string(key)} = {toml_value(value)}")
    return "\n".join(lines + tables) + "\n"


scalars = st.one_of(
    st.text(max_size=10),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(),
    st.datetimes(timezones=st.none() | st.just(timezone.utc)),
    st.dates(),
    st.times(),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=12,
)
label_names = st.one_of(st.text(max_size=10), st.sampled_from(ODD))
phrasings = st.one_of(odd_text, st.lists(odd_text, max_size=4), values)
label_tables = st.one_of(
    st.dictionaries(label_names, phrasings, max_size=6),
    st.lists(st.one_of(label_names, values), max_size=6),
    values,
)
template_lists = st.one_of(
    st.lists(st.one_of(odd_text, st.just("a photo of a {}."), st.just("{}")), max_size=4),
    values,
)
documents = st.fixed_dictionaries(
    {},
    optional={
        "labels": label_tables,
        "templates": template_lists,
        "colour": values,
    },
)
toml_texts = st.one_of(
    st.text(),
    st.text(alphabet="[]{}=\",.\n abc1#'-:T\\"),
    st.tuples(st.integers(10, 3000), st.sampled_from(["[", "{b="])).map(
        lambda t: "a = " + t[1] * t[0]
    ),
    st.builds(toml_document, documents, st.booleans()),
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-labels")


# -- the tests -------------------------------------------------------------------------


@FUZZ
@given(spec=specs)
def test_resolve_labels_any_text(spec: str) -> None:
    ls = outcome(lambda: resolve_labels(spec))
    if ls is not None:
        check_labelset(ls)


@FUZZ
@given(spec=inline_lists | specs, templates=specs)
def test_resolve_labels_with_any_templates(spec: str, templates: str) -> None:
    ls = outcome(lambda: resolve_labels(spec, templates))
    if ls is not None:
        check_labelset(ls)


@FUZZ
@given(names=st.lists(odd_text, max_size=8))
def test_resolve_labels_any_list_of_names(names: list[str]) -> None:
    ls = outcome(lambda: resolve_labels(names))
    if ls is not None:
        check_labelset(ls)


@FUZZ
@given(spec=specs)
def test_parse_templates_any_text(spec: str) -> None:
    templates = outcome(lambda: parse_templates(spec))
    if templates is not None:
        assert templates and all(t.count("{}") == 1 for t in templates)


@FUZZ
@given(text=toml_texts)
def test_toml_text_any_document(text: str) -> None:
    ls = outcome(lambda: _from_toml_text(text, "label file fuzz.toml"))
    if ls is not None:
        check_labelset(ls)


@FUZZ
@given(doc=documents, sections=st.booleans())
def test_emitter_writes_valid_toml(doc: dict[str, Any], sections: bool) -> None:
    """The generated documents reach the structure checks, not just the TOML parser."""
    tomllib.loads(toml_document(doc, sections))


@FUZZ
@given(
    content=st.one_of(toml_texts.map(str.encode), st.binary(max_size=200)),
    suffix=st.sampled_from([".toml", ".txt", ""]),
)
def test_label_and_template_files_any_bytes(folder: Path, content: bytes, suffix: str) -> None:
    path = folder / f"fuzz{suffix}"
    path.write_bytes(content)
    for call in (lambda: load_toml(path), lambda: resolve_labels(str(path))):
        ls = outcome(call)
        if ls is not None:
            check_labelset(ls)
    templates = outcome(lambda: parse_templates(str(path)))
    if templates is not None:
        assert templates and all(t.count("{}") == 1 for t in templates)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("a\x00b.toml", "not a valid path"),
        ("x" * 5000 + ".toml", "File name too long"),
        ("a\nb.toml", r"'a\\nb.toml' does not exist"),
        ("a\nb", "control character"),
    ],
)
def test_found_by_fuzzing_labels(spec: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as err:
        resolve_labels(spec)
    check_one_line(err.value)


@pytest.mark.parametrize(
    "text, message",
    [
        ('labels = ["a", "a"]\n', "appears twice"),
        ('labels = [["a", "b"]]\n', "must list strings"),
        ("a = " + "[" * 3000, "nests arrays or tables too deeply"),
    ],
)
def test_found_by_fuzzing_toml(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as err:
        _from_toml_text(text, "label file x.toml")
    check_one_line(err.value)


def test_found_by_fuzzing_templates(folder: Path) -> None:
    bad = folder / "t.toml"
    bad.write_text("templates = 3\n")
    with pytest.raises(UsageError, match="templates must be a list of strings"):
        parse_templates(str(bad))
    with pytest.raises(UsageError, match="does not exist"):
        parse_templates("x" * 5000 + ".txt")
    latin = folder / "latin.txt"
    latin.write_bytes(b"caf\xe9 {}\n")
    with pytest.raises(UsageError, match="not UTF-8 text"):
        parse_templates(str(latin))
