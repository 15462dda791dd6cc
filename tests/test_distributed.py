"""torchrun with 2 CPU processes (gloo) against 1 process: same training, exact evaluation, resume."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

WORKER = Path(__file__).resolve().parent / "dist_worker.py"


def launch(nproc, output_dir, *args, timeout=240, dist_timeout=60):
    command = [sys.executable, WORKER, str(output_dir), *args] if nproc == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
        str(WORKER), str(output_dir), *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SEQTUNE_DIST_TIMEOUT": str(dist_timeout)}
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=timeout, env=env)
    if result.returncode != 0 and _aborted_in_teardown(result, nproc):
        # Every rank finished its work and said so; gloo then rarely aborts one rank while the process
        # exits (std::terminate on a worker thread, seen once in CI). The outputs are checked below.
        result.returncode = 0
    return result


def why(result):
    """What a failed launch said: the ranks' last lines and the start of stderr (torchrun's report is last)."""
    return result.stdout[-2000:] + "\n--- stderr ---\n" + result.stderr[:2500] + "\n...\n" + result.stderr[-1000:]


def _aborted_in_teardown(result, nproc):
    finished = all(f"rank {rank}: worker done" in result.stdout for rank in range(nproc))
    return finished and "terminate called without an active exception" in result.stderr


def weights(output_dir):
    return load_file(str(Path(output_dir) / "final" / "model.safetensors"))


def assert_close(a, b, atol=2e-5):
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=atol, rtol=1e-4, msg=key)


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    result = launch(2, out)
    assert result.returncode == 0, why(result)
    return out, result


def test_two_processes_match_one_process_with_the_same_global_batch(two_process_run, tmp_path):
    ddp, result = two_process_run
    single = launch(1, tmp_path, "--accumulation", "2")
    assert single.returncode == 0, why(single)
    assert_close(weights(ddp), weights(tmp_path))
    assert json.loads((ddp / "metrics.json").read_text())["test_accuracy"] == pytest.approx(
        json.loads((tmp_path / "metrics.json").read_text())["test_accuracy"])
    # Rank 0 alone prints and writes.
    assert result.stdout.count("seqtune: 64 examples") == 1
    assert "effective batch 16 = 8 per device x 2 processes x 1 accumulation" in result.stdout
    assert (ddp / "rank1.txt").is_file() and len(list(ddp.glob("checkpoint-*"))) == 1


def test_distributed_predict_is_exact_and_in_order(tmp_path):
    """37 examples (odd) over 2 processes: the same predictions, in dataset order, and the same metrics."""
    two = launch(2, tmp_path / "two", "--predict-only", timeout=120)
    assert two.returncode == 0, why(two)
    one = launch(1, tmp_path / "one", "--predict-only", timeout=120)
    assert one.returncode == 0, why(one)
    predictions = np.load(tmp_path / "two" / "predictions.npy")
    assert predictions.shape == (37, 2)
    np.testing.assert_array_equal(np.load(tmp_path / "one" / "predictions.npy"), predictions)
    np.testing.assert_array_equal(np.load(tmp_path / "one" / "labels.npy"), np.load(tmp_path / "two" / "labels.npy"))
    metrics_one = json.loads((tmp_path / "one" / "metrics.json").read_text())
    metrics_two = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert metrics_two["test_loss"] == pytest.approx(metrics_one["test_loss"], rel=1e-6)
    assert metrics_two["test_accuracy"] == metrics_one["test_accuracy"]


@pytest.mark.parametrize("first, then", [(2, 1), (1, 2)])
def test_checkpoint_resumes_with_another_world_size(two_process_run, tmp_path, first, then):
    ddp, _ = two_process_run
    accumulation = {1: "2", 2: "1"}
    part = launch(first, tmp_path, "--max-steps", "3", "--accumulation", accumulation[first])
    assert part.returncode == 0, why(part)
    (tmp_path / "final").rename(tmp_path / "partial")
    rest = launch(then, tmp_path, "--max-steps", "8", "--accumulation", accumulation[then], "--resume")
    assert rest.returncode == 0, why(rest)
    assert "resumed from" in rest.stdout and "at step 3" in rest.stdout
    assert_close(weights(tmp_path), weights(ddp))


def test_a_failing_rank_stops_the_job_with_its_error(tmp_path):
    # The survivor waits in a collective at most SEQTUNE_DIST_TIMEOUT seconds; a hang fails at `timeout`.
    result = launch(2, tmp_path, "--fail-at-step", "3", "--fail-rank", "1", timeout=180, dist_timeout=15)
    assert result.returncode != 0
    assert "injected failure on rank 1 at step 3" in result.stdout + result.stderr


def test_sigterm_to_one_rank_stops_every_rank_after_the_same_step(tmp_path):
    result = launch(2, tmp_path, "--sigterm-at-step", "3", "--fail-rank", "1", timeout=180, dist_timeout=30)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    for rank in (0, 1):
        assert f"rank {rank}: seqtune: stopped by SIGTERM at step 3;" in output, output[-3000:]
    assert (tmp_path / "checkpoint-3" / "trainer_state.json").is_file()
    assert "[rank0]:" not in output and "[rank1]:" not in output  # no rank's traceback (torchrun's own stays)


def test_fsdp2_matches_ddp_saves_shards_and_resumes(two_process_run, tmp_path):
    from transformers import AutoModelForSequenceClassification

    ddp, _ = two_process_run
    whole = launch(2, tmp_path / "whole", "--fsdp")
    assert whole.returncode == 0, why(whole)
    assert_close(weights(tmp_path / "whole"), weights(ddp))
    checkpoint = tmp_path / "whole" / "checkpoint-8"
    assert (checkpoint / "sharded" / ".metadata").is_file() and not (checkpoint / "optimizer.pt").exists()
    consolidated = AutoModelForSequenceClassification.from_pretrained(checkpoint)
    assert torch.equal(consolidated.classifier.weight, weights(tmp_path / "whole")["classifier.weight"])
    part = launch(2, tmp_path / "resumed", "--fsdp", "--max-steps", "3")
    assert part.returncode == 0, why(part)
    rest = launch(2, tmp_path / "resumed", "--fsdp", "--max-steps", "8", "--resume")
    assert rest.returncode == 0, why(rest)
    assert "resumed from" in rest.stdout
    assert_close(weights(tmp_path / "resumed"), weights(ddp))


@pytest.mark.parametrize("sharding", [[], ["--fsdp"]], ids=["ddp", "fsdp2"])
def test_gradient_checkpointing_matches_the_run_without(two_process_run, tmp_path, sharding):
    ddp, _ = two_process_run
    result = launch(2, tmp_path, "--gradient-checkpointing", *sharding)
    assert result.returncode == 0, why(result)
    assert "(gradient checkpointing: patched attention" in result.stdout
    assert_close(weights(tmp_path), weights(ddp))
