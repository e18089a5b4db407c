"""Every setting a person can give, and its rule: one place for the library, the CLI and the
benchmark suite's pytest options.

The library calls `check(setting, value)` and raises SettingError naming the setting as a
keyword argument (`batch_size must be a whole number >= 1, got 0`); the command lines parse
text with `parse(setting, text)` or `argparse_type(setting)` and name the flag
(`--batch-size`). Defaults live here too, so `--help`, the library and the suite agree.
"""

import argparse
import math
from dataclasses import dataclass

import numpy as np


class SettingError(ValueError):
    """A setting's value breaks its rule. `setting`: its keyword name; `rule`: what it must
    be; str(): '<setting> <rule>, got <value>'. `for_flag()` says the same of the flag."""

    def __init__(self, setting: str, rule: str, value):
        self.setting, self.rule, self.value = setting, rule, value
        super().__init__(f"{setting} {rule}, got {value!r}")

    def for_flag(self) -> str:
        return f"{flag(self.setting)} {self.rule}, got {self.value!r}"


def flag(setting: str) -> str:
    """The command-line flag of a setting: batch_size -> --batch-size."""
    return "--" + setting.replace("_", "-")


@dataclass(frozen=True)
class Rule:
    """kind: "whole" (an int >= minimum), "positive" (a finite float > 0) or "sizes" (a
    comma-separated list of whole numbers >= 1); default: None means 'see help'."""

    kind: str
    help: str
    default: object = None
    minimum: int = 1

    @property
    def text(self) -> str:
        if self.kind == "whole":
            return f"must be a whole number >= {self.minimum}"
        if self.kind == "positive":
            return "must be a finite number > 0"
        return "takes whole numbers >= 1 separated by commas (e.g. 1,64,1024)"


RULES: dict[str, Rule] = {
    "epochs": Rule("whole", "epochs to train", 10),
    "batch_size": Rule("whole", "samples per SGD step", 64),
    "batch_sizes": Rule("sizes", "batch sizes to measure", (1, 64, 1024)),
    "hidden": Rule("whole", "hidden units H of the 784 -> H -> 10 network", 128),
    "lr": Rule("positive", "SGD learning rate", 0.1),
    "seed": Rule("whole", "seed of the initial weights and the batch order", 0, minimum=0),
    "limit": Rule("whole", "train on the first N training samples only (default: all)"),
    "threads": Rule("whole", "threads for every CPU library (default: all cores; more than "
                             "the cores warns and runs the cores)"),
    "procs": Rule("whole", "worker processes of a multi-process tier (default 2), each with "
                           "cores // procs threads"),
    "runs": Rule("whole", "rounds of one epoch per tier", 3, minimum=3),
    "steps": Rule("whole", "train steps per measurement (default: the tier's profile "
                           "settings)"),
}


def rule(setting: str) -> Rule:
    try:
        return RULES[setting]
    except KeyError:
        raise KeyError(f"no rule for the setting {setting!r}; known: {', '.join(RULES)}") \
            from None


def default(setting: str):
    return rule(setting).default


def check(setting: str, value):
    """`value` if it obeys the setting's rule (None passes for settings without a default:
    'not given'); SettingError otherwise. Lists of sizes come back as a list of ints."""
    r = rule(setting)
    if value is None and r.default is None:
        return None
    if r.kind == "whole":
        if (isinstance(value, bool) or not isinstance(value, int | np.integer)
                or value < r.minimum):
            raise SettingError(setting, r.text, value)
        return int(value)
    if r.kind == "positive":
        if (isinstance(value, bool) or not isinstance(value, int | float | np.floating)
                or not math.isfinite(value) or value <= 0):
            raise SettingError(setting, r.text, value)
        return float(value)
    sizes = list(value) if isinstance(value, list | tuple) else None
    if not sizes or any(isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1
                        for n in sizes):
        raise SettingError(setting, r.text, value)
    return [int(n) for n in sizes]


def parse(setting: str, text):
    """A setting's value from command-line text (str; None: not given -> the default);
    SettingError naming the setting otherwise."""
    r = rule(setting)
    if text is None:
        return r.default
    raw = str(text).strip()
    if r.kind == "whole":
        try:
            value = int(raw)
        except ValueError:
            raise SettingError(setting, r.text, text) from None
    elif r.kind == "positive":
        try:
            value = float(raw)
        except ValueError:
            raise SettingError(setting, r.text, text) from None
    else:
        parts = [p.strip() for p in raw.split(",") if p.strip()]
        if not parts or not all(p.isdigit() for p in parts):
            raise SettingError(setting, r.text, text)
        value = [int(p) for p in parts]
    try:
        return check(setting, value)
    except SettingError:  # say what was typed, not what it was parsed into
        raise SettingError(setting, r.text, text) from None


def argparse_type(setting: str):
    """An argparse `type=` for the setting: argparse prints 'argument --flag: <rule>, got X'."""

    def convert(text: str):
        try:
            return parse(setting, text)
        except SettingError as exc:
            raise argparse.ArgumentTypeError(f"{exc.rule}, got {text!r}") from None

    convert.__name__ = rule(setting).text
    return convert


def help_text(setting: str) -> str:
    """The setting's help with its default, for --help."""
    r = rule(setting)
    if r.default is None:
        return r.help
    shown = ",".join(map(str, r.default)) if isinstance(r.default, tuple) else r.default
    return f"{r.help} (default {shown})"
