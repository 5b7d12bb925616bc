"""HTTP(S) shards against a real ``http.server`` on 127.0.0.1 that cuts connections, answers 404 and 503,
or ignores Range: the stream continues bit for bit, with 0 and 2 workers, and resumes mid-way."""

from __future__ import annotations

import glob
import http.server
import os
import re
import threading
from typing import ClassVar

import pytest
from torch.utils.data import DataLoader

from pipelines import build_pipe, load_config
from streams import Pipe, ShardReadError
from streams.reading.remote import RangeRetryReader, RemoteReadError, RetryPolicy, open_shard

from . import resume_harness as harness
from .conftest import DEMO_URLS, REPO
from .test_full_pipeline import plan_config

DEMO_DIR = os.path.join(REPO, "shards", "demo")


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


FILES = {os.path.basename(p): _read(p) for p in sorted(glob.glob(os.path.join(DEMO_DIR, "*")))}
FAST = RetryPolicy(retries=3, backoff=0.01, max_backoff=0.02, timeout=10.0)

_RANGE = re.compile(r"bytes=(\d+)-$")


class ShardHandler(http.server.BaseHTTPRequestHandler):
    """Serves the demo shards under ``/<behaviour>/<file>``:

    ``ok``: plain; ``cut-N``: every response stops after N body bytes and closes (Content-Length
    says the whole rest); ``flaky-K``: the first K requests of each file get 503; ``down``: always
    503; ``cutdown-N``: the first response cut after N bytes, then 503 for good; ``gone``: 404; ``norange-N``: ignores Range (always 200 from byte 0) and cuts its first
    response of each file after N bytes.
    """

    protocol_version = "HTTP/1.1"
    requests: ClassVar[list[tuple[str, str | None]]] = []
    lock = threading.Lock()

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        with self.lock:
            self.requests.append((self.path, self.headers.get("Range")))
            seen = sum(1 for path, _ in self.requests if path == self.path)
        _, behaviour, name = self.path.split("/", 2)
        data = FILES.get(name)
        kind, _, number = behaviour.partition("-")
        if data is None or kind == "gone":
            return self._fail(404)
        if kind == "down" or (kind == "flaky" and seen <= int(number)) or (kind == "cutdown" and seen > 1):
            return self._fail(503)
        match = _RANGE.match(self.headers.get("Range", ""))
        start = int(match.group(1)) if match and kind != "norange" else 0
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.send_header("ETag", '"demo-v1"')
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        body = data[start:]
        if kind in ("cut", "cutdown") or (kind == "norange" and seen == 1):
            body = body[:int(number)]
            self.close_connection = True
        self.wfile.write(body)

    def do_HEAD(self) -> None:
        _, behaviour, name = self.path.split("/", 2)
        data = FILES.get(name)
        if data is None or behaviour != "ok":
            return self._fail(404)
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()

    def _fail(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ShardHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def fast_retries(monkeypatch):
    monkeypatch.setenv("POINTER_STREAMS_HTTP_RETRIES", "3")
    monkeypatch.setenv("POINTER_STREAMS_HTTP_BACKOFF", "0.01")
    ShardHandler.requests.clear()


def demo_urls(base: str, behaviour: str) -> str:
    return f"{base}/{behaviour}/demo-{{000000..000004}}.tar"


@pytest.mark.parametrize("behaviour", ["ok", "cut-100000", "norange-300000", "flaky-2"])
def test_reader_returns_the_files_bytes_exactly(server, behaviour):
    ShardHandler.requests.clear()
    reader = RangeRetryReader(f"{server}/{behaviour}/demo-000003.tar", FAST)
    data = reader.read()
    assert data == FILES["demo-000003.tar"]
    if behaviour.startswith("cut"):  # 1.36 MB in 100 kB pieces: every later request asks for the rest
        assert reader.requests == 14
        assert [r for _, r in ShardHandler.requests[1:4]] == ["bytes=100000-", "bytes=200000-", "bytes=300000-"]
    if behaviour.startswith("norange"):  # the second answer starts from byte 0 again: its start is passed over
        assert reader.requests == 2
    if behaviour == "flaky-2":
        assert (reader.requests, reader.retries) == (3, 2)


def test_backoff_doubles_up_to_its_cap_and_the_error_names_url_and_retries(server):
    waits: list[float] = []
    policy = RetryPolicy(retries=4, backoff=0.5, max_backoff=1.5)
    with pytest.raises(RemoteReadError, match=r"/down/demo-000000.tar: could not start reading \(HTTP 503.*"
                                              r"gave up after 4 retries"):
        RangeRetryReader(f"{server}/down/demo-000000.tar", policy, sleep=waits.append)
    assert waits == [0.5, 1.0, 1.5, 1.5]


def test_not_found_is_not_retried(server):
    ShardHandler.requests.clear()
    with pytest.raises(FileNotFoundError, match="HTTP 404"):
        RangeRetryReader(f"{server}/gone/demo-000000.tar", FAST)
    assert len(ShardHandler.requests) == 1


def test_a_bad_policy_in_the_environment_names_the_variable(monkeypatch):
    monkeypatch.setenv("POINTER_STREAMS_HTTP_RETRIES", "many")
    with pytest.raises(ValueError, match="POINTER_STREAMS_HTTP_RETRIES='many' must be an integer"):
        RetryPolicy.from_environment()


def records(items) -> list[tuple]:
    return [harness.record(item) for item in items]


@pytest.mark.parametrize("num_workers", [0, 2])
def test_a_pipe_over_cut_connections_yields_what_local_shards_yield(server, fast_retries, num_workers):
    local = records(DataLoader(Pipe.from_shards(DEMO_URLS, seed=3), batch_size=None, num_workers=num_workers))
    remote_pipe = Pipe.from_shards(demo_urls(server, "cut-250000"), seed=3)
    remote = records(DataLoader(remote_pipe, batch_size=None, num_workers=num_workers))
    assert len(local) == 24 and harness.same(remote, local)
    assert len(ShardHandler.requests) > 5 * 2  # every shard was cut at least once


@pytest.mark.parametrize("num_workers", [0, 2])
def test_resume_mid_way_over_cut_connections(server, fast_retries, num_workers):
    """The whole plan configuration (pairs name their shards' URLs, so the run to match reads the same URLs)."""
    config = plan_config(concatenation=True, shuffle={"buffer_size": 4}, batching={"batch_size": 2})
    config["source"]["urls"] = demo_urls(server, "cut-300000")
    remote = load_config(config)
    full = harness.full_run(lambda: build_pipe(remote), num_workers=num_workers)
    assert len(full) >= 6
    resumed = harness.interrupted_run(lambda: build_pipe(remote), [len(full) // 2], num_workers=num_workers)
    assert harness.same(resumed, full)


def test_a_server_that_stays_down_fails_the_shard_naming_it_and_the_retries(server, fast_retries):
    pipe = Pipe.from_shards(demo_urls(server, "down"), seed=0, shuffle_shards=False)
    with pytest.raises(ShardReadError, match=r"shard http://127\.0\.0\.1:\d+/down/demo-000000\.tar: cannot "
                                             r"open it.*HTTP 503.*gave up after 3 retries"):
        next(iter(pipe))


def test_a_missing_remote_shard_is_a_missing_shard(server, fast_retries):
    pipe = Pipe.from_shards(demo_urls(server, "gone"), seed=0, shuffle_shards=False)
    with pytest.raises(ShardReadError, match=r"/gone/demo-000000\.tar: the file does not exist") as caught:
        next(iter(pipe))
    assert caught.value.reason == "missing_shard"
    skipping = Pipe.from_shards(demo_urls(server, "gone"), seed=0, on_error="skip")
    assert list(skipping) == [] and skipping.skip_report().damaged_shards == 5


def test_sample_counts_from_a_url(server, fast_retries):
    pipe = Pipe.from_shards(demo_urls(server, "cut-200"), seed=0, equal_steps="repeat",
                            sample_counts=f"{server}/cut-100/index.json")
    assert pipe.source.samples_per_rank(1) == 24
    with open_shard(f"{server}/cut-100/index.json") as stream:
        assert stream.read() == FILES["index.json"]


def test_info_sizes_a_remote_shard_with_a_head_request(server):
    from streams.tools.shard_info import shard_size

    assert shard_size(f"{server}/ok/demo-000002.tar") == len(FILES["demo-000002.tar"])
    assert shard_size(f"{server}/gone/demo-000002.tar") is None


def test_a_server_lost_mid_shard_ends_it_after_the_retries_with_the_samples_before_kept(server, fast_retries):
    url = f"{server}/cutdown-400000/demo-000000.tar"
    with pytest.raises(ShardReadError, match=r"shard http://127\.0\.0\.1:\d+/cutdown-400000/demo-000000\.tar: read "
                                             r"failed.*byte 400,000.*HTTP 503.*gave up after 3 retries"):
        list(Pipe.from_shards(url, seed=0))
    ShardHandler.requests.clear()
    skipping = Pipe.from_shards(url, seed=0, on_error="skip")
    kept = list(skipping)
    report = skipping.skip_report()
    assert 0 < len(kept) < 5 and report.damaged_shards == 1 and report.balanced
