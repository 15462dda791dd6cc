"""`seqtune serve`: requests parsed and refused in one line (never a 5xx), concurrent requests batched
without changing their answers, answers equal to `seqtune predict`, a clean stop on SIGTERM, bad
options, and a small load test. Everything listens on 127.0.0.1 only.

SEQTUNE_LONG_TESTS=1 runs a longer Hypothesis profile."""

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqtune.batching import Batcher
from seqtune.cli import main
from seqtune.serve import FIELDS, BadRequest, Inputs, Limits, _body, create_app, parse_request
from seqtune.task import TaskSpec

from .conftest import ROOT, tiny_bert

LONG = os.environ.get("SEQTUNE_LONG_TESTS") == "1"
TOPICS = ["food", "sports", "tech"]
TEXTS = ["the soup was cold", "a great match today", "my laptop crashed again", "fresh bread and cheese",
         "the coach left the team", "a new phone chip", "salad", "we saw some very new code and a server"]


def _model_folder(folder, embedded_tokenizer, task_type, labels, columns):
    model = tiny_bert(num_labels=len(labels) or 1, seed=3)
    if labels:
        model.config.id2label = dict(enumerate(labels))
        model.config.label2id = {name: i for i, name in enumerate(labels)}
    else:
        model.config.problem_type = "regression"
    model.save_pretrained(folder)
    embedded_tokenizer.save_pretrained(folder)
    TaskSpec(name=folder.name, task_type=task_type, label_names=labels, text_columns=columns).save(folder)
    return folder


@pytest.fixture(scope="module")
def models(tmp_path_factory, embedded_tokenizer):
    """Three tiny random models: 3 topics from one text, paraphrase from a pair, a score from one text."""
    root = tmp_path_factory.mktemp("serve-models")
    return {"topics": _model_folder(root / "topics", embedded_tokenizer, "classification", TOPICS, ["text"]),
            "pairs": _model_folder(root / "pairs", embedded_tokenizer, "classification",
                                   ["not_equivalent", "equivalent"], ["sentence1", "sentence2"]),
            "scores": _model_folder(root / "scores", embedded_tokenizer, "regression", [], ["text"])}


@pytest.fixture(scope="module")
def predictors(models):
    from seqtune.predictor import Predictor

    return {name: Predictor(folder) for name, folder in models.items()}


def _request(app, method, path, content=None, headers=None):
    """One request through the ASGI app (no socket): (status, JSON body)."""
    import httpx

    async def go():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            return await client.request(method, path, content=content, headers=headers)

    response = asyncio.run(go())
    return response.status_code, response.json()


@pytest.fixture(scope="module")
def served(predictors, models):
    """The topics model's app with its batcher running (requests go through the ASGI interface)."""
    batcher = Batcher(predictors["topics"], max_batch_size=32, max_wait_ms=1)
    batcher.start()
    yield create_app(predictors["topics"], batcher, Limits(max_texts=16, max_text_chars=200, max_body_bytes=4096),
                     str(models["topics"]))
    batcher.close()


def _same_rows(answer, expected):
    assert len(answer) == len(expected)
    for got, want in zip(answer, expected, strict=True):
        assert got.keys() == want.keys()
        for key, value in want.items():
            if isinstance(value, float):
                assert abs(got[key] - value) < 1e-5, (key, got, want)
            else:
                assert got[key] == value


# --- parsing and refusing -------------------------------------------------------------------------------

LIMITS = Limits(max_texts=4, max_text_chars=50, max_body_bytes=200_000)


@pytest.mark.parametrize("body, pairs, expected", [
    ({"text": "hi"}, False, Inputs(["hi"], None, False)),
    ({"texts": ["a", "b"], "all_scores": True}, False, Inputs(["a", "b"], None, True)),
    ({"text": "a", "text_pair": "b"}, True, Inputs(["a"], ["b"], False)),
    ({"pairs": [["a", "b"], ["c", "d"]]}, None, Inputs(["a", "c"], ["b", "d"], False)),
    ({"texts": ["a"]}, None, Inputs(["a"], None, False)),
])
def test_the_four_request_forms(body, pairs, expected):
    assert parse_request(json.dumps(body).encode(), LIMITS, pairs) == expected


@pytest.mark.parametrize("body, pairs, status, message", [
    (b"\xff\xfe{}", False, 400, "the body is not UTF-8 text (byte 0)"),
    (b"{\"text\": ", False, 400, "the body is not JSON: Expecting value"),
    (b"[" * 100_000, False, 400, "the body is not JSON"),
    (b"1" * 5000, False, 400, "the body holds a number of more than 4,300 digits"),
    (b"x" * 200_001, False, 413, "the body is 200,001 bytes; this server takes at most 200,000 (--max-body-bytes)"),
    (b'["hi"]', False, 422, "the body must be a JSON object"),
    (b"{}", False, 422, "send exactly one of text, texts or pairs"),
    (b'{"text": "a", "texts": ["b"]}', False, 422, "send exactly one of text, texts or pairs (got text, texts)"),
    (b'{"text": "a", "all_scores": 1' + b"0" * 5000 + b"}", None, 400, "the body holds a number of more than"),
    (b'{"txt": "a"}', False, 422, "txt: unknown field; the fields are text, text_pair, texts, pairs, all_scores"),
    (b'{"text": 3}', False, 422, "text: Input should be a valid string"),
    (b'{"texts": "a"}', False, 422, "texts: Input should be a valid list"),
    (b'{"texts": ["a", null]}', False, 422, "texts.1: Input should be a valid string"),
    (b'{"text": "a", "all_scores": "yes"}', False, 422, "all_scores: Input should be a valid boolean"),
    (b'{"pairs": [["a"]]}', True, 422, "pairs.0.1: Field required"),
    (b'{"texts": []}', False, 422, "texts: the list is empty; send at least one"),
    (b'{"texts": ["a", "b", "c", "d", "e"]}', False, 422, "texts: 5 inputs; this server takes at most 4"),
    (b'{"texts": ["a", "  "]}', False, 422, "texts.1: the text is empty"),
    (json.dumps({"text": "x" * 51}).encode(), False, 422, "text: 51 characters; this server takes at most 50"),
    (b'{"text": "a\\ud800"}', False, 422, "text: not valid Unicode (a lone surrogate at character 1)"),
    (b'{"texts": ["a"], "text_pair": "b"}', None, 422, "text_pair goes with text"),
    (b'{"text": "a"}', True, 422, "this model reads text pairs"),
    (b'{"pairs": [["a", "b"]]}', False, 422, "this model reads single texts"),
    (b'{"pairs": [["a", ""]]}', True, 422, "pairs.0.1: the text is empty"),
    (b'{"text": "a", "text_pair": " "}', True, 422, "text_pair: the text is empty"),
    (b'{"\\n": null}', True, 422, '"\\n": unknown field; the fields are text'),
    (b'{"' + b"k" * 100 + b'": 1}', None, 422, '"' + "k" * 36 + '..."' + ": unknown field"),
])
def test_bad_requests_are_one_line_4xx(body, pairs, status, message):
    with pytest.raises(BadRequest) as refused:
        parse_request(body, LIMITS, pairs)
    assert refused.value.status == status
    assert str(refused.value).startswith(message) and "\n" not in str(refused.value)


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=60),
                     lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=8), inner,
                                                                                   max_size=5), max_leaves=20)
_fields = st.dictionaries(st.sampled_from(FIELDS + ("other",)), _json, max_size=4)
_texts = st.text(min_size=0, max_size=70)
_likely = st.one_of(st.fixed_dictionaries({"text": _texts}), st.fixed_dictionaries({"texts": st.lists(_texts)}),
                    st.fixed_dictionaries({"pairs": st.lists(st.lists(_texts, max_size=3))}),
                    st.fixed_dictionaries({"text": _texts, "text_pair": _texts, "all_scores": _json}))


@settings(max_examples=2000 if LONG else 150, deadline=None)
@given(st.one_of(_json, _fields, _likely).map(lambda v: json.dumps(v).encode()) | st.binary(max_size=200),
       st.sampled_from([True, False, None]))
def test_any_body_is_parsed_or_refused_with_a_4xx(body, pairs):
    try:
        inputs = parse_request(body, LIMITS, pairs)
    except BadRequest as err:
        assert err.status in (400, 413, 422) and str(err) and "\n" not in str(err)
        return
    assert 1 <= len(inputs.texts) <= LIMITS.max_texts and isinstance(inputs.all_scores, bool)
    if pairs is not None:  # the model's kind decides which requests are taken
        assert (inputs.pairs is not None) == pairs
    for text in inputs.texts + (inputs.pairs or []):
        assert text.strip() and len(text) <= LIMITS.max_text_chars
        text.encode("utf-8")


def test_a_large_body_is_refused_from_its_length_unread():
    class Unread:
        headers = {"content-length": "10000000000"}

        def stream(self):
            pytest.fail("the body was read")

    with pytest.raises(BadRequest, match="the body is 10,000,000,000 bytes; this server takes at most 4,096") as err:
        asyncio.run(_body(Unread(), 4096))
    assert err.value.status == 413


def test_a_client_gone_mid_body_is_a_refusal_not_a_server_error(served):
    sent = []

    async def go():
        messages = iter([{"type": "http.request", "body": b'{"text": "half', "more_body": True},
                          {"type": "http.disconnect"}])

        async def receive():
            return next(messages)

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                 "scheme": "http", "path": "/predict", "raw_path": b"/predict", "query_string": b"",
                 "root_path": "", "headers": [(b"content-type", b"application/json")], "server": ("127.0.0.1", 80),
                 "client": ("127.0.0.1", 5000)}
        await served(scope, receive, send)  # a server error would be raised here, for uvicorn to log

    asyncio.run(go())
    assert sent[0]["status"] == 400 and b"the client went away" in sent[1]["body"]


def test_a_streamed_body_is_cut_off_at_the_limit(served):
    sent = []

    async def chunks():  # no Content-Length: chunked, as a client streaming a file sends it
        for _ in range(100):
            sent.append(1)
            yield b'{"texts": ["' + b"a" * 1000

    status, body = _request(served, "POST", "/predict", content=chunks())
    assert status == 413 and body["detail"] == ("the body passes 4,096 bytes; this server takes at most 4,096 "
                                                "(--max-body-bytes)")


@settings(max_examples=300 if LONG else 30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(_json, _fields, _likely).map(lambda v: json.dumps(v).encode()) | st.binary(max_size=100))
def test_hostile_bodies_through_the_app_never_get_a_5xx(served, body):
    status, answer = _request(served, "POST", "/predict", content=body)
    assert status in (200, 400, 413, 422), answer
    if status != 200:
        assert isinstance(answer["detail"], str) and "\n" not in answer["detail"]


# --- batching -------------------------------------------------------------------------------------------

class Recorder:
    """A stand-in Predictor: a text's "logits" are its length and its pair's; every call is recorded."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.calls: list[list[str]] = []
        self.threads: set[str] = set()
        self.fail_on = fail_on

    def logits(self, texts, pairs=None):
        self.calls.append(list(texts))
        self.threads.add(threading.current_thread().name)
        if self.fail_on in texts:
            raise ValueError(f"cannot read {self.fail_on!r}")
        return np.array([[len(t), len(p) if pairs else -1] for t, p in zip(texts, pairs or texts, strict=True)])

    def rows(self, logits, all_scores=False):
        return [{"length": int(a), "pair": int(b), "all": all_scores} for a, b in logits]


def _submit_together(batcher, requests):
    """Each request submitted from its own thread at the same moment; their answers (or errors) in order."""
    start = threading.Barrier(len(requests))
    futures = [None] * len(requests)

    def send(i, texts, pairs, all_scores):
        start.wait()
        futures[i] = batcher.submit(texts, pairs, all_scores)

    threads = [threading.Thread(target=send, args=(i, *r)) for i, r in enumerate(requests)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [f.exception(10) or f.result(10) for f in futures]


def test_concurrent_requests_share_forward_passes_up_to_the_batch_size():
    recorder = Recorder()
    batcher = Batcher(recorder, max_batch_size=8, max_wait_ms=300)
    batcher.start()
    requests = [(["x" * (i + 1)] * (1 + i % 3), None, i % 2 == 0) for i in range(24)]
    answers = _submit_together(batcher, requests)
    batcher.close()
    for (texts, _, all_scores), answer in zip(requests, answers, strict=True):
        assert answer == [{"length": len(t), "pair": -1, "all": all_scores} for t in texts]
    assert max(len(call) for call in recorder.calls) <= 8
    assert len(recorder.calls) <= 8 < len(requests)  # 48 texts: 6 full passes, a little slack for arrival
    assert batcher.forward_passes == len(recorder.calls) and batcher.texts_done == 48
    assert recorder.threads == {"seqtune-batcher"}  # one thread runs the model


def test_pairs_and_single_texts_go_in_separate_passes_and_one_failure_stays_alone():
    recorder = Recorder(fail_on="bad")
    batcher = Batcher(recorder, max_batch_size=64, max_wait_ms=300)
    batcher.start()
    answers = _submit_together(batcher, [(["ab"], None, False), (["abc"], ["d"], False), (["bad"], None, False),
                                         (["e"], ["fgh"], True)])
    batcher.close()
    assert answers[0] == [{"length": 2, "pair": -1, "all": False}]
    assert answers[1] == [{"length": 3, "pair": 1, "all": False}]
    assert isinstance(answers[2], ValueError) and "cannot read 'bad'" in str(answers[2])
    assert answers[3] == [{"length": 1, "pair": 3, "all": True}]
    # one pass for the single texts, one for the pairs; the failed pass again request by request
    assert sorted(map(sorted, recorder.calls)) == [["ab"], ["ab", "bad"], ["abc", "e"], ["bad"]]


def test_close_answers_what_is_queued_and_a_cancelled_request_costs_nothing():
    recorder = Recorder()
    batcher = Batcher(recorder, max_batch_size=4, max_wait_ms=200)
    first = batcher.submit(["aaaa"])
    gone = batcher.submit(["bb"])
    assert gone.cancel()  # its client went away before the worker started
    queued = [batcher.submit(["c" * n]) for n in range(1, 6)]
    batcher.start()
    batcher.close()
    assert first.result(1) == [{"length": 4, "pair": -1, "all": False}]
    assert [q.result(1)[0]["length"] for q in queued] == [1, 2, 3, 4, 5]
    assert "bb" not in sum(recorder.calls, [])
    with pytest.raises(RuntimeError, match="closed"):
        batcher.submit(["late"])


def test_batched_answers_over_http_equal_the_offline_prediction(predictors, models):
    import httpx

    predictor = predictors["topics"]
    batcher = Batcher(predictor, max_batch_size=64, max_wait_ms=400)
    app = create_app(predictor, batcher, Limits(), str(models["topics"]))
    bodies = [{"texts": TEXTS[i % 8: i % 8 + 1 + i % 3], "all_scores": i % 2 == 0} for i in range(16)]

    async def go():
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
                return await asyncio.gather(*(client.post("/predict", json=body) for body in bodies))

    responses = asyncio.run(go())
    assert batcher.forward_passes <= 2 < len(bodies)  # gathered together (one pass, or two if the window split)
    for body, response in zip(bodies, responses, strict=True):
        assert response.status_code == 200
        _same_rows(response.json()["predictions"], predictor.predict(body["texts"], all_scores=body["all_scores"]))


@pytest.mark.parametrize("long_text, expected", [("truncate", 32 * 128), ("head-tail", 10_000), ("chunks", 10_000)])
def test_a_model_that_reads_every_token_takes_texts_up_to_the_bodys_limit(long_text, expected):
    from types import SimpleNamespace

    from seqtune.serve import default_text_chars

    predictor = SimpleNamespace(spec=SimpleNamespace(long_text=long_text), max_length=128)
    assert default_text_chars(predictor, max_body_bytes=10_000) == expected


def test_threshold_serves_what_predict_threshold_writes(tmp_path, embedded_tokenizer):
    from seqtune.predictor import Predictor
    from seqtune.serve import use_threshold

    folder = _model_folder(tmp_path / "multi", embedded_tokenizer, "multi_label", TOPICS, ["text"])
    texts = ["fresh bread and soup", "the match went on", "a new laptop", "nothing at all here"]
    predictor = Predictor(folder)
    expected = {threshold: predictor.spec.prediction_columns(predictor.logits(texts), threshold=threshold)
                for threshold in (0.2, 0.8)}
    for threshold, columns in expected.items():
        use_threshold(predictor, threshold)
        batcher = Batcher(predictor, max_batch_size=8, max_wait_ms=1)
        batcher.start()
        try:
            app = create_app(predictor, batcher, Limits(), str(folder))
            status, answer = _request(app, "POST", "/predict", content=json.dumps({"texts": texts}).encode())
            _, health = _request(app, "GET", "/health")
        finally:
            batcher.close()
        assert status == 200 and [row["predicted_labels"] for row in answer["predictions"]] == \
            columns["predicted_labels"]
        assert health["thresholds"] == dict.fromkeys(TOPICS, threshold)
    assert expected[0.2]["predicted_labels"] != expected[0.8]["predicted_labels"]


def test_health_and_the_openapi_page(served, models):
    status, health = _request(served, "GET", "/health")
    assert status == 200 and health["labels"] == TOPICS and health["task_type"] == "classification"
    assert health["engine"] == "torch" and health["inputs"] == "single texts" and health["max_texts"] == 16
    status, schema = _request(served, "GET", "/openapi.json")
    body = schema["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert status == 200 and set(body["properties"]) == set(FIELDS)
    assert {"400", "413", "422"} <= set(schema["paths"]["/predict"]["post"]["responses"])
    status, _ = _request(served, "GET", "/nowhere")
    assert status == 404


@pytest.mark.parametrize("name", ["topics", "pairs", "scores"])
def test_answers_equal_what_seqtune_predict_writes(name, models, predictors, tmp_path):
    predictor = predictors[name]
    columns = {"text": TEXTS} if name != "pairs" else {"sentence1": TEXTS, "sentence2": TEXTS[::-1]}
    pd.DataFrame(columns).to_csv(tmp_path / "in.csv", index=False)
    assert main(["predict", "--model", str(models[name]), "--input", str(tmp_path / "in.csv"), "--output",
                 str(tmp_path / "out.csv"), "--all-scores", "--quiet"]) == 0
    written = pd.read_csv(tmp_path / "out.csv").drop(columns=list(columns)).to_dict("records")
    batcher = Batcher(predictor, max_batch_size=3, max_wait_ms=1)  # batches unlike predict's
    batcher.start()
    app = create_app(predictor, batcher, Limits(), str(models[name]))
    body = {"texts": TEXTS} if name != "pairs" else {"pairs": [list(p) for p in zip(TEXTS, TEXTS[::-1], strict=True)]}
    status, answer = _request(app, "POST", "/predict", content=json.dumps({**body, "all_scores": True}))
    batcher.close()
    assert status == 200
    _same_rows(answer["predictions"], written)


# --- the command: options, SIGTERM, load ----------------------------------------------------------------

@pytest.mark.parametrize("argv, message", [
    (["--model", "/no/such/run"], "--model /no/such/run: no such folder; pass a seqtune output directory"),
    (["--port", "70000"], "--port: expected a whole number from 0 to 65535 (0: any free port), got 70000"),
    (["--port", "-1"], "--port: expected a whole number from 0 to 65535 (0: any free port), got -1"),
    (["--max-batch-size", "0"], "--max-batch-size: expected a whole number >= 1, got 0"),
    (["--max-wait-ms", "nan"], "--max-wait-ms: expected a number of milliseconds from 0 to 10000, got nan"),
    (["--max-texts", "0"], "--max-texts: expected a whole number >= 1, got 0"),
    (["--engine", "tensorrt"], "argument --engine: invalid choice: 'tensorrt'"),
    (["--host", "192.0.2.1"], "--host 192.0.2.1 --port 8080: cannot listen there"),  # TEST-NET: not ours
    (["--threshold", "1.5"], "--threshold: expected a number in [0, 1], got 1.5"),
    (["--threshold", "0.3", "--port", "0"], "--threshold applies to multi-label models"),
])
def test_bad_options_are_one_line_and_exit_2(argv, message, models, capsys):
    argv = ["serve", "--model", str(models["topics"]), *argv] if argv[0] != "--model" else ["serve", *argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"seqtune: error: {message}") and err.count("\n") == 1


def test_a_port_in_use_or_a_folder_without_a_model_is_one_line(tmp_path, models, capsys):
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        assert main(["serve", "--model", str(models["topics"]), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err == (f"seqtune: error: --port {port}: already in use on 127.0.0.1; stop what listens there or pick "
                   "another port (--port 0 takes a free one)\n")
    assert main(["serve", "--model", str(tmp_path), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "not a trained model folder" in err and err.count("\n") == 1


def _post(url, body, timeout=60):
    request = urllib.request.Request(f"{url}/predict", json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status, json.loads(response.read())


def test_sigterm_answers_the_request_in_flight_refuses_new_ones_and_exits_0(models, predictors):
    command = [sys.executable, "-m", "seqtune.cli", "serve", "--model", str(models["topics"]), "--port", "0",
               "--max-wait-ms", "4000"]  # a lone request waits 4 s for company: it is in flight at the signal
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                          cwd=ROOT) as server:
        line = server.stdout.readline()
        assert " on http://127.0.0.1:" in line, server.stderr.read()
        url = line.split(" on ")[1].split()[0]
        with urllib.request.urlopen(f"{url}/health", timeout=30) as response:  # the default text limit
            assert json.loads(response.read())["max_text_chars"] == 32 * predictors["topics"].max_length
        answer = {}
        client = threading.Thread(target=lambda: answer.update(got=_post(url, {"text": TEXTS[0]})))
        client.start()
        time.sleep(1.0)
        server.send_signal(signal.SIGTERM)
        time.sleep(1.0)
        with pytest.raises(ConnectionRefusedError):  # no longer accepting
            socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=5).close()
        client.join(60)
        out, err = server.communicate(timeout=60)
    assert server.returncode == 0, err[-2000:]
    status, body = answer["got"]
    assert status == 200
    _same_rows(body["predictions"], predictors["topics"].predict([TEXTS[0]]))
    last = out.strip().splitlines()[-1]
    assert last == "seqtune: stopped by SIGTERM; answered 1 requests (1 texts in 1 forward passes)"
    assert "Traceback" not in err


def test_small_load_test_every_answer_equals_the_offline_prediction(models):
    from bench.loadtest import run_load, table

    texts = [f"{a} {b}" for a in TEXTS for b in TEXTS[:5]]  # 40 distinct texts
    outcome = run_load(models["topics"], texts, None, requests=200, clients=8, timeout=120)
    assert outcome.ok, (outcome.failed[:3], outcome.mismatches[:3])
    assert outcome.answered == 200 and outcome.wall < 20 and len(outcome.latencies) == 200
    assert "answered 200 requests" in outcome.server_stop_line
    assert "| requests answered | 200 of 200 |" in table({"torch": outcome})


def test_the_onnxruntime_engine_serves_the_same_answers_as_offline(models, predictors):
    from seqtune.export import export_onnx
    from seqtune.predictor import Predictor

    export_onnx(models["pairs"])
    predictor = Predictor(models["pairs"], engine="onnxruntime")
    batcher = Batcher(predictor, max_batch_size=4, max_wait_ms=1)
    batcher.start()
    app = create_app(predictor, batcher, Limits(), str(models["pairs"]))
    pairs = [list(p) for p in zip(TEXTS, TEXTS[::-1], strict=True)]
    status, answer = _request(app, "POST", "/predict", content=json.dumps({"pairs": pairs, "all_scores": True}))
    status_health, health = _request(app, "GET", "/health")
    batcher.close()
    assert status == 200 and status_health == 200 and health["engine"] == "onnxruntime"
    _same_rows(answer["predictions"], predictor.predict(TEXTS, TEXTS[::-1], all_scores=True))
    torch_rows = predictors["pairs"].predict(TEXTS, TEXTS[::-1], all_scores=True)
    assert [r["predicted_label"] for r in answer["predictions"]] == [r["predicted_label"] for r in torch_rows]
