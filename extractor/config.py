"""The TOML configuration file: defaults for `extractor run` flags and per-plugin options.

``extractor/default_config.toml`` documents every key and holds the built-in values; a user's
file passed with ``--config`` overrides it, and command-line flags override both.
"""
from __future__ import annotations

import math
import tomllib
from pathlib import Path

from extractor.regular_files import read_regular

DEFAULT_CONFIG = Path(__file__).with_name("default_config.toml")


class ConfigError(Exception):
    """The configuration file is unreadable or names unknown plugins or keys."""


def load_config(path: str | Path | None) -> dict:
    """The default configuration merged with ``path`` (if any): {"run": {...}, "plugins": {...}}."""
    config = tomllib.loads(DEFAULT_CONFIG.read_text())
    if path is None:
        return config
    if not str(path).strip():
        raise ConfigError("an empty path given for the configuration file (an unset variable?): name a TOML file, "
                          "or give none")
    try:
        # ~ as the command line takes it; utf-8-sig: a byte order mark, as Notepad writes
        user = tomllib.loads(read_regular(Path(path).expanduser()).decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}): a TOML file is UTF-8") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the configuration ({exc})") from None
    unknown = set(user) - {"run", "plugins"}
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {sorted(unknown)}; use [run] and [plugins.STAGE.NAME]")
    _check_tables(user, path)
    config["run"].update(user.get("run", {}))
    for stage, plugins in user.get("plugins", {}).items():
        for name, options in plugins.items():
            config["plugins"].setdefault(stage, {}).setdefault(name, {}).update(options)
    return config


def _check_tables(user: dict, path: str | Path) -> None:
    """[run], [plugins], [plugins.STAGE] and [plugins.STAGE.NAME] must be tables (``run = 5`` is
    not): a ConfigError naming the file and the key."""
    for key in ("run", "plugins"):
        if not isinstance(user.get(key, {}), dict):
            raise ConfigError(f"{path}: {key} = {user[key]!r} is not a table; write [{key}] and its keys under it")
    for stage, plugins in user.get("plugins", {}).items():
        if not isinstance(plugins, dict):
            raise ConfigError(f"{path}: plugins.{stage} = {plugins!r} is not a table; use [plugins.{stage}.NAME]")
        for name, options in plugins.items():
            if not isinstance(options, dict):
                raise ConfigError(f"{path}: plugins.{stage}.{name} = {options!r} is not a table of options; use "
                                  f"[plugins.{stage}.{name}] and its keys under it")


def plugin_options(config: dict, source: str = "configuration") -> dict[str, dict]:
    """{"stage.name": options} for StageConfig, checked against the registry: unknown plugins,
    unknown keys and values a plugin refuses are errors naming the section and key."""
    from extractor.plugins import registry
    from extractor.plugins.options import check_options, constructor_defaults

    out = {}
    for stage, plugins in config.get("plugins", {}).items():
        for name, options in plugins.items():
            section = f"{source} [plugins.{stage}.{name}]"
            try:
                cls = registry.get_plugin_class(stage, name)
            except ValueError as exc:
                raise ConfigError(f"{section}: {exc}") from None
            accepted = set(constructor_defaults(cls))
            unknown = set(options) - accepted
            if unknown:
                raise ConfigError(f"{section}: unknown key(s) {sorted(unknown)}; "
                                  f"{name} takes {sorted(accepted - {'backend'})}")
            try:
                check_options(cls, options)
            except ValueError as exc:
                raise ConfigError(f"{section}: {exc}") from None
            try:
                cls(**options)  # constructors check the rest; nothing is loaded
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"{section}: bad value ({exc})") from None
            out[f"{stage}.{name}"] = dict(options)
    return out


def check_run_value(key: str, value, param, source: str):
    """A ``[run]`` value converted as its ``extractor run`` flag converts it; a ConfigError naming
    the file and key for a value of the wrong type (a list for a number, a fraction for a
    count), a non-finite number or one out of the flag's range."""
    import click

    values = value if param.multiple else [value]
    if param.multiple and not isinstance(value, list):
        raise ConfigError(f"{source} [run] {key}: expected a list, got {value!r}")
    whole = isinstance(param.type, (click.types.IntParamType,))
    for item in values:
        if isinstance(item, (list, dict)) or (whole and (isinstance(item, bool) or not isinstance(item, int))):
            raise ConfigError(f"{source} [run] {key}: {item!r} is not a {'whole number' if whole else 'single value'}")
        if isinstance(item, float) and not math.isfinite(item):
            raise ConfigError(f"{source} [run] {key}: {item} is not a finite number")
    try:
        return [param.type.convert(item, param, None) for item in values] if param.multiple else \
            param.type.convert(value, param, None)
    except click.BadParameter as exc:
        raise ConfigError(f"{source} [run] {key}: {exc.message}") from None
