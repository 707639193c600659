"""Real Redis servers for the test suite, as a pytest plugin (`pytest_plugins = ["redis_servers"]`).

Fixtures:
- `redis_server` (session): one `redis-server` on a free 127.0.0.1 port, no persistence, data dir in a tmp dir.
  The object has `.url`, `.host`, `.port`, `.client()`, `.alive()`, `.kill()` (SIGKILL) and `.start()` (start
  again on the same port).
- `redis_url` (function): the session server's URL, restarted if a test killed it, FLUSHALLed and with its
  command statistics reset before each test.
- `redis_cluster` (session): three primaries on free 127.0.0.1 ports, slots split evenly (CLUSTER ADDSLOTSRANGE
  + CLUSTER MEET), waited on until every node reports `cluster_state:ok`. `.url` is
  `redis+cluster://127.0.0.1:P1`; `.nodes` are the three servers; `.flushall()` and `.reset_stats()`.
- `redis_cluster_url` (function): the cluster's URL after `.flushall()` and `.reset_stats()`.

When `redis-server` is not on PATH the fixtures skip their tests, except under CI (`CI` set and not 0/false),
where that is a failure: CI must run the real-server tests. Every wait polls with a deadline.
"""

from __future__ import annotations

import importlib.util
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Iterator, List, Optional

import pytest

HOST = "127.0.0.1"
START_TIMEOUT = 10.0  # seconds for a server to answer PING
CLUSTER_TIMEOUT = 20.0  # seconds for a fresh cluster to reach cluster_state:ok
SLOTS = 16384


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def redis_server_binary() -> str:
    """The path of `redis-server`; skips (or, under CI, fails) the test when there is none."""
    path = shutil.which("redis-server")
    if path is None:
        message = "redis-server is not on PATH (Debian/Ubuntu: apt-get install redis-server)"
        if in_ci():
            pytest.fail(f"CI is set but {message}; .ci/run installs it", pytrace=False)
        pytest.skip(message)
    if importlib.util.find_spec("redis") is None:
        if in_ci():
            pytest.fail("CI is set but the redis package is not installed", pytrace=False)
        pytest.skip("the redis package is not installed")
    return path


def _is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def free_port(cluster: bool = False) -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now.

    A cluster node also listens on its port + 10000 (the cluster bus), so for `cluster` the port is at most
    55535 and both it and its bus port are free.
    """
    if cluster:
        rng = random.Random()
        for _ in range(200):
            port = rng.randrange(20000, 45000)
            if _is_free(port) and _is_free(port + 10000):
                return port
        pytest.fail("found no free port pair (P, P+10000) on 127.0.0.1 for a cluster node", pytrace=False)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll `predicate` for up to `timeout` seconds; its last answer (for an assert)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.01) -> None:
    """Poll `predicate` until it is true; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}", pytrace=False)
        time.sleep(interval)
        interval = min(interval * 1.5, 0.1)


class RedisServer:
    """One redis-server process on a fixed loopback port; `kill()` and `start()` it at will."""

    def __init__(self, binary: str, directory: Path, extra: Optional[List[str]] = None, cluster: bool = False):
        self.binary = binary
        self.directory = directory
        self.host = HOST
        self.port = free_port(cluster)
        self.extra = list(extra or [])
        self.process: Optional[subprocess.Popen[bytes]] = None
        self.directory.mkdir(parents=True, exist_ok=True)
        self.log_path = self.directory / "redis.log"

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def __repr__(self) -> str:
        return f"<RedisServer {self.host}:{self.port} {'up' if self.alive() else 'down'}>"

    def client(self, **kwargs: Any) -> Any:
        """A plain redis-py client to this server (1 s timeouts unless given)."""
        import redis

        kwargs.setdefault("socket_timeout", 1.0)
        kwargs.setdefault("socket_connect_timeout", 1.0)
        return redis.Redis(host=self.host, port=self.port, **kwargs)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _answers(self) -> bool:
        if not self.alive():
            log = self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""
            code = self.process.returncode if self.process is not None else None
            pytest.fail(f"redis-server on port {self.port} exited with {code}:\n{log}", pytrace=False)
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def start(self) -> None:
        """Start (or restart) the server on its port and wait until it answers PING."""
        if self.alive():
            return
        args = [
            self.binary,
            "--port", str(self.port),
            "--bind", self.host,
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.directory),
            "--daemonize", "no",
            "--logfile", str(self.log_path),
            *self.extra,
        ]
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.STDOUT, cwd=str(self.directory))
        wait_until(self._answers, START_TIMEOUT, f"redis-server on port {self.port} to answer PING")

    def kill(self) -> None:
        """SIGKILL the server (as a crash would) and reap it."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        """Terminate the server (SIGTERM, then SIGKILL after 5 s)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kill()


def start_server(binary: str, directory: Path, extra: Optional[List[str]] = None, cluster: bool = False) -> RedisServer:
    """A started server on a free port; retries with another port if the first one was taken meanwhile."""
    last: Optional[BaseException] = None
    for attempt in range(3):
        server = RedisServer(binary, directory / f"try{attempt}", extra=extra, cluster=cluster)
        try:
            server.start()
            return server
        except pytest.fail.Exception as exc:  # the port was grabbed between free_port() and bind
            server.stop()
            last = exc
    raise last  # type: ignore[misc]


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    binary = redis_server_binary()
    server = start_server(binary, tmp_path_factory.mktemp("redis"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session server's URL, with the server up, empty and its command statistics reset."""
    redis_server.start()
    client = redis_server.client()
    try:
        client.flushall()
        client.config_resetstat()
    finally:
        client.close()
    return redis_server.url


class RedisClusterServers:
    """Three redis-server primaries forming one cluster on loopback."""

    def __init__(self, nodes: List[RedisServer]):
        self.nodes = nodes

    @property
    def url(self) -> str:
        return f"redis+cluster://{HOST}:{self.nodes[0].port}"

    def clients(self) -> List[Any]:
        return [node.client() for node in self.nodes]

    def _each(self, action: Callable[[Any], Any]) -> None:
        for client in self.clients():
            try:
                action(client)
            finally:
                client.close()

    def flushall(self) -> None:
        self._each(lambda c: c.flushall())

    def reset_stats(self) -> None:
        self._each(lambda c: c.config_resetstat())

    def healthy(self) -> bool:
        for node in self.nodes:
            client = node.client()
            try:
                info = client.cluster("INFO")
                if isinstance(info, bytes):
                    info = info.decode()
                if isinstance(info, str):
                    fields = dict(line.split(":", 1) for line in info.split() if ":" in line)
                else:
                    fields = {k: str(v) for k, v in info.items()}
                if fields.get("cluster_state") != "ok" or fields.get("cluster_known_nodes") != str(len(self.nodes)):
                    return False
            except Exception:
                return False
            finally:
                client.close()
        return True

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def form_cluster(nodes: List[RedisServer]) -> None:
    """Split the slots evenly over `nodes`, give each a distinct config epoch, and introduce them."""
    count = len(nodes)
    for index, node in enumerate(nodes):
        first = index * SLOTS // count
        last = (index + 1) * SLOTS // count - 1
        client = node.client()
        try:
            client.execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)
            client.execute_command("CLUSTER", "SET-CONFIG-EPOCH", index + 1)
        finally:
            client.close()
    seed = nodes[0].client()
    try:
        for node in nodes[1:]:
            seed.execute_command("CLUSTER", "MEET", node.host, node.port)
    finally:
        seed.close()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterServers]:
    binary = redis_server_binary()
    root = tmp_path_factory.mktemp("redis-cluster")
    nodes: List[RedisServer] = []
    cluster = RedisClusterServers(nodes)
    try:
        for index in range(3):
            directory = root / f"node{index}"
            nodes.append(start_server(binary, directory, extra=[
                "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf",  # relative to the node's own --dir
                "--cluster-node-timeout", "2000",
            ], cluster=True))
        form_cluster(nodes)
        wait_until(cluster.healthy, CLUSTER_TIMEOUT, "the 3-node cluster to report cluster_state:ok")
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def redis_cluster_url(redis_cluster: RedisClusterServers) -> str:
    """The cluster's URL, every primary emptied and its command statistics reset."""
    redis_cluster.flushall()
    redis_cluster.reset_stats()
    return redis_cluster.url
