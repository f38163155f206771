"""Every label form the CLI accepts, and the errors for bad ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from scenecls.errors import LabelError
from scenecls.model.labels import (
    DEFAULT_TEMPLATES,
    LabelSet,
    parse_templates,
    preset_names,
    resolve_labels,
)


def test_inline_list() -> None:
    ls = resolve_labels(" room, park ,warehouse ")
    assert ls.names == ["room", "park", "warehouse"]
    assert ls.templates == DEFAULT_TEMPLATES
    assert ls.prompts()[0][0] == "a photo of a room."


def test_python_list_and_single_label() -> None:
    assert resolve_labels(["a b", "c"]).names == ["a b", "c"]
    assert resolve_labels("room").names == ["room"]


@pytest.mark.parametrize(
    "preset, must_have",
    [
        ("scenes", {"room", "park", "warehouse"}),
        ("pizza", {"chicago deep dish pizza", "regular pizza"}),
        ("cars", {"Tesla Model 3", "Toyota Camry", "Toyota Prius"}),
        ("cups", {"plastic cup", "ceramic cup"}),
    ],
)
def test_presets_ship_with_the_package(preset: str, must_have: set[str]) -> None:
    assert preset in preset_names()
    ls = resolve_labels(preset)
    assert must_have <= set(ls.names)
    assert all(lb.phrasings for lb in ls.labels)


def test_toml_file_with_synonyms_and_templates(tmp_path: Path) -> None:
    f = tmp_path / "l.toml"
    f.write_text(
        'templates = ["a photo of a {}.", "a photo of the {}."]\n'
        "[labels]\n"
        'room = ["room", "living room", "office"]\n'
        'park = "park"\n'
    )
    ls = resolve_labels(str(f))
    assert ls.names == ["room", "park"]
    assert ls.labels[0].phrasings == ("room", "living room", "office")
    assert ls.prompts()[0] == [
        "a photo of a room.",
        "a photo of the room.",
        "a photo of a living room.",
        "a photo of the living room.",
        "a photo of a office.",
        "a photo of the office.",
    ]


def test_templates_override_and_literal(tmp_path: Path) -> None:
    assert resolve_labels("a,b", "{}").prompts() == [["a"], ["b"]]
    assert resolve_labels("a", "x {} y|z {}").prompts() == [["x a y", "z a"]]
    f = tmp_path / "t.txt"
    f.write_text("# comment\nan image of {}\n\n")
    assert parse_templates(str(f)) == ("an image of {}",)
    assert parse_templates("default") == DEFAULT_TEMPLATES


def test_braces_in_label_text_are_not_format_fields() -> None:
    assert resolve_labels(["{0} odd"], "a {}").prompts() == [["a {0} odd"]]


@pytest.mark.parametrize(
    "spec, message",
    [
        ("", "no labels"),
        ("a,,b", "empty label"),
        ("room,Room", "appears twice"),
        ("room,unknown", "reserved"),
        ("missing-file.toml", "does not exist"),
    ],
)
def test_bad_inline_labels(spec: str, message: str) -> None:
    with pytest.raises(LabelError, match=message):
        resolve_labels(spec)


@pytest.mark.parametrize(
    "templates, message",
    [("a photo", "exactly once"), ("{} and {}", "exactly once"), ("|", "no prompt")],
)
def test_bad_templates(templates: str, message: str) -> None:
    with pytest.raises(LabelError, match=message):
        resolve_labels("a,b", templates)


def test_toml_syntax_error_names_the_line(tmp_path: Path) -> None:
    f = tmp_path / "bad.toml"
    f.write_text('[labels]\nroom = ["room"\npark = "park"\n')
    with pytest.raises(LabelError, match=r"bad.toml is not valid TOML.*line 3"):
        resolve_labels(str(f))


@pytest.mark.parametrize(
    "text, message",
    [
        ("labels = 3\n", "has no labels"),
        ("[labels]\nroom = 3\n", "must be a string or a list"),
        ("[labels]\nroom = []\n", "must be a string or a list"),
        ('[labels]\nroom = [""]\n', "empty phrasing"),
        ('colour = "red"\n[labels]\na = "a"\n', "unexpected key"),
        ('templates = "a {}"\n[labels]\na = "a"\n', "templates must be a list"),
    ],
)
def test_toml_wrong_structure(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "s.toml"
    f.write_text(text)
    with pytest.raises(LabelError, match=message):
        resolve_labels(str(f))


def test_many_labels_and_non_ascii() -> None:
    ls = LabelSet.from_names([f"label {i}" for i in range(1000)] + ["café", "東京"])
    assert len(ls.names) == 1002
