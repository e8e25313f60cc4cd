"""Find plugins by stage and name, so ``--detector NAME`` works without the CLI knowing classes.

Plugin modules import their heavy runtimes (TensorFlow, dlib, TFLite) inside ``load``, so
importing every module here is cheap and ``extractor plugins`` can list needs without a model.
"""
from __future__ import annotations

import importlib

from extractor.plugins.base import Plugin

_MODULES = (
    "extractor.plugins.detect.centerface",
    "extractor.plugins.detect.mtcnn",
    "extractor.plugins.detect.blazeface",
    "extractor.plugins.detect.dlib_hog",
    "extractor.plugins.align.dlib68",
    "extractor.plugins.align.face_mesh",
    "extractor.plugins.mask.landmarks",
    "extractor.plugins.mask.mesh_hull",
    "extractor.plugins.identity.dlib_resnet",
)
_REGISTRY: dict[tuple[str, str], type[Plugin]] = {}

DEFAULTS = {"detect": "centerface", "align": "dlib68", "mask": "components", "identity": "dlib-resnet"}


def register(cls: type[Plugin]) -> type[Plugin]:
    """Class decorator: make a plugin findable by its stage and name."""
    _REGISTRY[(cls.stage, cls.name)] = cls
    return cls


def _load_all() -> None:
    """Import every plugin module (each registers itself); a module imported directly first,
    as a test may do, must not hide the others."""
    for module in _MODULES:
        importlib.import_module(module)


def available(stage: str | None = None) -> list[type[Plugin]]:
    _load_all()
    return [cls for (st, _), cls in sorted(_REGISTRY.items()) if stage in (None, st)]


def get_plugin_class(stage: str, name: str) -> type[Plugin]:
    _load_all()
    try:
        return _REGISTRY[(stage, name)]
    except KeyError:
        names = ", ".join(cls.name for cls in available(stage))
        raise ValueError(f"no {stage} plugin named {name!r}; available: {names}") from None


def create(stage: str, name: str, **options) -> Plugin:
    return get_plugin_class(stage, name)(**options)
