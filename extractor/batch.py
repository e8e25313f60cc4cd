"""faceswap's batch mode (``extractor run --batch``): a folder of videos and image folders, each
extracted as its own run into its own sub-folder of the output.

Only the listing lives here; the CLI runs each item as a plain ``extractor run``.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from extractor.output_folder import marked, name_max, short_hash
from extractor.sources import (ALIGNMENTS_EXTENSIONS, IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, VIDEO_SIDECAR_EXTENSIONS,
                               InputError, companions_of)


def batch_items(folder: Path, output_dir: Path | None) -> tuple[list[tuple[Path, Path | None]], list[str]]:
    """(input, its output folder) for every video and every folder of ``folder``, in name order,
    and one line for each other entry (loose images, other files), which is left out.

    A video's output is named by its stem, a folder's by its name; names that would collide get
    the video's extension (``clip_mp4``), and those told apart only by case (one folder on a drive
    that ignores case) a hash of the input's name as well; a name the file system would not take
    (over 255 bytes) is cut before its hash. An output folder inside ``folder`` is
    refused: a later item would read an earlier one's faces. Without an output folder (alignments only, each where
    faceswap looks for it), every output is None."""
    if not folder.is_dir():
        raise InputError(f"{folder}: --batch takes a folder of videos and image folders")
    if output_dir is not None and (folder.resolve() == output_dir.resolve()
                                   or folder.resolve() in output_dir.resolve().parents):
        raise InputError(f"{output_dir}: is inside the batch folder {folder}; its faces would become inputs: "
                         "choose an -o outside it")
    items, left_out, loose_images = [], [], 0
    entries = sorted(folder.iterdir())
    companion = companions_of(entries, VIDEO_EXTENSIONS, VIDEO_SIDECAR_EXTENSIONS)
    for path in entries:
        if path.name.startswith(".") or (path.suffix.lower() in ALIGNMENTS_EXTENSIONS and path.is_file()):
            continue  # hidden files and folders, alignments files: not inputs
        if companion(path):
            continue  # a video's subtitles or .nfo, a system file: passed over quietly
        if path.is_dir() or (path.is_file() and path.suffix.lower() in VIDEO_EXTENSIONS):
            items.append(path)
        elif path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS:
            loose_images += 1
            left_out.append(f"{path}: a loose image; --batch takes videos and image folders (run its folder "
                            "without --batch)")
        else:
            left_out.append(f"{path}: not a video or a folder")
    names = [path.stem if path.is_file() else path.name for path in items]
    stems = Counter(name.casefold() for name in names)
    names = [f"{name}_{path.suffix.lstrip('.').lower()}" if stems[name.casefold()] > 1 and path.is_file() else name
             for name, path in zip(names, items)]
    folded = Counter(name.casefold() for name in names)  # still one name where case is ignored: Clip.mp4, clip.mp4
    names = [f"{name}~{short_hash(path.name)}" if folded[name.casefold()] > 1 else name
             for name, path in zip(names, items)]
    limit = name_max(output_dir) if output_dir is not None else 255
    names = [marked(name, path.name, limit) if len(name.encode("utf-8", "surrogateescape")) > limit else name
             for name, path in zip(names, items)]  # a long name the suffixes took past the file system's
    if not items:
        hint = f" (its {loose_images} image{'s' if loose_images > 1 else ''}: run it without --batch)" \
            if loose_images else ""
        raise InputError(f"{folder}: no video or image folder in it; nothing to do{hint}")
    return [(path, output_dir / name if output_dir is not None else None) for path, name in zip(items, names)], left_out
