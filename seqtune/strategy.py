"""When a training step logs, evaluates and saves: the strategies of TrainingArguments, as transformers'
DefaultFlowCallback reads them (eval_delay included)."""

from __future__ import annotations

import math

from .args import TrainingArguments
from .callbacks import TrainerControl
from .state import TrainerState


def set_flags(args: TrainingArguments, state: TrainerState, control: TrainerControl, end_of_epoch: bool) -> None:
    """What the strategies ask of this step, before on_step_end (where callbacks may ask more)."""
    step = state.global_step
    done = step >= state.max_steps
    control.should_log |= (due(args.logging_strategy, args.logging_steps, state, end_of_epoch) or done
                           or (args.logging_first_step and step == 1))
    control.should_evaluate |= (due(args.eval_strategy, args.eval_steps, state, end_of_epoch)
                                or (done and args.eval_strategy == "epoch")) and not evaluation_delayed(args, state)
    # The last step is always kept (nothing lost), whatever the strategy but "no".
    control.should_save |= due(args.save_strategy, args.save_steps, state, end_of_epoch) or (
        done and args.save_strategy != "no")
    control.should_training_stop |= done


def due(strategy: str, every: float, state: TrainerState, end_of_epoch: bool) -> bool:
    """Whether `strategy` asks for this step: every epoch's end, or every `every` steps (a fraction of all if < 1)."""
    if strategy == "epoch":
        return end_of_epoch
    if strategy == "steps":
        interval = max(1, math.ceil(every * state.max_steps)) if every < 1 else int(every)
        return state.global_step % interval == 0
    return False


def evaluation_delayed(args: TrainingArguments, state: TrainerState) -> bool:
    """eval_delay: no evaluation before that many epochs (eval_strategy='epoch') or steps ('steps')."""
    reached = state.epoch if args.eval_strategy == "epoch" else state.global_step
    return reached < args.eval_delay
