"""faceswap's extract command line, read as ``extractor run``'s flags.

faceswap's short flags and long names (and faceswap 2's older ones: ``-sz``, ``-een``...) are
click aliases of extractor's own (``cli.py``); here is what aliases cannot do: several values after
one flag (``-M components extended``), ``-m`` and ``-x`` as percentages of the frame's shorter
side, folders of reference photos for ``-f``/``-n``, ``-I``'s model names, faceswap's global log
options typed after the command, flags that are always satisfied here (``-a``, ``-v``, ``-c``), flags with
no equivalent refused in one line saying what to use instead, and where a run without ``-o``
puts its alignments file (where faceswap's convert looks for it).
"""
from __future__ import annotations

import itertools
import shlex
from functools import partial
from pathlib import Path

import click


class FaceSize(click.ParamType):
    """--min-size, --max-size: pixels (40), or as faceswap's ``-m`` and ``-x``: a percentage of the
    frame's shorter side (10%), up to ``most_percent``. Converts to (pixels, percent)."""

    name = "PIXELS|PERCENT%"

    def __init__(self, most_percent: float = 100):
        self.most_percent = most_percent

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        text = str(value).strip()
        percent = text.endswith("%")
        try:
            number = float(text[:-1]) if percent else int(text)
        except ValueError:
            number = -1
        if not 0 <= number <= (self.most_percent if percent else float("inf")):
            self.fail(f"{value!r}: use pixels (40) or a percentage of the frame's shorter side (10%, at most "
                      f"{self.most_percent:g}%)", param, ctx)
        return (0, number) if percent else (number, 0.0)


# faceswap's extract takes several values after these flags (``-M unet-dfl vgg-clear``, ``-f a.jpg b.jpg``).
SEVERAL_VALUES = ("-M", "--masker", "-f", "--filter", "-n", "--nfilter", "-X", "--exclude-gpus")
# faceswap's -g (its aligner filters): the alignment quality that leaves out the faces read least well,
# non-faces among them (docs/accuracy.md: 8 % of the sample video's faces).
ALIGN_FILTERS_MIN_QUALITY = 0.2
# faceswap's identity models, named after its -I (older faceswap's -I took none): extractor has one, dlib's ResNet.
FACESWAP_IDENTITY_MODELS = ("vggface2", "t-face")


# faceswap's own plugins, whose models no installable package ships (MODELS.md): named as such, not
# as a typo.
FACESWAP_ONLY_PLUGINS = {"detect": ("s3fd", "cv2-dnn", "retinaface"), "align": ("fan", "cv2-dnn", "hrnet"),
                         "mask": ("bisenet-fp", "vgg-clear", "vgg-obstructed", "unet-dfl")}
# faceswap's choices that are not models: what extractor has for each.
FACESWAP_OTHER_CHOICES = {
    "file": "is faceswap's import of boxes and landmarks from a file; extractor imports a faceswap alignments file "
            "with --import-alignments FILE.fsa (and --realign to align its boxes again)",
    "custom": "is faceswap's blank mask, for painting by hand in its manual tool, not a computed one",
}


class PluginChoice(click.Choice):
    """A stage's plugin names, in any case (faceswap lowercases them: ``-D MTCNN``); one of
    faceswap's own plugins is refused saying so and what to use."""

    def __init__(self, stage: str, names: list[str]):
        super().__init__(names, case_sensitive=False)
        self.stage = stage

    def convert(self, value, param, ctx):
        name = str(value).lower()
        if name in FACESWAP_ONLY_PLUGINS[self.stage]:
            self.fail(f"{value!r} is faceswap's own {self.stage} plugin, whose model no installable package "
                      f"ships; extractor's: {', '.join(self.choices)}", param, ctx)
        if name in FACESWAP_OTHER_CHOICES and name not in self.choices:
            self.fail(f"{value!r} {FACESWAP_OTHER_CHOICES[name]}; extractor's {self.stage} plugins: "
                      f"{', '.join(self.choices)}", param, ctx)
        return super().convert(value, param, ctx)


def spread_values(args: list[str], flags=SEVERAL_VALUES) -> list[str]:
    """The words of a command line with each further value of ``flags`` given its flag again
    (``-M a b`` -> ``-M a -M b``): click takes one value a flag. Nothing changes after ``--``."""
    out, flag, first = [], None, False
    for position, word in enumerate(args):
        if word == "--":
            return out + args[position:]
        if flag is not None and first:
            out.append(word)
            first = False
        elif flag is not None and not word.startswith("-"):
            out += [flag, word]
        else:
            out.append(word)
            flag, first = (word, True) if word in flags else (None, False)
    return out


def without_identity_models(args: list[str]) -> list[str]:
    """The words of a command line without faceswap's identity model names after ``-I`` or
    ``--identity`` (``-I vggface2``): extractor's --identity is a flag, its one model dlib's ResNet."""
    out, after_identity = [], False
    for position, word in enumerate(args):
        if word == "--":
            return out + args[position:]
        if after_identity and word.lower() in FACESWAP_IDENTITY_MODELS:
            continue
        out.append(word)
        after_identity = word in ("-I", "--identity")
    return out


# faceswap's global options, which it takes after the command's name (``extract ... -L DEBUG``); extractor's
# are the group's, given before ``run`` (``extractor --loglevel DEBUG run ...``).
GLOBAL_AFTER_COMMAND = {"-L": "--loglevel", "--loglevel": "--loglevel", "-F": "--logfile", "-LF": "--logfile",
                        "--logfile": "--logfile"}
FACESWAP_LOG_LEVELS = {"VERBOSE": "INFO", "TRACE": "DEBUG"}  # faceswap's levels that extractor lacks


GROUP_FLAGS = ("-h", "--help", "--version")  # the group's options that take no value
COMMAND_NAMES = {"extract": "run"}  # faceswap's name of the command (``faceswap.py extract``)


def hoisted_global_flags(args: list[str], command: str = "run") -> list[str]:
    """The words of an ``extractor`` command line with faceswap's global options given after
    ``command`` (log level, log file) moved before it, where extractor's group takes them;
    faceswap's ``extract`` is taken as ``run``."""
    at = 0
    while at < len(args) and args[at].startswith("-"):  # the group's own options, each with its value
        at += 1 if "=" in args[at] or args[at] in GROUP_FLAGS else 2
    if at < len(args) and COMMAND_NAMES.get(args[at]) == command:
        args = [*args[:at], command, *args[at + 1:]]
    if at >= len(args) or args[at] != command:
        return args
    hoisted, kept, words = [], [], iter(args[at + 1:])
    for word in words:
        if word == "--":
            kept += [word, *words]
            break
        name, equals, value = word.partition("=")
        if name not in GLOBAL_AFTER_COMMAND:
            kept.append(word)
            continue
        value = value if equals else next(words, None)
        if value is None:
            kept.append(word)  # click says the value is missing
            break
        if GLOBAL_AFTER_COMMAND[name] == "--loglevel":
            value = FACESWAP_LOG_LEVELS.get(value.upper(), value)
        hoisted += [GLOBAL_AFTER_COMMAND[name], value]
    return args[:at] + hoisted + [command] + kept


class FaceswapStyleCommand(click.Command):
    """``extractor run``, which also takes several values after one flag, as faceswap's extract does."""

    def parse_args(self, ctx, args):
        for name, flags in ONE_EACH.items():
            given = values_of(self._option(name).opts, args)
            if len(set(given)) > 1:  # click keeps the last and says nothing: the others would go unread
                raise click.UsageError(f"{flags} given twice ({', '.join(given)}): {ONE_EACH_HINT[name]}", ctx)
        try:
            return super().parse_args(ctx, spread_values(without_identity_models(list(args))))
        except click.MissingParameter as exc:
            leading = list(itertools.takewhile(lambda word: not word.startswith("-"), args))
            if exc.param is None or exc.param.name != "input_path" or not leading:
                raise
            output = f" -o {shlex.quote(leading[1])}" if len(leading) > 1 else ""
            raise click.UsageError(f"{' '.join(map(shlex.quote, leading))}: the input is given with -i (and the face "
                                   f"folder with -o): extractor run -i {shlex.quote(leading[0])}{output}",
                                   ctx) from None
        except click.UsageError as exc:
            if "unexpected extra argument" not in exc.message:
                raise
            raise click.UsageError(f"{exc.message}: {_extra_arguments_hint(exc.message)}", ctx) from None

    def _option(self, name: str) -> click.Option:
        return next(param for param in self.params if param.name == name)


# Flags a run takes once, with what to do instead of giving one twice.
ONE_EACH = {"input_path": "-i/--input", "output_dir": "-o/--output", "alignments": "-p/--alignments",
            "import_alignments": "--import-alignments"}
ONE_EACH_HINT = {"input_path": "a run takes one folder, image or video: put them in one folder (-i FOLDER), or "
                               "--batch for each video and image folder of a folder",
                 "output_dir": "a run writes its faces into one folder",
                 "alignments": "a run writes one alignments file",
                 "import_alignments": "a run imports one alignments file (its input's)"}


def values_of(opts: list[str], args: list[str]) -> list[str]:
    """The values typed after any of ``opts`` (``-i X``, ``--input X``, ``--input=X``), in order,
    up to a ``--`` that ends the options."""
    values = []
    for index, word in enumerate(args):
        if word == "--":
            break
        if word in opts and index + 1 < len(args):
            values.append(args[index + 1])
        elif word.startswith("--") and word.partition("=")[0] in opts and "=" in word:
            values.append(word.partition("=")[2])
    return values


def _extra_arguments_hint(message: str) -> str:
    """Why a run got words it has no place for: files (a shell pattern expanded after -i), or a
    value typed after one of faceswap's on/off flags (``-b 2``: batch mode takes none)."""
    extra = message[message.find("(") + 1:message.rfind(")")].split()
    if any(Path(word).exists() for word in extra):
        return ("-i/--input takes one folder, image or video (a shell pattern such as photos/*.jpg gives several: "
                "give their folder, -i photos)")
    return ("a value after a flag that takes none? faceswap's on/off flags (-b, -B, -K, -s, -e, -P, -a, -c) "
            "take no value")


def reference_photos(paths, option: str) -> list[Path]:
    """--filter/--nfilter: image files, or folders of them (as faceswap's ``-f``/``-n`` take)."""
    from extractor.sources import list_images

    photos = []
    for path in paths:
        if not path.is_dir():
            photos.append(path)
            continue
        found, _ = list_images(path)  # as an input folder is listed (hidden and alignments files passed over)
        if not found:
            raise click.BadParameter(f"{path}: a folder without images", param_hint=option)
        photos += found
    return photos


def fold_faceswap_flags(flags: dict) -> dict:
    """faceswap's flags that extractor's own cover, folded into them (in place): -m into
    --min-size N%, -x into --max-size N%; -g (its aligner filters, which leave out faces it reads
    as misaligned or not faces) into --min-quality 0.2 unless one is given; -a and -v, always
    satisfied here, and -c (a speed setting: PyTorch's CUDA graphs serve) dropped."""
    flags.pop("re_align"), flags.pop("save_interval"), flags.pop("compile_models")
    if flags.pop("align_filters") and not flags["min_quality"]:
        flags["min_quality"] = ALIGN_FILTERS_MIN_QUALITY
    for size, short in (("min_size", "-m"), ("max_size", "-x")):
        percent = flags.pop(f"{size}_percent")
        if percent is not None:
            if flags[size] != (0, 0.0):
                raise click.UsageError(f"{short} is --{size.replace('_', '-')} as a percentage: give one of them")
            flags[size] = (0, percent)
    return flags


def faceswap_alignments_place(source: Path) -> Path:
    """Where faceswap's extract writes, and its convert looks for, a source's alignments file:
    beside a video as ``<stem>_alignments.fsa``, in an image folder (an image's) as ``alignments.fsa``."""
    from extractor.sources import is_video_file

    if is_video_file(source):
        return source.with_name(f"{source.stem}_alignments.fsa")
    return (source if source.is_dir() else source.parent) / "alignments.fsa"


# faceswap's extract flags with no extractor equivalent: named in one line with what to use instead
# (rather than click's "no such option"). (names, takes a value, what to say)
NOT_TAKEN = (
    (("-l", "--ref_threshold"), True, "faceswap's identity threshold is a similarity of its own model (higher "
     "is stricter); use --filter-threshold, a dlib ResNet distance (lower is stricter, 0.6 is dlib's same person)"),
    (("-min",), True, "faceswap's older --min-size counted the box's diagonal in pixels; use --min-size PIXELS "
     "(the box's longer side, about 0.7 of a square box's diagonal) or -m PERCENT"),
    (("-bt", "--blur-threshold"), True, "faceswap's older blur threshold: use --min-quality (0.2 leaves out the "
     "least steady faces, blurred ones among them)"),
    (("-C", "--configfile"), True, "faceswap's plugin settings (.ini) are not read: extractor's are a TOML file "
     "given before run (extractor --config FILE run ...; see extractor/default_config.toml)"),
    (("-k", "--benchmark"), False, "not taken: --batch-size STAGE=N sets a stage's batch"),
)


def refuse_not_taken(command):
    """Hidden options on ``command`` for faceswap's flags in ``NOT_TAKEN``, each refused in one line."""
    def refuse(said, ctx, param, value):
        if value not in (None, False):
            raise click.UsageError(f"{'/'.join(param.opts)}: {said}", ctx)

    for names, takes_value, said in NOT_TAKEN:
        command = click.option(*names, f"faceswap_{names[-1].lstrip('-').replace('-', '_')}", hidden=True,
                               is_flag=not takes_value, expose_value=False, callback=partial(refuse, said))(command)
    return command
