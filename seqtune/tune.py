"""Hyperparameter search with optuna: transformers' `Trainer.hyperparameter_search` and `seqtune tune`.

Both run trials through one ask/tell loop: a TPE sampler (seeded), a median pruner fed by each epoch's
evaluation (reported at the epoch, in hundredths, so trials of different batch sizes compare at the same
point), and only the best finished trial's model kept on disk. `seqtune tune` keeps its study in SQLite in
the output folder: an interrupted study continues, several processes share it (trials side by side, each in
trials/N), and the best trial's run folder is copied into the output folder at the end.

Only the standard library is imported up front: `seqtune --help` builds tune's parser from here.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import inspect
import json
import os
import shutil
import socket
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

from .atomic import replacing, write_text
from .callbacks import TrainerCallback
from .errors import SeqtuneError, Stopped
from .tune_space import (
    RUNTIME_OPTIONS,
    default_hp_space,
    parse_duration,
    read_space,
    suggest,
)

STUDY_FILE = "tune.db"
TRIALS_DIR = "trials"
REPORT_FILE = "tune_report.md"
PLOT_FILE = "tune_trials.png"
BEST_FILE = "best_params.json"
LOCK_FILE = ".tune.lock"
MODEL_FILES = ("model.safetensors", "adapter_model.safetensors", "merged")  # what only the best trial keeps
FAILURES_IN_A_ROW = 3  # then the trials' common cause (a broken setup) is said, not retried forever
METRIC_KEYS = {"matthews": "matthews_correlation", "spearman": "spearmanr"}  # a metric's name -> its key


class BestRun(NamedTuple):
    """transformers' BestRun: the best trial's number, objective and hyperparameters; `run_summary` holds
    its folder (`output_dir`, where its model is) and its last evaluation's `metrics`."""

    run_id: str
    objective: float
    hyperparameters: dict[str, Any]
    run_summary: Any = None


def default_compute_objective(metrics: dict[str, float]) -> float:
    """transformers' default: the evaluation loss if there are no metrics, else the sum of the metrics."""
    metrics = dict(metrics)
    loss = metrics.pop("eval_loss", None)
    metrics.pop("epoch", None)
    for key in [k for k in metrics if k.endswith(("_runtime", "_per_second", "_compilation_time"))]:
        metrics.pop(key)
    return loss if not metrics else sum(metrics.values())


class PruningCallback(TrainerCallback):
    """Reports the objective of each evaluation during training to the trial and stops a hopeless trial
    (optuna.TrialPruned out of `train()`, as transformers). Evaluations after training are not reported."""

    def __init__(self, trial: Any, objective: Callable[[dict[str, float]], float]) -> None:
        self.trial, self.objective = trial, objective
        self.training = False
        self.value: float | None = None
        self.reported: set[int] = set()

    def on_train_begin(self, args, state, control, **kwargs: Any) -> None:
        self.training = True

    def on_train_end(self, args, state, control, **kwargs: Any) -> None:
        self.training = False

    def on_evaluate(self, args, state, control, metrics: dict | None = None, **kwargs: Any) -> None:
        import optuna

        if not self.training or not metrics:
            return
        self.value = float(self.objective(metrics))
        step = round(state.epoch * 100)  # the epoch, not the optimizer step: batch sizes differ between trials
        if step in self.reported:
            return
        self.reported.add(step)
        self.trial.report(self.value, step)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {state.epoch:g} ({self.value:.4g})")


# ---- the loop shared by the library and the command line -------------------------------------------

def _run_trials(study: Any, run_one: Callable[[Any], float], n_trials: int, timeout: float | None, *,
                count_study: bool, lock: Callable[[], Any], owner: str | None = None, storage: Any = None,
                sampler_for: Callable[[int], Any] | None = None, say: Callable[[str], None] = print) -> None:
    """Ask, run, tell, until `n_trials` (this call's, or with `count_study` the study's finished and running
    ones) or `timeout` seconds (no trial starts after it; the running one finishes)."""
    import optuna
    from optuna.trial import TrialState

    start = time.monotonic()
    started = failures = 0
    while timeout is None or time.monotonic() - start < timeout:
        with lock():  # two processes never both take the last trial
            if storage is not None:
                _retry_abandoned(study, storage)
            counted = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED,
                                                                   TrialState.RUNNING))) if count_study else started
            if counted >= n_trials:
                return
            if sampler_for is not None:
                study.sampler = sampler_for(len(study.get_trials(deepcopy=False)))
            trial = study.ask()
            if owner:
                trial.set_user_attr("owner", owner)
        started += 1
        began = time.monotonic()
        try:
            value = run_one(trial)
        except optuna.TrialPruned as pruned:
            trial.set_user_attr("seconds", round(time.monotonic() - began, 1))
            study.tell(trial, state=TrialState.PRUNED)
            say(f"seqtune: trial {trial.number} {pruned}")
            failures = 0
            continue
        except (Stopped, KeyboardInterrupt):
            study.tell(trial, state=TrialState.FAIL)
            study.enqueue_trial(trial.params)  # the next run tries these values again first
            raise
        except SeqtuneError as err:
            trial.set_user_attr("error", str(err))
            study.tell(trial, state=TrialState.FAIL)
            failures += 1
            if failures >= FAILURES_IN_A_ROW:
                raise SeqtuneError(f"{failures} trials in a row failed; the last: {err}") from None
            say(f"seqtune: trial {trial.number} failed: {err}")
            continue
        failures = 0
        trial.set_user_attr("seconds", round(time.monotonic() - began, 1))
        study.tell(trial, value)
        with lock():
            _keep_best_model(study)


def _retry_abandoned(study: Any, storage: Any) -> None:
    """A trial left running by a process of this host that is gone (killed) fails, and its values go first
    in the queue. Trials of other hosts are left alone: their process may live."""
    from optuna.trial import TrialState

    from .outdir import _stale

    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = trial.user_attrs.get("owner", "")
        if owner and _stale(owner):
            storage.set_trial_user_attr(trial._trial_id, "error", "its process ended before the trial did")
            storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
            study.enqueue_trial(trial.params)


def _best(study: Any) -> Any:
    from optuna.trial import TrialState

    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return study.best_trial if done else None


def _keep_best_model(study: Any) -> None:
    """The weights of every finished trial but the best go (their metrics and reports stay)."""
    from optuna.trial import TrialState

    best = _best(study)
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)):
        folder = trial.user_attrs.get("output_dir")
        if folder and (best is None or trial.number != best.number):
            for name in MODEL_FILES:
                path = Path(folder) / name
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink(missing_ok=True)


def _sampler_and_pruner(seed: int, n_trials: int, kwargs: dict[str, Any]) -> None:
    import optuna

    kwargs.setdefault("sampler", optuna.samplers.TPESampler(seed=seed))
    # optuna's 5 trials before any pruning, fewer in a short study so that pruning can still happen.
    kwargs.setdefault("pruner", optuna.pruners.MedianPruner(n_startup_trials=max(2, min(5, n_trials // 4))))


# ---- Trainer.hyperparameter_search -----------------------------------------------------------------

def hyperparameter_search(trainer: Any, hp_space: Callable[[Any], dict[str, Any]] | None = None,
                          compute_objective: Callable[[dict[str, float]], float] | None = None, n_trials: int = 20,
                          direction: str = "minimize", backend: str | None = None,
                          hp_name: Callable[[Any], str] | None = None, **kwargs: Any) -> BestRun:
    """transformers' `Trainer.hyperparameter_search` with optuna: `n_trials` trials, each a Trainer of
    `model_init`'s model and the arguments `hp_space(trial)` sets (TrainingArguments' names; other names are
    for a `model_init(trial)`), scored by `compute_objective` of its last evaluation, stopped early by the
    pruner. kwargs: `timeout`, `gc_after_trial`, and optuna.create_study's (storage, study_name, sampler,
    pruner, load_if_exists). Each trial runs in output_dir/run-N (`hp_name(trial)` names it otherwise); only
    the best trial's model stays there, and it is loaded into this trainer's model at the end (when
    `model_init` takes no trial), so `trainer.save_model()` saves the best trial's model, never the last."""
    import optuna

    name = getattr(backend, "value", backend)
    if name not in (None, "optuna"):
        raise SeqtuneError(f"backend {name!r} is not supported: seqtune searches with optuna (backend='optuna')")
    if trainer.model_init is None:
        raise SeqtuneError("hyperparameter_search needs a model_init: pass Trainer(model_init=...), a function "
                           "that returns a fresh model for each trial")
    if direction not in ("minimize", "maximize"):
        raise SeqtuneError(f"direction {direction!r}: expected 'minimize' or 'maximize' (one objective)")
    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
        raise SeqtuneError(f"n_trials {n_trials!r}: expected a whole number >= 1")
    if kwargs.pop("n_jobs", 1) != 1:
        raise SeqtuneError("n_jobs: seqtune runs one trial at a time per process; start several processes on "
                           "one storage to run trials side by side")
    hp_space = hp_space or default_hp_space
    compute_objective = compute_objective or default_compute_objective
    timeout = kwargs.pop("timeout", None)
    gc_after_trial = kwargs.pop("gc_after_trial", False)
    _sampler_and_pruner(trainer.args.seed, n_trials, kwargs)
    study = optuna.create_study(direction=direction, **kwargs)
    takes_trial = len(inspect.signature(trainer.model_init).parameters) > 0
    init = {k: v for k, v in trainer._init_arguments.items() if k != "self"}

    def run_one(trial: Any) -> float:
        from .trainer import set_seed

        params = hp_space(trial)
        fields = {f.name for f in dataclasses.fields(trainer.args)}
        unknown = sorted(set(params) - fields)
        if unknown and not takes_trial:
            warnings.warn(f"hp_space sets {', '.join(unknown)}, which TrainingArguments does not have; ignored",
                          stacklevel=2)
        folder = Path(trainer.args.output_dir) / (hp_name(trial) if hp_name else f"run-{trial.number}")
        args = dataclasses.replace(trainer.args, output_dir=str(folder),
                                   **{k: v for k, v in params.items() if k in fields})
        set_seed(args.seed)  # each trial's model starts from the same draw, as transformers
        model = trainer.model_init(trial) if takes_trial else trainer.model_init()
        reporter = PruningCallback(trial, compute_objective)
        callbacks = copy.deepcopy(list(init.get("callbacks") or []))  # no state carried between trials
        trial_trainer = type(trainer)(**{**init, "model": model, "args": args, "callbacks": [*callbacks, reporter]})
        trial.set_user_attr("output_dir", str(folder))
        trial_trainer.train()
        metrics = trial_trainer.evaluate() if reporter.value is None else None
        value = compute_objective(metrics) if metrics is not None else reporter.value
        trial_trainer.save_model()
        trial.set_user_attr("metrics", metrics or _last_eval(trial_trainer.state.log_history))
        del trial_trainer, model
        if gc_after_trial:
            import gc

            gc.collect()
        return value

    _run_trials(study, run_one, n_trials, timeout, count_study=False, lock=contextlib.nullcontext)
    best = _best(study)
    if best is None:
        raise SeqtuneError(f"no trial of the {n_trials} finished (each was pruned or failed); see the log above")
    folder = best.user_attrs.get("output_dir")
    if folder and not takes_trial:
        from .checkpoint import load_model_weights

        load_model_weights(trainer.model, Path(folder))
    return BestRun(str(best.number), best.value, best.params,
                   {"output_dir": folder, "metrics": best.user_attrs.get("metrics")})


def _last_eval(history: list[dict[str, Any]]) -> dict[str, float]:
    last = next((h for h in reversed(history) if "eval_loss" in h), {})
    return {k: v for k, v in last.items() if k.startswith("eval_")}


# ---- seqtune tune ----------------------------------------------------------------------------------

def add_options(parser: argparse.ArgumentParser) -> None:
    """tune's own options, beside train's."""
    group = parser.add_argument_group("search")
    group.add_argument("--trials", type=int, default=20,
                       help="trials in the study; an interrupted study's finished trials count toward them")
    group.add_argument("--timeout", default=None, metavar="DURATION",
                       help="start no trial after this long, e.g. 90s, 30m, 2h, 1h30m (default: no limit)")
    group.add_argument("--space", default=None, metavar="YAML",
                       help="search space: name: {type: float|int|categorical, low, high, log, choices}, names "
                            "as train's options (default: learning_rate 1e-5..1e-4 log, batch_size 8/16/32, "
                            "epochs 2..5, warmup_ratio 0..0.2, weight_decay 0..0.1)")
    group.add_argument("--objective", default=None, metavar="METRIC",
                       help="what the study maximizes: a metric the task reports, or loss (minimized) (default: "
                            "the task's first metric: accuracy for classification, pearson for regression)")


def run_tune(options: argparse.Namespace) -> int:
    """`seqtune tune`: a study of train runs (each in OUTPUT/trials/N), kept in OUTPUT/tune.db; the best
    trial's run folder is copied into OUTPUT with best_params.json and tune_report.md."""
    from .outdir import check_output_dir, check_place
    from .run import load_recipe

    if options.resume:
        raise SeqtuneError("--resume does not apply to tune: run the same tune command again and its study "
                           "continues where it stopped")
    timeout = parse_duration(options.timeout)
    space = read_space(options.space)
    _check_not_fixed(options, space)
    recipe = load_recipe(options)
    objective_key, direction = _objective(options.objective, recipe.spec.metrics)
    output_dir = Path(options.output_dir or f"runs/{recipe.spec.name.replace('/', '-')}-tune")
    check_place(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)

    def lock() -> Any:
        return _file_lock(output_dir / LOCK_FILE)

    with lock():  # processes started together: one creates the study, the others join it
        if not (output_dir / STUDY_FILE).is_file() and any(p.name != LOCK_FILE for p in output_dir.iterdir()):
            check_output_dir(output_dir, options.overwrite_output_dir, None)  # else: a new folder, or our study
        storage, study = _open_study(output_dir / STUDY_FILE, options, space, objective_key, direction)

    def run_one(trial: Any) -> float:
        from .outdir import hold
        from .run import _train

        params = suggest(trial, space)
        folder = output_dir / TRIALS_DIR / str(trial.number)
        trial.set_user_attr("output_dir", str(folder))
        print(f"seqtune: trial {trial.number}: {_shown(params)}", flush=True)
        trial_options = argparse.Namespace(**{**vars(options), **params, "save_strategy": "no", "resume": None,
                                              "overwrite_output_dir": False, "output_dir": str(folder)})
        with hold(folder):
            check_output_dir(folder, False, None)
            _train(trial_options, recipe, folder, callbacks=[PruningCallback(trial, _metric(objective_key))])
        results = json.loads((folder / "all_results.json").read_text(encoding="utf-8"))
        trial.set_user_attr("metrics", {k: v for k, v in results.items() if k.startswith(("eval_", "test_"))})
        return _metric(objective_key)(results)  # the final evaluation's: the model the folder holds

    def sampler_for(count: int) -> Any:
        import optuna

        # TPE reads the history from the storage; its random draws are seeded by the trial's index, so one
        # process repeats itself and processes side by side do not draw the same values.
        return optuna.samplers.TPESampler(seed=options.seed + count)

    try:
        with _stopped_by_signals():
            _run_trials(study, run_one, options.trials, timeout, count_study=True, lock=lock, storage=storage,
                        owner=f"{os.getpid()} {socket.gethostname()}", sampler_for=sampler_for)
    except (Stopped, KeyboardInterrupt) as err:
        from .tune_report import counts

        done = counts(study)
        message = (f"tune stopped during a trial ({done['COMPLETE'] + done['PRUNED']} of {options.trials} trials "
                   "finished); run the same command again to continue the study")
        raise (type(err)(message, err.exit_code) if isinstance(err, Stopped) else Stopped(message, 130)) from None
    with lock():
        return _finish(output_dir, study, objective_key, direction, recipe.spec.name)


@contextlib.contextmanager
def _stopped_by_signals() -> Iterator[None]:
    """SIGTERM or SIGUSR1 between trials' training steps (a model loading, a trial's files written) stops tune
    as one during a step does, not by the raw signal. Inside a trial's loop the loop's handlers take over (and
    stop after the step); these come back after it."""
    import signal
    import threading

    from .stopping import STOP_SIGNALS

    def stop(number: int, frame: Any) -> None:
        raise Stopped(f"stopped by {signal.Signals(number).name}", 143)

    main = threading.current_thread() is threading.main_thread()  # handlers live in the main thread only
    previous = {number: signal.signal(number, stop) for number in STOP_SIGNALS} if main else {}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock between the processes of one study (released by the system if one dies)."""
    import fcntl

    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _check_not_fixed(options: argparse.Namespace, space: dict[str, Any]) -> None:
    """A flag that sets what the space searches would be overridden without a word: refused."""
    from .cli import build_parser
    from .options import subparser

    actions = {a.dest: a for a in subparser(build_parser(), "tune")._actions}
    for name in space:
        if getattr(options, name) != actions[name].default:
            raise SeqtuneError(f"{actions[name].option_strings[0]} {getattr(options, name)} is given, but the search "
                               f"space varies {name}; drop the option or take {name} out of the space")


def _objective(name: str | None, metrics: list[str]) -> tuple[str, str]:
    """The key of the objective in the evaluation's metrics, and the study's direction."""
    if name == "loss":
        return "eval_loss", "minimize"
    name = name or metrics[0]
    if name not in metrics:
        raise SeqtuneError(f"--objective {name}: this run reports {', '.join(metrics)} and loss; choose one of them "
                           f"(or add --metric {name})")
    return f"eval_{METRIC_KEYS.get(name, name)}", "maximize"


def _metric(key: str) -> Callable[[dict[str, float]], float]:
    def value(metrics: dict[str, float]) -> float:
        if key not in metrics:
            raise SeqtuneError(f"the evaluation gave no {key} (it gave {', '.join(sorted(metrics))})")
        return float(metrics[key])

    return value


def _open_study(path: Path, options: argparse.Namespace, space: dict[str, Any], objective: str,
                direction: str) -> tuple[Any, Any]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # seqtune says what each trial did
    _check_study_file(path)
    storage = optuna.storages.RDBStorage(f"sqlite:///{path.resolve()}",
                                         engine_kwargs={"connect_args": {"timeout": 120}})
    kwargs: dict[str, Any] = {}
    _sampler_and_pruner(options.seed, options.trials, kwargs)
    study = optuna.create_study(storage=storage, study_name="seqtune", direction=direction, load_if_exists=True,
                                **kwargs)
    search = json.loads(json.dumps({"space": space, "objective": objective, "options": {
        k: str(Path(v).resolve()) if k in ("train", "validation", "test", "data_dir") and v else v
        for k, v in sorted(vars(options).items()) if k not in RUNTIME_OPTIONS and k not in space}}))
    before = study.user_attrs.get("search")
    if before is None:
        study.set_user_attr("search", search)
    elif before != search:
        differ = _first_difference(before, search)
        raise SeqtuneError(f"--output-dir {path.parent} holds a study of another search ({differ}); run it with "
                           "the same options to continue it, or choose another folder")
    return storage, study


def _check_study_file(path: Path) -> None:
    """An existing study file is an optuna study's SQLite database; anything else there is not taken over."""
    if not path.exists():
        return
    import sqlite3

    refuse = SeqtuneError(f"{path} is not a seqtune study (an optuna SQLite database); move it away or choose "
                          "another --output-dir")
    if not path.is_file():
        raise refuse
    try:
        with path.open("rb") as handle:
            if handle.read(16) != b"SQLite format 3\x00":
                raise refuse
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except (OSError, sqlite3.Error):
        raise refuse from None
    if "studies" not in tables:
        raise refuse


def _first_difference(before: dict[str, Any], now: dict[str, Any]) -> str:
    if before["space"] != now["space"]:
        return "its search space differs"
    if before["objective"] != now["objective"]:
        return f"objective {before['objective']} there, {now['objective']} here"
    old, new = before["options"], now["options"]
    key = next(k for k in sorted(old.keys() | new.keys()) if old.get(k) != new.get(k))
    return f"--{key.replace('_', '-')} {old.get(key)} there, {new.get(key)} here"


def _shown(params: dict[str, Any]) -> str:
    return "  ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def _finish(output_dir: Path, study: Any, objective: str, direction: str, task: str) -> int:
    """The best trial's run folder into the output folder, its parameters, the trials' report."""
    from .outdir import hold
    from .tune_report import counts as count_states
    from .tune_report import write_report

    best = _best(study)
    counts = count_states(study)
    summary = (f"{counts['COMPLETE']} complete, {counts['PRUNED']} pruned, {counts['FAIL']} failed"
               + (f", {counts['RUNNING']} running elsewhere" if counts["RUNNING"] else ""))
    if best is not None:
        source = Path(best.user_attrs["output_dir"])
        with hold(output_dir):
            _copy_run(source, output_dir)
            write_text(output_dir / BEST_FILE, json.dumps({
                "trial": best.number, "objective": objective, "direction": direction, "value": best.value,
                "params": best.params, "metrics": best.user_attrs.get("metrics", {}),
                "folder": str(source.relative_to(output_dir))}, indent=2))
    write_report(output_dir, study, objective, direction, task)
    if best is None:
        print(f"seqtune: no trial completed ({summary}); tune_report.md in {output_dir}/", flush=True)
        return 1
    print(f"seqtune: study of {sum(counts.values()) - counts['WAITING']} trials ({summary}); best trial "
          f"{best.number}: {objective.removeprefix('eval_')}={best.value:.4f}  {_shown(best.params)}", flush=True)
    print(f"seqtune: the best trial's model, {BEST_FILE} and {REPORT_FILE} in {output_dir}/", flush=True)
    return 0


def _copy_run(source: Path, target: Path) -> None:
    """A trial's run folder (model, tokenizer, reports) over the output folder's files of the same names."""
    for path in sorted(source.iterdir()):
        if path.name.startswith(".") or path.name.startswith("checkpoint-"):
            continue
        if path.is_dir():
            staging = target / f".tmp-{path.name}-{os.getpid()}"
            shutil.copytree(path, staging)
            if (target / path.name).is_dir():
                shutil.rmtree(target / path.name)
            os.replace(staging, target / path.name)
        else:
            with replacing(target / path.name) as partial:
                shutil.copyfile(path, partial)
