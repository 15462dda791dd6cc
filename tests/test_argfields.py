"""Every field of the installed transformers.TrainingArguments is in seqtune's registry, and does what it says."""

import dataclasses

import pytest

from seqtune import SeqtuneError, TrainingArguments
from seqtune.argfields import ARGS, BY_NAME, DOC_PATH, LEGACY, SEQTUNE, TRANSFORMERS, markdown


def _transformers_fields():
    import transformers

    return {f.name: f for f in dataclasses.fields(transformers.TrainingArguments) if f.init}


def _default(f):
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else dataclasses.MISSING


def test_every_transformers_field_is_in_the_registry_and_nothing_else_claims_to_be():
    theirs = _transformers_fields()
    missing = sorted(set(theirs) - set(BY_NAME))
    assert not missing, f"transformers fields missing from seqtune/argfields.py: {missing}"
    claimed = sorted(a.name for a in ARGS if a.origin == TRANSFORMERS and a.name not in theirs)
    assert not claimed, f"registered as transformers fields but transformers has no such field: {claimed}"
    assert not [a.name for a in ARGS if a.origin in (LEGACY, SEQTUNE) and a.name in theirs]
    assert len(BY_NAME) == len(ARGS)  # no name listed twice


def test_implemented_fields_exist_with_transformers_default_unless_noted():
    theirs = _transformers_fields()
    ours = {f.name: f for f in dataclasses.fields(TrainingArguments)}
    for arg in ARGS:
        if not arg.implemented:
            continue
        assert arg.name in ours, f"{arg.name} is registered as implemented but is not a TrainingArguments field"
        if arg.origin != TRANSFORMERS or arg.own_default:
            continue
        expected = _default(theirs[arg.name])
        assert _default(ours[arg.name]) == getattr(expected, "value", expected), arg.name


def test_own_defaults_really_differ_and_say_so():
    theirs = _transformers_fields()
    ours = {f.name: f for f in dataclasses.fields(TrainingArguments)}
    for arg in ARGS:
        if arg.own_default and arg.origin == TRANSFORMERS:
            assert _default(ours[arg.name]) != _default(theirs[arg.name]), arg.name
            assert "(transformers: " in arg.text, arg.name  # the note says transformers' default


@pytest.mark.parametrize("arg", [a for a in ARGS if not a.implemented], ids=lambda a: a.name)
def test_refused_fields_pass_at_their_default_and_say_one_sentence_otherwise(arg, tmp_path):
    args = TrainingArguments(str(tmp_path), **{arg.name: arg.default})
    assert getattr(args, arg.name) == arg.default  # a script may read it back
    other = not arg.default if isinstance(arg.default, bool) else "something-else"
    with pytest.raises(SeqtuneError) as info:
        TrainingArguments(str(tmp_path), **{arg.name: other})
    message = str(info.value)
    assert message.startswith(f"TrainingArguments: {arg.name}=") and arg.text in message
    assert "\n" not in message


def test_refused_defaults_are_transformers_defaults():
    theirs = _transformers_fields()
    for arg in ARGS:
        if not arg.implemented and arg.origin == TRANSFORMERS:
            expected = _default(theirs[arg.name])
            assert arg.default == getattr(expected, "value", expected), arg.name


def test_a_transformers_argument_set_accepted_whole(tmp_path):
    """transformers' own TrainingArguments, field by field at its defaults, builds seqtune's (a script that
    spells every default out runs)."""
    import transformers

    theirs = transformers.TrainingArguments(str(tmp_path), report_to="none")
    values = {f.name: getattr(theirs, f.name) for f in dataclasses.fields(theirs) if f.init}
    for name, value in list(values.items()):
        arg = BY_NAME[name]
        if not arg.implemented:
            values[name] = arg.default  # transformers' __post_init__ rewrites a few (debug -> [], ...)
        elif arg.own_default or value is None:
            values.pop(name)  # seqtune's default; None where transformers resolves later
    values.pop("gradient_checkpointing_kwargs", None)
    args = TrainingArguments(**values)
    assert args.optim == "adamw_torch_fused" and args.lr_scheduler_type == "linear"


def test_legacy_names_run_at_their_default(tmp_path):
    TrainingArguments(str(tmp_path), push_to_hub=False, fp16_backend="auto", no_cuda=False, save_safetensors=True)
    with pytest.raises(SeqtuneError, match=r"no_cuda=True is a transformers 4 name .*; use use_cpu=True"):
        TrainingArguments(str(tmp_path), no_cuda=True)


def test_docs_table_is_generated_from_the_registry():
    assert DOC_PATH.read_text(encoding="utf-8") == markdown(), "run: python -m seqtune.argfields"
    for arg in ARGS:
        assert f"| `{arg.name}` |" in markdown()


def test_spellings_transformers_reads_as_the_default_pass(tmp_path):
    """transformers' __post_init__ reads include_num_input_tokens_seen=False as "no" and accelerator_config=None
    as AcceleratorConfig(): those spellings are the default; a refusal names the value given."""
    from transformers.trainer_pt_utils import AcceleratorConfig

    for value in (False, "no"):
        TrainingArguments(str(tmp_path), include_num_input_tokens_seen=value)
    TrainingArguments(str(tmp_path), accelerator_config=AcceleratorConfig())
    TrainingArguments(str(tmp_path), accelerator_config=dataclasses.asdict(AcceleratorConfig()))
    TrainingArguments(str(tmp_path), debug=None)
    with pytest.raises(SeqtuneError, match=r"^TrainingArguments: include_num_input_tokens_seen=True is not supported"):
        TrainingArguments(str(tmp_path), include_num_input_tokens_seen=True)
    with pytest.raises(SeqtuneError, match=r"^TrainingArguments: accelerator_config=\{'split_batches': True\} is not"):
        TrainingArguments(str(tmp_path), accelerator_config={"split_batches": True})
    with pytest.raises(SeqtuneError, match=r"^TrainingArguments: use_cache=None is not supported by seqtune"):
        TrainingArguments(str(tmp_path), use_cache=None)
