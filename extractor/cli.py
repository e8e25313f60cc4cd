"""``extractor`` command line: run, plugins, eval."""
from __future__ import annotations

import logging
import os
import re
import sys
from contextlib import ExitStack, contextmanager
from pathlib import Path

import click

from extractor.quiet import quiet_runtime_loggers, start_up_quietly, traceback_hint

# Quiet TensorFlow's C++ start-up chatter (before anything imports it).
quiet_runtime_loggers()

from extractor.crops import ARCFACE_SIZE, CENTERINGS, DEFAULT_CENTERING, DEFAULT_SIZE, CropSpec  # noqa: E402
from extractor.faceswap_flags import (FaceswapStyleCommand, FaceSize, faceswap_alignments_place,  # noqa: E402
                                      PluginChoice, fold_faceswap_flags, hoisted_global_flags, reference_photos,
                                      refuse_not_taken)
from extractor.output import OutputSettings  # noqa: E402
from extractor.plugins import registry  # noqa: E402
from extractor.plugins.base import Aligner  # noqa: E402
from extractor.plugins.options import MAX_BATCH  # noqa: E402
from extractor.sources import DEFAULT_MAX_PIXELS, InputError  # noqa: E402
from extractor.stages import StageConfig  # noqa: E402

STAGES = ("detect", "align", "mask")


class FilePath(click.Path):
    """``click.Path`` that refuses an empty value: ``-o "$OUT"`` with ``OUT`` unset would otherwise
    mean the current folder, and a run would write (or read) there. A leading ``~`` is the home
    folder, as faceswap's paths take it: the shell leaves it as it is when quoted (``-o "~/faces"``),
    after ``=`` (``--output=~/faces``) and in a configuration file, and a folder named ``~`` would
    be made in the current one."""

    def convert(self, value, param, ctx):
        if isinstance(value, str) and not value.strip():
            self.fail("an empty path (an unset variable in a script?): name a file or folder", param, ctx)
        if isinstance(value, str) and value.startswith("~"):
            value = os.path.expanduser(value)
        return super().convert(value, param, ctx)


def _names(stage: str) -> list[str]:
    return [cls.name for cls in registry.available(stage)]


def _parse_batch_sizes(values) -> dict[str, int]:
    """--batch-size, with batches bounded: a detect batch holds whole frames in memory at once."""
    sizes = _parse_stage_numbers(values, "--batch-size")
    for stage, size in sizes.items():
        if size > MAX_BATCH[stage]:
            raise click.BadParameter(f"{stage}={size}: a {stage} batch may hold at most {MAX_BATCH[stage]} "
                                     f"{'frames' if stage == 'detect' else 'faces'}", param_hint="--batch-size")
    return sizes


def _parse_stage_numbers(values, option: str) -> dict[str, int]:
    """``detect=4`` items (repeated, or comma-separated) as {stage: number}."""
    items = [item for value in ([values] if isinstance(values, str) else values) for item in value.split(",")]
    numbers = {}
    for item in items:
        stage, _, number = item.partition("=")
        if stage not in STAGES or not number.isdigit() or int(number) < 1:
            raise click.BadParameter(f"{item!r}: use STAGE=N with STAGE one of {', '.join(STAGES)}",
                                     param_hint=option)
        numbers[stage] = int(number)
    return numbers


def _plugin_options(config: dict | None) -> dict[str, dict]:
    from extractor.config import ConfigError, plugin_options

    try:
        return plugin_options(config or {})
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _chosen_backend(backend: str | None) -> str | None:
    """--backend, else KERAS_BACKEND, checked installed; None: auto (the plugin chooses)."""
    from extractor.models.backend import BackendError, chosen_backend

    try:
        return chosen_backend(backend)
    except BackendError as exc:
        raise click.ClickException(str(exc)) from None


def _parse_gpus(value: str | None) -> list[int] | None:
    """--gpus 0,1 (None: all; ``none``: the CPU plan)."""
    if not value:
        return None
    return [] if value.strip().lower() == "none" else _gpu_numbers([value], "--gpus")


def _gpu_numbers(values, flag: str) -> list[int]:
    """GPU numbers from values like ``0,1`` or several values (``-X 0 1``), as nvidia-smi numbers them."""
    try:
        return [int(g) for value in values for g in value.split(",") if g.strip()]
    except ValueError:
        raise click.BadParameter(f"{','.join(values)!r}: use GPU numbers as nvidia-smi lists them, like 0,1",
                                 param_hint=flag) from None


def _parse_rotate(value: str) -> tuple[tuple[int, ...], bool]:
    """--rotate as (angles a frame with no face is retried at, whether frames whose faces lie on
    their side are looked at again upright): auto (default) looks again only; off does neither.
    Numbers follow faceswap's ``-r``: one is a step (90: 90, 180 and 270), several are the angles."""
    if value == "off":
        return (), False
    if not value or value == "auto":
        return (), True
    if value == "on":
        return (90, 270, 180), True
    try:
        angles = tuple(int(v) for v in value.split(",") if int(v) != 0)  # faceswap drops 0
    except ValueError:
        raise click.BadParameter(f"{value!r}: use auto, on, off or angles like 90,270", param_hint="--rotate") from None
    if any(a % 90 or not 0 < a < 360 for a in angles):
        raise click.BadParameter(f"{value!r}: frames are turned by quarter turns: use 90, 180 or 270 "
                                 "(one number is a step, as in faceswap)", param_hint="--rotate")
    if len(angles) == 1:
        angles = tuple(range(angles[0], 360, angles[0]))
    return angles, True


LOG_LINE = re.compile(rb"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d{3} [A-Z]+ ")


def check_log_file(path: Path) -> None:
    """--logfile appends to a new file or to an extractor log, never to anything else (a photo, an
    alignments file): its first line must be a log line. A stream (``/dev/stderr``, a terminal, a
    named pipe) is written to as it is: reading its first line waited for typing, for ever."""
    try:
        if Path(path).exists() and not Path(path).is_file() and not Path(path).is_dir():
            return
        with open(path, "rb") as handle:
            first = handle.readline(256)
    except FileNotFoundError:
        try:  # its folder made now, as -o and -p make theirs; the file at its first line
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise click.ClickException(f"{path}: --logfile cannot be made ({exc.strerror or exc})") from None
        return
    except OSError as exc:
        raise click.ClickException(f"{path}: --logfile cannot be read ({exc.strerror or exc})") from None
    if first.strip(b"\0") and not LOG_LINE.match(first):  # empty, or zeros (a power cut's): nothing to keep
        raise click.ClickException(f"{path}: exists and is not an extractor log; --logfile appends only to its own "
                                   "logs: choose another file")


def check_log_not_in_run(settings) -> None:
    """A log path is never an input or an output of the run (logging into the alignments file it
    reads would feed on itself)."""
    logfile = click.get_current_context().find_root().params.get("logfile")
    if not logfile:
        return
    log = Path(logfile).resolve()
    output = settings.output
    taken = {Path(settings.input_path).resolve(): "the input", output.alignments_path.resolve(): "the alignments file"}
    if output.preview_path:
        taken[output.preview_path.resolve()] = "the preview"
    if log in taken or (log.parent == output.output_dir.resolve() and log.suffix.lower() == ".png"):
        raise click.ClickException(f"{logfile}: --logfile is {taken.get(log, 'a face file')} of this run; "
                                   "choose another file")


class _OneLineErrors(click.Group):
    """Every failure is one line for the user; a traceback only ever goes to --logfile. Errors
    the code expects are ``click.ClickException`` already; anything else is caught here. faceswap's
    log options typed after ``run`` are taken as the group's (``hoisted_global_flags``)."""

    def parse_args(self, ctx, args):
        return super().parse_args(ctx, hoisted_global_flags(list(args)))

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit, KeyboardInterrupt):
            raise
        except BrokenPipeError:  # the reader of the output went away (`| head`): click ends quietly
            raise
        except Exception as exc:  # noqa: BLE001 - the last line of defence against tracebacks
            logging.getLogger("extractor").debug("unexpected error", exc_info=True)
            raise click.ClickException(f"{type(exc).__name__}: {exc} ({traceback_hint()})") from None


@click.group(cls=_OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="extractor", message="extractor %(version)s")
@click.option("--loglevel", default="INFO", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
@click.option("--logfile", type=FilePath(dir_okay=False, path_type=Path), default=None,
              help="Also write the log to this file (always at DEBUG level).")
@click.option("--config", "config_path", type=FilePath(exists=True, dir_okay=False, path_type=Path),
              default=None, help="TOML file of defaults and plugin options (see extractor/default_config.toml).")
@click.pass_context
def main(ctx: click.Context, loglevel: str, logfile: Path | None, config_path: Path | None) -> None:
    """Face extraction: detect, align and mask every face of an image folder or a video."""
    from extractor.config import ConfigError, check_run_value, load_config, plugin_options

    handlers: list[logging.Handler] = [logging.StreamHandler()]
    handlers[0].setLevel(loglevel.upper())
    if logfile:
        check_log_file(logfile)
        handlers.append(logging.FileHandler(logfile, delay=True))  # made at the first line, after the run's checks
        handlers[-1].setLevel(logging.DEBUG)
    logging.basicConfig(level=logging.DEBUG if logfile else loglevel.upper(), handlers=handlers, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s" if logfile
                        else "%(levelname)s %(name)s: %(message)s")
    quiet_runtime_loggers()
    try:
        config = load_config(config_path)
        plugin_options(config, str(config_path or "default configuration"))
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    ctx.obj = config
    run_defaults = dict(config["run"])
    if "masker" in run_defaults:
        run_defaults["maskers"] = run_defaults.pop("masker")
    if "extract_every_n" in run_defaults:
        run_defaults["every_n"] = run_defaults.pop("extract_every_n")
    params = {param.name: param for param in run.params}
    unknown = set(run_defaults) - set(params)
    if unknown:
        raise click.ClickException(f"{config_path}: unknown key(s) {sorted(unknown)} in [run]; its keys are the "
                                   "`extractor run` options with _ for - (see extractor/default_config.toml)")
    try:
        for key, value in run_defaults.items():
            check_run_value(key, value, params[key], str(config_path or "default configuration"))
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    # eval measures what run does: the same detector, aligner, normalisation and plugin options.
    ctx.default_map = {"run": run_defaults,
                       "eval": {key: run_defaults[key] for key in ("detector", "aligner", "normalization", "re_feed")
                                if key in run_defaults}}


BACKEND_HELP = ("Keras backend for GPU-capable models (default: KERAS_BACKEND, else TensorFlow on a GPU and ONNX "
                "Runtime on a CPU-only machine; JAX where TensorFlow is not installed, as on Python 3.14).")


@main.command(cls=FaceswapStyleCommand)
@click.option("-i", "--input", "--input-dir", "input_path", required=True, type=FilePath(path_type=Path),
              help="Image folder, image file or video file.")
@click.option("-o", "--output", "--output-dir", "output_dir", type=FilePath(path_type=Path),
              help="Folder for the aligned face PNGs. Without it, as faceswap's extract without -o: the alignments "
                   "file only, where faceswap looks for it (beside a video: <stem>_alignments.fsa; in an image "
                   "folder: alignments.fsa).")
@click.option("-p", "--alignments", "-al", type=FilePath(path_type=Path), default=None,
              help="Alignments file (default: OUTPUT/alignments.jsonl). A name ending in .fsa gets faceswap's "
                   "file, written when the run finishes, beside extractor's own (.jsonl, what a resume reads).")
@click.option("-D", "--detector", default=registry.DEFAULTS["detect"], show_default=True,
              type=PluginChoice("detect", _names("detect")))
@click.option("--backend", default=None, type=click.Choice(["tensorflow", "jax", "torch"]),
              help=BACKEND_HELP)
@click.option("-A", "--aligner", default=registry.DEFAULTS["align"], show_default=True,
              type=PluginChoice("align", _names("align")))
@click.option("-M", "--masker", "maskers", multiple=True, type=PluginChoice("mask", _names("mask")),
              help="Mask to compute; several: -M a b, or repeat the flag (default: components).")
@click.option("--centering", default=DEFAULT_CENTERING, show_default=True, type=click.Choice(CENTERINGS),
              help="Crop of the face PNGs: faceswap's 'head' (what its extract writes and its training "
                   "expects), 'face' or 'legacy', or insightface's 112 px ArcFace template 'arcface'.")
@click.option("-z", "--size", "-sz", default=0, type=click.IntRange(0, 4096),
              help=f"Side of the face PNGs in pixels [default: {DEFAULT_SIZE}, faceswap's; {ARCFACE_SIZE} for "
                   "arcface, which takes multiples of 112 or 128].")
@click.option("--coverage", default=1.0, show_default=True, type=click.FloatRange(0.5, 1.0),
              help="faceswap's coverage ratio: the share of the crop kept around its centre (not for arcface).")
@click.option("--min-size", default=0, show_default=True, type=FaceSize(),
              help="Drop faces whose box's longer side is smaller (after detection): pixels (40), or a "
                   "percentage of the frame's shorter side (10%: what faceswap's --min-size 10 means).")
@click.option("-m", "min_size_percent", default=None, type=click.FloatRange(0, 100), metavar="PERCENT",
              help="faceswap's -m: --min-size as a percentage of the frame's shorter side (-m 10 = --min-size 10%).")
@click.option("--max-size", default=0, show_default=True, type=FaceSize(most_percent=500),
              help="Drop faces whose box's longer side is larger (a false detection over a whole frame, a "
                   "face too close for the set): pixels, or a percentage of the frame's shorter side "
                   "(faceswap's --max-size 200 is 200%); 0: none.")
@click.option("-x", "max_size_percent", default=None, type=click.FloatRange(0, 500), metavar="PERCENT",
              help="faceswap's -x: --max-size as a percentage of the frame's shorter side.")
@click.option("-u", "--min-scale", default=0.0, show_default=True, type=click.FloatRange(0, 200), metavar="PERCENT",
              help="As faceswap's: write a face PNG only for faces spanning at least this share of its side in "
                   "the frame (50 with the 512 px default: faces of 256 px and up), so that no face is enlarged "
                   "more than 100/PERCENT times; every face stays in the alignments file.")
@click.option("-N", "--extract-every-n", "-een", "every_n", default=1, show_default=True, type=click.IntRange(1),
              help="Use every n-th frame or image.")
@click.option("--min-quality", default=0.0, show_default=True, type=click.FloatRange(0.0, 1.0),
              help="Leave out faces whose alignment quality (0-1, in each record and the preview) is lower; "
                   "0.2 leaves out the least steady faces (blurred profiles among them) and most non-faces "
                   "(docs/accuracy.md).")
@click.option("--track/--no-track", default=False, show_default=True,
              help="Videos: follow faces from frame to frame between full detections: track ids, about 1.6x the "
                   "frames/s, 0.9 of the faces of detecting every frame (docs/tracking.md).")
@click.option("--track-every", default=10, show_default=True, type=click.IntRange(1),
              help="Videos, tracked: a full detection at least every this many frames (and at scene cuts); 1: "
                   "every frame detected (every face), landmarks still steadied.")
@click.option("--smooth/--no-smooth", default=True, show_default=True,
              help="Videos, tracked: steady each face's landmarks over time (One Euro filter).")
@click.option("--batch-size", "batch_sizes", multiple=True, metavar="STAGE=N",
              help="Batch size of a stage, e.g. --batch-size align=32 (default: the plugin's).")
@click.option("-O", "--normalization", "-nm", default=StageConfig.normalization, show_default=True,
              type=click.Choice(Aligner.NORMALIZATIONS, case_sensitive=False),
              help="Normalise the face crop the aligner sees; auto: CLAHE on dim or flat faces only, for dlib68.")
@click.option("-R", "--re-feed", "-rf", default=0, show_default=True, type=click.IntRange(0, 10),
              help="As faceswap's: align each face again from this many slightly moved crops and average the "
                   "points: steadier landmarks (4: frame-to-frame jitter about a quarter lower), that many more "
                   "passes of the aligner (docs/accuracy.md).")
@click.option("-r", "--rotate", "--rotate-images", default="auto", show_default=True,
              help="auto: a frame whose faces, or doubtful spots no face explains, lie on their side or upside "
                   "down is looked at again turned upright (a photo stored sideways, someone lying down), and a "
                   "video with no display rotation whose faces stand up only turned is looked at turned; on: also "
                   "retry frames with no face turned 90, 270, 180; angles like 90,270: those (one number is a step, "
                   "as in faceswap: 90 = 90,180,270); off: none of these.")
@click.option("--max-pixels", default=DEFAULT_MAX_PIXELS, show_default=True, type=click.IntRange(1),
              help="Refuse images whose header claims more pixels than this.")
@click.option("--preview", is_flag=True,
              help="Write OUTPUT/preview/preview.png: a contact sheet of the faces found (kept out of the faces).")
@click.option("--recursive", is_flag=True,
              help="Image folders: take the images of sub-folders too (linked ones included, each real folder once).")
@click.option("-b", "--batch", "--batch-mode", "batch", is_flag=True,
              help="INPUT is a folder of videos and image folders (faceswap's batch mode): each is extracted "
                   "into OUTPUT/<its name>/, with its own alignments file (--alignments: its name there); one "
                   "failing does not stop the others.")
@click.option("-B", "--debug-landmarks", "-dl", is_flag=True, help="Draw the landmarks on the saved face PNGs.")
@click.option("-K", "--no-faces", "--skip-saving-faces", "-ssf", "no_faces", is_flag=True,
              help="Write the alignments file only (boxes, landmarks, masks, thumbnails), no face PNGs, as "
                   "faceswap's extract without -o: for convert or a later crop; faster.")
@click.option("--import-alignments", type=FilePath(exists=True, dir_okay=False, path_type=Path), default=None,
              help="faceswap .fsa, or a run's own .jsonl: take boxes and landmarks from it instead of detecting "
                   "(only re-mask; the faces cut again at this run's --size and --centering).")
@click.option("--realign", is_flag=True, help="With --import-alignments: re-align the imported boxes.")
@click.option("--progress/--no-progress", default=None,
              help="Progress bars on stderr (default: only when stderr is a terminal).")
@click.option("-I", "--identity", "with_identity", is_flag=True,
              help="Store a 128-d identity embedding (dlib ResNet) with every face (faceswap's model names after "
                   "it, vggface2 or t-face, are taken as this).")
@click.option("-f", "--filter", "filter_refs", multiple=True, type=FilePath(exists=True, path_type=Path),
              help="Keep only faces of the person in these reference images (files or folders; -f a b, or "
                   "repeat the flag).")
@click.option("-n", "--nfilter", "nfilter_refs", multiple=True, type=FilePath(exists=True, path_type=Path),
              help="Drop faces of the person in these reference images (files or folders; -n a b, or repeat "
                   "the flag).")
@click.option("--filter-threshold", default=0.6, show_default=True, type=click.FloatRange(0.0, 2.0),
              help="Largest embedding distance counted as the same person (dlib's own 0.6; lower is stricter).")
@click.option("-s", "--skip-existing", is_flag=True,
              help="Resume: keep the frames already in the alignments file and do the others.")
@click.option("-e", "--skip-existing-faces", "-sf", "skip_existing_faces", is_flag=True,
              help="faceswap's: resume, and look again at the frames the earlier run found no face in (with "
                   "another detector, its options, --min-size, --max-size, --rotate or --track if you like; how "
                   "faces are aligned, masked and cut must stay as recorded).")
@click.option("--overwrite", is_flag=True, help="Start again even if the alignments file has frames.")
@click.option("-P", "--single-process", "--singleprocess", "-sp", "single_process", is_flag=True,
              help="Same as --engine single.")
@click.option("-g", "--align-filters", "align_filters", is_flag=True,
              help="faceswap's aligner filters: here --min-quality 0.2 where no --min-quality is given.")
@click.option("-a", "--re-align", "re_align", is_flag=True,
              help="faceswap's re-align: always done here (each face is aligned again on its first landmarks).")
@click.option("-v", "--save-interval", "-si", "save_interval", default=0, type=click.IntRange(0),
              help="faceswap's: not needed here (every frame is saved as it finishes).")
@click.option("-c", "--compile", "compile_models", is_flag=True,
              help="faceswap's PyTorch compile: not needed here (a GPU worker on PyTorch replays CUDA graphs).")
@click.option("--detect-workers", default=0, type=click.IntRange(0),
              help="Detect processes [default: two per GPU the detector can use (one with under 8 cores a "
                   "GPU), else 1].")
@click.option("--align-workers", default=0, type=click.IntRange(0),
              help="Align processes [default: with --mask-workers, half the cores (see the plan)].")
@click.option("--mask-workers", default=0, type=click.IntRange(0),
              help="Mask processes [default: with --align-workers, half the cores (see the plan)].")
@click.option("--frame-buffer", default=None, type=click.IntRange(2),
              help="Frames held in shared memory at once (default: from free RAM, at most 64).")
@click.option("--prepare-threads", default=None, type=click.IntRange(0, 64),
              help="Threads warping and encoding faces beside the writer (default: a quarter of the cores, "
                   "at most 4, on machines with 8 or more; 0 below).")
@click.option("--stall-timeout", default=300.0, show_default=True, type=click.FloatRange(1.0),
              help="Stop with an error when no stage reports anything for this many seconds (a "
                   "pause, Ctrl-Z then fg, does not count).")
@click.option("--gpus", default=None, help="GPUs the workers may use, e.g. 0,1, or none (default: all "
              "that CUDA_VISIBLE_DEVICES leaves).")
@click.option("-X", "--exclude-gpus", multiple=True, metavar="N",
              help="GPUs not to use (faceswap's -X; all of them: the CPU plan).")
@click.option("--vram", default=None, metavar="STAGE=MB,...",
              help="GPU-memory budget per worker of each stage, e.g. detect=2048,align=512.")
@click.option("--detect-vram", type=click.IntRange(64), default=None, help="Same as --vram detect=MB.")
@click.option("--align-vram", type=click.IntRange(64), default=None, help="Same as --vram align=MB.")
@click.option("--mask-vram", type=click.IntRange(64), default=None, help="Same as --vram mask=MB.")
@click.option("--engine", "engine_name", default="pool", show_default=True,
              type=click.Choice(["pool", "single", "ray"]),
              help="pool: worker processes on this machine; single: one process; ray: a Ray cluster.")
@click.option("--ray-address", default=None, metavar="auto|HOST:PORT",
              help="--engine ray: join this cluster (default: RAY_ADDRESS where set, else a new local Ray "
                   "sized to this machine; auto: the cluster `ray start` runs here).")
@refuse_not_taken
@click.pass_obj
def run(config, **flags):
    """Extract faces from INPUT into OUTPUT (worker pool, --engine single or --engine ray)."""
    fold_faceswap_flags(flags)
    if flags.pop("single_process"):
        flags["engine_name"] = "single"
    _one_process_where_no_pool(flags)
    if flags.pop("batch"):
        _run_batch(config, flags)
    else:
        _run_one(config, flags)


def _one_process_where_no_pool(flags: dict) -> None:
    """The worker pool shares frames through shared memory (Linux's memfd_create, POSIX shm_open);
    a system with neither (Windows) runs in one process, said in one line, instead of failing."""
    from extractor.workers.frame_pool import shared_block_supported

    if flags["engine_name"] == "pool" and not shared_block_supported():
        logging.getLogger("extractor").warning(
            "the worker pool needs shared memory (memfd_create or POSIX shm_open), which this system (%s) lacks: "
            "every stage runs in this process (--engine single; --engine ray for workers)", sys.platform)
        flags["engine_name"] = "single"


def _run_batch(config, flags: dict) -> None:
    """Each video and image folder of INPUT as its own run into OUTPUT/<its name>; a failed one is
    reported and the next goes on; the command fails at the end if any did."""
    from extractor.batch import batch_items

    if flags["import_alignments"]:
        raise click.UsageError("--import-alignments names one file; with --batch each input gets its own")
    name = flags["alignments"]
    if name is not None and flags["output_dir"] is None:
        raise click.UsageError("with --batch and no -o, each input's alignments file goes where faceswap looks for "
                               "it: give -o to name them with --alignments")
    if name is not None and (name.name != str(name) or name.name in ("", ".", "..")):
        raise click.UsageError("with --batch, --alignments is a file name (no folder) given to each input's output "
                               "folder, e.g. --alignments alignments.fsa")
    try:
        items, left_out = batch_items(flags["input_path"], flags["output_dir"])
    except InputError as exc:
        raise click.ClickException(str(exc)) from None
    for line in left_out:
        logging.getLogger("extractor").warning("left out of the batch: %s", line)
    failed = []
    with _one_engine_for_every_run(flags, bool(items)):
        for number, (source, output) in enumerate(items, 1):
            click.echo(f"[{number}/{len(items)}] {source} -> {output or faceswap_alignments_place(source)}")
            try:
                _run_one(config, {**flags, "input_path": source, "output_dir": output,
                                  "alignments": output / name if name is not None else None})
            except click.ClickException as exc:
                click.echo(f"Error: {exc.format_message()}", err=True)
                failed.append(source.name)
    entries = f", {len(left_out)} {'entry' if len(left_out) == 1 else 'entries'} left out (above)" if left_out else ""
    click.echo(f"batch: {len(items)} inputs, {len(items) - len(failed)} extracted, {len(failed)} failed{entries}")
    if failed:
        raise click.ClickException(f"{len(failed)} of {len(items)} inputs failed: {', '.join(failed)}")


@contextmanager
def _one_engine_for_every_run(flags: dict, any_run: bool):
    """What the runs of a batch share: Ray, started or joined once (the pool's fork server is
    already shared: it is this process's)."""
    with ExitStack() as shared:
        if flags["engine_name"] == "ray" and any_run:
            from extractor.engines.ray_cluster import RayEngineError, connected

            try:
                shared.enter_context(connected(flags["ray_address"]))
            except RayEngineError as exc:
                raise click.ClickException(str(exc)) from None
        yield


def _without_face_folder(flags: dict) -> dict:
    """A run without -o: faceswap's extract without -o, the alignments file only (--no-faces), at
    --alignments or where faceswap looks for it; extractor's own file (what a resume reads) beside it."""
    if flags["preview"]:
        raise click.UsageError("--preview writes its contact sheet into -o: give one")
    alignments = flags["alignments"] or faceswap_alignments_place(flags["input_path"])
    logging.getLogger("extractor").info("no -o: the alignments file only (%s), as faceswap's extract without -o; "
                                        "-o FOLDER writes the face PNGs", alignments)
    return {**flags, "no_faces": True, "alignments": alignments, "output_dir": alignments.parent}


def _run_one(config, flags: dict) -> None:
    """One run: INPUT (a folder, an image or a video) into OUTPUT."""
    if flags["output_dir"] is None:
        flags = _without_face_folder(flags)
    from extractor.alignments import OutputError
    from extractor.engines import engine
    from extractor.engines.pool import PipelineError
    from extractor.fsa import UnsafeFileError
    from extractor.workers.devices import PlanError
    from extractor.workers.frame_pool import FramePoolError

    settings, options = _run_settings(config, flags), _engine_options(flags)
    check_log_not_in_run(settings)
    fsa = _faceswap_alignments(flags["alignments"], settings.output.alignments_path)
    logging.getLogger("extractor").info(
        "run: %s -> %s (alignments %s); engine %s; detector %s, aligner %s, maskers %s", settings.input_path,
        settings.output.output_dir, settings.output.alignments_path, flags["engine_name"], settings.stages.detector,
        settings.stages.aligner + (f" (re-feed {settings.stages.re_feed})" if settings.stages.re_feed else ""),
        ", ".join(settings.stages.maskers))
    from extractor.identity_filter import ReferenceError
    from extractor.last_words import CutShortWatch
    from extractor.stop_signals import Stopped, exit_status, stop_signals_interrupt

    failures = (InputError, PlanError, OutputError, FramePoolError, UnsafeFileError, ReferenceError)
    if flags["engine_name"] == "ray":
        from extractor.engines.ray_cluster import RayEngineError

        failures += (RayEngineError,)
    try:
        with CutShortWatch(CUT_SHORT[flags["engine_name"]], settings.output.alignments_path), \
                stop_signals_interrupt():  # SIGTERM, SIGHUP: as Ctrl-C, in every engine
            summary = engine(flags["engine_name"])(settings, options)
    except failures as exc:
        raise click.ClickException(str(exc)) from None
    except PipelineError as exc:
        raise click.ClickException(f"run stopped: {exc}\n{_frames_kept(settings, 'before the fault')}") from None
    except KeyboardInterrupt as stop:
        how = f" ({stop})" if isinstance(stop, Stopped) else ""
        kept = settings.output.alignments_path.exists()
        click.echo(f"interrupted{how}: {_frames_kept(settings, 'so far')}"
                   + (f" ({fsa} is written when a run finishes: resume with --skip-existing)" if fsa and kept else ""),
                   err=True)
        sys.exit(exit_status(stop))
    logging.getLogger("extractor").debug("summary:\n%s", summary.format())
    click.echo(summary.format())
    if summary.alignments_lost:
        raise click.ClickException(summary.alignments_lost)
    if summary.frames and not summary.faces and not summary.already_done:
        _say_what_size_limits_leave_out(settings.stages)
    if settings.output.preview_path:
        click.echo(f"preview: {settings.output.preview_path}")
    if fsa and (summary.frames or summary.already_done):
        _write_faceswap_alignments(settings.output.alignments_path, fsa)
    if summary.frames == 0 and summary.already_done == 0 and summary.skipped:
        # Every input was refused: a script running extractor must see a failure, not an empty success.
        raise click.ClickException(f"no frame of {settings.input_path} could be read (skipped inputs above)")


# What ended a run that could not say so itself (``last_words``), by engine.
KILLED = "the run was killed (by the system's out-of-memory killer, or kill -9)"
CUT_SHORT = {
    "pool": KILLED,
    "single": KILLED,
    "ray": ("Ray ended the run (as it does when the Ray node this command runs on stops: ray stop, its raylet "
            "killed or out of memory), or the run was killed"),
}


def _frames_kept(settings, when: str) -> str:
    """Where a stopped run's finished frames are; a run that finished none leaves no file."""
    path = settings.output.alignments_path
    return f"frames finished {when} are in {path}" if path.exists() else f"no frame was finished {when}"


def _say_what_size_limits_leave_out(stages) -> None:
    """A run that kept no face with --min-size or --max-size set: the limits may be why (a number
    meant as a percentage given as pixels, faceswap's -x 50 typed as --max-size 50)."""
    limits = [f"--{name.replace('_', '-')} {percent:g}%" if percent else f"--{name.replace('_', '-')} {pixels} px"
              for name, pixels, percent in (("min_size", stages.min_size, stages.min_size_percent),
                                            ("max_size", stages.max_size, stages.max_size_percent))
              if pixels or percent]
    if limits:
        click.echo(f"no face kept with {' and '.join(limits)}: faces outside the size limits are left out as "
                   "they are found (a box's longer side, in pixels, or with % a percentage of the frame's shorter "
                   "side)")


def _face_size(flags: dict) -> int:
    """--size, or its default for the centering; refuses a crop insightface or faceswap has no
    geometry for."""
    size = flags["size"] or (ARCFACE_SIZE if flags["centering"] == "arcface" else DEFAULT_SIZE)
    if size < 32:
        raise click.BadParameter(f"{size} px is too small for a face (32 or more)", param_hint="--size")
    if flags["centering"] == "arcface" and flags["coverage"] != 1.0:
        raise click.BadParameter("the arcface template fixes the crop: leave --coverage at 1.0",
                                 param_hint="--coverage")
    try:
        CropSpec(flags["centering"], size, flags["coverage"])
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--size") from None
    return size


def _names_fsa(path: Path | None) -> bool:
    """Whether --alignments names faceswap's file (``.fsa``) rather than extractor's own."""
    return path is not None and path.suffix.lower() == ".fsa"


def _our_alignments_path(requested: Path | None, output_dir: Path) -> Path:
    """Where extractor's own alignments file goes: --alignments, beside it for an ``.fsa`` name
    (same stem, ``.jsonl``), else OUTPUT/alignments.jsonl."""
    if requested is None:
        return output_dir / "alignments.jsonl"
    return requested.with_suffix(".jsonl") if _names_fsa(requested) else requested


def _faceswap_alignments(requested: Path | None, ours: Path) -> Path | None:
    """The faceswap file a run writes when it finishes: --alignments naming an ``.fsa`` (checked
    now, before any work: a new file, or one extractor wrote), else None."""
    if not _names_fsa(requested):
        return None
    from extractor.alignments import OutputError
    from extractor.faceswap_format import check_export_target

    try:
        check_export_target(requested, ours)
    except OutputError as exc:
        raise click.ClickException(str(exc).replace("choose another -o", "choose another --alignments")) from None
    return requested


def _write_fsa(ours: Path, fsa: Path) -> tuple[int, int]:
    """Extractor's alignments file ``ours`` written as faceswap's ``fsa`` (``extractor export``, and
    a run's ``--alignments NAME.fsa``): the frames written and the faces left out (each said)."""
    from extractor.alignments import read_records
    from extractor.faceswap_format import write_fsa

    try:
        frames, problems = write_fsa(read_records(ours), fsa)
    except OSError as exc:
        raise click.ClickException(f"{fsa}: cannot write ({exc.strerror or exc}); the frames are in {ours}") from None
    for problem in problems:
        logging.getLogger("extractor").warning(problem)
    return frames, len(problems)


def _write_faceswap_alignments(ours: Path, fsa: Path) -> None:
    frames, left_out = _write_fsa(ours, fsa)
    click.echo(f"faceswap alignments: {fsa} ({frames} frames" + (f", {left_out} face(s) left out)" if left_out
                                                                 else ")"))


def _run_settings(config, flags: dict):
    """The one settings object of a run, from the flags (config defaults already applied)."""
    from extractor.run_settings import RunSettings

    for size in ("min_size", "max_size"):
        if flags["import_alignments"] is not None and flags[size] != (0, 0.0):
            raise click.UsageError(f"--{size.replace('_', '-')} judges detected faces; --import-alignments takes "
                                   "the file's faces as they are")
    for unit, (low, high) in ((" px", (flags["min_size"][0], flags["max_size"][0])),
                              ("%", (flags["min_size"][1], flags["max_size"][1]))):
        if low and high and high < low:
            raise click.UsageError(f"--max-size {high:g}{unit} is under --min-size {low:g}{unit}: no face would be "
                                   "kept")
    if flags["import_alignments"] is not None and flags["min_quality"] and not flags["realign"]:
        raise click.UsageError("--min-quality: imported faces carry no alignment quality; add --realign to align "
                               "and score them")
    if flags["overwrite"] and (flags["skip_existing"] or flags["skip_existing_faces"]):
        resume = "--skip-existing" + ("-faces" if flags["skip_existing_faces"] else "")
        raise click.UsageError(f"--overwrite starts again (the earlier run's faces removed), {resume} resumes "
                               "that run: give one")
    if flags["debug_landmarks"] and flags["no_faces"]:
        raise click.UsageError("--debug-landmarks draws on the face PNGs, and this run writes none (--no-faces, or "
                               "no -o)")
    output_dir = flags["output_dir"]
    identity = flags["with_identity"] or flags["filter_refs"] or flags["nfilter_refs"]
    rotations, upright_look = _parse_rotate(flags["rotate"])
    settings = RunSettings(
        input_path=flags["input_path"],
        output=OutputSettings(output_dir=output_dir,
                              alignments_path=_our_alignments_path(flags["alignments"], output_dir),
                              centering=flags["centering"], size=_face_size(flags), coverage=flags["coverage"],
                              skip_existing=flags["skip_existing"] or flags["skip_existing_faces"],
                              redo_faceless=flags["skip_existing_faces"],
                              overwrite=flags["overwrite"], debug_landmarks=flags["debug_landmarks"],
                              save_faces=not flags["no_faces"],
                              preview_path=output_dir / "preview" / "preview.png" if flags["preview"] else None,
                              min_quality=flags["min_quality"], min_scale=flags["min_scale"]),
        stages=StageConfig(detector=flags["detector"], aligner=flags["aligner"],
                           maskers=tuple(flags["maskers"]) or (registry.DEFAULTS["mask"],),
                           batch_sizes=_parse_batch_sizes(flags["batch_sizes"]), min_size=flags["min_size"][0],
                           min_size_percent=flags["min_size"][1], max_size=flags["max_size"][0],
                           max_size_percent=flags["max_size"][1],
                           rotations=rotations, upright_look=upright_look, normalization=flags["normalization"],
                           re_feed=flags["re_feed"], plugin_options=_plugin_options(config),
                           backend=_chosen_backend(flags["backend"]),
                           identity=registry.DEFAULTS["identity"] if identity else None),
        every_n=flags["every_n"], max_pixels=flags["max_pixels"], show_progress=flags["progress"],
        import_alignments=flags["import_alignments"], realign=flags["realign"], recursive=flags["recursive"],
        track_every=flags["track_every"] if flags["track"] else 0, smooth=flags["smooth"])
    imported = settings.import_alignments
    if imported is not None and imported.resolve() == settings.output.alignments_path.resolve():
        raise click.UsageError(f"--import-alignments {imported} is the alignments file this run writes: its faces "
                               "would be read from the file being written (or, with --overwrite, removed first); "
                               "give the new faces another -o (or --alignments)")
    if flags["filter_refs"] or flags["nfilter_refs"]:
        from extractor.identity_filter import FaceFilter, ReferenceError

        # The references are embedded by the engine, on its planned devices; here they are only read.
        settings.face_filter = FaceFilter(settings.stages.identity, reference_photos(flags["filter_refs"], "--filter"),
                                          reference_photos(flags["nfilter_refs"], "--nfilter"),
                                          flags["filter_threshold"])
        try:
            settings.face_filter.check_references()
        except ReferenceError as exc:
            raise click.ClickException(str(exc)) from None
    return settings


def _engine_options(flags: dict):
    from extractor.run_settings import EngineOptions

    budgets = _parse_stage_numbers(flags["vram"], "--vram") if flags["vram"] else {}
    budgets.update({stage: mb for stage, mb in zip(STAGES, (flags["detect_vram"], flags["align_vram"],
                                                            flags["mask_vram"])) if mb})
    return EngineOptions(workers={stage: flags[f"{stage}_workers"] for stage in STAGES},
                         frame_buffer=flags["frame_buffer"], vram_mb=budgets, stall_seconds=flags["stall_timeout"],
                         prepare_threads=flags["prepare_threads"],
                         gpus=_parse_gpus(flags["gpus"]),
                         exclude_gpus=tuple(_gpu_numbers(flags["exclude_gpus"], "--exclude-gpus")),
                         ray_address=flags["ray_address"])


@main.command()
def plugins() -> None:
    """List the plugins with what they need."""
    click.echo(f"{'stage':7} {'name':11} {'input':>5} {'colour':6} {'batch':>5} {'GPU need':>9} "
               f"{'runs on a CPU':17} {'on a GPU':17} description")
    for cls in registry.available():
        info = cls.info()
        need = f"{info['vram_mb']} MB" if info["gpu"] else "-"
        gpu_runtime = info["gpu_runtime"] or "(CPU only)"
        default = " (default)" if registry.DEFAULTS.get(info["stage"]) == info["name"] else ""
        missing = cls.missing()
        ready = f" [not installed: {'; '.join(missing)}]" if missing else ""
        ready += "".join(f" [{note}]" for note in cls.missing_optional())
        click.echo(f"{info['stage']:7} {info['name']:11} {info['input_size'] or 'frame':>5} "
                   f"{info['colour_format']:6} {info['batch_size']:>5} {need:>9} {info['cpu_runtime']:17} "
                   f"{gpu_runtime:17} {info['description']}{default}{ready}")
    click.echo("keras/*: Keras 3 on --backend (tensorflow, jax or torch; KERAS_BACKEND); on a CPU-only machine "
               "CenterFace runs the same ONNX file through ONNX Runtime (faster there) unless --backend is given.")


@main.command()
@click.argument("alignments", type=FilePath(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["fsa"]), default="fsa", show_default=True)
@click.option("-o", "--output", type=FilePath(dir_okay=False, path_type=Path), default=None,
              help="File to write, e.g. video_alignments.fsa [default: ALIGNMENTS with .fsa for .jsonl].")
def export(alignments: Path, fmt: str, output: Path | None) -> None:
    """Write ALIGNMENTS (extractor's .jsonl) in faceswap's .fsa format (version 2.x)."""
    output = output or alignments.with_suffix(".fsa")
    from extractor.alignments import DamagedHeader, OutputError, read_header
    from extractor.faceswap_format import check_export_target

    try:
        try:
            read_header(alignments)
        except DamagedHeader:  # ours, its first line damaged: the records after it are checked one by one
            logging.getLogger("extractor").warning("%s: its header line is damaged; its frame records, each "
                                                   "checked by its own CRC-32, are exported", alignments)
        check_export_target(output, alignments)
    except OutputError as exc:
        raise click.ClickException(str(exc).replace("choose another --alignments path",
                                                    "export reads only extractor's .jsonl files")) from None
    frames, left_out = _write_fsa(alignments, output)
    click.echo(f"wrote {frames} frames to {output}" + (f" ({left_out} face(s) left out)" if left_out else ""))


@main.command(name="remove-faces")
@click.argument("alignments", type=FilePath(exists=True, dir_okay=False, path_type=Path))
@click.option("-f", "-fc", "--faces", "faces_dir", type=FilePath(exists=True, file_okay=False, path_type=Path),
              default=None, help="The face folder you sorted [default: the alignments file's folder].")
def remove_faces(alignments: Path, faces_dir: Path | None) -> None:
    """After deleting faces from a run's face folder: remove them from ALIGNMENTS (the run's .jsonl,
    or the .fsa it wrote beside it) too, and number the faces left in each frame again, their PNGs
    renamed to match, as faceswap's alignments tool's remove-faces job does. An .fsa extractor wrote
    beside the .jsonl is written again."""
    from extractor.alignments import OutputError
    from extractor.faceswap_format import written_by_extractor
    from extractor.remove_faces import remove_deleted_faces

    ours = alignments.with_suffix(".jsonl") if alignments.suffix.lower() == ".fsa" else alignments
    if not ours.is_file():
        raise click.ClickException(f"{alignments}: no extractor alignments file ({ours.name}) beside it; for a file "
                                   "faceswap wrote, use faceswap's alignments tool (-j remove-faces)")
    folder = faces_dir or ours.parent
    try:
        outcome = remove_deleted_faces(ours, folder)
    except OutputError as exc:
        raise click.ClickException(str(exc)) from None
    if outcome.unmatched:
        first = outcome.unmatched[0].name + (", ..." if len(outcome.unmatched) > 1 else "")
        click.echo(f"{len(outcome.unmatched)} PNG(s) in {folder} are no face of {ours.name} ({first}): left alone")
    if outcome.by_name:
        first = outcome.by_name[0].name + (", ..." if len(outcome.by_name) > 1 else "")
        click.echo(f"{len(outcome.by_name)} face PNG(s) without a readable header (re-saved by an image editor, or "
                   f"damaged: {first}) kept their faces, by the names the run gave them; faceswap's tools read no "
                   "face in them")
    click.echo(f"{outcome.removed} face(s) of {outcome.frames} frame(s) removed from {ours}"
               + (f"; {len(outcome.renumbered)} face PNG(s) numbered again" if outcome.renumbered else ""))
    fsa = ours.with_suffix(".fsa")
    if not (outcome.removed or outcome.renumbered):
        return
    if fsa.exists() and written_by_extractor(fsa):
        _write_faceswap_alignments(ours, fsa)
    elif fsa.exists():
        click.echo(f"{fsa}: saved by faceswap since extractor wrote it; left as it is (extractor export -o "
                   "ANOTHER.fsa writes the faces left)")


@main.command(name="eval")
@click.argument("dataset_dirs", nargs=-1, required=True, type=FilePath(exists=True, file_okay=False, path_type=Path))
@click.option("--detector", default=registry.DEFAULTS["detect"], show_default=True,
              type=PluginChoice("detect", _names("detect")))
@click.option("--backend", default=None, type=click.Choice(["tensorflow", "jax", "torch"]),
              help=BACKEND_HELP)
@click.option("--aligner", default=registry.DEFAULTS["align"], show_default=True,
              type=PluginChoice("align", _names("align")))
@click.option("--normalization", default=StageConfig.normalization, show_default=True,
              type=click.Choice(Aligner.NORMALIZATIONS))
@click.option("--re-feed", default=0, show_default=True, type=click.IntRange(0, 10),
              help="As `extractor run --re-feed`.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_obj
def eval_command(config, dataset_dirs, detector, backend, aligner, normalization, re_feed, as_json) -> None:
    """Detection recall/precision and landmark NME on each DATASET_DIR (annotations.json format),
    with the configuration's plugin options, as `extractor run` would detect and align; with
    several, also the landmark figures of all their faces together."""
    import json

    from extractor.evaluate import evaluate, pooled_landmarks
    from extractor.stages import AlignStage, DetectStage

    stage_config = StageConfig(detector=detector, aligner=aligner, normalization=normalization, re_feed=re_feed,
                               backend=_chosen_backend(backend), plugin_options=_plugin_options(config),
                               close_look=True)  # photos
    detect, align = DetectStage(stage_config), AlignStage(stage_config)
    with start_up_quietly("model start-up"):  # the frameworks' start-up lines: the log only
        detect.load()
        align.load()
    reports = []
    for dataset_dir in dataset_dirs:
        try:
            reports.append(evaluate(dataset_dir, stage_config, detect, align))
        except (FileNotFoundError, ValueError, KeyError) as exc:
            raise click.ClickException(f"{dataset_dir}: cannot evaluate ({exc})") from None
        click.echo(json.dumps(reports[-1].summary()) if as_json else f"{dataset_dir}:\n{reports[-1].format()}")
    if len(reports) > 1:
        pooled = pooled_landmarks(reports)
        click.echo(json.dumps(pooled) if as_json else "all sets: " + ", ".join(f"{k} {v}" for k, v in pooled.items()))


if __name__ == "__main__":
    sys.exit(main())
