"""Classes learned from examples: the candidate classifiers, grouped cross-validation,
and the choice between them by measurement.

Everything works on embeddings that already exist (``(M, D)`` float32 unit rows, one per
example), so learning takes milliseconds, not epochs. Three kinds of classifier:

``means``   one prototype per label: the normalised mix ``lam * text + (1 - lam) *
            mean(examples)`` (text alone for a label without examples, the mean alone for
            a label without text); logits ``logit_scale * cos(frame, prototype)``.
``cache``   the prototypes plus a cache of every example (Tip-Adapter's training-free
            cache): ``logit_scale * (cos(frame, prototype) + alpha * A_k)`` with ``A_k``
            the mean over label k's examples of ``exp(-beta * (1 - cos(frame, example)))``.
``linear``  multinomial logistic regression started at the prototypes and pulled back
            to them (``reg * |W - prototypes|^2``), class-balanced, full-batch gradient
            descent.

:func:`learn` scores every candidate by cross-validation over folds that keep each
group (one moment of a video, one image) on one side, keeps the best (balanced accuracy;
the simplest on a tie), refits it on all examples and reports the figures a user needs
before relying on it: accuracy, per-label precision and recall, the confusion matrix,
the same for text-only zero-shot, and warnings about the examples themselves.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

KINDS = ("means", "cache", "linear")
MAX_FOLDS = 5
UNKNOWN_QUANTILE = 0.01
"""The low point of held-out examples' nearness to the others (in cross-validation)
that the ``unknown`` threshold starts from (see :func:`unknown_threshold`)."""
NEAR_DUPLICATE = 0.998  # cosine at which two examples of different groups are one picture
IMBALANCE = 5.0  # most/fewest examples per label beyond which a warning is given
FEW_EXAMPLES = 3


@dataclass(frozen=True)
class Candidate:
    """One classifier configuration: ``kind`` (see :data:`KINDS`), the text weight
    ``lam`` of the prototypes, the cache's ``alpha``/``beta``, the linear head's ``reg``."""

    kind: str
    lam: float = 0.0
    alpha: float = 0.0
    beta: float = 0.0
    reg: float = 0.0

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "lam": self.lam}
        if self.kind == "cache":
            out.update(alpha=self.alpha, beta=self.beta)
        if self.kind == "linear":
            out["reg"] = self.reg
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Candidate:
        return cls(
            str(d["kind"]),
            float(d.get("lam", 0.0)),
            float(d.get("alpha", 0.0)),
            float(d.get("beta", 0.0)),
            float(d.get("reg", 0.0)),
        )

    def describe(self) -> str:
        if self.kind == "means":
            return f"class means (text weight {self.lam:g})"
        if self.kind == "cache":
            return (
                f"example cache (text weight {self.lam:g}, alpha {self.alpha:g}, "
                f"beta {self.beta:g})"
            )
        return f"logistic regression (text weight {self.lam:g}, reg {self.reg:g})"


@dataclass
class Fitted:
    """A fitted classifier: ``logits(F) = F @ weights.T + bias (+ cache term)``.

    ``weights`` ``(K, D)`` float32 (``logit_scale`` times the prototypes for means and
    cache), ``bias`` ``(K,)`` float32, ``prototypes`` ``(K, D)`` float32 unit rows (zero
    for a label with neither text nor examples; its logit is then ``-inf``), and for the
    cache the example rows ``keys`` ``(M, D)`` with ``key_labels`` ``(M,)``."""

    candidate: Candidate
    weights: np.ndarray
    bias: np.ndarray
    prototypes: np.ndarray
    logit_scale: float
    keys: np.ndarray | None = None
    key_labels: np.ndarray | None = None
    present: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))

    def wide(self) -> dict[str, np.ndarray]:
        """The arrays in float64, made once (scoring is done in float64 so that a row's
        result does not depend on the rows scored with it)."""
        cached: dict[str, np.ndarray] | None = self.__dict__.get("_wide")
        if cached is None:
            cached = {
                "weights_t": np.ascontiguousarray(self.weights.astype(np.float64).T),
                "bias": self.bias.astype(np.float64),
            }
            self.__dict__["_wide"] = cached
        return cached

    def wide_keys(self) -> dict[str, np.ndarray]:
        """Per label, the weights of the mean over its examples (``key_means``
        ``(M, K)`` float64), made once."""
        cached: dict[str, np.ndarray] | None = self.__dict__.get("_wide_keys")
        if cached is None:
            labels = np.zeros(0, np.int64) if self.key_labels is None else self.key_labels
            onehot = np.zeros((len(labels), len(self.bias)), np.float64)
            onehot[np.arange(len(labels)), labels] = 1.0
            cached = {"key_means": onehot / np.maximum(onehot.sum(axis=0), 1.0)}
            self.__dict__["_wide_keys"] = cached
        return cached

    def key_sims(self, rows: np.ndarray) -> np.ndarray:
        """``(N, M)`` float32 cosines of ``(N, D)`` unit rows to the examples, one row
        at a time (a matrix-vector product each), so that a row's values do not depend
        on how many rows are scored with it: a run and ``relabel`` agree to the bit."""
        keys_t = self.__dict__.get("_keys_t")
        if keys_t is None:
            keys = np.zeros((0, self.weights.shape[1])) if self.keys is None else self.keys
            keys_t = np.ascontiguousarray(np.asarray(keys, np.float32).T)
            self.__dict__["_keys_t"] = keys_t
        f = np.asarray(rows, np.float32)
        out = np.empty((len(f), keys_t.shape[1]), np.float32)
        for i in range(len(f)):
            np.dot(f[i], keys_t, out=out[i])
        return out

    def logits(self, rows: np.ndarray, key_sims: np.ndarray | None = None) -> np.ndarray:
        """``(N, K)`` float64 logits of ``(N, D)`` unit rows; ``key_sims``: ``rows @
        keys.T`` when the caller has it already. The cache term is, per label, the mean
        over its examples of ``exp(-beta * (1 - cosine))``."""
        wide = self.wide()
        out = np.asarray(rows, np.float64) @ wide["weights_t"] + wide["bias"]
        c = self.candidate
        if c.kind == "cache" and self.keys is not None and len(self.keys):
            sims = self.key_sims(rows) if key_sims is None else key_sims
            affinity = np.exp(-c.beta * (1.0 - np.asarray(sims, np.float64)))
            out += self.logit_scale * c.alpha * (affinity @ self.wide_keys()["key_means"])
        if not self.present.all():
            out[:, ~self.present] = -np.inf
        return out


def _unit(rows: np.ndarray) -> np.ndarray:
    norms = np.sqrt((rows * rows).sum(axis=-1, keepdims=True))
    return rows / np.maximum(norms, 1e-12)


def prototypes(
    text: np.ndarray, has_text: np.ndarray, x: np.ndarray, y: np.ndarray, lam: float
) -> tuple[np.ndarray, np.ndarray]:
    """``(K, D)`` float64 unit prototypes and a ``(K,)`` bool of labels that have one:
    ``lam`` of the way from the example mean to the text, text or mean alone where the
    label lacks the other."""
    k = len(text)
    x = np.asarray(x, np.float64)
    counts = np.bincount(y, minlength=k)
    sums = np.zeros((k, x.shape[1]), np.float64)
    for label in np.flatnonzero(counts):
        sums[label] = x[y == label].sum(axis=0)
    means = _unit(sums)
    has_ex = counts > 0
    t = np.asarray(text, np.float64)
    out = np.where(
        (has_text & has_ex)[:, None],
        lam * t + (1.0 - lam) * means,
        np.where(has_text[:, None], t, means),
    )
    return _unit(out), has_text | has_ex


def fit(
    candidate: Candidate,
    text: np.ndarray,
    has_text: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    logit_scale: float,
) -> Fitted:
    """Fit ``candidate`` on examples ``x`` ``(M, D)`` unit rows with label indices
    ``y`` ``(M,)`` and ``text`` ``(K, D)`` (rows where ``has_text``)."""
    x = np.asarray(x, np.float64)
    protos, present = prototypes(text, has_text, x, y, candidate.lam)
    k = len(text)
    weights = logit_scale * protos
    bias = np.zeros(k, np.float64)
    keys, key_labels = x.astype(np.float32), y.astype(np.int32)  # unknown and the cache
    if candidate.kind == "linear" and len(x):
        weights, bias = _logistic(x, y, weights, present, candidate.reg, logit_scale)
    return Fitted(
        candidate,
        weights.astype(np.float32),
        bias.astype(np.float32),
        protos.astype(np.float32),
        float(logit_scale),
        keys,
        key_labels,
        present,
    )


def _logistic(
    x: np.ndarray,
    y: np.ndarray,
    w0: np.ndarray,
    present: np.ndarray,
    reg: float,
    scale: float,
    steps: int = 80,
) -> tuple[np.ndarray, np.ndarray]:
    """Class-balanced softmax regression from ``w0`` ``(K, D)``, penalised by
    ``reg * |W - w0|^2 / scale^2``; Nesterov-accelerated gradient descent with the step
    from the loss's Lipschitz bound (unit rows: ``|X^T X| / M <= 1``)."""
    m, _ = x.shape
    k = len(w0)
    x = np.asarray(x, np.float32)  # float32 halves the time; the result is rounded anyway
    w0 = np.asarray(w0, np.float32)
    counts = np.bincount(y, minlength=k).astype(np.float64)
    sample_w = (m / (np.count_nonzero(counts) * counts[y]))[:, None] / m  # balanced, sums to 1
    onehot = np.zeros((m, k), np.float32)
    onehot[np.arange(m), y] = 1.0
    sample_w = sample_w.astype(np.float32)
    lip = 0.5 + 2.0 * reg / scale**2
    step = 1.0 / lip
    mask = np.where(present, 0.0, -np.inf).astype(np.float32)
    # parametrise W = w0 + V * scale so the step does not depend on the logit scale
    v = np.zeros_like(w0)
    b = np.zeros(k, np.float32)
    v_prev, b_prev = v, b
    for i in range(steps):
        mom = i / (i + 3.0)
        vy, by = v + mom * (v - v_prev), b + mom * (b - b_prev)
        logits = x @ (w0 + np.float32(scale) * vy).T + by + mask
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        g = (p - onehot) * sample_w  # (M, K)
        grad_v = g.T @ x + np.float32(2.0 * reg / scale**2) * vy
        grad_b = g.sum(axis=0)
        v_prev, b_prev = v, b
        v = vy - np.float32(step) * grad_v
        b = by - np.float32(step) * grad_b
    return (w0 + scale * v).astype(np.float64), b.astype(np.float64)


# -- cross-validation -------------------------------------------------------------------


def folds(y: np.ndarray, groups: np.ndarray, k_max: int = MAX_FOLDS) -> np.ndarray:
    """``(M,)`` fold index of each example: the groups of each label are dealt round-robin
    (in a fixed shuffled order) over ``n`` folds, ``n`` = the most groups any label has,
    at most ``k_max``, at least 2. A group never spans two folds."""
    y = np.asarray(y)
    groups = np.asarray(groups)
    out = np.zeros(len(y), np.int64)
    labels = np.unique(y)
    per_label = {int(lb): np.unique(groups[y == lb]) for lb in labels}
    n = max(2, min(k_max, max((len(g) for g in per_label.values()), default=2)))
    rng = np.random.default_rng(0)
    offset = 0
    group_fold: dict[int, int] = {}
    for lb in labels:
        order = rng.permutation(per_label[int(lb)])
        for i, g in enumerate(order):
            group_fold.setdefault(int(g), (offset + i) % n)
        offset += len(order)  # labels with few groups do not all land in fold 0
    for i, g in enumerate(groups):
        out[i] = group_fold[int(g)]
    return out


@dataclass
class CrossValidation:
    """Held-out predictions of one candidate: ``logits`` ``(M, K)`` float64 of each
    example predicted by the classifier fitted without its fold, and ``nearest`` ``(M,)``:
    its cosine to the nearest example outside its fold."""

    logits: np.ndarray
    nearest: np.ndarray


def cross_validate(
    candidate: Candidate,
    text: np.ndarray,
    has_text: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    fold: np.ndarray,
    logit_scale: float,
    gram: np.ndarray,
) -> CrossValidation:
    """Predict every example with ``candidate`` fitted on the other folds; ``gram`` is
    ``x @ x.T`` in float64 (computed once for all candidates)."""
    m, k = len(x), len(text)
    logits = np.full((m, k), -np.inf)
    nearest = np.full(m, -1.0)
    for f in np.unique(fold):
        test = fold == f
        train = ~test
        model = fit(candidate, text, has_text, x[train], y[train], logit_scale)
        sims = gram[np.ix_(test, train)]
        logits[test] = model.logits(x[test], key_sims=sims)
        if sims.shape[1]:
            nearest[test] = sims.max(axis=1)
    return CrossValidation(logits, nearest)


def confusion(truth: np.ndarray, predicted: np.ndarray, k: int) -> np.ndarray:
    """``(K, K)`` int64 counts: row = given label, column = predicted."""
    out = np.zeros((k, k), np.int64)
    np.add.at(out, (truth, predicted), 1)
    return out


def figures(truth: np.ndarray, predicted: np.ndarray, names: Sequence[str]) -> dict[str, Any]:
    """Accuracy, balanced accuracy (mean recall over labels with examples), per-label
    precision/recall/support and the confusion matrix, as plain JSON values."""
    k = len(names)
    cm = confusion(truth, predicted, k)
    support = cm.sum(axis=1)
    called = cm.sum(axis=0)
    diag = np.diag(cm)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(support > 0, diag / np.maximum(support, 1), np.nan)
        precision = np.where(called > 0, diag / np.maximum(called, 1), np.nan)
    has = support > 0
    return {
        "accuracy": float(diag.sum() / max(1, len(truth))),
        "balanced_accuracy": float(np.mean(recall[has])) if has.any() else 0.0,
        "labels": {
            n: {
                "precision": None if np.isnan(precision[i]) else float(precision[i]),
                "recall": None if np.isnan(recall[i]) else float(recall[i]),
                "support": int(support[i]),
            }
            for i, n in enumerate(names)
        },
        "confusion": cm.tolist(),
    }


def candidates(has_text_and_examples: bool, lam: float | None = None) -> list[Candidate]:
    """The configurations tried: prototypes first (the text weight only matters for
    labels with both text and examples), then cache and linear heads on the best text
    weight ``lam``."""
    if lam is None:
        lams = (0.0, 0.25, 0.5, 0.75) if has_text_and_examples else (0.0,)
        return [Candidate("means", lam) for lam in lams]
    return [
        *(Candidate("cache", lam, a, b) for b in (5.5, 15.0) for a in (0.1, 0.3, 1.0)),
        *(Candidate("linear", lam, reg=r) for r in (0.1, 1.0, 10.0)),
    ]


@dataclass
class Learned:
    """What :func:`learn` returns: the classifier fitted on all examples, the threshold
    below which a frame's cosine to its nearest example makes it ``unknown`` (None: not
    used), and the training report (plain JSON)."""

    fitted: Fitted
    unknown_below: float | None
    report: dict[str, Any]


def learn(
    names: Sequence[str],
    text: np.ndarray,
    has_text: np.ndarray,
    zero_shot_text: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    logit_scale: float,
    *,
    sources: Sequence[str] | None = None,
    only: str | None = None,
    unknown_quantile: float = UNKNOWN_QUANTILE,
) -> Learned:
    """Choose, fit and report a classifier for ``names`` (K labels).

    ``text``: ``(K, D)`` float32 unit text rows, used where ``has_text`` ``(K,)``;
    ``zero_shot_text``: ``(K, D)`` rows for the text-only comparison (every label's
    phrasings, or its name); ``x``: ``(M, D)`` float32 unit example rows with label
    indices ``y`` and ``groups`` (examples that must stay on one side of a fold: the
    frames of one moment); ``sources``: a name per example for the report; ``only``:
    restrict the kinds tried (one of :data:`KINDS`); ``unknown_quantile``: see
    :data:`UNKNOWN_QUANTILE` (0: never ``unknown``)."""
    t0 = time.perf_counter()
    k = len(names)
    x = np.asarray(x, np.float32)
    x64 = x.astype(np.float64)
    y = np.asarray(y, np.int64)
    groups = np.asarray(groups, np.int64)
    has_text = np.asarray(has_text, bool)
    counts = np.bincount(y, minlength=k)
    fold = folds(y, groups)
    gram = x64 @ x64.T
    both = bool((has_text & (counts > 0)).any())
    tried: list[dict[str, Any]] = []
    results: dict[Candidate, tuple[CrossValidation, float]] = {}

    def best_of(cands: list[Candidate]) -> Candidate:
        for c in cands:
            cv = cross_validate(c, text, has_text, x64, y, fold, logit_scale, gram)
            score = figures(y, cv.logits.argmax(axis=1), names)["balanced_accuracy"]
            results[c] = (cv, score)
            tried.append({**c.to_json(), "cv_balanced_accuracy": round(score, 6)})
        return max(cands, key=lambda c: results[c][1])  # the first (simplest) on a tie

    chosen = best_of(candidates(both))
    if only != "means" and len(x):
        heads = [c for c in candidates(both, chosen.lam) if only in (None, c.kind)]
        head = best_of(heads)
        if only is not None or results[head][1] > results[chosen][1] + 1e-9:
            chosen = head
    cv = results[chosen][0]
    predicted = cv.logits.argmax(axis=1)
    fitted = fit(chosen, text, has_text, x64, y, logit_scale)
    zs = np.asarray(zero_shot_text, np.float64)
    zs_predicted = (x64 @ zs.T).argmax(axis=1)
    every_label_has_examples = bool((counts > 0).all())
    unknown_below = None
    if unknown_quantile > 0 and every_label_has_examples and (cv.nearest > -1).any():
        unknown_below = unknown_threshold(cv.nearest, gram, y, unknown_quantile)
    report = {
        "examples": len(x),
        "per_label": {n: int(counts[i]) for i, n in enumerate(names)},
        "groups": len(np.unique(groups)),
        "folds": len(np.unique(fold)),
        "chosen": {**chosen.to_json(), "description": chosen.describe()},
        "candidates": tried,
        "cross_validation": figures(y, predicted, names),
        "zero_shot": figures(y, zs_predicted, names),
        "unknown_below": unknown_below,
        "unknown_quantile": unknown_quantile,
        "worst": _worst(cv.logits, y, names, sources),
        "warnings": example_warnings(names, x64, y, groups, gram, counts, sources),
    }
    report["seconds"] = round(time.perf_counter() - t0, 4)
    return Learned(fitted, unknown_below, report)


def unknown_threshold(
    nearest: np.ndarray, gram: np.ndarray, y: np.ndarray, quantile: float
) -> float:
    """The cosine to the nearest example below which a frame is ``unknown``: halfway
    between how near held-out examples came to the others (the ``quantile`` low point of
    ``nearest``, from cross-validation) and how near examples typically are to another
    label's (the median over examples of their nearest other-label example), and never
    above the former. A frame farther than that from every example resembles none of
    them more than two different labels resemble each other."""
    held_out = float(np.quantile(nearest[nearest > -1], quantile))
    other = np.where(y[:, None] != y[None, :], gram, -np.inf).max(axis=1)
    other = other[np.isfinite(other)]
    if not len(other):
        return held_out
    return min(held_out, 0.5 * (held_out + float(np.median(other))))


def _worst(
    logits: np.ndarray, y: np.ndarray, names: Sequence[str], sources: Sequence[str] | None
) -> list[dict[str, Any]]:
    """The held-out examples with the lowest margin (probability of the given label minus
    the best other), worst first, at most 24."""
    if not len(y):
        return []
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    own = p[np.arange(len(y)), y]
    other = p.copy()
    other[np.arange(len(y)), y] = -1.0
    margin = own - other.max(axis=1)
    order = np.argsort(margin, kind="stable")[:24]
    return [
        {
            "example": int(i),
            "source": sources[i] if sources is not None else str(i),
            "given": names[int(y[i])],
            "predicted": names[int(p[i].argmax())],
            "margin": round(float(margin[i]), 4),
        }
        for i in order
    ]


def example_warnings(
    names: Sequence[str],
    x: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    gram: np.ndarray,
    counts: np.ndarray,
    sources: Sequence[str] | None,
) -> list[str]:
    """One line each: a label with fewer than :data:`FEW_EXAMPLES` examples (moments
    count, not frames), near-duplicate examples, strong imbalance, and examples closer to
    another label's mean than to their own (leave-one-out) mean."""
    out: list[str] = []
    k = len(names)
    name = (lambda i: sources[i]) if sources is not None else (lambda i: f"example {i}")
    group_counts = np.array([len(np.unique(groups[y == i])) for i in range(k)])
    for i, n in enumerate(names):
        if 0 < group_counts[i] < FEW_EXAMPLES:
            out.append(
                f"label {n!r} has {group_counts[i]} example(s): give it {FEW_EXAMPLES} or "
                "more for a trustworthy figure"
            )
    if len(x) > 1:
        upper = np.triu(gram >= NEAR_DUPLICATE, 1) & (groups[:, None] != groups[None, :])
        a, b = np.nonzero(upper)
        if len(a):
            # count pairs of moments (or pictures), not of frames
            pairs, first = np.unique(
                np.sort(np.stack([groups[a], groups[b]], axis=1), axis=1),
                axis=0,
                return_index=True,
            )
            shown = ", ".join(f"{name(int(a[i]))} ~ {name(int(b[i]))}" for i in sorted(first)[:2])
            out.append(
                f"{len(pairs)} pair(s) of examples are near-duplicates (cosine >= "
                f"{NEAR_DUPLICATE}), e.g. {shown}: each such pair flatters the "
                "cross-validated figures (one half is learned, the other tested)"
            )
    have = counts[counts > 0]
    if len(have) > 1 and have.max() > IMBALANCE * have.min():
        most = names[int(np.argmax(counts))]
        fewest = names[int(np.argmin(np.where(counts > 0, counts, counts.max() + 1)))]
        out.append(
            f"labels are imbalanced: {most!r} has {int(have.max())} examples, {fewest!r} "
            f"{int(have.min())}: add examples of the rarer labels"
        )
    if len(x) > 2 and (counts > 0).sum() > 1:
        sums = np.zeros((k, x.shape[1]))
        np.add.at(sums, y, x)
        to_sums = x @ sums.T  # (M, K)
        sq = (sums * sums).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            others = to_sums / np.sqrt(np.maximum(sq, 1e-24))  # cosine to each label's mean
            rows = np.arange(len(x))
            own_sq = np.maximum(sq[y] - 2.0 * to_sums[rows, y] + 1.0, 1e-24)
            own = (to_sums[rows, y] - 1.0) / np.sqrt(own_sq)  # to its own mean without it
        others[:, counts == 0] = -np.inf
        others[rows, y] = -np.inf
        best = others.argmax(axis=1)
        wrong = (counts[y] >= 2) & (others[rows, best] > own + 0.01)
        misplaced = np.flatnonzero(wrong)
        for j in misplaced[:5]:
            out.append(
                f"{name(int(j))} (given {names[int(y[j])]!r}) is closer to "
                f"{names[int(best[j])]!r}: check that it is sorted into the right label"
            )
        if len(misplaced) > 5:
            out.append(f"... and {len(misplaced) - 5} more examples closer to another label")
    return out
