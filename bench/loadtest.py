"""Load test of `seqtune serve`: throughput, latency and exactness under concurrent clients.

    python -m bench.loadtest --model runs/mrpc-demo                     # 2,000 requests from 16 clients
    python -m bench.loadtest --model runs/mrpc-demo --engine onnxruntime --requests 500 --clients 8

Starts the server as a subprocess on 127.0.0.1 (a free port), sends the requests (one MRPC dev pair each,
or its first sentence for a single-text model; $GLUE_DIR/MRPC/dev.tsv) from concurrent clients, each on
its own keep-alive connection, all bounded by --timeout; then stops the server with SIGTERM (it must exit
0) and checks every answer against the offline prediction (Predictor.predict on the same inputs): the
same labels, scores within 1e-5. Prints a table and writes bench/RESULTS-serve.md (--output).
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
TOLERANCE = 1e-5


@dataclass
class Outcome:
    """What a load run measured."""

    requests: int
    clients: int
    answered: int = 0
    failed: list[str] = field(default_factory=list)  # one line per request that got no 200 answer
    mismatches: list[str] = field(default_factory=list)  # one line per answer unlike the offline one
    latencies: list[float] = field(default_factory=list)  # seconds, of the answered requests
    wall: float = 0.0  # from the first request sent to the last answer
    server_exit: int | None = None
    server_stop_line: str = ""

    @property
    def ok(self) -> bool:
        return (self.answered == self.requests and not self.failed and not self.mismatches
                and self.server_exit == 0)

    def quantile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def mrpc_inputs(glue_dir: Path, pairs: bool) -> tuple[list[str], list[str] | None]:
    """MRPC dev's sentence pairs (or first sentences), as the server and the Predictor take them."""
    path = glue_dir / "MRPC" / "dev.tsv"
    lines = path.read_text(encoding="utf-8").splitlines()[1:]
    rows = [line.split("\t") for line in lines if line.strip()]
    return [r[3] for r in rows], [r[4] for r in rows] if pairs else None


def reads_pairs(model: Path) -> bool:
    spec = model / "seqtune.json"
    return spec.is_file() and len(json.loads(spec.read_text()).get("text_columns", [])) == 2


@dataclass
class Server:
    """The server subprocess, its base URL, the rest of its stdout (line by line) and its stderr's file."""

    process: subprocess.Popen
    url: str
    lines: queue.Queue
    log: Path


def start_server(model: Path, engine: str, deadline: float, extra: list[str]) -> Server:
    """`seqtune serve` on a free port of 127.0.0.1, once it says where it listens."""
    log = Path(tempfile.mkstemp(prefix="seqtune-serve-", suffix=".log")[1])
    command = [sys.executable, "-m", "seqtune.cli", "serve", "--model", str(model), "--engine", engine,
               "--host", "127.0.0.1", "--port", "0", *extra]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}
    with open(log, "wb") as sink:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=sink, text=True, env=env)
    lines: queue.Queue = queue.Queue()

    def read() -> None:
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    while True:
        try:
            line = lines.get(timeout=max(deadline - time.monotonic(), 0.01))
        except queue.Empty:
            line = None
        if line is None:
            process.kill()
            process.wait()
            raise RuntimeError(f"the server did not start: {log.read_text()[-2000:]}")
        found = re.search(r" on (http://\S+) ", line)
        if found:
            return Server(process, found.group(1), lines, log)


def stop_server(server: Server, outcome: Outcome, timeout: float = 60) -> None:
    """SIGTERM, then its exit code and last line (killed if it has not exited within `timeout`)."""
    server.process.send_signal(signal.SIGTERM)
    try:
        outcome.server_exit = server.process.wait(timeout)
    except subprocess.TimeoutExpired:
        server.process.kill()
        outcome.server_exit = server.process.wait()
    while (line := server.lines.get(timeout=5)) is not None:
        outcome.server_stop_line = line.strip()
    if outcome.server_exit != 0:
        outcome.failed.append(f"server exit code {outcome.server_exit}: {server.log.read_text()[-1000:]}")
    server.log.unlink(missing_ok=True)


def fire(url: str, bodies: list[bytes], requests: int, clients: int, deadline: float,
         outcome: Outcome) -> dict[int, list]:
    """`requests` POST /predict from `clients` threads; returns the answers by request number."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    numbers = itertools.count()
    answers: dict[int, list] = {}
    lock = threading.Lock()

    def client() -> None:
        connection = None
        while True:
            with lock:
                number = next(numbers)
            if number >= requests:
                break
            left = deadline - time.monotonic()
            if left <= 0:
                with lock:
                    outcome.failed.append(f"request {number}: not sent, the time limit was reached")
                continue
            try:
                if connection is None:
                    connection = http.client.HTTPConnection(host, int(port), timeout=left)
                connection.timeout = left
                if connection.sock is not None:
                    connection.sock.settimeout(left)
                start = time.perf_counter()
                connection.request("POST", "/predict", bodies[number % len(bodies)],
                                   {"Content-Type": "application/json"})
                response = connection.getresponse()
                payload = response.read()
                took = time.perf_counter() - start
            except (OSError, http.client.HTTPException) as err:
                connection = None
                with lock:
                    outcome.failed.append(f"request {number}: {type(err).__name__}: {err}")
                continue
            with lock:
                if response.status == 200:
                    answers[number] = json.loads(payload)["predictions"]
                    outcome.latencies.append(took)
                else:
                    outcome.failed.append(f"request {number}: HTTP {response.status}: {payload[:200]!r}")
        if connection is not None:
            connection.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(deadline - time.monotonic(), 0) + 5)
    outcome.wall = time.perf_counter() - start
    outcome.answered = len(answers)
    return answers


def same(answer: dict, expected: dict) -> bool:
    """Label-equal, numbers within TOLERANCE, nothing missing or extra."""
    if answer.keys() != expected.keys():
        return False
    for key, value in expected.items():
        if isinstance(value, float) or isinstance(answer[key], float):
            if not isinstance(answer[key], (int, float)) or abs(answer[key] - value) > TOLERANCE:
                return False
        elif answer[key] != value:
            return False
    return True


def run_load(model: Path, texts: list[str], pairs: list[str] | None, requests: int = 2000, clients: int = 16,
             engine: str = "torch", timeout: float = 600, server_args: list[str] | None = None) -> Outcome:
    """Serve `model`, send `requests` requests (input i % len(texts) each) from `clients` clients, stop the
    server, and compare every answer with the offline prediction. Bounded by `timeout` seconds in all."""
    from seqtune.predictor import Predictor

    deadline = time.monotonic() + timeout
    bodies = [json.dumps({"text": t} if pairs is None else {"text": t, "text_pair": p}).encode()
              for t, p in zip(texts, pairs or texts, strict=True)]
    outcome = Outcome(requests, clients)
    server = start_server(model, engine, deadline, server_args or [])
    try:
        answers = fire(server.url, bodies, requests, clients, deadline, outcome)
    finally:
        stop_server(server, outcome)
    expected = Predictor(model, engine=engine).predict(texts, pairs)  # after the load: it does not compete for CPU
    for number, rows in sorted(answers.items()):
        if len(rows) != 1 or not same(rows[0], expected[number % len(texts)]):
            outcome.mismatches.append(f"request {number}: {rows} != {expected[number % len(texts)]}")
    return outcome


def table(outcomes: dict[str, Outcome]) -> str:
    """One column per engine."""
    def rows(o: Outcome) -> list[tuple[str, str]]:
        return [("requests answered", f"{o.answered:,} of {o.requests:,}"),
                ("concurrent clients", str(o.clients)),
                ("wall time", f"{o.wall:.2f} s"),
                ("throughput", f"{o.answered / o.wall:,.1f} requests/s" if o.wall else "-"),
                ("latency p50", f"{1000 * o.quantile(0.50):.1f} ms"),
                ("latency p99", f"{1000 * o.quantile(0.99):.1f} ms"),
                ("failed requests", str(len(o.failed))),
                ("answers unlike the offline prediction", str(len(o.mismatches))),
                ("server exit after SIGTERM", str(o.server_exit)),
                ("server's last line", o.server_stop_line.removeprefix("seqtune: ").replace("|", "/"))]

    columns = {engine: rows(outcome) for engine, outcome in outcomes.items()}
    names = [name for name, _ in next(iter(columns.values()))]
    lines = ["| measure | " + " | ".join(columns) + " |", "| --- |" + " --- |" * len(columns)]
    lines += [f"| {name} | " + " | ".join(column[i][1] for column in columns.values()) + " |"
              for i, name in enumerate(names)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.loadtest", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a trained seqtune folder")
    parser.add_argument("--engine", choices=("torch", "onnxruntime"), nargs="+", default=["torch"],
                        help="one or both, run one after the other")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--timeout", type=float, default=600, help="seconds for everything, start to stop")
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--output", type=Path, default=HERE / "RESULTS-serve.md")
    args = parser.parse_args(argv)
    glue = Path(os.environ.get("GLUE_DIR", HERE.parent.parent / "shared" / "datasets" / "glue"))
    texts, pairs = mrpc_inputs(glue, reads_pairs(Path(args.model)))
    server_args = ["--max-batch-size", str(args.max_batch_size), "--max-wait-ms", str(args.max_wait_ms)]
    outcomes = {engine: run_load(Path(args.model), texts, pairs, args.requests, args.clients, engine,
                                 args.timeout, server_args) for engine in args.engine}
    result = table(outcomes)
    print(result)
    for line in [line for outcome in outcomes.values() for line in outcome.failed + outcome.mismatches][:10]:
        print(f"  {line}")
    from bench.__main__ import machine

    about = machine()
    flags = next((line for line in open("/proc/cpuinfo") if line.startswith("flags")), "").split()
    about["cpu"] += " (AVX-512)" if "avx512f" in flags else " (AVX2)" if "avx2" in flags else ""
    command = " ".join(["python -m bench.loadtest", *(argv if argv is not None else sys.argv[1:])])
    text = (f"# `seqtune serve` under load\n\n`{command}`: {args.requests:,} POST /predict from {args.clients} "
            f"concurrent clients (each on its own keep-alive connection, on the same machine as the server), one "
            f"MRPC dev {'pair' if pairs else 'sentence'} per request ({len(texts)} distinct), --max-batch-size "
            f"{args.max_batch_size}, --max-wait-ms {args.max_wait_ms:g}; one server per engine, in turn. Every "
            f"answer is compared with Predictor.predict on the same inputs (labels equal, scores within "
            f"{TOLERANCE:g}).\n\nMachine: {about['cpu']}, {about['cores']} cores, GPU: {about['gpu']}; torch "
            f"{about['torch']}, transformers {about['transformers']}. The clients share the cores with the "
            f"server.\n\n{result}")
    from seqtune.atomic import write_text

    write_text(args.output, text)
    print(f"wrote {args.output}")
    return 0 if all(outcome.ok for outcome in outcomes.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
