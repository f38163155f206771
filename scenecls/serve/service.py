"""The kitchen service's engine: every camera's newest frame, through its camera's change
gate, the changed ones batched through one model, scored by the camera's own classifier
(the service's labels, or taught from the camera's corrections: :mod:`.teaching`),
smoothed per camera into labels and segments, checked against the expected label, and
drawn into a JPEG for the live view.

All per-camera state is changed under one lock, by the engine thread (frames), the
camera threads (lost/restored), the web server (expectations, regions) and the teaching
worker (a camera's new classifier, swapped in between two frames).

With a data folder the service keeps each camera's history there (:mod:`.history`:
every analysed frame's embedding, the label segments and the events, written on a
thread of their own) and records the cameras into ``DATA/recordings`` (unless
``record`` puts them elsewhere) as WebM, which the page plays.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import re
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..atomic import write_bytes_atomic
from ..errors import OutputError, RegionError, SceneclsError
from ..model.embeddings_store import store_meta
from ..model.history_layout import RECORDINGS_DIR
from ..model.labels import LabelSet
from ..model.runtimes.base import normalize_rows
from ..model.scene_model import LabelSource, SceneModel, load_labels, model_meta
from ..model.taught import Scorer, scores_of
from ..region import Region
from ..types import Prediction
from ..utc import utc_iso
from ..video.encoder_calls import EncoderCalls
from ..video.gate import ChangeGate, GateConfig
from ..video.overlay import Overlay
from ..video.sinks import RunInfo
from ..video.sinks.recording import RecordingSink
from ..video.smoothing import SegmentTracker, Smoother, SmoothingConfig
from .alerts import Alert, MismatchMonitor
from .camera import Camera
from .events import EventHub
from .history import HistoryWriter, check_history_model, label_line
from .recordings import Recordings, ThumbnailCache
from .settings import UNSET, CameraSettings, camera_file_stem
from .teaching import Teacher, TeachingRefused
from .webhook import WebhookSender

log = logging.getLogger("scenecls")

JPEG_QUALITY = 80
HISTORY_EVENTS = frozenset(
    {"alert", "alert_resolved", "expectation_set", "expectation_cleared", "source_lost",
     "source_restored", "region_changed"}
)  # fmt: skip
"""The events kept in the history (with the label segments)."""


@dataclass
class CameraState:
    """Everything the service knows about one camera (guarded by the service lock)."""

    camera: Camera
    smoother: Smoother
    tracker: SegmentTracker
    overlay: Overlay
    monitor: MismatchMonitor
    gate: ChangeGate
    prediction: Prediction | None = None
    recorder: RecordingSink | None = None  # --record: the rotating annotated video
    recording: bool = False  # the recorder has started
    analysed: int = 0
    encoded: int = 0
    alerts: int = 0
    jpeg: bytes | None = None  # the live view, rendered when asked for (see latest_jpeg)
    jpeg_seq: int = 0  # the view_seq that jpeg shows
    view: tuple[Any, ...] | None = None  # (image_bgr, prediction, strip, time) to draw
    view_seq: int = 0
    analysed_at: deque[float] = field(default_factory=lambda: deque(maxlen=120))
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=300))
    recent_alerts: deque[Alert] = field(default_factory=lambda: deque(maxlen=20))
    region: Region | None = None  # the region of interest: all the gate and encoder see
    region_changed: bool = False  # the engine resets the gate before the next frame
    region_error: str | None = None  # the region does not fit the camera's frames
    scorer: Scorer | None = None  # the camera's classifier (the service's, or taught)
    # the last encoded look (HxWx3 uint8 BGR: the region's crop the encoder saw) and its
    # (D,) float32 embedding: what "this is X" stores; None after a region change or a gap
    sample: tuple[np.ndarray, np.ndarray] | None = None


class Service:
    """Runs ``cameras`` through ``model`` with ``labelset`` until :meth:`stop`.

    ``clock()`` is the service clock: seconds since the service was created. Events,
    segments and alerts all use it; ``wall()`` turns it into UTC time.

    ``credentials``: ``(user, password)`` per camera name, put into that camera's stream
    URL only when it is opened. What the service shows or sends (status, events, alert
    snapshots: the file name in ``snapshots``) never holds a password or a local path.

    ``data``: the data folder (settings, corrections, and the history: see
    :mod:`.history`; ``flush_seconds``: the most history a crash may lose). Recordings
    go to ``record``, else to ``DATA/recordings`` (``record_format``: ``webm``, which
    browsers play, or ``mp4``); files and history older than ``keep_hours`` are deleted.
    A data folder whose history another model wrote is refused
    (:class:`~scenecls.errors.UsageError`).
    """

    def __init__(
        self,
        model: SceneModel,
        labelset: LabelSource,
        sources: list[tuple[str, str]],
        *,
        loop: bool = False,
        alert_after: float = 2.0,
        smoothing: SmoothingConfig | None = None,
        snapshots: Path | None = None,
        webhook: WebhookSender | None = None,
        image_fps: float = 1.0,
        gate: GateConfig | None = None,
        max_fps: float | None = None,
        rtsp_transport: str | None = None,
        record: Path | None = None,
        segment_minutes: float = 10.0,
        keep_hours: float | None = 24.0,
        regions: dict[str, Region | None] | None = None,
        data: Path | None = None,
        credentials: dict[str, tuple[str, str]] | None = None,
        flush_seconds: float = 10.0,
        record_format: str = "webm",
    ) -> None:
        self.model = model
        self.data = data
        bundle = getattr(model, "bundle", None)
        if data is not None and bundle is not None:  # before anything is written there
            check_history_model(data, bundle.fingerprint, bundle.model_id)
        if data is not None and record is None:
            record = Path(data) / RECORDINGS_DIR
            try:
                record.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise OutputError(
                    f"--data {data}: cannot create {record} ({e.strerror or e}): pick a "
                    "writable folder"
                ) from e
        self.record = record
        self.keep_hours = keep_hours or None
        self.stems = {name: camera_file_stem(name) for name, _ in sources}
        self._gate_config = gate or GateConfig()
        self.max_fps = max_fps
        self._encode_lock = threading.Lock()  # the encoder: the engine, and image searches
        self._text_lock = threading.Lock()
        self._queries: dict[str, np.ndarray] = {}
        self.encoder_calls = EncoderCalls()
        self.labelset = labelset
        source = load_labels(labelset)
        self.scorer = model.scorer(source)  # text labels or a taught set
        self.names = list(self.scorer.names)
        self._t0 = time.monotonic()
        self._wall0 = time.time() - (time.monotonic() - self._t0)  # UNIX s at clock 0
        self.events = EventHub()
        self.mqtt: Any = None  # the MQTT bridge, when there is one (its status is shown)
        self.snapshots = snapshots
        self.webhook = webhook
        self.lock = threading.RLock()
        self._stop = threading.Event()
        self._engine = threading.Thread(target=self._run, name="scenecls-engine", daemon=True)
        self.engine_error: str | None = None
        ids = itertools.count(1)
        config = smoothing or SmoothingConfig()
        self.states: dict[str, CameraState] = {}
        for name, spec in sources:
            cam = Camera(name, spec, clock=self.clock, loop=loop, image_fps=image_fps,
                         max_fps=max_fps, on_state=self._on_camera_state,
                         rtsp_transport=rtsp_transport,
                         credentials=(credentials or {}).get(name))  # fmt: skip
            self.states[name] = CameraState(
                cam,
                Smoother(config),
                SegmentTracker(keep=1000),
                Overlay(self.names),
                MismatchMonitor(name, alert_after, ids=ids),  # ids unique across cameras
                ChangeGate(gate),
            )
            if record is not None:
                self.states[name].recorder = RecordingSink(
                    record,
                    prefix=self.stems[name],
                    segment=segment_minutes * 60,
                    keep=None if keep_hours is None else keep_hours * 3600,
                    fps=max_fps,
                    format=record_format,
                    wall_base=self._wall0,
                )
        # --data DIR: per-camera settings that survive a restart
        self.settings = CameraSettings(data) if data is not None else None
        for name in self.states:
            self._start_region(name, (regions or {}).get(name))
        # corrections ("this is X"): each camera's examples and classifier, kept in --data
        self.teacher = Teacher(model, source, self.scorer, list(self.states), data, self._taught)
        for name, st in self.states.items():
            st.scorer = self.teacher.scorer(name)
        # the history (--data) and the recordings it links to
        self.recordings = Recordings(
            record, {n: (self.stems[n], st.recorder) for n, st in self.states.items()},
            self.keep_hours,
        )  # fmt: skip
        self.thumbnails = ThumbnailCache()
        self.history: HistoryWriter | None = None
        if data is not None:
            self.history = HistoryWriter(
                data, self.stems, self._chunk_meta, model.embed_dim,
                flush_seconds=flush_seconds, keep_hours=self.keep_hours,
            )  # fmt: skip
            self.events.add_listener(self._history_event)

    def _start_region(self, name: str, given: Region | None) -> None:
        """The region ``name`` starts with: ``given`` (the command line's, saved), else
        the one stored in the data folder, else none."""
        region = given
        if self.settings is not None:
            if given is not None:
                try:
                    self.settings.save_region(name, given)
                except SceneclsError as e:
                    log.error("camera %s: %s", name, e)
            else:
                stored = self.settings.region(name)
                region = None if stored is UNSET else stored  # type: ignore[assignment]
        self.states[name].region = region
        self.states[name].overlay.region = region

    # -- clock -----------------------------------------------------------------------

    def clock(self) -> float:
        return time.monotonic() - self._t0

    def wall(self, t: float) -> str:
        """Service-clock seconds -> ISO 8601 UTC."""
        return utc_iso(self.unix(t))

    def unix(self, t: float) -> float:
        """Service-clock seconds -> UNIX seconds (what the history keeps)."""
        return self._wall0 + t

    # -- life cycle ------------------------------------------------------------------

    def start(self) -> Service:
        if self.history is not None:
            self.history.start()
        for st in self.states.values():
            st.camera.start()
        self._engine.start()
        self.teacher.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.teacher.stop()
        self._engine.join(5.0)
        for st in self.states.values():
            st.camera.stop()
            if self.history is not None:  # the open segment ends now
                with self.lock:
                    closed = st.tracker.close(self.clock())
                self._history_segment(st, closed)
            if st.recorder is not None and st.recording:
                try:  # the file being written is finalised, playable
                    st.recorder.finish(())
                except Exception as e:
                    log.error("camera %s: finishing the recording failed: %s", st.camera.name, e)
        if self.history is not None:
            self.history.stop()  # every chunk closed, complete
        if self.webhook is not None:
            self.webhook.close()

    @property
    def healthy(self) -> bool:
        return self._engine.is_alive() and self.engine_error is None

    # -- engine ----------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                batch = [(st, f) for st in self.states.values() if (f := st.camera.take())]
                if not batch:
                    self._stop.wait(0.005)
                    continue
                looks = {id(st): self._look(st, f) for st, f in batch}
                batch = [(st, f) for st, f in batch if looks[id(st)] is not None]
                changed = [st.gate.check(looks[id(st)], f.timestamp) for st, f in batch]
                # frames that reuse an embedding are labelled first: they need not wait
                # for the encoder's call on the other cameras' frames
                still = [b for b, c in zip(batch, changed, strict=True) if not c]
                if still:
                    self._label(still, [st.gate.embedding for st, _ in still], encoded=False)
                todo = [b for b, c in zip(batch, changed, strict=True) if c]
                if todo:
                    fresh = self._encode([looks[id(st)] for st, _ in todo])
                    kept = [st.gate.keep(e) for (st, _), e in zip(todo, fresh, strict=True)]
                    self._label(todo, kept, encoded=True, looks=[looks[id(st)] for st, _ in todo])
        except Exception as e:  # pragma: no cover - shown by /healthz and the log
            self.engine_error = str(e) or type(e).__name__
            log.exception("the analysis loop stopped: %s", self.engine_error)

    def _look(self, st: CameraState, frame: Any) -> np.ndarray | None:
        """What the camera's gate and the encoder see of ``frame``: its region of interest
        (a view, HxWx3 uint8 BGR) or the whole frame. Resets the gate first when the
        region changed. None when the region does not fit the frame: the frame is shown
        unanalysed and the camera's status says why (logged once)."""
        with self.lock:
            region, reset = st.region, st.region_changed
            st.region_changed = False
        if reset:
            st.gate.reset()
        if region is None:
            return frame.image_bgr
        try:
            look = region.crop(frame.image_bgr)
        except RegionError as e:
            message = f"{e}: set another region or clear it"
            with self.lock:
                if st.region_error != message and st.region is region:
                    log.error("camera %s: %s", st.camera.name, message)
                    st.region_error = message
                st.prediction = None
                st.view = (frame.image_bgr, None, [], frame.timestamp)
                st.view_seq += 1
            return None
        if st.region_error is not None:
            with self.lock:
                st.region_error = None
        return look

    def _label(
        self,
        batch: list[tuple[CameraState, Any]],
        embeddings: list[Any],
        encoded: bool,
        looks: list[np.ndarray] | None = None,
    ) -> None:
        """Score each ``(camera, frame)`` of ``batch`` with its ``(D,)`` float32 unit
        embedding by the camera's classifier (cameras that share one are scored
        together), and smooth, track and check it (:meth:`_analyse`). ``looks``: what the
        encoder saw of each frame (HxWx3 uint8 BGR) when it was just encoded."""
        with self.lock:  # a classifier swapped in now applies from the next frame
            scorers = [st.scorer or self.scorer for st, _ in batch]
        rows = np.stack(embeddings)
        scores: list[Any] = [None] * len(batch)
        groups: dict[int, list[int]] = {}
        for i, scorer in enumerate(scorers):
            groups.setdefault(id(scorer), []).append(i)
        for members in groups.values():
            part = scores_of(scorers[members[0]], rows[members])
            for i, s in zip(members, part, strict=True):
                scores[i] = s
        for i, ((st, frame), s) in enumerate(zip(batch, scores, strict=True)):
            sample = None if looks is None else (looks[i], rows[i])
            self._analyse(st, frame, s, encoded, sample)
            if self.history is not None:  # (queued: the disk never holds this loop up)
                # embeddings[i]: the very array the gate reuses, so a row is kept once
                self.history.frame(
                    st.camera.name, self.unix(frame.timestamp), frame.index,
                    embeddings[i], encoded,
                )  # fmt: skip

    def _encode(self, images_bgr: list[np.ndarray]) -> np.ndarray:
        """``(N, D)`` float32 unit embeddings of the changed cameras' frames (BGR), in one
        encoder call; counted in :attr:`encoder_calls`."""
        if not images_bgr:
            return np.zeros((0, self.model.embed_dim), np.float32)
        pixels = self.model.preprocess(images_bgr)
        with self._encode_lock:
            t0 = time.perf_counter()
            embeddings = self.model.image_encoder(pixels)
            self.encoder_calls.add(len(images_bgr), time.perf_counter() - t0)
        return embeddings

    def _analyse(
        self,
        st: CameraState,
        frame: Any,
        scores: Any,
        encoded: bool,
        sample: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        with self.lock:
            if sample is not None:
                st.sample = sample
            pred = st.tracker.track(st.smoother.update(scores, frame.timestamp))
            st.prediction = pred
            st.analysed += 1
            st.encoded += int(encoded)
            st.analysed_at.append(frame.timestamp)
            st.latencies.append(time.monotonic() - frame.captured_at)
            if pred.closed is not None:
                self._history_segment(st, pred.closed)
            if pred.segment_started:
                self._publish(
                    "segment",
                    st,
                    label=pred.label,
                    confidence=round(pred.confidence, 4),
                    previous=None if pred.closed is None else pred.closed.to_json(),
                    time=pred.time,
                )
            changes = st.monitor.update(pred.label, pred.confidence, frame.timestamp)
            current = st.tracker.open_segment(frame.timestamp)
            strip = [*st.tracker.segments[-24:], *([current] if current else [])]
            # drawing and JPEG encoding wait until someone looks (the live page, a
            # snapshot): the analysis loop only keeps what to draw
            st.view = (frame.image_bgr, pred, strip, frame.timestamp)
            st.view_seq += 1
            if st.recorder is not None:
                self._record(st, frame, pred, strip)
            self._handle_alerts(st, changes, frame.timestamp)

    def _record(self, st: CameraState, frame: Any, pred: Prediction, strip: list[Any]) -> None:
        """Add the annotated frame to the camera's recording (``--record``). A recording
        that fails is logged and stopped; the camera goes on."""
        recorder = st.recorder
        assert recorder is not None
        try:
            if not st.recording:
                cam = st.camera
                recorder.start(RunInfo(cam.source, tuple(self.names), cam.size, cam.fps, True))
                st.recording = True
            image = st.overlay.draw(frame.image_bgr, pred, strip, frame.timestamp)
            recorder.on_frame(frame, pred, True, image)
        except Exception as e:
            log.error("camera %s: recording stopped: %s", st.camera.name, e)
            st.recorder = None
            with contextlib.suppress(Exception):
                recorder.finish(())

    def _handle_alerts(self, st: CameraState, changes: list[tuple[str, Alert]], t: float) -> None:
        for kind, alert in changes:
            if kind == "alert":
                st.alerts += 1
                st.recent_alerts.append(alert)
                alert.snapshot = self._snapshot(st, alert)
                log.warning(
                    "ALERT camera %s: expected %s, seeing %s", st.camera.name, alert.expected,
                    alert.seen,
                )  # fmt: skip
            event = "alert" if kind == "alert" else "alert_resolved"
            self._publish(event, st, alert=alert.to_json(), time=t)
            if self.webhook is not None:
                self.webhook.send(
                    {"event": event, "camera": st.camera.name, "time": self.wall(t),
                     "alert": alert.to_json()}
                )  # fmt: skip

    def _snapshot(self, st: CameraState, alert: Alert) -> str | None:
        if self.snapshots is None:
            return None
        _, jpeg = self._render(st)
        if jpeg is None:
            return None
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", st.camera.name)
        stamp = self.wall(alert.raised).replace(":", "").replace("-", "")[:15]
        path = self.snapshots / f"alert-{alert.id:05d}-{safe}-{stamp}.jpg"
        try:
            write_bytes_atomic(path, jpeg)
        except OSError as e:
            log.error("cannot write alert snapshot %s: %s", path, e)
            return None
        return path.name  # in --snapshots: where that folder is stays on this machine

    def _publish(self, kind: str, st: CameraState, *, time: float, **data: Any) -> None:
        self.events.publish(kind, {"camera": st.camera.name, **data}, time)

    # -- history -----------------------------------------------------------------------

    def _chunk_meta(self, name: str) -> dict[str, Any]:
        """The ``meta.json`` object of a new history chunk of camera ``name`` (the model
        facts as run, the source without credentials, the gate and region)."""
        st = self.states[name]
        with self.lock:
            region = st.region
        cam = st.camera
        return store_meta(
            model=model_meta(self.model),
            source=cam.source,
            input_path=None,
            dtype="float16",
            end_time=0.0,
            settings={
                "gate": asdict(self._gate_config),
                "analysis_fps": self.max_fps,
                "region": None if region is None else region.to_json(),
            },
            extra={"live": True, "fps": cam.fps, "size": list(cam.size) if cam.size else None},
        )

    def _history_segment(self, st: CameraState, segment: Any) -> None:
        """A closed segment (service clock) into the camera's history."""
        if self.history is not None and segment is not None:
            self.history.segment(
                st.camera.name, segment.label, self.unix(segment.start),
                self.unix(segment.end), segment.confidence,
            )  # fmt: skip

    def _history_event(self, event: dict[str, Any]) -> None:
        """An event of the hub into its camera's history (see :meth:`_event_line`)."""
        line = self._event_line(event)
        if self.history is not None and line is not None:
            self.history.event(*line)

    def _event_line(self, event: dict[str, Any]) -> tuple[str, str, float, dict[str, Any]] | None:
        """``(camera, kind, UNIX s, fields)`` of an event of the hub as the history keeps
        it: an alert's fields flattened, its times UNIX s, ``id`` the alert's (else the
        event's); None for the kinds it does not keep."""
        kind, camera = event.get("type"), event.get("camera")
        if kind not in HISTORY_EVENTS or camera not in self.states:
            return None
        data = {k: v for k, v in event.items() if k not in ("type", "time", "camera", "id")}
        data["id"] = event.get("id")
        alert = data.pop("alert", None)
        if isinstance(alert, dict):
            data.update({k: v for k, v in alert.items() if k != "camera"})
            for key in ("started", "raised", "resolved"):
                if isinstance(data.get(key), int | float):
                    data[key] = round(self.unix(data[key]), 3)
        expected = data.get("expected")
        if isinstance(expected, dict) and isinstance(expected.get("set_at"), int | float):
            data["expected"] = {**expected, "set_at": round(self.unix(expected["set_at"]), 3)}
        return str(camera), str(kind), self.unix(float(event["time"])), data

    def history_status(self, camera: str) -> dict[str, Any]:
        """``{"enabled", "writing", "error", ...}``: whether ``camera``'s history is being
        written, and why not (see :meth:`.HistoryWriter.status`)."""
        if self.history is None:
            return {"enabled": False, "writing": False, "error": None}
        return {"enabled": True, **self.history.status(camera)}

    def memory_labels(self, camera: str, since: float, until: float) -> list[dict[str, Any]]:
        """``camera``'s closed segments this process remembers (the newest 1000) that
        overlap ``[since, until]``, UNIX s: what a service without history shows."""
        st = self.states[camera]
        with self.lock:
            done = list(st.tracker.segments)
        rows = []
        for seg in done:
            start, end = self.unix(seg.start), self.unix(seg.end)
            if end >= since and start <= until:
                rows.append(label_line(seg.label, start, end, seg.confidence))
        return rows

    def open_label(self, camera: str) -> dict[str, Any] | None:
        """``camera``'s segment in progress (UNIX s, ending now), or None."""
        st = self.states[camera]
        now = self.clock()
        with self.lock:
            current = st.tracker.open_segment(now)
        if current is None:
            return None
        start, end = self.unix(current.start), self.unix(current.end)
        return label_line(current.label, start, end, current.confidence)

    def memory_events(self, camera: str, since: float, until: float) -> list[dict[str, Any]]:
        """``camera``'s recent events of the kinds the history keeps, as it keeps them
        (UNIX s): what a service without history shows."""
        found = []
        for event in self.events.recent(tuple(HISTORY_EVENTS), limit=1000):
            if event.get("camera") != camera:
                continue
            line = self._event_line(event)
            if line is not None and since <= line[2] <= until:
                _, kind, t, data = line
                found.append({"kind": kind, "time": round(t, 3), **data})
        return found

    # -- search queries ----------------------------------------------------------------

    def embed_text(self, text: str) -> np.ndarray:
        """The ``(D,)`` float32 unit embedding of a search text, embedded as the labels are
        (the label templates, prompt-ensembled; as ``scenecls search`` does)."""
        key = text.strip()
        with self._text_lock:
            if key in self._queries:
                return self._queries[key]
            row = np.asarray(self.model.embed_labels(LabelSet.from_names([key]))[0], np.float32)
            self._queries[key] = row
            while len(self._queries) > 128:
                self._queries.pop(next(iter(self._queries)))
            return row

    def embed_image(self, image_bgr: np.ndarray) -> np.ndarray:
        """The ``(D,)`` float32 unit embedding of a picture (HxWx3 uint8 BGR), by the
        service's image encoder (between two of the engine's calls)."""
        pixels = self.model.preprocess([image_bgr])
        with self._encode_lock:
            row = self.model.image_encoder(pixels)
        return normalize_rows(np.asarray(row, np.float32))[0]

    def current_embedding(self, camera: str) -> np.ndarray | None:
        """The ``(D,)`` float32 embedding of ``camera``'s last encoded frame; None when
        none since the start, a region change or a gap."""
        st = self.states[camera]
        with self.lock:
            sample = st.sample
        return None if sample is None else np.asarray(sample[1], np.float32)

    def _on_camera_state(self, cam: Camera, status: str, error: str | None) -> None:
        st = self.states.get(cam.name)
        if st is None:  # during construction
            return
        now = self.clock()
        with self.lock:
            if status == "retrying":
                self._history_segment(st, st.tracker.close(now))  # the gap ends the segment
                st.smoother.reset()
                st.gate.reset()
                st.prediction = None
                st.sample = None
                self._publish("source_lost", st, error=error, time=now)
            elif status == "running" and cam.reconnects > 0:
                self._publish("source_restored", st, time=now)

    # -- the API's view ----------------------------------------------------------------

    def camera_names(self) -> list[str]:
        return list(self.states)

    def expect(self, camera: str, label: str, order: str | None) -> dict[str, Any]:
        st = self.states[camera]
        now = self.clock()
        with self.lock:
            changes = st.monitor.expect(label, order, now)
            self._handle_alerts(st, changes, now)
            expectation = st.monitor.expectation
            assert expectation is not None
            self._publish("expectation_set", st, expected=expectation.to_json(), time=now)
            return expectation.to_json()

    def clear_expectation(self, camera: str) -> bool:
        st = self.states[camera]
        now = self.clock()
        with self.lock:
            had = st.monitor.expectation is not None
            changes = st.monitor.clear(now)
            self._handle_alerts(st, changes, now)
            if had:
                self._publish("expectation_cleared", st, time=now)
            return had

    def set_region(self, camera: str, region: Region | None) -> dict[str, Any]:
        """Set (None: clear) the region of interest of ``camera``: from its next frame the
        gate (reset, so that frame is encoded) and the encoder see only the region, and the
        live view shows its frame. Raises :class:`~scenecls.errors.RegionError` when it
        does not fit the camera's frames (when their size is known). Saved to the data
        folder when there is one (``"saved"``: whether that worked; None: no folder)."""
        st = self.states[camera]
        size = st.camera.size
        if region is not None and size is not None:
            region.box(*size)
        now = self.clock()
        with self.lock:
            if region != st.region:
                st.sample = None  # the next encoded frame shows the new region
            st.region = region
            st.region_changed = True
            st.region_error = None
            st.overlay.region = region
            st.view_seq += int(st.view is not None)  # the live view is drawn again
            shown = None if region is None else region.to_json()
            self._publish("region_changed", st, region=shown, time=now)
        saved: bool | None = None
        if self.settings is not None:
            try:
                self.settings.save_region(camera, region)
                saved = True
            except SceneclsError as e:
                log.error("camera %s: the region holds until a restart: %s", camera, e)
                saved = False
        return {"camera": camera, "region": shown, "saved": saved}

    # -- corrections ("this is X") -----------------------------------------------------

    def add_example(self, camera: str, label: str) -> dict[str, Any]:
        """Store ``camera``'s current analysed frame (what the encoder saw of it, and its
        embedding) as an example of ``label``, one of the service's labels, and teach the
        camera again in the background. Raises :class:`~.teaching.TeachingRefused` when no
        frame of the camera has been analysed (since the start, a region change or a
        gap). The reply: :meth:`examples` plus ``added`` (``saved``: in the data folder;
        None without one)."""
        st = self.states[camera]
        with self.lock:
            sample, region = st.sample, st.region
            problem = st.region_error
        if sample is None or problem is not None:
            why = problem or "wait for its picture and try again"
            raise TeachingRefused(f"camera {camera} has no analysed frame to store: {why}")
        image, embedding = sample
        shown = None if region is None else region.to_json()
        return self.teacher.add(camera, label, np.ascontiguousarray(image), embedding, shown)

    def undo_example(self, camera: str) -> dict[str, Any]:
        """Remove ``camera``'s newest example and teach it again; raises
        :class:`~.teaching.TeachingRefused` when it has none. The reply: :meth:`examples`
        plus ``removed``."""
        return self.teacher.undo(camera)

    def examples(self, camera: str) -> dict[str, Any]:
        """``camera``'s examples per label, its classifier's cross-validated and text-only
        accuracy, and whether it is being taught (see :meth:`.Teacher.summary`)."""
        return self.teacher.summary(camera)

    def _taught(self, camera: str, scorer: Scorer | None, event: dict[str, Any]) -> None:
        """The teaching worker's result for ``camera``: its new classifier (None: the run
        failed and the old one stays), swapped in before the camera's next frame."""
        st = self.states[camera]
        now = self.clock()
        with self.lock:
            if scorer is not None:
                st.scorer = scorer
            self._publish("taught", st, **event, time=now)

    def status(self) -> dict[str, Any]:
        now = self.clock()
        with self.lock:
            cams = [self._camera_status(st, now) for st in self.states.values()]
        return {
            "uptime": round(now, 3),
            "time": self.wall(now),
            "labels": list(self.names),
            "model": {
                "device": self.model.device,
                "precision": self.model.precision,
                "runtime": getattr(self.model, "runtime", None),
                "encoder_calls": self.encoder_calls.to_dict(),
            },
            "cameras": cams,
            **({"mqtt": self.mqtt.status()} if self.mqtt is not None else {}),
            **({"webhook": self.webhook.status()} if self.webhook is not None else {}),
        }

    def _camera_status(self, st: CameraState, now: float) -> dict[str, Any]:
        cam, pred, exp = st.camera, st.prediction, st.monitor.expectation
        recent = [t for t in st.analysed_at if t >= now - 5.0]
        fps = (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) > 2 else 0.0
        lat = np.asarray(st.latencies) * 1000
        label = pred.label if pred is not None else None
        return {
            "name": cam.name,
            "source": cam.source,  # no credentials
            "status": cam.status,
            "error": cam.error,
            "label": label,
            "confidence": None if pred is None else round(pred.confidence, 4),
            "expected": None if exp is None else exp.to_json(),
            "match": None if exp is None or label is None else label == exp.label,
            "alert": None if st.monitor.active is None else st.monitor.active.to_json(),
            "fps": round(fps, 2),
            "frames_read": cam.frames_read,
            "frames_analysed": st.analysed,
            "frames_encoded": st.encoded,
            "encoded_share": round(st.encoded / st.analysed, 4) if st.analysed else None,
            "dropped": cam.dropped,
            "reconnects": cam.reconnects,
            "alerts": st.alerts,
            "recent_alerts": [a.to_json() for a in st.recent_alerts],
            "latency_p50_ms": round(float(np.percentile(lat, 50)), 1) if len(lat) else None,
            "latency_p95_ms": round(float(np.percentile(lat, 95)), 1) if len(lat) else None,
            "uptime": None
            if cam.status != "running" or cam.running_since is None
            else round(now - cam.running_since, 3),
            "size": list(cam.size) if cam.size else None,
            "region": None if st.region is None else st.region.to_json(),
            "region_error": st.region_error,
            "teaching": self.teacher.status(cam.name),
            "history": self.history_status(cam.name),
        }

    def segments(self, camera: str, since: float) -> dict[str, Any]:
        """Segments of ``camera`` ending after ``since`` (service clock), the open one
        last (``"open": true``, its end is now)."""
        st = self.states[camera]
        now = self.clock()
        with self.lock:
            done = [s for s in st.tracker.segments if s.end > since]
            current = st.tracker.open_segment(now)
        rows = [{**s.to_json(), "open": False} for s in done]
        if current is not None and current.end >= since:
            rows.append({**current.to_json(), "open": True})
        return {"camera": camera, "now": round(now, 3), "segments": rows}

    def latest_jpeg(self, camera: str) -> tuple[int, bytes | None]:
        """The newest analysed frame of ``camera`` with its overlay, as JPEG, and a number
        that changes with each new one. Drawn on the first request after each frame."""
        return self._render(self.states[camera])

    def _render(self, st: CameraState) -> tuple[int, bytes | None]:
        with self.lock:
            if st.view is None or st.jpeg_seq == st.view_seq:
                return st.jpeg_seq, st.jpeg
            view, seq = st.view, st.view_seq
        image, pred, strip, t = view
        annotated = st.overlay.draw(image, pred, strip, t)
        ok, buf = cv2.imencode(".jpg", annotated, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        with self.lock:
            if ok and seq > st.jpeg_seq:
                st.jpeg, st.jpeg_seq = buf.tobytes(), seq
            return st.jpeg_seq, st.jpeg
