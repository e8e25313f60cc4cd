"""What every engine shares: the run's settings (one object the CLI builds), the engine options
(workers, buffers, GPUs, cluster address), and the summary every engine returns.

The three engines (``extractor/engines/``: single, pool, ray) take ``(RunSettings,
EngineOptions)`` and return a ``RunSummary``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from extractor.geometry import rotate_image
from extractor.media import ExtractMedia
from extractor.output import FrameWriter, OutputSettings
from extractor.output_folder import FaceNames, check_outside_inputs
from extractor.sources import DEFAULT_MAX_PIXELS, InputError, InputSource, SkippedInput, is_video_file
from extractor.stages import StageConfig
from extractor.tracking import TrackLabeller

logger = logging.getLogger(__name__)

# What an interlaced video's lines add: its face images, cut from the frames as decoded, are combed where faces move.
DEINTERLACE_FIRST = "for face images without combing, deinterlace it first: ffmpeg -i IN -vf yadif OUT"


def frame_not_processed_line(name: str, reason: str) -> str:
    return f"{name}: the detector could not process this frame ({reason}); not written, a resumed run tries it again"


def face_not_processed_line(name: str, face_index: int, reason: str) -> str:
    return f"{name}: face {face_index} skipped, a stage could not process it ({reason})"


@dataclass
class EngineOptions:
    """How an engine spreads the work; the single-process engine ignores all but the callback."""

    workers: dict[str, int] = field(default_factory=dict)  # stage -> worker count; 0 or missing: the plan's default
    frame_buffer: int | None = None  # pool: frame slots; None: chosen from free RAM
    gpus: list[int] | None = None  # which GPUs may be used; None: all ([]: none, the CPU plan)
    exclude_gpus: tuple[int, ...] = ()  # GPUs not to use (faceswap's -X); all of them: the CPU plan
    vram_mb: dict[str, int] = field(default_factory=dict)  # per-stage budget overrides
    count_bytes: bool = False  # pool: tally pickled bytes on every queue (benchmark, tests)
    gpu_inventory: list | None = None  # pool and single, for tests: a simulated inventory instead of nvidia-smi
    gpu_runtimes: set[str] | None = None  # pool, for tests: runtimes taken as GPU-capable instead of the installed
    on_frame_written: Callable[[int], None] | None = None  # called with the frame count after each write
    prepare_threads: int | None = None  # pool: threads warping and encoding faces for the coordinator; None: by cores
    stall_seconds: float = 300.0  # pool: no message at all for this long while frames are in flight: stop
    ray_address: str | None = None  # ray: "auto" or HOST:PORT of a cluster; None: a local instance
    gpu_memory_mb: int | None = None  # ray: memory of one GPU, to turn budgets into GPU fractions


@dataclass
class RunSettings:
    """Everything a run needs, whatever the engine."""

    input_path: Path
    output: OutputSettings
    stages: StageConfig = field(default_factory=StageConfig)
    every_n: int = 1
    max_pixels: int = DEFAULT_MAX_PIXELS
    show_progress: bool | None = None  # None: only when stderr is a terminal
    import_alignments: Path | None = None  # faceswap .fsa: boxes (and landmarks) instead of detection
    realign: bool = False  # with import_alignments: run the aligner on the imported boxes
    face_filter: object | None = None  # identity_filter.FaceFilter: keep only wanted people
    recursive: bool = False  # image folders: sub-folders too
    track_every: int = 0  # video: follow faces between full detections every this many frames (0: detect every frame)
    smooth: bool = True  # video, tracked: steady each track's landmarks over time

    def made_with(self, video: bool = False) -> dict:
        """What decides a face file's pixels and points, recorded in the alignments header: a
        resumed run must match it (or its faces would mix with different ones). ``video``: the
        input is a video (only a video's faces are tracked)."""
        stages, output = self.stages, self.output
        detector = "imported" if self.import_alignments is not None else stages.detector
        aligner = stages.aligner if self.import_alignments is None or self.realign else "imported"
        return {"centering": output.centering, "size": output.size, "coverage": output.coverage,
                "detector": detector, "aligner": aligner,
                "maskers": sorted(stages.maskers), "normalization": stages.normalization,
                "min_size": f"{stages.min_size_percent:g}%" if stages.min_size_percent else stages.min_size,
                **({"max_size": f"{stages.max_size_percent:g}%" if stages.max_size_percent else stages.max_size}
                   if stages.max_size or stages.max_size_percent else {}),
                # Which faces are found: plugin options a --config file changed, --rotate other than
                # auto (only when set, as below).
                **({"plugin_options": changed} if (changed := stages.changed_plugin_options()) else {}),
                **({"rotate": {"turns": list(stages.rotations), "upright_look": stages.upright_look}}
                   if stages.rotations or not stages.upright_look else {}),
                "debug_landmarks": output.debug_landmarks,
                # Only without face files: a run with them cannot resume a run without them.
                **({"no_faces": True} if not output.save_faces else {}),
                # Only where the aligner runs and re-feeds: files made without it stay resumable.
                **({"re_feed": stages.re_feed} if stages.re_feed and aligner != "imported" else {}),
                # Which faces are kept: a resume must keep the same ones (only when set, as above).
                **({"min_quality": output.min_quality} if output.min_quality else {}),
                **({"min_scale": output.min_scale} if output.min_scale and output.save_faces else {}),
                **({"face_filter": self.face_filter.recorded()} if self.face_filter is not None else {}),
                **({"identity": stages.identity} if stages.identity else {}),
                **({"track": {"every": self.track_every, "smooth": self.smooth}}
                   if video and self.track_every and self.import_alignments is None else {})}

    def _look_as_players_show(self, source: InputSource) -> None:
        """A video's frames looked at (by the detector and the aligner) as players show them, each
        said in one line: widened (non-square pixels), tone-mapped (HDR), one field at a time
        (interlaced; said nowhere, a frame that shows combing), turned upright (a display
        rotation, or, said nowhere, as its faces stand).
        Faces stay in the decoded frame's pixels, where faceswap reads them."""
        aspect = source.pixel_aspect()
        if abs(aspect - 1) > 0.01:
            self.stages = replace(self.stages, pixel_aspect=float(aspect))
            logger.info("%s: its pixels are not square (sample aspect ratio %d:%d): faces looked for and aligned "
                        "with its frames widened as players show them, kept in the stored frame's coordinates (as "
                        "faceswap reads them)", source.path, aspect.numerator, aspect.denominator)
        transfer = source.video_transfer()
        if transfer:
            self.stages = replace(self.stages, hdr_transfer=transfer)
            logger.info("%s: an HDR video (%s): faces looked for and aligned with its frames tone-mapped as an SDR "
                        "player shows them; the face images are cut from its frames as decoded (as faceswap reads "
                        "them)", source.path, "PQ, HDR10's" if transfer == "pq" else "HLG, a phone's")
        if source.video_interlaced():
            self.stages = replace(self.stages, one_field=True)
            logger.info("%s: interlaced: faces looked for and aligned in one field of each frame that shows "
                        "combing (as a player deinterlaces it); the face images are cut from its frames as decoded "
                        "(as faceswap reads them; %s)", source.path, DEINTERLACE_FIRST)
        else:  # interlaced pictures stored as progressive ones say nothing: judged frame by frame
            self.stages = replace(self.stages, one_field_if_combed=True)
            self._say_if_combed(source)
        turn = source.video_turn()
        if turn:
            self.stages = replace(self.stages, upright=turn)
            logger.info("%s: stored turned (a display rotation): faces looked for with its frames turned %d degrees "
                        "clockwise, kept in the stored frame's coordinates (as faceswap reads them)", source.path, turn)
        elif self.stages.upright_look:
            from extractor.upright import probe_video_turn

            turn = probe_video_turn(source)
            if turn:
                self.stages = replace(self.stages, upright=turn)
                logger.warning("%s: its faces stand up with its frames turned %d degrees clockwise (nothing in the "
                               "file says so): looked at so, faces kept in the stored frame's coordinates; "
                               "--rotate off looks at the frames as stored", source.path, turn)

    @staticmethod
    def _say_if_combed(source: InputSource) -> None:
        """One line where frames sampled over a video that does not say it is interlaced show
        combing (the frames the upright judgement decodes): the user learns the source is."""
        from extractor.fields import combed
        from extractor.upright import PROBE_FRAMES

        frames = source.sample_frames(PROBE_FRAMES)
        shown = sum(map(combed, frames))
        if shown:
            logger.info("%s: %d of %d frames sampled show combing (interlaced pictures stored as progressive, which "
                        "nothing in the file says): each frame that does is looked at one field at a time; the face "
                        "images are cut from its frames as decoded (as faceswap reads them; %s)", source.path, shown,
                        len(frames), DEINTERLACE_FIRST)

    def _decide_close_look(self, source: InputSource) -> None:
        """A video whose sampled frames show faces only a finer view finds is looked at closely,
        as photos are (``small_faces``); its frames' size decides first whether that could change
        anything, from the header alone."""
        from extractor.small_faces import close_look_changes, close_look_samples, needs_close_look

        size = source.video_size()
        if self.stages.close_look or size is None or not close_look_changes(self.stages, *size):
            return
        turned = [rotate_image(frame, self.stages.upright)[0] if self.stages.upright else frame
                  for frame in source.sample_frames(close_look_samples(source))]
        if needs_close_look(turned, self.stages):
            self.stages = replace(self.stages, close_look=True)
            logger.info("%s: faces only a finer view finds on its sampled frames: every frame gets the finer "
                        "look photos get (more detection time a frame without a big face)", source.path)

    def open_input_and_output(self, summary: "RunSummary") -> tuple[InputSource, FrameWriter, dict | None]:
        """The input, the writer (output checked, locked, earlier frames read) and the imported
        faces: what every engine starts with. Refusals come here, before any model loads."""
        source = InputSource(self.input_path, self.every_n, self.max_pixels, recursive=self.recursive,
                             face_folder=self.output.output_dir)
        if not source.is_video and not source.image_paths():
            others = source.listing_problems()
            names = ", ".join(Path(other.source).name for other in others[:3]) + (", ..." if len(others) > 3 else "")
            listed = f" ({len(others)} other {'entry' if len(others) == 1 else 'entries'}: {names})" if others else ""
            hints = [hint for hint, present in (
                ("sub-folders are searched with --recursive", any("sub-folder" in other.reason for other in others)),
                ("each video of a folder is extracted with --batch", any(is_video_file(Path(other.source))
                                                                         for other in others))) if present]
            hint = f" ({'; '.join(hints)})" if hints else ""
            raise InputError(f"{self.input_path}: no image to extract from{listed}; nothing to do{hint}")
        check_outside_inputs(self.output, self.input_path, self.recursive)
        self.output.made_with = self.made_with(source.is_video)
        keys = source.frame_keys()
        writer = FrameWriter(self.output, self.face_filter, FaceNames(keys), keys,
                             source.path if source.is_video else None)
        source.done = writer.done
        summary.already_done, summary.looked_again = len(writer.done), writer.looked_again
        summary.damaged_again = len(writer.damaged_faces)
        if not source.is_video:  # (frames saved from an interlaced video are combed: judged one by one)
            self.stages = replace(self.stages, close_look=True, one_field_if_combed=True)
        if source.is_video and self.import_alignments is None:
            self._look_as_players_show(source)
            self._decide_close_look(source)
        if source.is_video and self.track_every and self.import_alignments is None:
            self.stages = replace(self.stages, track_every=self.track_every, track_step=self.every_n)
            writer.tracks = TrackLabeller(source.video_fps(), self.smooth, writer.next_track_id, self.every_n)
        elif self.track_every:
            logger.info("--track: %s", "imported faces are not followed" if source.is_video
                        else "photos are detected one by one (only a video's faces are followed)")
        if source.is_video and self.stages.track_every <= 1 and self.import_alignments is None:
            self._confirm_doubtful_faces(writer)  # (tracked every frame: every frame a full detection too)
        try:
            imported = self.imported(source, summary)
        except BaseException:
            writer.close()
            raise
        return source, writer, imported

    def _confirm_doubtful_faces(self, writer: FrameWriter) -> None:
        """A video's doubtful faces (its detector's ``confirm_from`` up to its threshold) passed on
        by the detect stage and kept where a neighbouring frame confirms them (``neighbours``)."""
        from extractor.neighbours import NeighbourCheck

        detector = self.stages.create("detect", self.stages.detector)  # its options as the stage gets them; not loaded
        confirm_from, threshold = float(getattr(detector, "confirm_from", 0)), float(getattr(detector, "threshold", 0))
        if 0 < confirm_from < threshold:
            self.stages = replace(self.stages, neighbours=True)
            writer.neighbours = NeighbourCheck(threshold, self.every_n,
                                               lambda index: writer.earlier_boxes(index, threshold))

    def imported(self, source: InputSource, summary: "RunSummary") -> dict[str, list] | None:
        """Faces of the imported faceswap file by frame key, or None when nothing is imported;
        faces that cannot be used and keys that match no frame are reported, not fatal."""
        if self.import_alignments is None:
            return None
        from extractor.fsa import imported_faces, match_frames
        from extractor.sources import video_frame_index

        faces, problems = imported_faces(self.import_alignments, source.path if source.is_video else None)
        for problem in problems:
            logger.warning(problem)
        summary.warnings += problems
        if source.is_video:  # the keys of frames the video has (any number, when its header does not say)
            count = source.video_frame_count()
            indices = {key: video_frame_index(source.path, key) for key in faces}
            keys = {key for key, index in indices.items() if index is not None and (not count or index < count)}
            images = {}
        else:
            images = {source.image_key(path): path for path in source.image_paths()}
            keys = set(images)
        return match_frames(faces, self.import_alignments, keys, images)


@dataclass
class RunSummary:
    frames: int = 0
    faces: int = 0
    frames_without_face: int = 0
    filtered_out: int = 0  # faces dropped by --filter/--nfilter
    low_quality: int = 0  # faces left out by --min-quality
    outside_size_limits: int = 0  # faces found that --min-size/--max-size left out
    without_png: int = 0  # faces in the alignments file only: too enlarged for --min-scale
    already_done: int = 0  # frames an earlier run finished (--skip-existing)
    looked_again: int = 0  # frames an earlier run found no face in, done again (--skip-existing-faces)
    damaged_again: int = 0  # frames an earlier run wrote whose face PNGs were not whole, done again
    skipped: list[SkippedInput] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)
    peak_rss: int = 0  # bytes, this process and its children together
    tracks: int | None = None  # a tracked video: the tracks its faces form
    face_files: bool = True  # whether face PNGs were written (not with --no-faces)
    alignments_lost: str | None = None  # the alignments file (or its folder) was deleted or moved mid-run

    def admit(self, item: ExtractMedia | SkippedInput) -> ExtractMedia | None:
        """Report a skipped input or a decode warning; returns the frame to process, if any."""
        if isinstance(item, SkippedInput):
            logger.warning("skipped %s", item.reason)
            self.skipped.append(item)
            return None
        if item.warning:
            logger.warning(item.warning)
            self.warnings.append(item.warning)
        return item

    def take_counts(self, writer: FrameWriter) -> None:
        """What the writer wrote (frames, faces...) and the faces it had to drop."""
        counts = writer.counts
        self.frames, self.faces = counts.frames, counts.faces
        self.frames_without_face, self.filtered_out = counts.frames_without_face, counts.filtered_out
        self.low_quality, self.without_png = counts.low_quality, counts.without_png
        self.face_files = writer.settings.save_faces
        self.tracks = writer.tracks.tracks if writer.tracks is not None else None
        self.warnings += writer.problems
        self.alignments_lost = writer.alignments.lost_at_close

    def frame_not_processed(self, name: str, reason: str) -> None:
        """A frame the detector failed on: reported and counted, not written (a resume retries it)."""
        self.admit(SkippedInput(name, frame_not_processed_line(name, reason)))

    def start_up_warning(self, line: str) -> None:
        """A warning a stage gave as it started (a plugin's load; logged where it was given):
        in the summary once, however many of its workers gave it."""
        if line not in self.warnings:
            self.warnings.append(line)

    def face_not_processed(self, name: str, face_index: int, reason: str) -> None:
        """A face a stage failed on: reported and counted; the frame is written without it."""
        line = face_not_processed_line(name, face_index, reason)
        logger.warning(line)
        self.warnings.append(line)

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0

    def format(self) -> str:
        earlier = [f"+{self.already_done} done by an earlier run"] if self.already_done else []
        if self.looked_again:
            earlier.append(f"{self.looked_again} {'it' if self.already_done else 'an earlier run'} found no face "
                           "in, looked at again")
        if self.damaged_again:
            earlier.append(f"{self.damaged_again} whose face PNGs were not whole, extracted again")
        done = f" ({'; '.join(earlier)})" if earlier else ""
        outside, filtered = self.outside_size_limits, ""
        filtered += f" kept, {outside} outside --min-size/--max-size" if outside else ""
        filtered += f"{'' if filtered else ' kept'}, {self.filtered_out} filtered out by identity" \
            if self.filtered_out else ""
        filtered += f"{'' if filtered else ' kept'}, {self.low_quality} below --min-quality" if self.low_quality else ""
        filtered += "" if self.face_files else " (in the alignments file only: --no-faces)"
        filtered += f" ({self.without_png} without a face PNG: --min-scale)" if self.without_png else ""
        lines = [f"frames: {self.frames}{done}", f"faces: {self.faces}{filtered}",
                 *([f"tracks: {self.tracks}"] if self.tracks is not None else []),
                 f"frames without a face: {self.frames_without_face}",
                 f"skipped inputs: {len(self.skipped)}"]
        lines += [f"  - {s.reason}" for s in self.skipped[:20]]
        lines += [f"  ... and {len(self.skipped) - 20} more (see the log)"] if len(self.skipped) > 20 else []
        if self.warnings:
            lines.append(f"warnings: {len(self.warnings)}")
            lines += [f"  - {warning}" for warning in self.warnings[:20]]
            lines += [f"  ... and {len(self.warnings) - 20} more (see the log)"] if len(self.warnings) > 20 else []
        lines.append(f"time: {self.seconds:.1f} s ({self.frames_per_second:.2f} frames/s)")
        if self.peak_rss:
            lines.append(f"peak memory: {self.peak_rss / 2**20:.0f} MB (all processes)")
        loads = {k: v for k, v in self.stage_seconds.items() if k.startswith("load ")}
        if loads:
            lines.append("model load: " + ", ".join(f"{k[5:]} {v:.1f} s" for k, v in loads.items()))
        if self.frames and len(self.stage_seconds) > len(loads):
            per = ", ".join(f"{k} {1000 * v / self.frames:.1f}" for k, v in self.stage_seconds.items()
                            if k not in loads)
            lines.append(f"ms per frame by stage: {per}")
        return "\n".join(lines)
