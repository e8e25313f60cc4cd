"""Checks of a plugin's options as a configuration file gives them, before anything runs.

A value of the wrong kind or out of its sensible range does not fail where it is read: a
threshold of -1 (or 50, meant as a percentage) makes every pixel a face or none, ``wider = "no"``
is a true string, an upsampling of 9 takes gigabytes on each frame, a list of two thresholds
for three networks fails on every frame. So each option's kind comes from its default in the
plugin's constructor, and its range from the plugin's ``option_limits`` (data on the class,
as its other needs are): a ValueError names the key, the value and what it takes.
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass

MAX_BATCH = {"detect": 64, "align": 1024, "mask": 1024, "identity": 1024}  # frames (detect) or faces a batch


@dataclass(frozen=True)
class Limit:
    """The range an option's number must lie in; ``off``: a value outside it that turns the
    option off (0 for "never")."""

    low: float | None = None
    high: float | None = None
    off: float | None = None
    meaning: str = ""  # what the number is, said with the range

    def check(self, key: str, value) -> None:
        if value == self.off:
            return
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            if self.low is not None and self.high is not None:
                span = f"from {_number(self.low)} to {_number(self.high)}"
            else:
                span = f"at least {_number(self.low)}" if self.low is not None else f"at most {_number(self.high)}"
            off = f", or {_number(self.off)} for none" if self.off is not None else ""
            meaning = f" ({self.meaning})" if self.meaning else ""
            raise ValueError(f"{key} = {value!r} is out of range: it takes {span}{off}{meaning}")


SCORE_MEANING = "a detector's score"
SCORE = Limit(0.01, 1, meaning=SCORE_MEANING)


def _number(value: float) -> str:
    return f"{value:g}"


def constructor_defaults(cls) -> dict[str, object]:
    """Each named constructor parameter of ``cls`` and its bases with its default (the nearest
    class's wins)."""
    defaults: dict[str, object] = {}
    for klass in reversed(cls.__mro__):
        if "__init__" in vars(klass):
            for parameter in inspect.signature(klass.__init__).parameters.values():
                if parameter.kind not in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL) and parameter.name != "self":
                    defaults[parameter.name] = parameter.default
    return defaults


def check_options(cls, options: dict) -> None:
    """A ValueError for the first option of ``options`` that ``cls`` would take wrongly: of
    another kind than its default, a non-finite number, or out of ``cls.option_limits``."""
    defaults = {**constructor_defaults(cls), "batch_size": cls.batch_size}  # the class's, not the constructor's None
    for key, value in options.items():
        _check_kind(key, value, defaults.get(key))
        if key == "batch_size":
            Limit(1, MAX_BATCH.get(cls.stage, 1024), meaning=f"{'frames' if cls.stage == 'detect' else 'faces'} "
                  "a batch").check(key, value)
        limit = cls.option_limits.get(key)
        if limit is not None:
            for item in value if isinstance(value, (list, tuple)) else [value]:
                limit.check(key, item)


def _check_kind(key: str, value, default) -> None:
    """``value`` must be of its default's kind: a bool for a bool (TOML's true or false), a whole
    number for a whole number, a number for a fraction, a string for a string, a list of
    numbers as long as a list's default."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{key} = {value} is not a finite number")
    if default is None or default is inspect.Parameter.empty:
        return
    if isinstance(default, bool):
        wrong = not isinstance(value, bool) and "true or false"
    elif isinstance(default, int):
        wrong = (isinstance(value, bool) or not isinstance(value, int)) and "a whole number"
    elif isinstance(default, float):
        wrong = (isinstance(value, bool) or not isinstance(value, (int, float))) and "a number"
    elif isinstance(default, str):
        wrong = not isinstance(value, str) and "a string"
    elif isinstance(default, (list, tuple)):
        wrong = (not isinstance(value, (list, tuple)) or len(value) != len(default)
                 or not all(isinstance(item, (int, float)) and not isinstance(item, bool) and math.isfinite(item)
                            for item in value)
                 ) and f"a list of {len(default)} numbers, as {list(default)}"
    else:
        wrong = False
    if wrong:
        raise ValueError(f"{key} = {value!r} is not {wrong}")
