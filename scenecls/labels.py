"""Label sets: labels with one or more phrasings, and prompt templates.

A label set comes from an inline list (``"room,park,warehouse"``), a preset shipped in
the package (``scenes``, ``pizza``, ``cars``, ``cups``) or a TOML file::

    templates = ["a photo of a {}.", "a photo of the {}."]
    [labels]
    room = ["room", "living room", "office"]
    park = "park"

A label's text embedding is the normalised mean over phrasings x templates (prompt
ensembling). ``{}`` in a template is where the phrasing goes; the template ``{}``
alone uses the phrasing as is.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import LabelError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

UNKNOWN = "unknown"
MAX_LABELS = 10_000

# A small ensemble of the photo prompts from the CLIP paper's ImageNet prompt list.
DEFAULT_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "a photo of the {}.",
    "a close-up photo of a {}.",
    "a cropped photo of a {}.",
    "a bright photo of a {}.",
    "a dark photo of a {}.",
    "a blurry photo of a {}.",
)


@dataclass(frozen=True)
class Label:
    """One class: its name (what is reported) and the phrasings that describe it."""

    name: str
    phrasings: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise LabelError("a label name is empty: give every label some text")
        if not self.phrasings or any(not p.strip() for p in self.phrasings):
            raise LabelError(f"label {self.name!r} has an empty phrasing: remove it or fill it in")


@dataclass(frozen=True)
class LabelSet:
    """Labels (in order) and the prompt templates used to embed them."""

    labels: tuple[Label, ...]
    templates: tuple[str, ...] = DEFAULT_TEMPLATES

    def __post_init__(self) -> None:
        if not self.labels:
            raise LabelError("no labels given: pass --labels, e.g. --labels 'room,park,warehouse'")
        if len(self.labels) > MAX_LABELS:
            raise LabelError(f"{len(self.labels)} labels is more than the {MAX_LABELS} supported")
        seen: dict[str, str] = {}
        for label in self.labels:
            key = label.name.strip().casefold()
            if key == UNKNOWN:
                raise LabelError(
                    f"'{UNKNOWN}' is reserved for low-confidence frames: rename that label"
                )
            if key in seen:
                raise LabelError(
                    f"label {label.name!r} appears twice: merge the two into one label with "
                    "several phrasings (TOML file) or drop one"
                )
            seen[key] = label.name
        validate_templates(self.templates)

    @property
    def names(self) -> list[str]:
        return [label.name for label in self.labels]

    def prompts(self) -> list[list[str]]:
        """For each label, every phrasing in every template: K lists of texts."""
        return [
            [t.replace("{}", p) for p in label.phrasings for t in self.templates]
            for label in self.labels
        ]

    def with_templates(self, templates: Sequence[str]) -> LabelSet:
        return LabelSet(self.labels, tuple(templates))

    @classmethod
    def from_names(cls, names: Sequence[str], templates: Sequence[str] | None = None) -> LabelSet:
        labels = tuple(Label(n.strip(), (n.strip(),)) for n in names)
        return cls(labels, tuple(templates) if templates is not None else DEFAULT_TEMPLATES)


def validate_templates(templates: Sequence[str]) -> None:
    if not templates:
        raise LabelError("no prompt templates: use '{}' to embed label texts as they are")
    for t in templates:
        if not isinstance(t, str) or t.count("{}") != 1:
            raise LabelError(
                f"template {t!r} must contain '{{}}' exactly once, where the label goes "
                "(e.g. 'a photo of a {}.')"
            )


def preset_names() -> list[str]:
    """Names of the label presets shipped in the package."""
    folder = resources.files("scenecls") / "presets"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_preset(name: str) -> LabelSet:
    text = (resources.files("scenecls") / "presets" / f"{name}.toml").read_text(encoding="utf-8")
    return _from_toml_text(text, f"preset {name}")


def load_toml(path: str | Path) -> LabelSet:
    """Read a TOML label file; errors name the file and, for syntax errors, the line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise LabelError(f"label file {path} does not exist: check the path") from e
    except (OSError, UnicodeDecodeError) as e:
        raise LabelError(f"cannot read label file {path}: {e}") from e
    return _from_toml_text(text, f"label file {path}")


def _from_toml_text(text: str, where: str) -> LabelSet:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise LabelError(f"{where} is not valid TOML: {e}") from e
    shape = (
        "expected 'templates = [\"a photo of a {}.\"]' (optional) and a [labels] table of "
        'name = "text" or name = ["text", ...]'
    )
    unknown_keys = set(data) - {"templates", "labels"}
    if unknown_keys:
        raise LabelError(f"{where}: unexpected key(s) {sorted(unknown_keys)}: {shape}")
    raw_labels: Any = data.get("labels")
    if isinstance(raw_labels, list):
        raw_labels = {str(n): n for n in raw_labels}
    if not isinstance(raw_labels, dict) or not raw_labels:
        raise LabelError(f"{where} has no labels: {shape}")
    labels = []
    for name, value in raw_labels.items():
        phr = [value] if isinstance(value, str) else value
        if not isinstance(phr, list) or not phr or not all(isinstance(p, str) for p in phr):
            raise LabelError(f"{where}: label {name!r} must be a string or a list of strings")
        labels.append(Label(str(name).strip(), tuple(p.strip() for p in phr)))
    templates = data.get("templates", DEFAULT_TEMPLATES)
    if not isinstance(templates, list | tuple) or not all(isinstance(t, str) for t in templates):
        raise LabelError(f"{where}: templates must be a list of strings")
    return LabelSet(tuple(labels), tuple(templates))


def parse_templates(spec: str | Sequence[str]) -> tuple[str, ...]:
    """Templates from ``--templates``: ``default``, a file (.txt one per line or .toml
    with ``templates = [...]``), or templates separated by ``|``."""
    if not isinstance(spec, str):
        templates = tuple(spec)
    elif spec.strip() == "default":
        templates = DEFAULT_TEMPLATES
    elif spec.endswith((".txt", ".toml")) or Path(spec).is_file():
        path = Path(spec)
        if not path.is_file():
            raise LabelError(f"template file {path} does not exist: check the path")
        if path.suffix == ".toml":
            try:
                data = tomllib.loads(path.read_text(encoding="utf-8"))
            except tomllib.TOMLDecodeError as e:
                raise LabelError(f"template file {path} is not valid TOML: {e}") from e
            templates = tuple(data.get("templates", ()))
        else:
            lines = path.read_text(encoding="utf-8").splitlines()
            templates = tuple(ln.strip() for ln in lines if ln.strip() and not ln.startswith("#"))
    else:
        templates = tuple(t.strip() for t in spec.split("|") if t.strip())
    validate_templates(templates)
    return templates


def resolve_labels(
    spec: str | Sequence[str] | LabelSet,
    templates: str | Sequence[str] | None = None,
) -> LabelSet:
    """Turn any accepted label form into a :class:`LabelSet`.

    ``spec``: a LabelSet, a list of names, a preset name, a TOML file path, or an inline
    comma-separated list. ``templates`` (optional) overrides the set's own templates.
    """
    if isinstance(spec, LabelSet):
        labelset = spec
    elif not isinstance(spec, str):
        if not all(isinstance(s, str) for s in spec):
            raise LabelError("labels must be strings")
        labelset = LabelSet.from_names(list(spec))
    else:
        text = spec.strip()
        if not text:
            raise LabelError("no labels given: pass --labels, e.g. --labels 'room,park,warehouse'")
        if text.endswith(".toml") or Path(text).is_file():
            labelset = load_toml(text)
        elif text in preset_names():
            labelset = load_preset(text)
        else:
            names = [n.strip() for n in text.split(",")]
            if any(not n for n in names):
                raise LabelError(
                    f"empty label in {spec!r}: separate labels with single commas, "
                    "e.g. 'room,park,warehouse'"
                )
            labelset = LabelSet.from_names(names)
    if templates is not None:
        labelset = labelset.with_templates(parse_templates(templates))
    return labelset
