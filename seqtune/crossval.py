"""How much a recipe's figure can be trusted: `seqtune train --folds K` (K-fold cross-validation, stratified by
label for classification, by label set for multi-label, plain KFold for regression) and `--seeds 1,2,3` (the
same split, one run per seed). Each run is a whole train run in OUTPUT/folds/k or OUTPUT/seeds/S; OUTPUT gets
the metrics' mean and sample standard deviation (all_results.json, crossval.json), a row per run in
cv_report.md and, for folds, every training row's out-of-fold prediction (oof_predictions.csv). OUTPUT holds
no model of its own: a cross-validation is an estimate of the recipe, not a model to ship.

Only the standard library is imported up front: `seqtune --help` adds the options from here."""

from __future__ import annotations

import argparse
import json
import math
import shutil
from pathlib import Path
from typing import Any

from .atomic import replacing, write_text
from .callbacks import TrainerCallback
from .errors import SeqtuneError
from .options import SEED_LIMIT

REPORT_FILE = "cv_report.md"
OOF_FILE = "oof_predictions.csv"
RESULTS_FILE = "crossval.json"


def add_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("estimate")
    group.add_argument("--folds", type=int, default=None, metavar="K",
                       help="K-fold cross-validation of the training data (stratified): a run per fold in "
                            "OUTPUT/folds/k, the metrics' mean and standard deviation, out-of-fold predictions; "
                            "no model in OUTPUT itself")
    group.add_argument("--seeds", default=None, metavar="S1,S2,...",
                       help="one run per seed on the same split, in OUTPUT/seeds/S: the metrics' mean and "
                            "standard deviation")


def parse_seeds(text: str) -> list[int]:
    """'1,2,3' -> [1, 2, 3]: at least two different whole numbers in NumPy's seed range."""
    seeds = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit() or int(part) >= SEED_LIMIT:
            raise SeqtuneError(f"--seeds {text!r}: expected whole numbers from 0 to 2**32 - 1 separated by commas, "
                               "e.g. 1,2,3")
        seeds.append(int(part))
    if len(set(seeds)) != len(seeds) or len(seeds) < 2:
        raise SeqtuneError(f"--seeds {text!r}: expected two or more different seeds, e.g. 1,2,3")
    return seeds


def check_options(options: argparse.Namespace) -> None:
    """--folds and --seeds' combinations, before any data is read."""
    folds, seeds = getattr(options, "folds", None), getattr(options, "seeds", None)
    if folds is None and seeds is None:
        return
    if folds is not None and seeds is not None:
        raise SeqtuneError("pass either --folds K (other splits) or --seeds S1,S2 (other seeds on one split), "
                           "not both")
    if seeds is not None:
        parse_seeds(seeds)
    flag = "--folds" if folds is not None else "--seeds"
    if options.resume:
        raise SeqtuneError(f"--resume does not apply to {flag} runs: run the command again with "
                           "--overwrite-output-dir")
    if folds is not None and (options.validation or options.validation_split):
        raise SeqtuneError(f"--folds {folds} holds out each fold of the training data in turn; drop "
                           f"{'--validation' if options.validation else '--validation-split'}")


class _KeepModel(TrainerCallback):
    """The trained model, for the out-of-fold predictions (the model the run's folder holds)."""

    model: Any = None

    def on_train_end(self, args, state, control, model: Any = None, **kwargs: Any) -> None:
        self.model = model


def run_crossval(options: argparse.Namespace) -> int:
    from .outdir import check_output_dir, hold
    from .run import load_recipe

    recipe = load_recipe(options)
    kind = "folds" if options.folds else "seeds"
    output_dir = Path(options.output_dir or f"runs/{recipe.spec.name.replace('/', '-')}-{kind}")
    with hold(output_dir):
        check_output_dir(output_dir, options.overwrite_output_dir, None)
        if options.overwrite_output_dir:
            for stale in (output_dir / "folds", output_dir / "seeds", output_dir / OOF_FILE):
                if stale.is_dir():
                    shutil.rmtree(stale)  # an earlier estimate's runs (maybe more folds than now)
                elif stale.is_file():
                    stale.unlink()
        runs = _folds(options, recipe, output_dir) if options.folds else _seeds(options, recipe, output_dir)
        return _summarize(output_dir, recipe.spec, kind, runs, options)


def fold_indices(labels: list[Any], task_type: str, folds: int, seed: int,
                 label_names: list[str] | None = None) -> list[tuple[Any, Any]]:
    """(train rows, validation rows) of each fold: stratified by label (by label set for multi-label),
    shuffled with `seed`; a class with fewer rows than folds is refused."""
    import warnings

    import numpy as np
    from sklearn.model_selection import KFold, StratifiedKFold

    if folds > len(labels):
        raise SeqtuneError(f"--folds {folds}: the training data has {len(labels)} rows; use at most {len(labels)}")
    if task_type == "regression":
        return list(KFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(labels))))
    if task_type == "classification":
        strata = list(labels)
        counts = {value: strata.count(value) for value in set(strata)}
        smallest = min(counts, key=lambda v: (counts[v], str(v)))
        if counts[smallest] < folds:
            name = label_names[smallest] if label_names and isinstance(smallest, int) else smallest
            count = counts[smallest]
            advice = (f"use at most {count} folds" if count >= 2 else
                      "a class needs 2 rows for 2 folds: drop or merge it, or use --seeds on a fixed split")
            raise SeqtuneError(f"--folds {folds}: the smallest class ({name}) has {count} row{'s' * (count != 1)} "
                               f"in the training data, so some folds would hold none of it; {advice}")
    else:  # multi-label: each distinct set of labels is a stratum; rare sets are spread as well as they can be
        strata = [json.dumps(list(value)) for value in labels]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "the least populated class has only N members"
        splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
        return list(splitter.split(np.zeros(len(strata)), strata))


def _folds(options: argparse.Namespace, recipe: Any, output_dir: Path) -> list[dict[str, Any]]:
    from datasets import DatasetDict

    from .run import Recipe

    train = recipe.splits["train"]
    spec = recipe.spec
    indices = fold_indices(train["label"], spec.task_type, options.folds, options.seed, spec.label_names)
    if options.task:
        print(f"seqtune: {options.folds}-fold cross-validation of {options.task}'s training split (its "
              f"{recipe.validation} split is not used)", flush=True)
    runs, oof = [], []
    for k, (train_rows, validation_rows) in enumerate(indices, 1):
        splits = {"train": train.select(train_rows), "validation": train.select(validation_rows)}
        if "test" in recipe.splits:
            splits["test"] = recipe.splits["test"]
        folder = output_dir / "folds" / str(k)
        print(f"seqtune: fold {k} of {options.folds}: {len(train_rows)} training rows, {len(validation_rows)} "
              "validation rows", flush=True)
        keep = _KeepModel()
        results = _run(options, Recipe(spec, DatasetDict(splits), "validation"), folder, keep)
        runs.append({"fold": k, "train_rows": len(train_rows), "validation_rows": len(validation_rows),
                     "metrics": results})
        oof.append(_oof_rows(options, spec, keep.model, folder, splits["validation"], validation_rows, k))
    _write_oof(output_dir / OOF_FILE, oof)
    return runs


def _seeds(options: argparse.Namespace, recipe: Any, output_dir: Path) -> list[dict[str, Any]]:
    runs = []
    seeds = parse_seeds(options.seeds)
    for seed in seeds:
        print(f"seqtune: seed {seed} ({seeds.index(seed) + 1} of {len(seeds)})", flush=True)
        results = _run(argparse.Namespace(**{**vars(options), "seed": seed}), recipe, output_dir / "seeds" / str(seed))
        runs.append({"seed": seed, "train_rows": len(recipe.splits["train"]),
                     "validation_rows": len(recipe.splits[recipe.validation]), "metrics": results})
    return runs


def _run(options: argparse.Namespace, recipe: Any, folder: Path, *callbacks: TrainerCallback) -> dict[str, float]:
    """One train run in `folder` (no checkpoints: a run of an estimate is not resumed); its final metrics."""
    from .outdir import check_output_dir, hold
    from .run import _train

    run_options = argparse.Namespace(**{**vars(options), "folds": None, "seeds": None, "save_strategy": "no",
                                        "output_dir": str(folder)})
    with hold(folder):
        check_output_dir(folder, options.overwrite_output_dir, None)
        _train(run_options, recipe, folder, callbacks=callbacks)
    results = json.loads((folder / "all_results.json").read_text(encoding="utf-8"))
    return {k: v for k, v in results.items() if k.startswith(("eval_", "test_"))
            and not k.endswith(("_runtime", "_per_second")) and isinstance(v, (int, float))}


def _oof_rows(options: argparse.Namespace, spec: Any, model: Any, folder: Path, rows: Any, positions: Any,
              fold: int) -> Any:
    """The fold's validation rows with their prediction by the fold's model."""
    import pandas as pd
    from datasets import DatasetDict
    from transformers import AutoTokenizer

    from .args import TrainingArguments
    from .trainer import Trainer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenized = spec.tokenize(DatasetDict({"validation": rows}), tokenizer)["validation"]
    args = TrainingArguments(str(folder), per_device_eval_batch_size=options.eval_batch_size, use_cpu=options.use_cpu,
                             bf16=options.bf16, report_to="none", disable_tqdm=True)
    output = spec.per_row_output(Trainer(model, args, processing_class=tokenizer).predict(tokenized), tokenized)
    # The training file's data rows counted from 1, as seqtune's messages count them.
    frame = pd.DataFrame({"row": [int(p) + 1 for p in positions], "fold": fold, "text": rows["text"]})
    if "text_pair" in rows.column_names:
        frame["text_pair"] = rows["text_pair"]
    gold, joiner = rows["label"], spec.label_separator or "|"  # label sets as cells, joined as predict joins them
    if spec.task_type == "classification":
        frame["label"] = [spec.label_names[g] for g in gold]
    elif spec.task_type == "multi_label":
        names = spec.label_names
        frame["label"] = [joiner.join(name for name, on in zip(names, hot, strict=True) if on) for hot in gold]
    else:
        frame["label"] = gold
    for name, values in spec.prediction_columns(output.predictions, all_scores=True).items():
        frame[name] = [joiner.join(names) for names in values] if name == "predicted_labels" else list(values)
    return frame


def _write_oof(path: Path, frames: list[Any]) -> None:
    import pandas as pd

    frame = pd.concat(frames).sort_values("row", kind="stable")
    with replacing(path) as partial:
        frame.to_csv(partial, index=False)


def mean_std(values: list[float]) -> tuple[float, float]:
    """The mean and the sample standard deviation (n - 1)."""
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def _summarize(output_dir: Path, spec: Any, kind: str, runs: list[dict[str, Any]], options: argparse.Namespace) -> int:
    names = [k for k in runs[0]["metrics"] if all(k in run["metrics"] for run in runs)]
    summary = {name: mean_std([run["metrics"][name] for run in runs]) for name in names}
    flat = {kind: len(runs), **{f"{n}_{part}": value for n, (mean, std) in summary.items()
                                for part, value in (("mean", mean), ("std", std))}}
    write_text(output_dir / RESULTS_FILE, json.dumps({"task": spec.name, "kind": kind, "runs": runs,
                                                      "mean": {n: m for n, (m, _) in summary.items()},
                                                      "std": {n: s for n, (_, s) in summary.items()}}, indent=2))
    write_text(output_dir / "all_results.json", json.dumps(flat, indent=2))
    key = "fold" if kind == "folds" else "seed"
    shown = [n for n in names if not n.endswith("_loss")] or names
    how = {"classification": "stratified by label", "multi_label": "stratified by label set",
           "regression": "shuffled"}.get(spec.task_type, "")
    title = (f"{len(runs)}-fold cross-validation ({how}, seed {options.seed})" if kind == "folds"
             else f"{len(runs)} seeds on one split")
    lines = [f"# {title}: {spec.name}", "",
             "An estimate of how this recipe does on data it has not seen, and how much that figure moves: "
             f"each run is in `{kind}/<{key}>/` with its own report; this folder holds no model. Standard "
             "deviation: the sample's (n - 1).", "",
             "| metric | mean | std |", "|---|---:|---:|"]
    lines += [f"| {n.removeprefix('eval_')} | {summary[n][0]:.4f} | {summary[n][1]:.4f} |" for n in shown]
    lines += ["", f"| {key} | training rows | validation rows | " + " | ".join(n.removeprefix("eval_") for n in shown)
              + " |", "|---:|---:|---:|" + "---:|" * len(shown)]
    lines += [f"| {run[key]} | {run['train_rows']} | {run['validation_rows']} | "
              + " | ".join(f"{run['metrics'][n]:.4f}" for n in shown) + " |" for run in runs]
    if kind == "folds":
        lines += ["", f"Out-of-fold predictions (each training row once, by the fold that held it out): `{OOF_FILE}`."]
    write_text(output_dir / REPORT_FILE, "\n".join(lines) + "\n")
    said = "  ".join(f"{n.removeprefix('eval_')}={summary[n][0]:.4f}±{summary[n][1]:.4f}" for n in shown)
    print(f"seqtune: {title}: {said}", flush=True)
    print(f"seqtune: {REPORT_FILE}, {RESULTS_FILE}" + (f", {OOF_FILE}" if kind == "folds" else "")
          + f" in {output_dir}/", flush=True)
    return 0
