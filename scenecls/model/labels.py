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
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import LabelError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

UNKNOWN = "unknown"
MAX_LABELS = 10_000
# Unicode categories a label name may not contain: it is reported on one line (CSV,
# subtitles, the overlay), so control characters and line/paragraph separators are out.
_NOT_IN_NAMES = {"Cc", "Zl", "Zp"}

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
        if any(unicodedata.category(c) in _NOT_IN_NAMES for c in self.name):
            raise LabelError(
                f"label {self.name!r} contains a control character or line break: "
                "write each label name as one line of plain text"
            )
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


def _shown(path: str | Path, limit: int = 120) -> str:
    """``path`` for a one-line message: quoted if it holds unprintable characters
    (newlines, NUL), shortened in the middle if it is very long."""
    text = str(path)
    if not text.isprintable():
        text = repr(text)
    if len(text) > limit:
        text = f"{text[: limit // 2]}...{text[-limit // 2 :]}"
    return text


def _is_file(text: str) -> bool:
    """Whether ``text`` names an existing file; False for what cannot be a path at all
    (a NUL byte, a name too long for the file system)."""
    try:
        return Path(text).is_file()
    except (OSError, ValueError):
        return False


def _read_text(path: Path, what: str) -> str:
    """The UTF-8 text of ``path``; every failure as a one-line :class:`LabelError`."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise LabelError(f"{what} {_shown(path)} does not exist: check the path") from e
    except ValueError as e:  # NUL byte in the name; UnicodeDecodeError is a ValueError too
        if isinstance(e, UnicodeDecodeError):
            raise LabelError(
                f"{what} {_shown(path)} is not UTF-8 text ({e.reason} at byte {e.start}): "
                "save it as UTF-8"
            ) from e
        raise LabelError(f"{what} {_shown(path)} is not a valid path: check the path") from e
    except OSError as e:
        raise LabelError(
            f"cannot read {what} {_shown(path)}: {e.strerror or type(e).__name__}"
        ) from e


def _loads_toml(text: str, where: str) -> dict[str, Any]:
    """Parse TOML; syntax errors become one line naming ``where`` and the line/column."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        detail = " ".join(str(e).split())  # tomllib names the line and column
        raise LabelError(f"{where} is not valid TOML: {detail}; fix the syntax there") from e
    except RecursionError as e:
        raise LabelError(
            f"{where} nests arrays or tables too deeply to read: a label file needs only "
            "a [labels] table of strings or lists of strings"
        ) from e


def preset_names() -> list[str]:
    """Names of the label presets shipped in the package."""
    folder = resources.files("scenecls.model") / "presets"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_preset(name: str) -> LabelSet:
    text = (resources.files("scenecls.model") / "presets" / f"{name}.toml").read_text(
        encoding="utf-8"
    )
    return _from_toml_text(text, f"preset {name}")


def load_toml(path: str | Path) -> LabelSet:
    """Read a TOML label file; errors name the file and, for syntax errors, the line."""
    path = Path(path)
    text = _read_text(path, "label file")
    return _from_toml_text(text, f"label file {_shown(path)}")


def _from_toml_text(text: str, where: str) -> LabelSet:
    """The :class:`LabelSet` of a TOML document; ``where`` names it in error messages."""
    pairs, templates = _toml_pairs(text, where, allow_empty=False)
    labels = [Label(name, phrasings) for name, phrasings in pairs]
    return LabelSet(tuple(labels), templates)


def label_texts(
    spec: str | Sequence[str], templates: str | Sequence[str] | None = None
) -> tuple[list[tuple[str, tuple[str, ...]]], tuple[str, ...]]:
    """``(name, phrasings)`` pairs and templates of any ``--labels`` form, where a TOML
    file may give a label no text (``name = []``: taught from examples only)."""
    if isinstance(spec, str) and spec.strip().endswith(".toml"):
        path = Path(spec.strip())
        where = f"label file {_shown(path)}"
        pairs, own = _toml_pairs(_read_text(path, "label file"), where, allow_empty=True)
        for name, phrasings in pairs:
            if phrasings:
                Label(name, phrasings)  # the same checks as any label
            elif not name.strip():
                raise LabelError(f"{where}: a label name is empty")
        chosen = parse_templates(templates) if templates is not None else own
        return pairs, chosen
    labelset = resolve_labels(spec, templates)
    return [(lb.name, lb.phrasings) for lb in labelset.labels], labelset.templates


def _toml_pairs(
    text: str, where: str, *, allow_empty: bool
) -> tuple[list[tuple[str, tuple[str, ...]]], tuple[str, ...]]:
    """``(name, phrasings)`` and the templates of a TOML label document."""
    data = _loads_toml(text, where)
    shape = (
        "expected 'templates = [\"a photo of a {}.\"]' (optional) and a [labels] table of "
        'name = "text" or name = ["text", ...]'
    )
    unknown_keys = set(data) - {"templates", "labels"}
    if unknown_keys:
        raise LabelError(f"{where}: unexpected key(s) {sorted(unknown_keys)}: {shape}")
    raw_labels: Any = data.get("labels")
    if isinstance(raw_labels, list):
        for n in raw_labels:
            if not isinstance(n, str):
                raise LabelError(f"{where}: labels = [...] must list strings, not {n!r}")
        pairs = [(n, n) for n in raw_labels]  # duplicates are caught by LabelSet
    elif isinstance(raw_labels, dict):
        pairs = list(raw_labels.items())
    else:
        pairs = []
    if not pairs:
        raise LabelError(f"{where} has no labels: {shape}")
    out = []
    for name, value in pairs:
        phr = [value] if isinstance(value, str) else value
        empty_ok = allow_empty and phr == []
        if not isinstance(phr, list) or not (phr or empty_ok):
            raise LabelError(f"{where}: label {name!r} must be a string or a list of strings")
        if not all(isinstance(p, str) for p in phr):
            raise LabelError(f"{where}: label {name!r} must be a string or a list of strings")
        out.append((str(name).strip(), tuple(p.strip() for p in phr)))
    templates = data.get("templates", DEFAULT_TEMPLATES)
    if not isinstance(templates, list | tuple) or not all(isinstance(t, str) for t in templates):
        raise LabelError(f"{where}: templates must be a list of strings")
    validate_templates(templates)
    return out, tuple(templates)


def parse_templates(spec: str | Sequence[str]) -> tuple[str, ...]:
    """Templates from ``--templates``: ``default``, a file (.txt one per line or .toml
    with ``templates = [...]``), or templates separated by ``|``."""
    if not isinstance(spec, str):
        templates = tuple(spec)
    elif spec.strip() == "default":
        templates = DEFAULT_TEMPLATES
    elif spec.endswith((".txt", ".toml")) or _is_file(spec):
        path = Path(spec)
        if not _is_file(spec):
            raise LabelError(f"template file {_shown(path)} does not exist: check the path")
        text = _read_text(path, "template file")
        if path.suffix == ".toml":
            found = _loads_toml(text, f"template file {_shown(path)}").get("templates", [])
            if not isinstance(found, list) or not all(isinstance(t, str) for t in found):
                raise LabelError(
                    f"template file {_shown(path)}: templates must be a list of strings"
                )
            templates = tuple(found)
        else:
            lines = text.splitlines()
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
        if text.endswith(".toml") or _is_file(text):
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
