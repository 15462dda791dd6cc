"""The options of train, predict and evaluate, checked in one place before any data or model is loaded:
type, range, finiteness and the combinations that make no sense, each refused in one line that names the
option, its value and what it takes. YAML --config values are coerced here to what the flag would give.

Nothing heavy is imported here: the options are checked before `train` imports torch."""

from __future__ import annotations

import argparse
import json
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .errors import SeqtuneError

SEED_LIMIT = 2**32  # NumPy's and scikit-learn's seeds take 0 <= seed < 2**32 (torch takes more)
WHOLE_LIMIT = 2**63  # whole numbers reach torch and the Rust tokenizers as 64-bit integers


@dataclass(frozen=True)
class Rule:
    allowed: str  # what the option takes, said when a value is refused
    whole: bool  # a whole number (int), else any real number (float)
    ok: Callable[[Any], bool]  # the range: NaN fails every comparison, so it is refused with the rest


def _whole_from(low: int) -> Rule:
    return Rule(f"a whole number >= {low}", True, lambda v: low <= v)


def _finite(above: float, allowed: str) -> Rule:
    return Rule(allowed, False, lambda v: above < v < math.inf)


RULES: dict[str, Rule] = {
    "epochs": _finite(0, "a finite number > 0"),
    "learning_rate": _finite(0, "a finite number > 0"),
    "weight_decay": Rule("a finite number >= 0", False, lambda v: 0 <= v < math.inf),
    "logging_steps": _finite(0, "a finite number > 0 (a fraction of all steps if < 1)"),
    # Below 1 a fraction of all steps; from 1 a count of steps, so a whole one (1.5 steps means nothing).
    "warmup_steps": Rule("a whole number of steps >= 0, or a fraction of all steps in [0, 1)", False,
                         lambda v: 0 <= v < 1 or (1 <= v < math.inf and float(v).is_integer())),
    "validation_split": Rule("a fraction between 0 and 1 (both excluded)", False, lambda v: 0 < v < 1),
    **{name: Rule("a fraction in [0, 1)", False, lambda v: 0 <= v < 1) for name in ("warmup_ratio", "label_smoothing")},
    "max_steps": Rule("a whole number >= 1, or -1 for no limit (then --epochs decides)", True,
                      lambda v: v == -1 or v >= 1),
    "seed": Rule("a whole number from 0 to 2**32 - 1", True, lambda v: 0 <= v < SEED_LIMIT),
    "lora_rank": _whole_from(1),
    "lora_alpha": _finite(0, "a finite number > 0"),
    "lora_dropout": Rule("a fraction in [0, 1)", False, lambda v: 0 <= v < 1),
    **{name: _whole_from(1) for name in ("batch_size", "eval_batch_size", "gradient_accumulation_steps",
                                         "save_total_limit", "max_length")},
    "stride": _whole_from(0),
    "trials": _whole_from(1),  # seqtune tune
    "folds": Rule("a whole number >= 2", True, lambda v: v >= 2),  # train --folds
    "early_stopping_patience": _whole_from(1),
    "early_stopping_threshold": Rule("a finite number >= 0", False, lambda v: 0 <= v < math.inf),
    "threshold": Rule("a number in [0, 1]", False, lambda v: 0 <= v <= 1),
    # seqtune serve
    "port": Rule("a whole number from 0 to 65535 (0: any free port)", True, lambda v: 0 <= v <= 65535),
    "max_wait_ms": Rule("a number of milliseconds from 0 to 10000", False, lambda v: 0 <= v <= 10_000),
    **{name: _whole_from(1) for name in ("max_batch_size", "max_texts", "max_text_chars", "max_body_bytes")},
}
# What a text option holds, said when its value is refused (empty, or not text at all).
TEXTS = {"model": "a hub id or a model folder", "task": "glue/<task>", "label_column": "a column name or 0-based index",
         "config": "a YAML file", "resume": "true, false or a checkpoint folder",
         "lr_scheduler_kwargs": "a JSON object", "host": "a host name or IP address",
         "errors": "a file to write: .csv, .tsv or .jsonl", "timeout": "a duration such as 90s, 30m or 2h",
         "space": "a YAML file", "objective": "a metric name or loss", "seeds": "seeds separated by commas",
         "label_separator": "the character(s) between labels, such as '|'", "label_names": "a file of names",
         "class_weights": "'balanced' or weights by class such as 'pos=3,neg=1' (or a YAML mapping)"}
LISTS = {"text_column": ("a column name or 0-based index, or a list of one or two", 2),
         "metric": ("a metric name or a list of them", None),
         "lora_targets": ("a layer name or a list of them", None),
         "label_column": ("a column name or 0-based index, or a list of 0/1 label columns", None)}
COLUMNS = {"text_column", "label_column"}  # a YAML number here is a column index, as the flag's "1" would be
# Options that only the training files use; --task glue/<task> brings its own columns, labels and metrics.
FILE_ONLY = ("validation", "test", "validation_split", "text_column", "label_column", "task_type", "format",
             "header", "metric", "label_separator", "label_names")
# Options that contradict each other: given both on one level they are refused; a flag beats the config file.
EXCLUSIVE = (("task", "train", "pass either --task glue/<task> or --train FILE, not both"),
             ("validation", "validation_split", "pass either --validation FILE or --validation-split FRACTION, "
                                                "not both"),
             ("resume", "overwrite_output_dir", "--resume continues the run in the output directory and "
                                                "--overwrite-output-dir replaces it; pass one of them"))


def _kind(action: argparse.Action) -> str:
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction, argparse.BooleanOptionalAction)):
        return "flag"
    if isinstance(action, argparse._AppendAction):
        return "list"
    if action.nargs == "?" and action.const is True:
        return "resume"  # a bare flag (True) or a folder
    if action.choices:
        return "choice"
    if action.type in (int, float):
        return "number"
    return "text"


def _allowed(action: argparse.Action) -> str:
    kind = _kind(action)
    if kind == "flag":
        return "true or false" + (" (or null)" if action.default is None else "")
    if kind == "list":
        return LISTS.get(action.dest, ("a name or a list of names", None))[0]
    if kind == "choice":
        return "one of " + ", ".join(map(str, action.choices))
    if kind == "number":
        return RULES[action.dest].allowed
    return TEXTS.get(action.dest, "a path") if kind == "text" else TEXTS["resume"]


def _shown(value: Any) -> str:
    """A value as the user wrote it (YAML's spellings for YAML's types), short."""
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, dict):
        return "a mapping"
    text = repr(value)
    text = text if len(text) <= 60 else text[:57] + "..."
    return f"a list {text}" if isinstance(value, list) else text


def _refuse(where: str, action: argparse.Action, value: Any) -> SeqtuneError:
    return SeqtuneError(f"{where}: expected {_allowed(action)}, got {_shown(value)}")


def _flag(action: argparse.Action) -> str:
    return action.option_strings[0] if action.option_strings else action.dest


def check(action: argparse.Action, value: Any, where: str | None = None) -> Any:
    """The option's value if it is of its type and in its range (YAML's False for a choice 'no' is 'no';
    a single name for a repeatable option is a list of one); else SeqtuneError naming it."""
    where = where or _flag(action)
    kind = _kind(action)
    if value is None and action.default is None:
        return None  # not given
    if kind == "flag":
        if isinstance(value, bool):
            return value
    elif kind == "resume":
        if value is False:
            return None  # `resume: false` in a recipe: start afresh
        if value is True or isinstance(value, str) and value.strip():
            return value
    elif kind == "list":
        items = value if isinstance(value, list) else [value]
        bad = [v for v in items if not _name(v) or not (action.dest in COLUMNS or isinstance(v, str))]
        if items and not bad:
            names = [str(v) for v in items]
            limit = LISTS.get(action.dest, ("", None))[1]
            if limit is not None and len(names) > limit:
                raise SeqtuneError(f"{where} given {len(names)} times ({', '.join(map(repr, names))}); seqtune "
                                   "takes one text column or a pair")
            if action.dest == "metric":
                from .task import check_metric_names

                check_metric_names(names)  # an unknown name is refused now, before the data is read
            return names
        if bad and not isinstance(bad[0], (list, dict)):
            value = bad[0]  # the one bad name, as a flag gives it
    elif kind == "choice":
        if value is False and "no" in action.choices:
            return "no"  # YAML 1.1 reads a bare `no` as false
        if isinstance(value, bool) and action.nargs == "?":  # `torch_compile: true` as the bare flag would be
            return action.const if value else None
        if isinstance(value, str) and value in action.choices:
            return value
    elif kind == "number":
        return _number(action, value, where)
    elif action.dest == "class_weights" and isinstance(value, (str, dict)):
        from .multilabel import parse_class_weights

        parsed = parse_class_weights(value, where)  # weights that are not finite and > 0 are refused now
        return value if isinstance(value, str) else parsed
    elif action.dest == "label_separator" and isinstance(value, str) and value:
        return value  # " " or a tab is a separator, though blank
    elif action.dest == "lr_scheduler_kwargs":
        if isinstance(value, dict):  # a YAML mapping: as the flag's JSON text would give it
            return json.dumps(value)
        if isinstance(value, str) and isinstance(_json_object(value), dict):
            return value
    elif kind == "text" and (isinstance(value, str) and value.strip() or action.dest in COLUMNS and _name(value)):
        return str(value)
    raise _refuse(where, action, value)


def _json_object(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _name(value: Any) -> bool:
    """A non-empty text, or a whole number >= 0 (a column index)."""
    return isinstance(value, str) and bool(value.strip()) or (
        isinstance(value, int) and not isinstance(value, bool) and value >= 0)


def _number(action: argparse.Action, value: Any, where: str) -> Any:
    rule = RULES[action.dest]
    if isinstance(value, str):  # YAML reads 5e-5 (no dot) as text; the flag's own type reads it
        try:
            value = action.type(value.strip())
        except ValueError:
            raise _refuse(where, action, value) from None
    if isinstance(value, bool) or not isinstance(value, int if rule.whole else (int, float)):
        raise _refuse(where, action, value)
    value = value if rule.whole else float(value)
    if rule.whole and abs(value) >= WHOLE_LIMIT:
        raise SeqtuneError(f"{where}: {_shown(value)} is too large; expected {rule.allowed}, below 2**63")
    if not rule.ok(value):
        raise _refuse(where, action, value)
    return value


def subparser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    return parser._subparsers._group_actions[0].choices[command]


def validate(command: str, options: argparse.Namespace, config_only: Iterable[str] = ()) -> argparse.Namespace:
    """Every option of `command` checked (the others pass through); `config_only`: the options whose value
    came from the --config file and not from a flag. Returns the options as they are to be used."""
    if command not in ("train", "tune", "predict", "evaluate", "serve", "export"):
        return options
    from .cli import build_parser

    actions = {a.dest: a for a in subparser(build_parser(), command)._actions if a.dest != "help"}
    checked = argparse.Namespace(**vars(options))
    for dest, action in actions.items():
        if hasattr(checked, dest):
            setattr(checked, dest, check(action, getattr(checked, dest)))
    if command in ("train", "tune"):
        _combinations(checked, set(config_only), actions)
    if command == "train":
        from .crossval import check_options

        check_options(checked)  # --folds, --seeds
    return checked


def _combinations(options: argparse.Namespace, config_only: set[str], actions: dict[str, argparse.Action]) -> None:
    for first, second, message in EXCLUSIVE:
        if getattr(options, first) and getattr(options, second):
            if (first in config_only) != (second in config_only):  # a flag overrides the recipe's other choice
                loser = first if first in config_only else second
                setattr(options, loser, actions[loser].default)
            else:
                raise SeqtuneError(message)
    if not options.lora:  # a LoRA setting without --lora would be dropped without a word
        given = [dest for dest in ("merge_lora", "lora_targets", "lora_rank", "lora_alpha", "lora_dropout")
                 if getattr(options, dest) not in (actions[dest].default, None, False)]
        if given:
            raise SeqtuneError(f"{_flag(actions[given[0]])} applies to LoRA runs; add --lora")
    from .longtext import check_long_text

    check_long_text(options.long_text, options.stride, options.max_length)  # --stride: chunks', below the window
    _best_model_combinations(options)
    if options.lora and options.fsdp:  # the adapters' saving and resuming are written for whole (DDP) models
        raise SeqtuneError("--lora with --fsdp is not supported: LoRA trains a small part of the model, so run "
                           "it replicated (torchrun without --fsdp)")
    if options.task:
        given = [dest for dest in FILE_ONLY if getattr(options, dest) is not None]
        if given:
            raise SeqtuneError(f"{_flag(actions[given[0]])} applies to --train files; --task {options.task} "
                               "brings its own columns, labels, splits and metrics")
    elif not options.train:
        raise SeqtuneError("nothing to train on: pass --task glue/<task> or --train FILE")
    else:
        if options.data_dir is not None:
            raise SeqtuneError("--data-dir applies to --task glue/<task> (the folder of its GLUE TSVs), "
                               "not to --train files")
        if not options.validation and not options.validation_split and not getattr(options, "folds", None):
            raise SeqtuneError("no validation data: pass --validation FILE or --validation-split 0.1")


def _best_model_combinations(options: argparse.Namespace) -> None:
    """Keeping the best model and early stopping: the combinations that cannot work, said before any work."""
    if options.early_stopping_threshold is not None and not options.early_stopping_patience:
        raise SeqtuneError("--early-stopping-threshold applies with --early-stopping-patience N; add it")
    # --save-strategy steps or no: no checkpoint follows the evaluations, so the best weights are kept in memory.
    if options.load_best and options.save_strategy != "epoch" and options.fsdp:
        raise SeqtuneError(f"--fsdp with --save-strategy {options.save_strategy} cannot keep the best model (its "
                           "weights are sharded and no checkpoint follows the evaluations); use --save-strategy "
                           "epoch, or --no-load-best to keep the last model")


def usage_error(parser: argparse.ArgumentParser, message: str) -> str:
    """argparse's complaint as one line: a value its type cannot read is said as the validator says it."""
    bad = re.fullmatch(r"argument (\S+?)(?:/\S+)?: invalid (?:int|float) value: (.*)", message)
    action = parser._option_string_actions.get(bad.group(1)) if bad else None
    if bad and action is not None and action.dest in RULES:
        return f"{bad.group(1)}: expected {RULES[action.dest].allowed}, got {bad.group(2)}"
    if message.endswith("expected one argument"):  # e.g. --epochs -inf: argparse takes -inf for a flag
        flag = message.removeprefix("argument ").split(":")[0].split("/")[0]
        message += f"; a value that starts with - is written {flag}=VALUE"
    return f"{message} (see {parser.prog} --help)"
