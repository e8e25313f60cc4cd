"""The ``extractor`` command's entry point: the worker pool's fork server starts first, then the CLI.

Why: before it can fork the first worker, the fork server imports numpy, OpenCV and extractor
(about 0.5 s of CPU); before it can plan the run, the command imports the same. Started first,
the server's imports run on another core while the command's own run, instead of after them (a
one-photo run on 2 cores: 1.77 -> 1.51 s wall, median of 10). The guess is made from the command
line alone, before anything heavy is imported; a wrong guess costs a server that is never used
and ends with the command.
"""
from __future__ import annotations

import sys

# The ``extractor`` group's options that take a value (``--loglevel INFO``): the command name
# is the first word that is neither one of them nor its value.
GROUP_OPTIONS_WITH_VALUE = ("--loglevel", "--logfile", "--config")
NOT_THE_POOL = ("single", "ray")


def starts_workers(args: list[str]) -> bool:
    """Whether these arguments ask for ``extractor run`` on the worker pool (the default engine)."""
    words = iter(args)
    for word in words:
        if word in GROUP_OPTIONS_WITH_VALUE:
            next(words, None)
        elif not word.startswith("-"):
            rest = list(words)
            break
    else:
        return False
    if word != "run" or "--help" in rest or any(flag in rest for flag in ("--single-process", "--singleprocess", "-P")):
        return False
    engines = [value for flag, value in zip(rest, rest[1:]) if flag == "--engine"]
    engines += [flag.partition("=")[2] for flag in rest if flag.startswith("--engine=")]
    return not any(engine in NOT_THE_POOL for engine in engines)


def main() -> None:
    if starts_workers(sys.argv[1:]):
        from extractor.workers.start import worker_context

        worker_context()
    from extractor.cli import main as cli

    cli()
