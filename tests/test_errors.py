"""Expected failures of `seller-risk` as a person meets them: one line saying what is wrong and what to
do, a non-zero exit, no traceback; and a tracking server that is down, or dies mid-run, reported in
seconds rather than after MLflow's minutes of retries."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
CLI = str(BIN / "seller-risk")
LIMIT_S = 30.0  # what a person waits, at most, to learn the tracking server is down

# Lanes: every test here that runs seller-risk against MLflow is `mlflow` (or `server`), so out of the fast
# lane; the setting's parsing and a missing events folder (no MLflow) stay in it.


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra: str) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "COLUMNS": "200", "HOME": os.environ.get("HOME", "/tmp"), **extra}


def _run(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 180) -> tuple[subprocess.CompletedProcess, float]:
    start = time.monotonic()
    done = subprocess.run([CLI, *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)
    return done, time.monotonic() - start


def _assert_one_line(done: subprocess.CompletedProcess, *words: str) -> str:
    assert done.returncode == 2, (done.returncode, done.stdout[-2000:], done.stderr[-2000:])
    assert "Traceback" not in done.stderr, done.stderr
    # MLflow's own start-up notes ("INFO mlflow.store.db.utils: Creating initial MLflow database tables")
    # may precede it when a fresh embedded store is opened; the error itself is one line
    lines = [x for x in done.stderr.strip().splitlines() if not re.match(r"^\d{4}/\d\d/\d\d [\d:]+ INFO mlflow", x)]
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


# ------------------------------------------------------------------ nothing listens on the tracking port

COMMANDS = {
    "score": ["score", "--events", "events"],
    "train": ["train", "--features", "features"],
    "promote": ["promote"],
    "rollback": ["rollback"],
    "serve": ["serve", "--features", "features", "--port", "1"],
}


@pytest.fixture(scope="module")
def dead_server_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[subprocess.CompletedProcess, float, str]]:
    """Every registry command run against a loopback port where nothing listens (no training needed:
    they fail before they would read anything). One after another: each is timed."""
    port = _free_port()  # bound and released: nothing listens there now
    url = f"http://127.0.0.1:{port}"
    cwd = tmp_path_factory.mktemp("dead-server")
    return {name: (*_run(args, _env(MLFLOW_TRACKING_URI=url), cwd), url) for name, args in COMMANDS.items()}


@pytest.mark.mlflow
@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_dead_tracking_server_is_one_line_within_30_s(dead_server_runs: dict, command: str) -> None:
    done, seconds, url = dead_server_runs[command]
    line = _assert_one_line(done, f"tracking server {url} is not reachable", "connection refused",
                            "unset MLFLOW_TRACKING_URI")
    assert seconds < LIMIT_S, (seconds, line)


@pytest.mark.mlflow
def test_a_server_that_never_answers_is_reported_after_the_timeout(tmp_path: Path) -> None:
    """A port that accepts connections but never answers (a hung server): each try waits
    SELLER_RISK_TRACKING_TIMEOUT seconds, three tries."""
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(16)  # the kernel completes the handshake; nobody ever reads or answers
        url = f"http://127.0.0.1:{hung.getsockname()[1]}"
        done, seconds = _run(["promote"], _env(MLFLOW_TRACKING_URI=url, SELLER_RISK_TRACKING_TIMEOUT="1"), tmp_path)
    _assert_one_line(done, f"tracking server {url} is not reachable", "no answer within 1 s after 3 tries")
    assert seconds < LIMIT_S


@pytest.mark.mlflow
def test_a_bad_tracking_timeout_is_one_line(tmp_path: Path) -> None:
    done, _ = _run(["promote"], _env(MLFLOW_TRACKING_URI=f"http://127.0.0.1:{_free_port()}",
                                     SELLER_RISK_TRACKING_TIMEOUT="soon"), tmp_path)
    _assert_one_line(done, "SELLER_RISK_TRACKING_TIMEOUT", "'soon'")


def test_the_tracking_timeout_setting() -> None:
    from models.registry import DEFAULT_TRACKING_TIMEOUT, RegistryError, tracking_timeout

    mp = pytest.MonkeyPatch()
    try:
        mp.delenv("SELLER_RISK_TRACKING_TIMEOUT", raising=False)
        assert tracking_timeout() == DEFAULT_TRACKING_TIMEOUT == 5.0
        mp.setenv("SELLER_RISK_TRACKING_TIMEOUT", "2.5")
        assert tracking_timeout() == 2.5
        for bad in ("0", "-1", "nan", "inf", "soon"):
            mp.setenv("SELLER_RISK_TRACKING_TIMEOUT", bad)
            with pytest.raises(RegistryError, match="SELLER_RISK_TRACKING_TIMEOUT"):
                tracking_timeout()
    finally:
        mp.undo()


# ------------------------------------------------------------------ the registry answers "no such thing"


@pytest.fixture()
def one_version(tmp_path: Path) -> Path:
    """An embedded store whose registry holds seller-risk v1 (an empty placeholder: nothing loads it)."""
    code = (
        "import mlflow, sys\n"
        "from models.registry import use_store\n"
        "use_store(sys.argv[1])\n"
        "c = mlflow.MlflowClient()\n"
        "c.create_registered_model('seller-risk')\n"
        "c.create_model_version('seller-risk', sys.argv[2])\n"
    )
    (tmp_path / "placeholder").mkdir()
    # a clean environment: MLflow copies the store this pytest process used last into MLFLOW_TRACKING_URI
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "models"), str(tmp_path / "placeholder")],
                   check=True, capture_output=True, cwd=Path(__file__).parents[1], timeout=120, env=_env())
    return tmp_path / "models"


@pytest.mark.mlflow
def test_unknown_alias_and_missing_version_are_one_line(one_version: Path, tmp_path: Path) -> None:
    env = _env()
    alias, _ = _run(["score", "--events", "events", "--models", str(one_version), "--model", "models:/seller-risk@nope"],
                    env, tmp_path)
    _assert_one_line(alias, "no model version has the alias 'nope' in 'seller-risk': train and promote one first")
    version, _ = _run(["serve", "--features", "features", "--models", str(one_version), "--model", "models:/seller-risk/7"],
                      env, tmp_path)
    _assert_one_line(version, "model version 7 of 'seller-risk' does not exist (latest: 1)")
    bad, _ = _run(["score", "--events", "events", "--models", str(one_version), "--model", "models:/seller-risk/latest"],
                  env, tmp_path)
    _assert_one_line(bad, "expected a registry URI like models:/seller-risk@champion")


@pytest.mark.mlflow
def test_no_registered_model_and_no_earlier_champion_are_one_line(tmp_path: Path) -> None:
    models = str(tmp_path / "models")
    none, _ = _run(["serve", "--features", "features", "--models", models, "--model", "models:/seller-risk/2"], _env(), tmp_path)
    _assert_one_line(none, "'seller-risk' has no registered versions: train one first")
    champion, _ = _run(["score", "--events", "events", "--models", models], _env(), tmp_path)
    _assert_one_line(champion, "no model version has the alias 'champion' in 'seller-risk'")
    back, _ = _run(["rollback", "--models", models], _env(), tmp_path)
    _assert_one_line(back, "no earlier champion to go back to")


@pytest.mark.mlflow
def test_resolve_tells_not_found_from_unreachable(one_version: Path) -> None:
    """In-process: only the registry's own "not found" is AliasNotFound / ModelNotFound."""
    import mlflow

    from models.registry import AliasNotFound, ModelNotFound, StoreUnreachable, resolve, store_errors, use_store

    use_store(one_version)
    assert resolve("models:/seller-risk/1").version == "1"
    with pytest.raises(AliasNotFound):
        resolve("models:/seller-risk@champion")
    with pytest.raises(ModelNotFound, match=r"\(latest: 1\)"):
        resolve("models:/seller-risk/3")
    dead = f"http://127.0.0.1:{_free_port()}"
    mp = pytest.MonkeyPatch()
    for name in ("TIMEOUT", "MAX_RETRIES", "BACKOFF_FACTOR", "BACKOFF_JITTER"):  # use_store bounds these
        mp.setenv(f"MLFLOW_HTTP_REQUEST_{name}", os.environ.get(f"MLFLOW_HTTP_REQUEST_{name}", "x"))
        mp.delenv(f"MLFLOW_HTTP_REQUEST_{name}")
    try:
        mp.setenv("MLFLOW_TRACKING_URI", dead)
        mp.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        with pytest.raises(StoreUnreachable, match="not reachable"):
            use_store(one_version)
        mlflow.set_tracking_uri(dead)  # as if the server died after use_store checked it
        mlflow.set_registry_uri(dead)
        with pytest.raises(StoreUnreachable, match=r"connection refused after 1 try\)"):
            resolve("models:/seller-risk@champion")
        with pytest.raises(StoreUnreachable), store_errors():
            mlflow.get_experiment_by_name("anything")
    finally:
        mp.undo()
        use_store(one_version)


# ------------------------------------------------------------------ a real tracking server dies mid-run


class KillSwitch:
    """A loopback TCP relay in front of a real `mlflow server`. At the first request whose first line
    holds `trigger` it kills the server (SIGKILL), stops listening and drops every connection, so
    the command has passed its start-up check against a live server and then loses it, as when a
    server dies mid-run."""

    def __init__(self, upstream: int, trigger: bytes, kill: Callable[[], None]) -> None:
        self.upstream, self.trigger, self.kill = upstream, trigger, kill
        self.fired_at: float | None = None
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while self.fired_at is None:
            try:
                client, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            client.settimeout(None)
            try:
                server = socket.create_connection(("127.0.0.1", self.upstream))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, server]
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, from_client: bool) -> None:
        try:
            while chunk := src.recv(65536):
                if from_client and self.trigger in chunk.split(b"\r\n", 1)[0]:
                    self._fire()
                    return
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _fire(self) -> None:
        with self._lock:
            if self.fired_at is not None:
                return
            self.kill()
            self._listener.close()  # new connections are refused from now on
            self.fired_at = time.monotonic()
            for s in self._conns:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def _dies_mid_run(server, args: list[str], cwd: Path,
                  trigger: bytes = b"/api/") -> tuple[subprocess.CompletedProcess, float, str]:
    port, proc = server.port, server.process

    def kill() -> None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

    relay = KillSwitch(port, trigger, kill)
    url = f"http://127.0.0.1:{relay.port}"
    done, _ = _run(args, _env(MLFLOW_TRACKING_URI=url), cwd, timeout=900)
    assert relay.fired_at is not None, ("the server was never killed", done.stdout[-2000:], done.stderr[-2000:])
    return done, time.monotonic() - relay.fired_at, url


@pytest.mark.server
@pytest.mark.parametrize("command", ["score", "promote", "serve"])
def test_a_server_dying_mid_run_is_one_line_within_30_s(mlflow_server, tmp_path: Path, command: str) -> None:
    """The start-up check passes against the live server; it dies at the command's first registry
    call (score and serve: resolving the champion; promote: reading the challenger alias)."""
    done, after_kill, url = _dies_mid_run(mlflow_server, COMMANDS[command], tmp_path)
    _assert_one_line(done, f"tracking server {url} is not reachable")
    assert after_kill < LIMIT_S, after_kill
    print(f"{command}: reported {after_kill:.1f} s after the server was killed")


@pytest.mark.server
@pytest.mark.training
@pytest.mark.marketplace
def test_train_losing_its_server_mid_run_is_one_line_within_30_s(mlflow_server, feature_dir: Path, tmp_path: Path) -> None:
    """Training reaches the server only after the search, to fetch the champion: the server dies there."""
    args = ["train", "--features", str(feature_dir), "--trials", "1", "--budget", "5", "--folds", "1"]
    done, after_kill, url = _dies_mid_run(mlflow_server, args, tmp_path)
    _assert_one_line(done, f"tracking server {url} is not reachable")
    assert after_kill < LIMIT_S, after_kill
    print(f"train: reported {after_kill:.1f} s after the server was killed")


@pytest.mark.parametrize("command", ["validate", "features"])
def test_a_missing_events_folder_is_one_line(tmp_path: Path, command: str) -> None:
    done, _ = _run([command, "--events", str(tmp_path / "nope")], _env(), tmp_path)
    _assert_one_line(done, f"{tmp_path / 'nope'} is not a folder of event tables")
