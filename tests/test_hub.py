"""push_to_hub: checked before any training (offline is one line, in bounded time), uploaded at the end."""

import time
from pathlib import Path

import pytest

from seqtune import SeqtuneError, Trainer, TrainingArguments, hub

from .conftest import tiny_bert, toy_rows


def _args(tmp_path, **overrides):
    values = dict(max_steps=2, per_device_train_batch_size=4, save_strategy="steps", save_steps=1,
                  report_to="none", disable_tqdm=True, push_to_hub=True, hub_model_id="me/tiny",
                  hub_token="hf_secret")
    values.update(overrides)
    return TrainingArguments(str(tmp_path / "out"), **values)


def test_push_to_hub_needs_a_model_id():
    with pytest.raises(SeqtuneError, match=r"push_to_hub=True needs hub_model_id, the repo to upload to"):
        TrainingArguments("out", push_to_hub=True)
    with pytest.raises(SeqtuneError, match="uploads the final model once, at the end of training; pass "
                                           "hub_strategy='end'"):
        TrainingArguments("out", push_to_hub=True, hub_model_id="me/x", hub_strategy="every_save")


def test_offline_mode_fails_before_any_training(tmp_path):
    trainer = Trainer(tiny_bert(vocab_size=64), _args(tmp_path), train_dataset=toy_rows(8))
    start = time.perf_counter()
    with pytest.raises(SeqtuneError, match="push_to_hub=True, but HF_HUB_OFFLINE is set"):
        trainer.train()  # HF_HUB_OFFLINE=1 in every test
    assert time.perf_counter() - start < 2 and trainer.state.global_step == 0
    assert not (tmp_path / "out").exists()  # nothing trained, nothing written


def test_an_unreachable_hub_fails_before_any_training_in_bounded_time(tmp_path, unreachable_network):
    trainer = Trainer(tiny_bert(vocab_size=64), _args(tmp_path), train_dataset=toy_rows(8))
    with pytest.raises(SeqtuneError, match=r"the Hugging Face hub \(huggingface.co\) is unreachable from this "
                                           r"machine, so the final model could not be uploaded to me/tiny"):
        trainer.train()
    assert unreachable_network == [hub.REACH_TIMEOUT] and trainer.state.global_step == 0


def test_no_token_fails_before_any_training(tmp_path, monkeypatch):
    import huggingface_hub

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    trainer = Trainer(tiny_bert(vocab_size=64), _args(tmp_path, hub_token=None), train_dataset=toy_rows(8))
    with pytest.raises(SeqtuneError, match="push_to_hub=True needs a Hugging Face token with write access"):
        trainer.train()
    assert trainer.state.global_step == 0


class FakeHfApi:
    """Records what seqtune asks of huggingface_hub.HfApi (no network)."""

    calls: list = []

    def __init__(self, token=None):
        self.calls.append(("init", token))

    def create_repo(self, repo_id, private=None, exist_ok=False):
        self.calls.append(("create_repo", repo_id, private, exist_ok))
        return type("RepoUrl", (), {"repo_id": f"{repo_id}"})()

    def create_branch(self, repo_id, branch, exist_ok=False):
        self.calls.append(("create_branch", repo_id, branch, exist_ok))

    def upload_folder(self, repo_id, folder_path, commit_message, revision, ignore_patterns):
        files = sorted(p.relative_to(folder_path).as_posix() for p in Path(folder_path).rglob("*") if p.is_file())
        uploaded = [f for f in files if not any(Path(f).match(pattern) or f.startswith(pattern.rstrip("*/"))
                                                for pattern in ignore_patterns)]
        self.calls.append(("upload_folder", repo_id, commit_message, revision, uploaded))
        return type("CommitInfo", (), {"commit_url": f"https://huggingface.co/{repo_id}/commit/abc"})()


def test_the_final_model_is_uploaded_at_the_end(tmp_path, monkeypatch, capsys):
    import huggingface_hub

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(hub, "reachable", lambda host, timeout=hub.REACH_TIMEOUT: True)
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHfApi)
    FakeHfApi.calls = []
    args = _args(tmp_path, hub_private_repo=True, hub_revision="tiny-run")
    Trainer(tiny_bert(vocab_size=64), args, train_dataset=toy_rows(8)).train()
    init, create, branch, upload = FakeHfApi.calls
    assert init == ("init", "hf_secret") and create == ("create_repo", "me/tiny", True, True)
    assert branch == ("create_branch", "me/tiny", "tiny-run", True)
    assert upload[:4] == ("upload_folder", "me/tiny", "End of training", "tiny-run")
    assert {"model.safetensors", "config.json", "training_args.json"} <= set(upload[4])
    assert not [f for f in upload[4] if f.startswith("checkpoint-")]  # checkpoints stay local
    assert (tmp_path / "out" / "checkpoint-2").is_dir()
    assert "uploaded the final model: https://huggingface.co/me/tiny/commit/abc" in capsys.readouterr().out
    assert '"hub_token": "<HUB_TOKEN>"' in (tmp_path / "out" / "training_args.json").read_text()


def test_a_failed_upload_is_one_sentence_and_keeps_the_model(tmp_path, monkeypatch):
    import huggingface_hub

    class Refused(FakeHfApi):
        def create_repo(self, repo_id, private=None, exist_ok=False):
            raise PermissionError("403 Forbidden: you cannot write to me/tiny\nmore details")

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(hub, "reachable", lambda host, timeout=hub.REACH_TIMEOUT: True)
    monkeypatch.setattr(huggingface_hub, "HfApi", Refused)
    trainer = Trainer(tiny_bert(vocab_size=64), _args(tmp_path), train_dataset=toy_rows(8))
    with pytest.raises(SeqtuneError, match=r"^push_to_hub: uploading the final model to me/tiny failed \(403 "
                                           r"Forbidden: you cannot write to me/tiny\); the model is saved in"):
        trainer.train()
    assert (tmp_path / "out" / "model.safetensors").is_file()
