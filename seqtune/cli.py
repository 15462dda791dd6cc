"""The command line. Only argparse is imported up front, so `seqtune --help` answers at once."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NoReturn

FORMATS = ("csv", "tsv", "json", "jsonl", "parquet")


class Parser(argparse.ArgumentParser):
    """A usage error is one line, as every other error is (the usage itself is one --help away)."""

    def error(self, message: str) -> NoReturn:
        from .errors import SeqtuneError
        from .options import usage_error

        raise SeqtuneError(usage_error(self, message))


class DefaultsHelp(argparse.HelpFormatter):
    """Each option's default said once: a help text that names its default in words keeps it; any
    other option with a real value (not None, not an on/off flag) gets "(default: X)" appended."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or isinstance(action, (argparse.BooleanOptionalAction, argparse._StoreConstAction)):
            return text
        if action.default in (None, argparse.SUPPRESS) or isinstance(action.default, bool) or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


DEFAULTS_HELP = DefaultsHelp


def _train_parser(commands, name: str = "train", about: str = "fine-tune a model on a GLUE task or on your files",
                  description: str = "Fine-tune a model and report the validation metrics after each epoch.",
                  ) -> argparse.ArgumentParser:
    from .args import OPTIMIZERS, SCHEDULERS  # no torch: a few milliseconds

    train = commands.add_parser(
        name, help=about, formatter_class=DEFAULTS_HELP,
        description=f"{description} Options may also come from --config recipe.yaml (flags override it).")
    train.add_argument("--config", help="YAML file of options (keys as the long flags, - or _)")
    data = train.add_argument_group("data")
    data.add_argument("--task", help="glue/<task>, e.g. glue/mrpc (GLUE TSVs from $GLUE_DIR/<TASK>/)")
    data.add_argument("--data-dir", help="folder with the task's GLUE TSVs")
    data.add_argument("--train", help="training file: .csv .tsv .json .jsonl .parquet")
    data.add_argument("--validation", help="validation file (same format)")
    data.add_argument("--test", help="test file; scored at the end if it has labels")
    data.add_argument("--validation-split", type=float, default=None,
                      help="with no --validation: hold out this fraction (seeded, stratified)")
    data.add_argument("--text-column", action="append", default=None,
                      help="text column name or 0-based index; twice for a sentence pair (default: found "
                           "by name or content)")
    data.add_argument("--label-column", action="append", default=None,
                      help="label column name or index (default: found by name or content); repeated: the 0/1 "
                           "columns of a multi-label task, one a label")
    data.add_argument("--task-type", choices=("classification", "multi_label", "regression"), default=None,
                      help="what to learn (default: multi_label for list cells or a separator inside many "
                           "label cells, classification for text or whole-number labels, regression for "
                           "fractional numbers)")
    data.add_argument("--label-separator", default=None, metavar="SEP",
                      help="multi-label cells hold labels joined by SEP, e.g. '|' for sports|politics "
                           "(default: , | or ; when the data makes it plain)")
    data.add_argument("--label-names", default=None, metavar="FILE",
                      help="label cells hold ids: FILE names them, one name per line (line 1 is id 0)")
    data.add_argument("--format", choices=FORMATS, default=None,
                      help="file format (default: from the extension)")
    data.add_argument("--header", action=argparse.BooleanOptionalAction, default=None,
                      help="whether CSV/TSV files start with a header row (default: detected from the first rows)")
    data.add_argument("--max-length", type=int, default=None, help="truncate inputs to this many tokens "
                      "(default: the model's maximum)")
    data.add_argument("--long-text", choices=("truncate", "head-tail", "chunks"), default="truncate",
                      help="rows past --max-length: truncate (default), head-tail (keep the first quarter and the "
                           "end), chunks (overlapping windows, logits averaged per document); predict and "
                           "evaluate do the same")
    data.add_argument("--stride", type=int, default=None,
                      help="chunks: tokens shared by neighbouring windows, as transformers' tokenizers' stride "
                           "(default: a quarter of the window)")
    data.add_argument("--metric", action="append", default=None,
                      help="metric to report (repeatable): accuracy, f1, macro_f1, matthews, pearson, spearman "
                           "(default: accuracy and macro_f1, plus f1 for two classes; pearson and spearman "
                           "for regression)")
    model = train.add_argument_group("model")
    model.add_argument("--model", default="default", help="hub id or local folder (default: the embedded "
                       "all-MiniLM-L6-v2)")
    training = train.add_argument_group("training")
    training.add_argument("--epochs", type=float, default=3.0, help="number of training epochs")
    training.add_argument("--max-steps", type=int, default=-1,
                          help="stop after N optimizer steps (default: no limit: --epochs decides)")
    training.add_argument("--batch-size", type=int, default=8, help="per-device training batch size")
    training.add_argument("--learning-rate", type=float, default=5e-5, help="peak learning rate")
    training.add_argument("--weight-decay", type=float, default=0.0, help="AdamW weight decay")
    training.add_argument("--warmup-steps", type=float, default=0,
                          help="linear warmup: steps, or a fraction of all steps if < 1")
    training.add_argument("--warmup-ratio", type=float, default=0.0,
                          help="warmup as a fraction of all steps (transformers 4's name; --warmup-steps wins)")
    training.add_argument("--lr-scheduler", choices=SCHEDULERS, default="linear", metavar="SCHEDULE",
                          help=f"learning-rate schedule after warmup: {', '.join(SCHEDULERS)}")
    training.add_argument("--lr-scheduler-kwargs", default=None, metavar="JSON",
                          help='the schedule\'s own options, e.g. \'{"min_lr_rate": 0.1}\' for cosine_with_min_lr')
    training.add_argument("--optim", choices=OPTIMIZERS, default="adamw_torch_fused",
                          help="optimizer (adamw_torch_fused: fused AdamW where the device has it)")
    training.add_argument("--class-weights", default=None, metavar="WEIGHTS",
                          help="weigh the loss by class: 'balanced' (inverse frequency, as scikit-learn; for "
                               "multi-label each label's negatives/positives as BCE pos_weight) or 'pos=3,neg=1'")
    training.add_argument("--label-smoothing", type=float, default=0.0,
                          help="label smoothing factor for classification, in [0, 1)")
    training.add_argument("--gradient-accumulation-steps", type=int, default=1,
                          help="micro-batches per optimizer step")
    training.add_argument("--seed", type=int, default=42, help="seed for weights init, order, dropout")
    training.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                          help="bf16 autocast with fp32 weights (default: on a CPU with native bf16; on a GPU "
                               "once the work per batch outweighs the casts, else fp32 with TF32 matmuls)")
    training.add_argument("--keep-model-dtype", action="store_true",
                          help="train weights stored in bf16/fp16 as they are (pure bf16); without it they "
                               "are upcast to fp32 master weights")
    training.add_argument("--no-group-by-length", dest="group_by_length", action="store_false", default=None,
                          help="plain random batches (default: batches of similar length, in random order, except "
                               "for regression, where random batches are more accurate)")
    training.add_argument("--use-cpu", action="store_true", help="train on the CPU even if a GPU is there")
    training.add_argument("--fsdp", action="store_true",
                          help="under torchrun: shard the model with FSDP2 instead of replicating it (DDP)")
    training.add_argument("--torch-compile", nargs="?", const="default", default=None, metavar="MODE",
                          choices=("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"),
                          help="compile the model with torch.compile (MODE: default, reduce-overhead = CUDA "
                               "graphs per length bucket on a GPU, max-autotune, max-autotune-no-cudagraphs)")
    large = train.add_argument_group("large models")
    large.add_argument("--lora", action="store_true",
                       help="train LoRA adapters (peft) on the attention projections and the head in full; the "
                            "base weights stay frozen")
    large.add_argument("--lora-rank", type=int, default=8, help="rank of each LoRA adapter")
    large.add_argument("--lora-alpha", type=float, default=16.0, help="LoRA scale numerator (scale = alpha / rank)")
    large.add_argument("--lora-dropout", type=float, default=0.0, help="dropout on the adapters' input")
    large.add_argument("--lora-targets", action="append", default=None, metavar="MODULE",
                       help="layer name to adapt, repeatable (default: the attention projections of the model's "
                            "family, e.g. q_proj k_proj v_proj o_proj)")
    large.add_argument("--merge-lora", action="store_true",
                       help="also write OUTPUT_DIR/merged: the adapters folded into a standard model folder")
    large.add_argument("--gradient-checkpointing", action="store_true",
                       help="recompute activations in the backward pass instead of keeping them (less memory, "
                            "about a third more time per step)")
    evaluation = train.add_argument_group("evaluation")
    evaluation.add_argument("--eval-batch-size", type=int, default=32, help="per-device evaluation batch size")
    evaluation.add_argument("--no-load-best", dest="load_best", action="store_false",
                            help="end with the last model (default: with the best evaluation's, by the first "
                                 "--metric; with --save-strategy no its weights are kept in memory)")
    evaluation.add_argument("--early-stopping-patience", type=int, default=None, metavar="N",
                            help="stop when the first --metric has not improved for N evaluations (epochs) in a row")
    evaluation.add_argument("--early-stopping-threshold", type=float, default=None, metavar="X",
                            help="with --early-stopping-patience: what counts as an improvement is more than X "
                                 "(default: any)")
    checkpoints = train.add_argument_group("checkpoints")
    checkpoints.add_argument("--resume", nargs="?", const=True, default=None, metavar="CHECKPOINT",
                             help="continue the newest checkpoint in the output directory, or CHECKPOINT")
    checkpoints.add_argument("--save-strategy", choices=("no", "steps", "epoch"), default="epoch",
                             help="when to write a checkpoint")
    checkpoints.add_argument("--save-total-limit", type=int, default=2,
                             help="checkpoints kept (the best and the newest are never deleted)")
    output = train.add_argument_group("output")
    output.add_argument("--output-dir", default=None, help="where the model, checkpoints and report go "
                        "(default: runs/<task or training file name>)")
    output.add_argument("--overwrite-output-dir", action="store_true",
                        help="allow an output directory that holds another run's checkpoints")
    output.add_argument("--logging-steps", type=float, default=50, help="log the training loss every N steps")
    output.add_argument("--report-to", default="none", choices=("none", "tensorboard", "wandb", "mlflow", "all"),
                        help="also log to this tracker")
    _common(output)
    return train


def _header_option(parser) -> None:
    parser.add_argument("--header", action=argparse.BooleanOptionalAction, default=None,
                        help="whether CSV/TSV files start with a header row (default: as the training files "
                             "did, else detected from the first rows)")


def _engine_option(parser) -> None:
    parser.add_argument("--engine", choices=("torch", "onnxruntime"), default="torch",
                        help="torch: the model folder's weights; onnxruntime: an ONNX export (seqtune export), "
                             "--model being the export folder or a run folder with one in onnx/ (else onnx-int8/)")


def _serve_parser(commands) -> None:
    serve = commands.add_parser(
        "serve", help="answer predictions over HTTP (JSON API, batched)", formatter_class=DEFAULTS_HELP,
        description="Serve a trained folder: POST /predict, GET /health, the API page at /docs. Concurrent "
                    "requests share forward passes. SIGTERM or Ctrl-C: answer the requests in flight, exit 0.")
    serve.add_argument("--model", required=True, help="a seqtune output directory (or an ONNX export of one)")
    _engine_option(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    serve.add_argument("--port", type=int, default=8080, help="port to listen on (0: any free port, printed)")
    serve.add_argument("--max-batch-size", type=int, default=32, help="most texts in one forward pass")
    serve.add_argument("--max-wait-ms", type=float, default=5.0,
                       help="how long a request waits for others to share its forward pass")
    serve.add_argument("--max-texts", type=int, default=256, help="most texts (or pairs) in one request")
    serve.add_argument("--max-text-chars", type=int, default=None,
                       help="longest text taken, in characters (default: 32 per token of the model's window, "
                            "e.g. 16,384 for 512 tokens; a head-tail or chunks model reads it all: the body's limit)")
    serve.add_argument("--max-body-bytes", type=int, default=4 * 1024 * 1024,
                       help="largest request body taken; a larger one is refused unread")
    serve.add_argument("--threshold", type=float, default=None,
                       help="multi-label: one score threshold in [0, 1] for every label (default: each label's, "
                            "tuned on validation), as predict's --threshold")
    serve.add_argument("--debug", action="store_true", help="show tracebacks")


def _export_parser(commands) -> None:
    export = commands.add_parser(
        "export", help="write an ONNX model (optionally int8) that ONNX Runtime runs", formatter_class=DEFAULTS_HELP,
        description="Export a trained folder (a LoRA one merged) to ONNX with its tokenizer and task files, "
                    "checked against torch; predict with --engine onnxruntime.")
    export.add_argument("--model", required=True, help="a seqtune output directory")
    export.add_argument("--format", choices=("onnx",), default="onnx", help="what to write")
    export.add_argument("--quantize", choices=("int8",), default=None,
                        help="int8 weights (dynamic quantization: activations quantized on the fly)")
    export.add_argument("--output", default=None,
                        help="the export folder (default: MODEL/onnx, or MODEL/onnx-int8 with --quantize int8)")
    export.add_argument("--debug", action="store_true", help="show tracebacks")


def _common(group) -> None:
    group.add_argument("--quiet", action="store_true", help="no progress bars; plain log lines")
    group.add_argument("--debug", action="store_true", help="show tracebacks")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="seqtune", description="Fine-tune transformer models for text classification and regression.",
        epilog="Examples:\n  seqtune train --task glue/mrpc\n  seqtune train --train data.csv "
               "--validation-split 0.1\n  seqtune predict --model runs/data --input new.csv --output out.csv\n"
               "  seqtune doctor", formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=_version())
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    from . import crossval, tune

    crossval.add_options(_train_parser(commands))
    tune.add_options(_train_parser(commands, "tune", "search hyperparameters with optuna (trials of train)",
                                   "Run a study of train runs with other hyperparameters (optuna: TPE sampler, "
                                   "median pruner); the best trial's model ends in the output folder."))
    predict = commands.add_parser("predict", help="label a file with a trained model", formatter_class=DEFAULTS_HELP)
    predict.add_argument("--model", required=True, help="a seqtune output directory (or any model folder)")
    predict.add_argument("--input", required=True, help="file to label: .csv .tsv .json .jsonl .parquet")
    predict.add_argument("--output", required=True, help="where to write: .csv .tsv .jsonl")
    predict.add_argument("--all-scores", action="store_true", help="add every class's probability")
    predict.add_argument("--threshold", type=float, default=None,
                         help="multi-label: one score threshold in [0, 1] for every label (default: each "
                              "label's, tuned on validation when the model was trained)")
    predict.add_argument("--text-column", action="append", default=None,
                         help="text column(s) (default: the ones the model was trained on)")
    predict.add_argument("--batch-size", type=int, default=32, help="rows per forward pass")
    predict.add_argument("--format", choices=FORMATS, default=None, help="input format (default: from the extension)")
    _engine_option(predict)
    _header_option(predict)
    _common(predict)
    evaluate = commands.add_parser("evaluate", help="metrics of a trained model on labelled data",
                                   formatter_class=DEFAULTS_HELP)
    evaluate.add_argument("--model", required=True, help="a seqtune output directory")
    evaluate.add_argument("--data", required=True, help="labelled file")
    evaluate.add_argument("--text-column", action="append", default=None,
                          help="text column(s) (default: the ones the model was trained on)")
    evaluate.add_argument("--label-column", action="append", default=None,
                          help="label column name or index (default: found by name or content); repeated: "
                               "a multi-label model's 0/1 columns")
    evaluate.add_argument("--batch-size", type=int, default=32, help="rows per forward pass")
    evaluate.add_argument("--errors", default=None, metavar="FILE",
                          help="also write every wrong row, most confident first (regression: every row, largest "
                               "error first) to FILE: .csv .tsv .jsonl")
    evaluate.add_argument("--format", choices=FORMATS, default=None,
                          help="input format (default: from the extension)")
    _engine_option(evaluate)
    _header_option(evaluate)
    _common(evaluate)
    doctor = commands.add_parser("doctor", help="explain this machine: torch, GPU, precision, what to fix")
    doctor.add_argument("--json", action="store_true", help="machine-readable output")
    doctor.add_argument("--output-dir", default=".", help="where free disk space is checked")
    doctor.add_argument("--debug", action="store_true", help="show tracebacks")
    _serve_parser(commands)
    _export_parser(commands)
    report = commands.add_parser("report", help="rebuild report.md and training_curves.png of a run")
    report.add_argument("output_dir", help="a seqtune output directory")
    report.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def _version() -> str:
    from . import __version__

    return f"seqtune {__version__}"


def main(argv: list[str] | None = None) -> int:
    from .errors import SeqtuneError, Stopped
    from .options import validate

    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    options = None
    try:
        options = parser.parse_args(argv)
        if options.command is None:
            parser.print_help()
            return 2
        config_only: set[str] = set()
        if options.command in ("train", "tune") and options.config:
            options, config_only = _with_config(parser, argv, options)
        # Every option checked before any data or model is loaded: a typo costs nothing.
        options = validate(options.command, options, config_only)
        return _run(options)
    except SeqtuneError as err:
        if getattr(options, "debug", False):
            raise
        prefix = "seqtune: " if isinstance(err, Stopped) else "seqtune: error: "
        print(f"{prefix}{err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:  # outside training (which says what there is to resume): nothing to resume
        print("seqtune: interrupted", file=sys.stderr)
        return 130


def _run(options: argparse.Namespace) -> int:
    if options.command == "train":
        from .run import run_train

        return run_train(options)
    if options.command == "tune":
        from .tune import run_tune

        return run_tune(options)
    if options.command in ("predict", "evaluate"):
        from . import inference

        return getattr(inference, f"run_{options.command}")(options)
    if options.command == "export":
        from .export import run_export

        return run_export(options)
    if options.command == "serve":
        from .serve import run_serve

        return run_serve(options)
    if options.command == "doctor":
        from .doctor import run_doctor

        return run_doctor(options)
    from .report import rebuild_report

    return rebuild_report(Path(options.output_dir))


def _with_config(parser: argparse.ArgumentParser, argv: list[str],
                 options: argparse.Namespace) -> tuple[argparse.Namespace, set[str]]:
    """YAML values become defaults of `train`, read as their flags would be; flags given on the command
    line still win. Returns the options and the names whose value came from the file alone."""
    from .errors import SeqtuneError
    from .options import check, subparser

    try:
        import yaml
    except ImportError:
        raise SeqtuneError("--config needs PyYAML: pip install pyyaml") from None
    path = Path(options.config)
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as err:
        raise SeqtuneError(f"--config {path}: not UTF-8 text (byte {err.start}); re-save it as UTF-8") from None
    except (OSError, yaml.YAMLError) as err:
        raise SeqtuneError(f"--config {path}: {str(err).splitlines()[0]}") from None
    if not isinstance(values, dict):
        raise SeqtuneError(f"--config {path}: expected a mapping of option: value")
    train = subparser(parser, options.command)
    actions = {a.dest: a for a in train._actions}
    defaults: dict[str, object] = {}
    for key, value in values.items():
        dest = str(key).replace("-", "_")
        if dest not in actions or dest in ("config", "help"):
            raise SeqtuneError(f"--config {path}: unknown option {key!r}; see seqtune {options.command} --help")
        if dest in defaults:  # batch-size and batch_size both: which one was meant?
            raise SeqtuneError(f"--config {path}: {key!r} is given twice (spelled with - and with _)")
        defaults[dest] = check(actions[dest], value, f"--config {path}: {key}")
    train.set_defaults(**defaults)
    merged = parser.parse_args(argv)
    given = _given(argv, options.command)
    for dest in defaults.keys() & given.keys():
        merged.__dict__[dest] = given[dest]  # a repeated flag replaces the file's list rather than adding to it
    return merged, set(defaults) - given.keys()


def _given(argv: list[str], command: str = "train") -> dict[str, object]:
    """The train (or tune) options the command line itself sets (no defaults)."""
    from .options import subparser

    parser = build_parser()
    for action in subparser(parser, command)._actions:
        action.default = argparse.SUPPRESS
    return {k: v for k, v in vars(parser.parse_args(argv)).items() if k != "command"}


if __name__ == "__main__":
    sys.exit(main())
