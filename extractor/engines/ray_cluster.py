"""Which Ray a run uses, and where on it the input can be read.

- Joining or starting: ``--ray-address``, else Ray's own ``RAY_ADDRESS`` (what a cluster's users
  and Ray's job runner set), else a new local instance sized to this machine, never one a
  ``ray start`` left running or a crashed head's stale address (``connect``). A batch keeps one
  for all its inputs (``connected``). A join that fails says Ray's reason.
- Watching, while a run goes on: the head (``HeadWatch``) and the rows coming back
  (``StallWatch``, --stall-timeout): a dead head or a stuck actor ends the run in one line, not
  silently or never.
- Reading: each node reads its share of the input at the driver's path where every node has it
  (a shared file system); else the driver's node reads it all (``where_to_read``), and a node
  that still lacks a file stops the run in one line (``problem_of``).
"""
from __future__ import annotations

import logging
import os
import re
import signal
import sys
import threading
import time
from contextlib import contextmanager

from extractor.sources import SkippedInput
from extractor.stop_signals import STOP_SIGNALS
from extractor.stop_signals import restore as restore_handlers
from extractor.workers.limits import usable_cores
from extractor.workers.stall_clock import StallClock

logger = logging.getLogger(__name__)

# A line of Ray's native (C++) logger, e.g. "[2026-12-03 10:50:38,197 E 21480 21480] core_worker.cc:...":
# on a normal run its driver logs an error-level line for every actor pool (ray-project/ray#53727), and
# a join that fails one line a second for each try.
RAY_NATIVE_LINE = re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [DIWEF] \d+ \d+\] ")


class RayEngineError(Exception):
    """Ray is missing, cannot start or join the cluster, or the run asks for what this engine lacks."""


def connect(address: str | None) -> bool:
    """Join ``address`` (``auto`` or ``HOST:PORT``), else the cluster Ray's own ``RAY_ADDRESS``
    names, else start a local instance sized to this machine; True when this run connected (and
    so disconnects). The local instance is always a new one (Ray's ``local``): left to itself,
    ``ray.init`` joins the cluster last started with ``ray start`` on this machine, refusing the
    local instance's size, or hangs on the address a crashed one left behind."""
    try:
        import ray
    except ImportError:
        raise RayEngineError("--engine ray needs Ray: pip install 'extractor[ray]'") from None
    if ray.is_initialized():
        return False
    env = {"env_vars": {"TF_CPP_MIN_LOG_LEVEL": "2"}}
    logging.getLogger("ray").setLevel(logging.ERROR)
    quiet = {"runtime_env": env, "log_to_driver": False, "logging_level": logging.ERROR}
    if not address and os.environ.get("RAY_ADDRESS"):
        address = os.environ["RAY_ADDRESS"]
        logger.info("joining the Ray cluster at %s (RAY_ADDRESS)", address)
    if address and address.startswith("ray://"):
        raise RayEngineError(f"cannot use the Ray cluster at {address}: a ray:// address is Ray Client, which Ray Data "
                             "(this engine) does not run on; run extractor on a node of the cluster with --ray-address "
                             "HEAD_IP:6379 (the head's GCS port), or as a job (ray job submit -- extractor run ...)")
    if address and (silent := nothing_answers(address)):
        raise RayEngineError(f"cannot join the Ray cluster at {address}: {silent}: is its head running (ray start "
                             "--head), and is this the address it printed?")
    from extractor.quiet import native_lines_to_log

    try:
        with native_lines_to_log(RAY_NATIVE_LINE, "ray"):  # a failing join's line a second: to the log
            if address:
                ray.init(address=address, **quiet)
            else:
                ray.init(address="local", num_cpus=usable_cores(), include_dashboard=False, **quiet)
    except Exception as exc:  # noqa: BLE001 - ConnectionError, RuntimeError, ValueError from ray.init
        if address and wants_a_token(exc):
            raise RayEngineError(
                f"cannot join the Ray cluster at {address}: it asks for Ray's token (token authentication: 'ray "
                "start --head' turns it on where a token exists, as ~/.ray/auth_token): set RAY_AUTH_MODE=token, "
                "with the cluster's token in ~/.ray/auth_token or RAY_AUTH_TOKEN ('ray get-auth-token' on the "
                "head prints it)") from None
        if address == "auto" and "Could not find any running Ray instance" in str(exc):
            raise RayEngineError(
                "cannot join a Ray cluster (--ray-address auto): none runs on this machine (auto finds one started "
                "here with 'ray start --head', or named by RAY_ADDRESS): start one, give its head's address "
                "(--ray-address HEAD_IP:6379), or leave --ray-address out to run on a Ray instance of this run's "
                "own") from None
        hint = ""
        if "AF_UNIX path" in str(exc):  # a job scheduler's deep TMPDIR
            hint = ("; Ray's sockets go in its temporary folder (RAY_TMPDIR, else TMPDIR), here too deep for a "
                    "socket's name: set RAY_TMPDIR to a short folder, e.g. RAY_TMPDIR=/tmp")
        raise RayEngineError(f"cannot {'join the Ray cluster at ' + address if address else 'start Ray'}: "
                             f"{why_ray_failed(exc)}{hint}") from None
    raylet_messages_to_log()
    return True


def raylet_messages_to_log() -> None:
    """Ray's driver prints what its raylets report (an actor whose start failed, to be retried)
    on stdout, Ray's traceback and all, among the run's own output; they go to the log file
    (DEBUG): the run's error line says what failed. (A function of Ray's private module, replaced
    where it is there.)"""
    try:
        from ray._private import worker
    except ImportError:
        return
    printing = getattr(worker, "print_to_stdstream", None)
    if printing is None or getattr(printing, "to_log", False):
        return

    def print_or_log(data, ignore_prefix):
        if data.get("pid") == "raylet":
            logger.debug("ray: raylet: %s", "\n".join(map(str, data.get("lines", []))))
        else:
            printing(data, ignore_prefix)

    print_or_log.to_log = True
    worker.print_to_stdstream = print_or_log


def ray_error() -> type:
    """Ray's own error class (an actor that died, a task that raised), Ray imported by then."""
    from ray.exceptions import RayError

    return RayError


ANSI_CODE = re.compile(r"\x1b\[[0-9;]*m")


def worker_failure(exc: BaseException) -> str:
    """One line for the Ray error that ended a run (a stage's actor that died raising as it
    started, a task that raised): the error its code raised, the last line of Ray's text."""
    text = ANSI_CODE.sub("", str(exc))
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    when = "while loading its model" if "creation task" in text else "on a batch"
    from extractor.quiet import traceback_hint

    return f"a Ray worker failed {when}: {lines[-1] if lines else type(exc).__name__} ({traceback_hint()})"


def wants_a_token(exc: BaseException) -> bool:
    """Whether ``ray.init`` failed because the cluster asks for a token this process did not
    send (Ray sends one to an address given only with ``RAY_AUTH_MODE=token``)."""
    from ray.exceptions import AuthenticationError

    while exc is not None:
        if isinstance(exc, AuthenticationError) or "InvalidAuthToken" in str(exc):
            return os.environ.get("RAY_AUTH_MODE", "").lower() != "token"
        exc = exc.__cause__ or exc.__context__
    return False


@contextmanager
def connected(address: str | None):
    """Ray for the length of a block: started or joined (``connect``) unless it is up already,
    and left only by the block that connected. A run uses it; so does a ``--batch`` around its
    runs, which then find Ray up and leave it so (a local instance started and stopped for every
    input took about 10 s an input here). Inside it a stop signal is handled as before Ray, not
    by ``ray.init``'s own handler (an exit at once)."""
    before = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    try:
        started = connect(address)
    finally:
        restore_handlers(before)
    try:
        yield
    finally:
        if started:
            import ray

            ray.shutdown()


def nothing_answers(address: str) -> str | None:
    """Why nothing listens at the cluster ``address`` (``auto`` as Ray reads it: its last
    ``ray start``), else None. Where nothing listens (a wrong host or port, a head not running, or
    one that died and left its address behind), ``ray.init`` tries again for about 14 minutes,
    printing its own lines: told at once instead."""
    from ray._private.services import canonicalize_bootstrap_address

    try:
        target = canonicalize_bootstrap_address(address)
    except Exception:  # noqa: BLE001 - Ray's own error (no cluster for "auto", a bad address) comes at once
        return None
    return _silent(target or "")


def _silent(target: str, timeout: float = 5.0) -> str | None:
    """Why no connection opens to ``target`` (HOST:PORT), else None (also for what is no HOST:PORT)."""
    import socket

    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        return None
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return None
    except OSError as exc:
        return f"nothing answers at {target} ({exc.strerror or exc})"


class DriverWatch:
    """A daemon thread calling ``check`` every ``every`` seconds while a ``with`` block runs, until
    ``check`` says it is done: the driver's watchdogs below, beside its main thread, which waits
    in Ray Data's queue of finished rows."""

    every = 2.0
    name = "extractor-watch"

    def __init__(self):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            if self.check():
                return

    def check(self) -> bool:
        raise NotImplementedError

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)


class HeadWatch(DriverWatch):
    """Watches the cluster's head (its GCS) while a run goes on. A minute after the head stops
    answering (a head node that crashed or was preempted), Ray's core worker ends the driver with
    exit status 1 and no Python error, its one line in the log with Ray's others: the run ended
    without a word. Once the head has answered no connection for ``patience`` seconds the watch
    ends the run itself, saying why. Nothing is lost: records and faces are written with plain
    ``os.write`` (no buffer to flush), and the clean-up a normal stop would do waits on the dead
    head too (Ray Data's executor and ``ray.shutdown`` ask it), until Ray's own exit."""

    name = "extractor-head-watch"

    def __init__(self, patience: float = 15.0):
        import ray

        super().__init__()
        self.gcs_address, self.patience = ray.get_runtime_context().gcs_address, patience
        self._silent_since: float | None = None

    def check(self) -> bool:
        why = _silent(self.gcs_address, timeout=self.every)
        if why is None:
            self._silent_since = None
        elif self._silent_since is None:
            self._silent_since = time.monotonic()
        elif time.monotonic() - self._silent_since >= self.patience:
            self._end_the_run(f"the Ray cluster's head stopped answering ({why} for {self.patience:.0f} s): the "
                              "run stopped; once the cluster is back, the same command with --skip-existing goes on "
                              "from the frames written")
        return False

    @staticmethod
    def _end_the_run(reason: str) -> None:
        from extractor.last_words import ending_on_purpose

        logger.debug("head watch: %s", reason)  # the log file; the terminal gets the line below
        ending_on_purpose()  # the line below says it
        sys.stderr.write(f"Error: {reason}\n")
        sys.stderr.flush()
        time.sleep(0.5)  # Ray's lines go through a pipe to the terminal (``native_lines_to_log``): ours too
        os._exit(1)


class StallWatch(DriverWatch):
    """--stall-timeout for this engine: a frame pipeline whose rows stop coming (an actor frozen
    or hung in a driver, a task that never returns) waited for ever. Where no row has come for
    ``seconds`` (counted as the pool counts them, a pause of the whole run left out: ``StallClock``),
    the main thread is interrupted and the run stops with ``reason``; Ray Data's own clean-up
    ends its actors. ``rows`` is counted by the main thread, read here."""

    every = 0.2
    name = "extractor-stall-watch"

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds, self.rows, self.reason = seconds, 0, None
        self._clock, self._seen = StallClock(), 0

    def check(self) -> bool:
        if self.rows != self._seen:
            self._seen = self.rows
            self._clock.restart()
        elif self._clock.tick() > self.seconds:
            self.reason = (f"no frame came back for {self.seconds:.0f} s: a Ray worker is stuck (a frozen "
                           "process, a hung GPU driver) or its model loads slowly here (a longer --stall-timeout)")
            logger.debug("stall watch: %s", self.reason)
            # A signal, not _thread.interrupt_main(): the main thread waits in a lock (Ray Data's
            # queue of finished rows) that only a signal wakes.
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
            return True
        return False

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():  # else no signal could reach the wait
            self._thread.start()
        return self


def why_ray_failed(exc: BaseException) -> str:
    """``exc``'s message, with the last line of the deepest error behind it where that says more:
    Ray's "Failed to connect to Ray cluster at ..." wraps the reason (a token the cluster wants,
    a time-out) in a traceback held as text."""
    deepest = exc
    while (deepest.__cause__ or deepest.__context__) is not None:
        deepest = deepest.__cause__ or deepest.__context__
    lines = [line.strip() for line in str(deepest).splitlines() if line.strip()]
    reason = lines[-1] if lines else ""
    return f"{exc} ({reason})" if deepest is not exc and reason and reason not in str(exc) else str(exc)


NOT_ON_NODE = "not on the Ray node that read it"


def not_on_this_node(path: str) -> str:
    """Why a file the driver listed gives no frame on this (other) node: it does not have it."""
    import ray

    return (f"{path}: {NOT_ON_NODE} ({ray.util.get_node_ip_address()}): each node reads its share of the input at "
            "the driver's path, so the input must be there on every node (a shared file system, or a copy at that "
            "path)")


def _exists(path: str) -> bool:
    return os.path.exists(path)


def nodes_without(paths: list[str]) -> list[str]:
    """Addresses of the cluster's live nodes with CPUs (where read tasks run) that lack one of
    ``paths``: a task pinned to each node looks."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    exists = ray.remote(num_cpus=0)(_exists)
    nodes = [node for node in ray.nodes() if node["Alive"] and node["Resources"].get("CPU", 0) > 0]
    looks = [[exists.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False))
              .remote(path) for path in paths] for node in nodes]
    return [node["NodeManagerAddress"] for node, seen in zip(nodes, looks) if not all(ray.get(seen))]


def where_to_read(paths: list[str]) -> dict:
    """Ray options of the read tasks: anywhere when every node has the input (``paths``: the
    input and its first file), else on the driver's node alone, said in one line; a cluster
    without a shared file system still runs, its other nodes detecting, aligning and masking."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    missing = nodes_without(paths)
    if not missing:
        return {}
    logger.info("plan: the input is not on %d of the cluster's nodes (%s): it is read on this node alone (on a file "
                "system every node shares, each node would read its share)", len(missing), ", ".join(missing))
    return {"scheduling_strategy": NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)}


def problem_of(row: dict) -> SkippedInput:
    """A frame row's problem as the summary lists it; an input missing on another node than the
    driver's stops the run instead: the cluster cannot see the input, and going on would list
    most of it as unreadable."""
    if NOT_ON_NODE in row["problem"]:
        raise RayEngineError(row["problem"])
    return SkippedInput(row["key"], row["problem"])
