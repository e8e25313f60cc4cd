"""dlib's 68-point shape predictor (an ensemble of regression trees) in numpy, read from dlib's file.

Why: dlib parses its 100 MB model file number by number, about 1 s of CPU in every run (a tenth
of the CPU of a 100-photo run on 2 cores), and predicts one face per call. The same trees, read
once into numpy arrays kept in a cache folder, load in milliseconds (memory-mapped: several align
workers share one copy) and predict a whole batch of faces per call. The points are dlib's: the
same float32 arithmetic in the same order, pixel positions and final points rounded as dlib
rounds them (``tests/test_dlib_ert.py`` compares the two on real faces).

The algorithm (Kazemi and Sullivan 2014; dlib's ``shape_predictor::operator()``): start from the
mean shape in a unit box; in each of 15 cascades, find the similarity transform from the mean
shape to the current one, read 500 "feature pixels" placed relative to anchor landmarks, walk 500
depth-4 trees whose splits compare the intensity difference of two feature pixels with a
threshold, and add each tree's leaf (68 x 2 numbers) to the shape; the unit box maps to the
face's box.

``python -m extractor.models.dlib_ert`` converts the installed model once (``make install`` runs
it; about 5 s); an aligner that finds no converted copy (a ``pip install``) converts it as it
loads, once per machine (``ready``). Where the cache cannot be written or read, the aligner runs
dlib itself: the same points, slower, and no turned passes (they start the trees from a given
shape, which dlib's API cannot take).
"""
from __future__ import annotations

import fcntl
import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from extractor.models.dlib_serial import DlibReader
from extractor.models.model_files import derived_path, package_file, present, prune_stale, reinstall_hint

logger = logging.getLogger(__name__)

FORMAT = 1  # bump when the cached arrays change meaning
ARRAYS = ("initial_shape", "split_left", "split_right", "split_threshold", "leaves", "anchors", "deltas")


def read_dlib_model(path: Path) -> dict[str, np.ndarray]:
    """The arrays of a dlib ``shape_predictor`` file (serialisation version 1)."""
    reader = DlibReader(Path(path).read_bytes())
    try:
        return _read_shape_predictor(reader)
    except (IndexError, ValueError) as exc:  # IndexError: the file ends mid-model
        raise ValueError(f"{path}: not a complete dlib shape predictor ({exc}): {reinstall_hint(path)}") from None


def _read_shape_predictor(reader: DlibReader) -> dict[str, np.ndarray]:
    if reader.integer() != 1:
        raise ValueError("serialisation version is not 1")
    initial_shape = reader.matrix().ravel()
    left, right, threshold, leaves = [], [], [], []  # per cascade, per tree, per split or leaf
    for _ in range(reader.integer()):  # cascades
        for column in (left, right, threshold, leaves):
            column.append([])
        for _ in range(reader.integer()):  # trees: splits (two feature indices, a threshold), then leaves
            splits = [(reader.integer(), reader.integer(), reader.floats(1)[0]) for _ in range(reader.integer())]
            for column, values in zip((left, right, threshold), zip(*splits)):
                column[-1].append(values)
            leaves[-1].append([reader.matrix().ravel() for _ in range(reader.integer())])
    anchors = [[reader.integer() for _ in range(reader.integer())] for _ in range(reader.integer())]
    deltas = [reader.floats(2 * reader.integer()).reshape(-1, 2) for _ in range(reader.integer())]
    if reader.pos != len(reader.data):
        raise ValueError(f"{len(reader.data) - reader.pos} bytes left after the model")
    return {"initial_shape": np.asarray(initial_shape, np.float32).reshape(-1, 2),
            "split_left": np.asarray(left, np.int64), "split_right": np.asarray(right, np.int64),
            "split_threshold": np.asarray(threshold, np.float32), "leaves": np.asarray(leaves, np.float32),
            "anchors": np.asarray(anchors, np.int64), "deltas": np.asarray(deltas, np.float32)}


def cache_folder(model: Path) -> Path:
    """Where the arrays of ``model`` are kept (``extractor.models.model_files``: a changed model file
    gets a new folder, never stale arrays)."""
    return derived_path(model, FORMAT)


def convert(model: Path) -> Path:
    """Read ``model`` and write its arrays to its cache folder (atomically: a folder written
    beside it, then renamed; a run converting at the same time leaves one complete copy)."""
    target = cache_folder(model)
    if present(target / "done"):
        prune_stale(target, model)  # copies of earlier installs of the model
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    logger.info("reading %s into numpy arrays, once (about 5 s; kept in %s)", model, target.parent)
    arrays = read_dlib_model(model)
    scratch = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        for name in ARRAYS:  # each on the disk before the folder is named: a power cut leaves no empty array
            with open(scratch / f"{name}.npy", "wb") as handle:
                np.save(handle, arrays[name])
                handle.flush()
                os.fsync(handle.fileno())
        (scratch / "done").touch()
        scratch.rename(target)
    except OSError:
        shutil.rmtree(scratch, ignore_errors=True)
        if not (target / "done").exists():  # else another process got there first: its copy is complete
            raise
    prune_stale(target, model)
    return target


def ready(model: Path, damaged: bool = False) -> Path:
    """``convert``, one process at a time: align workers starting together (the pool's, a Ray
    node's) wait for the first one's copy (``convert`` then finds it done) instead of each reading
    the 100 MB file. ``damaged``: the copy there did not load (a power cut, a bad disk): removed
    and converted again, unless another worker has done so meanwhile. Raises OSError where the
    cache cannot be written."""
    target = cache_folder(model)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / "dlib_ert.lock", "ab") as lock:  # one for the cache: nothing left per install
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released as the file closes
        except OSError:
            pass  # a file system without locks: each converts, and the renames keep one whole copy
        if damaged and ShapePredictor.load(model, quiet=True) is None:
            shutil.rmtree(target, ignore_errors=True)
        return convert(model)


class ShapePredictor:
    """dlib's shape predictor on a batch of same-sized crops, one box (dlib's inclusive
    ``left, top, right, bottom``) for all; ``load`` returns None where no converted copy exists."""

    SPLITS, LEAVES = 15, 16  # per tree, depth 4
    SUM_BUFFER_BYTES = 256 * 1024

    def __init__(self, arrays: dict[str, np.ndarray]):
        self.initial_shape = arrays["initial_shape"]  # (68, 2), unit box
        self.split_left, self.split_right = arrays["split_left"], arrays["split_right"]  # (cascades, trees, 15)
        self.split_threshold = arrays["split_threshold"]
        self.leaves = arrays["leaves"]  # (cascades, trees, 16, 136)
        self.anchors, self.deltas = arrays["anchors"], arrays["deltas"]  # (cascades, 500), (cascades, 500, 2)
        self.trees = self.split_left.shape[1]
        initial = self.initial_shape.astype(np.float64)
        self._initial_centred = initial - initial.mean(axis=0)
        self._initial_spread = float((self._initial_centred ** 2).sum())

    @staticmethod
    def converted(model: Path) -> bool:
        return present(cache_folder(model) / "done")

    @classmethod
    def load(cls, model: Path, quiet: bool = False) -> ShapePredictor | None:
        """The converted model; None where it is not converted, or where its copy does not load
        (said, unless ``quiet``: ``ready(model, damaged=True)`` converts it again)."""
        folder = cache_folder(model)
        if not present(folder / "done"):
            return None
        try:
            # The leaves (65 MB) stay memory-mapped, shared by every process that maps them; the
            # rest is small and read whole. Plain ndarrays either way: memmap's subclass slows indexing.
            return cls({name: np.asarray(np.load(folder / f"{name}.npy", mmap_mode="r" if name == "leaves" else None))
                        for name in ARRAYS})
        except (OSError, ValueError, KeyError, EOFError, IndexError) as exc:  # EOFError: an empty array file
            if not quiet:
                logger.warning("%s: unreadable (%s); dlib's model is converted again", folder, exc)
            return None

    def __call__(self, crops: np.ndarray, box: tuple[int, int, int, int],
                 initial: np.ndarray | None = None) -> np.ndarray:
        """``crops`` (faces, height, width, 3) uint8, any channel order -> (faces, 68, 2) points,
        whole pixels as dlib gives them; ``initial`` (faces, 68, 2): the starting shapes in units
        of ``box`` (default: the model's mean shape for every face)."""
        faces, height, width, channels = crops.shape
        if channels != 3:
            raise ValueError(f"crops must have 3 colour channels, got {channels}")
        pixels = np.ascontiguousarray(crops).reshape(-1)
        origin = np.array(box[:2], np.float64) + 0.5  # + 0.5, then floor: dlib's rounding
        size = np.array([box[2] - box[0], box[3] - box[1]], np.float64)
        limit = np.array([width, height])
        crop_start = (np.arange(faces) * (height * width))[:, None]
        feature_start = (np.arange(faces) * self.deltas.shape[1])[:, None]
        tree_splits = np.arange(self.trees) * self.SPLITS
        tree_leaves = np.arange(self.trees) * self.LEAVES
        # Leaves are summed a chunk of trees at a time, in a buffer that stays in the CPU's cache.
        chunk = max(16, self.SUM_BUFFER_BYTES // (faces * self.leaves.shape[-1] * 4))
        sums = np.empty((min(chunk, self.trees) + 1, faces, self.leaves.shape[-1]), np.float32)
        shape = (np.repeat(self.initial_shape[None], faces, axis=0) if initial is None
                 else np.asarray(initial, np.float32).reshape(faces, -1, 2))
        for cascade in range(len(self.anchors)):
            # Feature pixels: deltas turned and scaled as the shape is, from their anchor points.
            turn = self._similarity(shape)
            deltas = self.deltas[cascade]
            offsets = np.stack([turn[:, 0, :1] * deltas[:, 0] + turn[:, 0, 1:] * deltas[:, 1],
                                turn[:, 1, :1] * deltas[:, 0] + turn[:, 1, 1:] * deltas[:, 1]], axis=-1)
            at = np.floor((offsets + shape[:, self.anchors[cascade]]) * size + origin).astype(np.int64)
            inside = ((at >= 0) & (at < limit)).all(axis=-1).ravel()
            first = (crop_start + np.clip(at[..., 1], 0, height - 1) * width
                     + np.clip(at[..., 0], 0, width - 1)).ravel() * channels
            grey = (pixels[first].astype(np.uint16) + pixels[first + 1] + pixels[first + 2]) // 3  # dlib's of RGB
            values = np.where(inside, grey, 0).astype(np.float32)
            # Walk every tree of the cascade for every face at once: node 0, then 2n+1 or 2n+2.
            node = np.zeros((faces, self.trees), np.int64)
            left, right = self.split_left[cascade].ravel(), self.split_right[cascade].ravel()
            threshold = self.split_threshold[cascade].ravel()
            for _ in range(4):
                split = tree_splits + node
                difference = values[feature_start + left[split]] - values[feature_start + right[split]]
                node = 2 * node + 2 - (difference > threshold[split])
            # Add the leaves in dlib's order (shape + leaf 0 + leaf 1 ...): float32 sums depend on it.
            leaves = self.leaves[cascade].reshape(-1, self.leaves.shape[-1])
            chosen = (tree_leaves + node - self.SPLITS).T
            total = shape.reshape(faces, -1)
            for start in range(0, self.trees, chunk):
                block = chosen[start:start + chunk]
                part = sums[:len(block) + 1]
                part[0] = total
                np.take(leaves, block, axis=0, out=part[1:])
                total = np.add.reduce(part.reshape(len(part), -1), axis=0).reshape(faces, -1)
            shape = total.reshape(faces, -1, 2)
        return np.floor(shape * size + origin)

    def _similarity(self, shape: np.ndarray) -> np.ndarray:
        """The 2x2 part of the least-squares similarity from the initial shape to each face's shape
        (dlib's ``find_tform_between_shapes``; closed form in 2-D), float32 as dlib casts it."""
        centred = shape.astype(np.float64)
        centred -= centred.mean(axis=1, keepdims=True)
        start = self._initial_centred
        # scale x (cos, sin) of the rotation
        cos = (centred * start).sum(axis=(1, 2)) / self._initial_spread
        sin = (centred[..., 1] @ start[:, 0] - centred[..., 0] @ start[:, 1]) / self._initial_spread
        return np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], axis=1).astype(np.float32)


def installed_model() -> Path:
    """The 68-point model file that ``face-recognition-models`` ships, found without importing
    the package (its import loads ``pkg_resources``: 0.8 s of CPU)."""
    return package_file("face_recognition_models", "models/shape_predictor_68_face_landmarks.dat")


def main() -> None:
    """Convert the installed 68-point model once (``make install`` runs this). A cache folder
    that cannot be written is not an error: the aligner then runs dlib itself."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        print(f"dlib's 68-point model in numpy: {convert(installed_model())}")
    except OSError as exc:
        print(f"dlib's 68-point model not converted ({exc}); the aligner will run dlib itself")


if __name__ == "__main__":
    main()
