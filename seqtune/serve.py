"""`seqtune serve`: a trained folder behind an HTTP JSON API (FastAPI + uvicorn).

POST /predict takes one text, a list, or text pairs and answers the rows `seqtune predict` would write
for them; GET /health names the model; /docs and /openapi.json describe both. Concurrent requests share
forward passes (seqtune/batching.py). A bad request is a 4xx with a one-line `detail`, checked before
any of it reaches the model: a body past --max-body-bytes is refused from its Content-Length or while it
streams in, never read whole. SIGTERM or Ctrl-C: stop accepting, answer the requests in flight, exit 0.

fastapi, uvicorn and pydantic are imported inside functions: `seqtune --help` stays instant. No
`from __future__ import annotations` here: FastAPI reads the endpoints' annotations (Request, imported
inside create_app) as objects."""

import argparse
import errno
import json
import re
import signal
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import SeqtuneError

DEFAULT_MAX_TEXTS = 256
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
TEXT_CHARS_PER_TOKEN = 32  # default --max-text-chars: this many characters per token of the model's window
GRACEFUL_SECONDS = 30  # after SIGTERM, requests in flight get this long to finish
FIELDS = ("text", "text_pair", "texts", "pairs", "all_scores")


class BadRequest(Exception):
    """A request refused with a 4xx status and a one-line reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Limits:
    """What one request may hold."""

    max_texts: int = DEFAULT_MAX_TEXTS
    max_text_chars: int = 512 * TEXT_CHARS_PER_TOKEN
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES


@dataclass(frozen=True)
class Inputs:
    """A request's texts (and second texts, for a pair model) and whether it wants every class's score."""

    texts: list[str]
    pairs: list[str] | None
    all_scores: bool


def request_model():
    """The JSON body of POST /predict, as pydantic validates it and the OpenAPI page shows it."""
    from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr

    class PredictRequest(BaseModel):
        """Exactly one of `text` (with `text_pair` for a pair model), `texts` or `pairs`."""

        model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
            {"text": "the soup was cold"}, {"texts": ["great match", "fresh bread"], "all_scores": True},
            {"text": "He left.", "text_pair": "He went away."}, {"pairs": [["He left.", "He went away."]]}]})

        text: StrictStr | None = Field(None, description="one text")
        text_pair: StrictStr | None = Field(None, description="its second text, for a model of text pairs")
        texts: list[StrictStr] | None = Field(None, description="several texts, answered in this order")
        pairs: list[tuple[StrictStr, StrictStr]] | None = Field(None, description="several [text, text_pair]")
        all_scores: StrictBool = Field(False, description="add probability_<label> for every label")

    return PredictRequest


def parse_request(body: bytes, limits: Limits, pair_model: bool | None) -> Inputs:
    """The request's inputs, or BadRequest saying in one line what is wrong with it. `pair_model`: whether
    the model reads text pairs (None: a folder that does not say, so either is taken)."""
    from pydantic import ValidationError

    if len(body) > limits.max_body_bytes:
        raise BadRequest(413, f"the body is {len(body):,} bytes; this server takes at most "
                              f"{limits.max_body_bytes:,} (--max-body-bytes)")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as err:
        raise BadRequest(400, f"the body is not UTF-8 text (byte {err.start})") from None
    try:
        value = json.loads(text)
    except RecursionError:
        raise BadRequest(400, "the body is not JSON: nested too deeply") from None
    except ValueError as err:  # JSONDecodeError, and integers too long to read
        if not isinstance(err, json.JSONDecodeError):  # Python's advice on its digit limit is not the client's
            raise BadRequest(400, f"the body holds a number of more than {sys.get_int_max_str_digits():,} digits") \
                from None
        raise BadRequest(400, f"the body is not JSON: {str(err).splitlines()[0]}") from None
    if not isinstance(value, dict):
        raise BadRequest(422, 'the body must be a JSON object such as {"text": "..."} or {"texts": [...]}')
    try:
        request = request_model().model_validate(value)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(_location_part(part) for part in first["loc"]) or "body"
        reason = "unknown field; the fields are " + ", ".join(FIELDS) if first["type"] == "extra_forbidden" \
            else first["msg"]
        raise BadRequest(422, f"{where}: {reason}") from None
    return _inputs(request, limits, pair_model)


def _location_part(part: str | int) -> str:
    """One step of a field's location; a name the client made up is quoted and cut: the reason stays one line."""
    if isinstance(part, int) or re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,39}", part):
        return str(part)
    quoted = json.dumps(part)
    return quoted if len(quoted) <= 40 else quoted[:37] + '..."'


def _inputs(request: Any, limits: Limits, pair_model: bool | None) -> Inputs:
    given = [name for name in ("text", "texts", "pairs") if getattr(request, name) is not None]
    if len(given) != 1:
        raise BadRequest(422, "send exactly one of text, texts or pairs" + (
            f" (got {', '.join(given)})" if given else ""))
    if request.text_pair is not None and given != ["text"]:
        raise BadRequest(422, "text_pair goes with text; for several pairs send pairs: [[text, text_pair], ...]")
    if request.text is not None:
        texts, pairs = [request.text], None if request.text_pair is None else [request.text_pair]
        named = [("text", request.text)] + ([] if pairs is None else [("text_pair", request.text_pair)])
    elif request.texts is not None:
        texts, pairs = request.texts, None
        named = [(f"texts.{i}", text) for i, text in enumerate(texts)]
    else:
        texts, pairs = [a for a, _ in request.pairs], [b for _, b in request.pairs]
        named = [(f"pairs.{i}.{j}", text) for i, pair in enumerate(request.pairs) for j, text in enumerate(pair)]
    if not texts:
        raise BadRequest(422, f"{given[0]}: the list is empty; send at least one")
    if len(texts) > limits.max_texts:
        raise BadRequest(422, f"{given[0]}: {len(texts):,} inputs; this server takes at most {limits.max_texts:,} "
                              "per request (--max-texts)")
    if pair_model and pairs is None:
        raise BadRequest(422, 'this model reads text pairs: send {"text": ..., "text_pair": ...} or '
                              '{"pairs": [[text, text_pair], ...]}')
    if pair_model is False and pairs is not None:
        raise BadRequest(422, 'this model reads single texts: send {"text": ...} or {"texts": [...]}')
    for where, text in named:
        _check_text(text, where, limits)
    return Inputs(texts, pairs, request.all_scores)


def _check_text(text: str, where: str, limits: Limits) -> None:
    if not text.strip():  # as `seqtune predict` refuses an empty cell
        raise BadRequest(422, f"{where}: the text is empty")
    if len(text) > limits.max_text_chars:
        raise BadRequest(422, f"{where}: {len(text):,} characters; this server takes at most "
                              f"{limits.max_text_chars:,} (--max-text-chars)")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:  # JSON's "\ud800" escapes give lone surrogates, which no tokenizer takes
        raise BadRequest(422, f"{where}: not valid Unicode (a lone surrogate at character {err.start})") from None


def create_app(predictor: Any, batcher: Any, limits: Limits, model: str) -> Any:
    """The FastAPI application; its lifespan starts the batcher's worker and, at shutdown, answers what
    is queued before stopping it."""
    import asyncio
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse
    from pydantic import BaseModel

    spec = predictor.spec
    pairs = predictor.pairs_expected

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        batcher.start()
        yield
        await asyncio.to_thread(batcher.close)

    app = FastAPI(title="seqtune", lifespan=lifespan, version=_version(),
                  description=f"Predictions of `{model}` ({spec.task_type}), as `seqtune predict` writes them.")
    app.state.answered = 0

    class Predictions(BaseModel):
        predictions: list[dict[str, Any]]

    class Problem(BaseModel):
        detail: str

    @app.exception_handler(BadRequest)
    async def refuse(request: Request, err: BadRequest) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, status_code=err.status)

    @app.exception_handler(Exception)
    async def failed(request: Request, err: Exception) -> JSONResponse:
        line = (str(err).strip().splitlines() or [""])[0]
        return JSONResponse({"detail": f"prediction failed: {type(err).__name__}: {line}"}, status_code=500)

    schema = request_model().model_json_schema()
    problems = {status: {"model": Problem, "description": text} for status, text in (
        (400, "not UTF-8, or not JSON"), (413, "body past --max-body-bytes"),
        (422, "missing or unknown fields, wrong types, empty or too many texts, a text past --max-text-chars"))}

    @app.post("/predict", response_model=Predictions, responses=problems,
              openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}})
    async def predict(request: Request) -> JSONResponse:
        """One row per input, in input order: predicted_label and probability (probability_<label> for every
        label with all_scores), or prediction for regression: the columns `seqtune predict` writes."""
        inputs = parse_request(await _body(request, limits.max_body_bytes), limits, pairs)
        try:
            rows = await asyncio.wrap_future(batcher.submit(inputs.texts, inputs.pairs, inputs.all_scores))
        except SeqtuneError as err:  # the Predictor's own check of its inputs: still the request's fault
            raise BadRequest(422, str(err)) from None
        app.state.answered += 1
        return JSONResponse({"predictions": rows})

    @app.get("/health")
    async def health() -> dict[str, Any]:
        """The model being served and the limits of a request."""
        return {"status": "ok", "model": model, "engine": predictor.engine, "task": spec.name,
                "task_type": spec.task_type, "labels": list(spec.label_names), "thresholds": spec.thresholds,
                "inputs": {True: "text pairs", False: "single texts", None: "single texts or text pairs"}[pairs],
                "max_batch_size": batcher.max_batch_size, "max_texts": limits.max_texts,
                "max_text_chars": limits.max_text_chars, "max_body_bytes": limits.max_body_bytes}

    return app


async def _body(request: Any, limit: int) -> bytes:
    """The body, refused (413) once it is known to pass `limit`: by its Content-Length before any of it is
    read, else while it streams in, so a huge body never sits in memory."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise BadRequest(413, f"the body is {int(length):,} bytes; this server takes at most {limit:,} "
                              "(--max-body-bytes)")
    from starlette.requests import ClientDisconnect

    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise BadRequest(413, f"the body passes {limit:,} bytes; this server takes at most {limit:,} "
                                      "(--max-body-bytes)")
    except ClientDisconnect:  # nobody is left to answer; a refusal, not a server error with its traceback
        raise BadRequest(400, "the client went away before sending the whole body") from None
    return bytes(body)


def _version() -> str:
    from . import __version__

    return __version__


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: any free one); a port in use or not allowed is one line."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except (socket.gaierror, UnicodeError) as err:
        raise SeqtuneError(f"--host {host}: not an address this machine can listen on ({err})") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # restart at once after a stop (TIME_WAIT)
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as err:
        sock.close()
        if err.errno == errno.EADDRINUSE:
            raise SeqtuneError(f"--port {port}: already in use on {host}; stop what listens there or pick another "
                               "port (--port 0 takes a free one)") from None
        if err.errno == errno.EACCES:
            raise SeqtuneError(f"--port {port}: not allowed for this user (ports below 1024 need privileges); "
                               "pick a port from 1024") from None
        raise SeqtuneError(f"--host {host} --port {port}: cannot listen there ({err.strerror or err})") from None
    return sock


def default_text_chars(predictor: Any, max_body_bytes: int) -> int:
    """Longest text taken: far past the window for a model that truncates (the rest would go unread); the body's
    limit for one that reads every token (head-tail keeps the end, chunks read it all, as predict does)."""
    if predictor.spec.long_text != "truncate":
        return max_body_bytes
    return TEXT_CHARS_PER_TOKEN * predictor.max_length


def use_threshold(predictor: Any, threshold: float) -> None:
    """As predict's --threshold: one score threshold for every label of a multi-label model, every request."""
    if predictor.spec.task_type != "multi_label":
        raise SeqtuneError("--threshold applies to multi-label models; this one picks one class a row")
    predictor.spec.thresholds = dict.fromkeys(predictor.spec.label_names, threshold)


def run_serve(options: argparse.Namespace) -> int:
    """Load the model, listen, serve until SIGTERM or Ctrl-C, then exit 0 once the requests in flight are
    answered."""
    import uvicorn

    from .batching import Batcher
    from .predictor import Predictor

    if not Path(options.model).is_dir():
        raise SeqtuneError(f"--model {options.model}: no such folder; pass a seqtune output directory")
    sock = listen(options.host, options.port)  # before the model loads: a busy port costs nothing
    try:
        predictor = Predictor(options.model, engine=options.engine, batch_size=options.max_batch_size)
        if options.threshold is not None:
            use_threshold(predictor, options.threshold)
        # The first pass sets the engine up (fast paths, allocations: ~0.6 s for MiniLM): paid before listening.
        predictor.logits(["warm up"], ["warm up"] if predictor.pairs_expected else None)
        text_chars = options.max_text_chars or default_text_chars(predictor, options.max_body_bytes)
        limits = Limits(options.max_texts, text_chars, options.max_body_bytes)
        batcher = Batcher(predictor, options.max_batch_size, options.max_wait_ms)
        app = create_app(predictor, batcher, limits, options.model)
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                                timeout_graceful_shutdown=GRACEFUL_SECONDS)
        host, port = sock.getsockname()[:2]
        url = f"http://{f'[{host}]' if ':' in host else host}:{port}"
        print(f"seqtune: serving {options.model} ({predictor.engine}, {predictor.spec.task_type}) on {url} "
              f"(API at {url}/docs); SIGTERM or Ctrl-C stops", flush=True)
        received: list[int] = []
        # uvicorn handles both signals while it serves, then restores these and raises what it caught again:
        # noted here, a stop by signal is a clean exit rather than death by that signal.
        previous = {number: signal.signal(number, lambda number, frame: received.append(number))
                    for number in (signal.SIGTERM, signal.SIGINT)}
        try:
            uvicorn.Server(config).run(sockets=[sock])
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)
    finally:
        sock.close()
    how = f"by {signal.Signals(received[0]).name}" if received else "on its own"
    print(f"seqtune: stopped {how}; answered {app.state.answered:,} requests ({batcher.texts_done:,} texts in "
          f"{batcher.forward_passes:,} forward passes)", flush=True)
    return 0
