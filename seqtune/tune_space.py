"""A study's search space: the default one for classifiers, a YAML one (`--space`) checked against train's
options, and how a trial draws from it."""

from __future__ import annotations

import argparse
import contextlib
import copy
import math
import re
from pathlib import Path
from typing import Any

from .errors import SeqtuneError

# The default search space for classifiers, in train's option names (a --space file uses the same names).
DEFAULT_SPACE: dict[str, dict[str, Any]] = {
    "learning_rate": {"type": "float", "low": 1e-5, "high": 1e-4, "log": True},
    "batch_size": {"type": "categorical", "choices": [8, 16, 32]},
    "epochs": {"type": "int", "low": 2, "high": 5},
    "warmup_ratio": {"type": "float", "low": 0.0, "high": 0.2},
    "weight_decay": {"type": "float", "low": 0.0, "high": 0.1},
}
ARG_NAMES = {"batch_size": "per_device_train_batch_size", "epochs": "num_train_epochs",
             "eval_batch_size": "per_device_eval_batch_size", "label_smoothing": "label_smoothing_factor",
             "lr_scheduler": "lr_scheduler_type"}  # train's option -> TrainingArguments' field
# Options that change how a study runs, not what it searches: a continued study may differ in these.
RUNTIME_OPTIONS = {"trials", "timeout", "quiet", "debug", "output_dir", "overwrite_output_dir", "config", "command",
                   "report_to", "logging_steps", "eval_batch_size", "use_cpu", "bf16", "torch_compile",
                   "save_strategy", "save_total_limit", "resume"}



def default_hp_space(trial: Any) -> dict[str, Any]:
    """The default space (learning rate, batch size, epochs, warmup, weight decay) in TrainingArguments' names."""
    return suggest(trial, {ARG_NAMES.get(name, name): spec for name, spec in DEFAULT_SPACE.items()})


def suggest(trial: Any, space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One value per name of a checked space (see `read_space`)."""
    params = {}
    for name, spec in space.items():
        if spec["type"] == "categorical":
            params[name] = trial.suggest_categorical(name, spec["choices"])
        elif spec["type"] == "int":
            params[name] = trial.suggest_int(name, spec["low"], spec["high"], log=spec.get("log", False))
        else:
            params[name] = trial.suggest_float(name, spec["low"], spec["high"], log=spec.get("log", False))
    return params


def parse_duration(text: str | None) -> float | None:
    """'90s', '30m', '2h', '1h30m' or plain seconds -> seconds (None: no limit)."""
    if text is None:
        return None
    found = re.fullmatch(r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*", text)
    if not text.strip() or not found or not any(found.groups()):
        raise SeqtuneError(f"--timeout {text!r}: expected a duration such as 90s, 30m, 2h or 1h30m")
    hours, minutes, seconds = (float(g or 0) for g in found.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if not 0 < total < math.inf:
        raise SeqtuneError(f"--timeout {text!r}: expected a duration above zero, such as 90s, 30m or 2h")
    return total


def read_space(path: str | None) -> dict[str, dict[str, Any]]:
    """The search space of a YAML file (or the default), each name a train option with a number or a choice,
    each range inside what the option takes."""
    if path is None:
        return copy.deepcopy(DEFAULT_SPACE)
    import yaml

    where = f"--space {path}"
    try:
        values = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise SeqtuneError(f"{where}: not UTF-8 text (byte {err.start}); re-save it as UTF-8") from None
    except (OSError, yaml.YAMLError) as err:
        raise SeqtuneError(f"{where}: {str(err).splitlines()[0]}") from None
    if not isinstance(values, dict) or not values:
        raise SeqtuneError(f"{where}: expected a mapping of option: {{type, low, high}} or {{type, choices}}")
    from .cli import build_parser
    from .options import subparser

    actions = {a.dest: a for a in subparser(build_parser(), "tune")._actions}
    space: dict[str, dict[str, Any]] = {}
    for key, spec in values.items():
        name = str(key).replace("-", "_")
        if name in space:
            raise SeqtuneError(f"{where}: {key!r} is given twice (spelled with - and with _)")
        space[name] = _check_spec(f"{where}: {key}", actions.get(name), spec)
    return space


SPEC_KEYS = {"float": {"type", "low", "high", "log"}, "int": {"type", "low", "high", "log"},
             "categorical": {"type", "choices"}}


def _check_spec(where: str, action: argparse.Action | None, spec: Any) -> dict[str, Any]:
    from .options import RULES, check

    searchable = action is not None and bool(action.dest in RULES or action.choices) and (
        action.dest not in RUNTIME_OPTIONS)
    if not searchable:
        raise SeqtuneError(f"{where}: not an option seqtune can search; use train's options that take a number "
                           "or a choice, e.g. learning_rate, batch_size, epochs, warmup_ratio, weight_decay")
    if not isinstance(spec, dict) or spec.get("type") not in SPEC_KEYS:
        raise SeqtuneError(f"{where}: expected {{type: float|int|categorical, ...}}, got {spec!r}")
    kind = spec["type"]
    extra = sorted(set(spec) - SPEC_KEYS[kind])
    if extra:
        raise SeqtuneError(f"{where}: {extra[0]!r} does not apply to type {kind}; it takes "
                           f"{', '.join(sorted(SPEC_KEYS[kind] - {'type'}))}")
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise SeqtuneError(f"{where}: type categorical needs choices: a non-empty list")
        return {"type": kind, "choices": [check(action, value, where) for value in choices]}
    if action.dest not in RULES:
        raise SeqtuneError(f"{where}: takes one of {', '.join(map(str, action.choices))}; use type categorical")
    if kind == "float" and RULES[action.dest].whole:
        raise SeqtuneError(f"{where}: takes whole numbers; use type int")
    bounds = {}
    for side in ("low", "high"):
        if side not in spec:
            raise SeqtuneError(f"{where}: type {kind} needs low and high")
        value = spec[side]
        if isinstance(value, str):  # YAML reads 1e-5 (no dot) as text
            with contextlib.suppress(ValueError):
                value = float(value)
        if kind == "int" and isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int if kind == "int" else (int, float)):
            raise SeqtuneError(f"{where}: {side} must be {'a whole number' if kind == 'int' else 'a number'}, "
                               f"got {spec[side]!r}")
        bounds[side] = check(action, value, f"{where} {side}")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise SeqtuneError(f"{where}: log must be true or false, got {log!r}")
    if bounds["low"] > bounds["high"]:
        raise SeqtuneError(f"{where}: low {bounds['low']} is above high {bounds['high']}")
    if log and bounds["low"] <= 0:
        raise SeqtuneError(f"{where}: log needs low > 0, got {bounds['low']}")
    return {"type": kind, **bounds, "log": log}
