"""Throwaway RabbitMQ nodes for tests, benchmarks and demos.

A :class:`RabbitMQNode` runs Debian's ``rabbitmq-server`` as an ordinary child process, on free
ports, with everything it writes inside one temporary directory, and removes it all again on
:meth:`RabbitMQNode.stop`. :func:`start_cluster` starts several nodes sharing one Erlang cookie
and joins them into a cluster.

Theory of operation:

* Isolation. ``HOME`` (and with it the Erlang cookie), the Mnesia database, the logs, the config
  file, the enabled-plugins file and the pid file all point into the node's temporary directory,
  and every inherited ``RABBITMQ_*``/``ERL_*`` variable is dropped, so neither the system's
  ``/etc/rabbitmq`` nor the caller's environment can change the node. The node listens on
  127.0.0.1 only.
* epmd. Erlang nodes register with the port mapper daemon, which Erlang normally starts as a
  detached daemon that outlives every node. Each node (or each cluster) here gets a private epmd
  on a free port instead (``ERL_EPMD_PORT``), run in the foreground as our own child: stopping
  it cannot disturb a system-wide epmd or another test run, and nothing lingers after the last
  node that uses it has stopped.
* Ports. Ports are drawn at random from below the kernel's ephemeral range (so that outgoing
  connections never take them) and checked by binding. Another program can still take one
  between the check and the node's own bind: such a clash shows up in the node's log as
  ``eaddrinuse`` (or ``dist_port_already_used``) and the start is retried on fresh ports.
* Readiness. A TCP connect can succeed before the broker is ready, so a node counts as started
  only once it answers the AMQP protocol header with a Connection.Start method frame, checked
  here with :mod:`struct` alone (this module must not depend on the codec under test).
* Clean-up. :meth:`RabbitMQNode.stop` asks the node to stop with ``rabbitmqctl stop``, kills its
  process group if it lingers, then kills any process still carrying the node's marker in its
  environment, stops the private epmd and removes the temporary directory.

Run ``python -m tools.broker`` to start a node by hand; it prints the URL and waits for Ctrl-C.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import glob
import itertools
import os
import random
import secrets
import shutil
import signal
import socket
import string
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

__all__ = (
    "INSTALL_COMMAND",
    "PROTOCOL_HEADER",
    "RABBITMQCTL",
    "RABBITMQ_SERVER",
    "Epmd",
    "RabbitMQCtlError",
    "RabbitMQError",
    "RabbitMQNode",
    "RabbitMQNotInstalledError",
    "RabbitMQProtocolError",
    "RabbitMQStartError",
    "ensure_rabbitmq_installed",
    "find_free_port",
    "probe_connection_start",
    "release_port",
    "running_cluster",
    "start_cluster",
    "stop_nodes",
)

RABBITMQ_BIN_DIR = Path("/usr/lib/rabbitmq/bin")
# The scripts under /usr/lib/rabbitmq/bin run as the calling user with the caller's environment;
# the /usr/sbin wrappers would switch to the rabbitmq user and its own cookie.
RABBITMQ_SERVER = RABBITMQ_BIN_DIR / "rabbitmq-server"
RABBITMQCTL = RABBITMQ_BIN_DIR / "rabbitmqctl"
INSTALL_COMMAND = (
    "apt-get update && DEBIAN_FRONTEND=noninteractive "
    "apt-get install -y --no-install-recommends rabbitmq-server"
)

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
_FRAME_HEADER = struct.Struct(">BHI")  # frame type, channel, payload size
_METHOD_ID = struct.Struct(">HH")  # class id, method id
_FRAME_METHOD = 1
_FRAME_END = 0xCE
_CONNECTION_START = (10, 10)
# epmd's NAMES_REQ: a two-byte length, then the request code 110; the reply starts with the port
# epmd listens on, as a 32-bit number.
_EPMD_NAMES_REQUEST = b"\x00\x01n"
_EPMD_NAMES_REPLY = struct.Struct(">I")
# Connection.Start is a few hundred bytes; anything far larger means we are not talking to AMQP.
_MAX_START_FRAME = 1 << 20

# Below Linux's default ephemeral range (32768-60999) and below the ports RabbitMQ's CLI tools
# bind for themselves (35672-35682).
_PORT_RANGE = (10000, 30000)
_PORT_ATTEMPTS = 200
_START_ATTEMPTS = 3
# What a node's log says when its AMQP port (eaddrinuse) or its distribution port is taken.
_PORT_CLASH_SIGNS = ("eaddrinuse", "dist_port_already_used")
# Written into every process we start, so stragglers can be found in /proc and only ours killed.
_MARKER_VARIABLE = "AMQP_HARNESS_DIR"

_DIST_ON_LOOPBACK = "-kernel inet_dist_use_interface {127,0,0,1}"

DEFAULT_START_TIMEOUT = 90.0
DEFAULT_STOP_TIMEOUT = 30.0
DEFAULT_CTL_TIMEOUT = 120.0

_claimed_ports: set[int] = set()
_ports_lock = threading.Lock()
_node_counter = itertools.count(1)
# Nodes started and not yet stopped: stopped at interpreter exit if their owner forgot (or
# crashed before it could), so that not even a failing script leaves a node behind.
_live_nodes: set[RabbitMQNode] = set()
_live_lock = threading.Lock()


class RabbitMQError(RuntimeError):
    """Base class of the harness's errors."""


class RabbitMQNotInstalledError(RabbitMQError):
    """``rabbitmq-server`` (or Erlang's ``epmd``) is not installed on this machine."""


class RabbitMQStartError(RabbitMQError):
    """A node did not come up; the message ends with the tail of its logs."""


class RabbitMQProtocolError(RabbitMQError):
    """The peer answered the AMQP protocol header with something other than Connection.Start."""


class RabbitMQCtlError(RabbitMQError):
    """``rabbitmqctl`` exited with an error.

    Attributes:
        returncode: The exit status of ``rabbitmqctl``.
        output: What it wrote to stdout and stderr.
    """

    def __init__(self, message: str, returncode: int, output: str) -> None:
        super().__init__(message)
        self.returncode = returncode
        self.output = output


def ensure_rabbitmq_installed() -> None:
    """Check that the RabbitMQ server scripts and Erlang's epmd are present.

    Raises:
        RabbitMQNotInstalledError: With the command that installs them.
    """
    missing = [str(path) for path in (RABBITMQ_SERVER, RABBITMQCTL) if not os.access(path, os.X_OK)]
    if not missing and _epmd_executable() is None:
        missing.append("epmd")
    if missing:
        raise RabbitMQNotInstalledError(
            f"RabbitMQ is not installed (missing: {', '.join(missing)}). On Debian or Ubuntu, "
            f"as root: {INSTALL_COMMAND}  (or run tools/run-tests, which installs it). The "
            "package's failure to start its own system service is harmless: the test suite "
            "starts nodes of its own."
        )


def _epmd_executable() -> str | None:
    found = shutil.which("epmd")
    if found is not None:
        return found
    # Erlang keeps epmd inside its runtime directory when no symlink is on PATH.
    candidates = sorted(glob.glob("/usr/lib/erlang/erts-*/bin/epmd"))
    return candidates[-1] if candidates else None


def _can_bind(port: int) -> bool:
    # Binding the wildcard address fails if anything listens on the port on any IPv4 address.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def find_free_port() -> int:
    """Return a TCP port that is free now and not handed out by this process before.

    The port stays reserved within this process until :func:`release_port`, so nodes started at
    the same time (a cluster) never get the same port before either has bound it.

    Raises:
        RabbitMQError: If no free port was found.
    """
    with _ports_lock:
        for _ in range(_PORT_ATTEMPTS):
            # Random rather than sequential, so that parallel test runs rarely pick the same port.
            port = random.randrange(*_PORT_RANGE)
            if port not in _claimed_ports and _can_bind(port):
                _claimed_ports.add(port)
                return port
    raise RabbitMQError(f"no free TCP port found in {_PORT_RANGE[0]}-{_PORT_RANGE[1]}")


def release_port(port: int) -> None:
    """Let :func:`find_free_port` hand ``port`` out again."""
    with _ports_lock:
        _claimed_ports.discard(port)


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise ConnectionError(f"peer closed after {len(chunks)} of {size} bytes")
        chunks += chunk
    return bytes(chunks)


def probe_connection_start(host: str, port: int, *, timeout: float = 5.0) -> bytes:
    """Send the AMQP 0-9-1 protocol header and return the broker's Connection.Start.

    Only the framing is checked: a method frame (type 1) on channel 0, ending in the frame-end
    octet, whose class and method ids are 10 and 10. The connection is closed right after.

    Args:
        host: Address to connect to.
        port: AMQP port.
        timeout: Seconds allowed for the connect and for each read.

    Returns:
        The method frame's payload: class id, method id and Connection.Start's arguments.

    Raises:
        OSError: If the connection fails or the peer closes it early.
        RabbitMQProtocolError: If the answer is not a Connection.Start method frame.
    """
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(PROTOCOL_HEADER)
        frame_type, channel, size = _FRAME_HEADER.unpack(_recv_exactly(sock, _FRAME_HEADER.size))
        if frame_type != _FRAME_METHOD or channel != 0 or size > _MAX_START_FRAME:
            raise RabbitMQProtocolError(
                f"expected a method frame on channel 0, got type {frame_type}, "
                f"channel {channel}, size {size}"
            )
        body = _recv_exactly(sock, size + 1)
    if body[-1] != _FRAME_END:
        raise RabbitMQProtocolError(f"frame does not end with 0xCE but with {body[-1]:#04x}")
    if size < _METHOD_ID.size or _METHOD_ID.unpack_from(body) != _CONNECTION_START:
        raise RabbitMQProtocolError(f"expected Connection.Start (10, 10), got {body[:4].hex()}")
    return body[:-1]


def _epmd_answers(port: int) -> bool:
    """Whether an epmd listening on ``port`` answers a NAMES request with its own port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
            sock.sendall(_EPMD_NAMES_REQUEST)
            (reported,) = _EPMD_NAMES_REPLY.unpack(_recv_exactly(sock, _EPMD_NAMES_REPLY.size))
    except OSError:
        return False
    return bool(reported == port)


def _wait_for_epmd(port: int, deadline: float, proc: subprocess.Popen[bytes]) -> bool:
    # Something else listening on the port would accept a bare connect, so ask epmd itself.
    while time.monotonic() < deadline and proc.poll() is None:
        if _epmd_answers(port):
            return True
        time.sleep(0.05)
    return False


def _pids_with_marker(marker: str) -> list[int]:
    """Live processes whose environment carries ``marker`` (empty where /proc is missing)."""
    needle = f"{_MARKER_VARIABLE}={marker}".encode()
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        # A zombie's environment reads as empty, and a zombie is already dead.
        if needle in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def _kill_marked(marker: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while pids := _pids_with_marker(marker):
        if time.monotonic() > deadline:
            raise RabbitMQError(f"processes {pids} survived SIGKILL")
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)


class _Reaper:
    """A watcher process that cleans up after this one if it dies without stopping its nodes.

    Killed (SIGKILL, an out-of-memory kill, a CI timeout), this process cannot stop anything,
    and its nodes would go on using CPU and memory on a shared machine. The watcher reads our
    registrations on a pipe: at end of file, which only our death (or our exit) brings, it
    kills every process still carrying a registered marker in its environment and removes
    registered directories. A node stopped cleanly is unregistered first.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None

    def watch(self, marker: str) -> None:
        """Kill the processes marked ``marker`` (and remove it, if a directory) if we die."""
        self._send(f"watch {marker}")

    def forget(self, marker: str) -> None:
        """``marker`` is cleaned up: nothing to do for it any more."""
        self._send(f"forget {marker}")

    def _send(self, line: str) -> None:
        with self._lock:
            proc = self._proc
            if proc is None or proc.poll() is not None:
                proc = self._proc = subprocess.Popen(
                    [sys.executable, "-c", "from tools.broker import _reap; _reap()"],
                    cwd=Path(__file__).resolve().parent.parent,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    # Out of our process group: a Ctrl-C or a killpg of our group spares it.
                    start_new_session=True,
                )
            assert proc.stdin is not None
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.write(line.encode() + b"\n")
                proc.stdin.flush()


_reaper = _Reaper()


def _reap() -> None:
    """The watcher's side of :class:`_Reaper`: wait for end of file, then clean up."""
    watched: list[str] = []
    for raw in sys.stdin.buffer:
        command, _, marker = raw.decode().rstrip("\n").partition(" ")
        if command == "watch":
            watched.append(marker)
        elif command == "forget" and marker in watched:
            watched.remove(marker)
    for marker in watched:
        with contextlib.suppress(RabbitMQError):
            _kill_marked(marker)
        if os.path.isabs(marker):
            shutil.rmtree(marker, ignore_errors=True)


def _end_process(proc: subprocess.Popen[bytes], grace: float) -> None:
    """Wait up to ``grace`` seconds for ``proc`` to exit, then kill its process group."""
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, None)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue


def _clean_environment() -> dict[str, str]:
    # Inherited RABBITMQ_*/ERL_* variables would override the isolated settings, and
    # NOTIFY_SOCKET would make rabbitmq-server believe it runs under systemd.
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("RABBITMQ_", "ERL_", _MARKER_VARIABLE)) and key != "NOTIFY_SOCKET"
    }
    # The Elixir CLI warns about (and mangles) non-ASCII output under a non-UTF-8 locale.
    env["LC_ALL"] = "C.UTF-8"
    env["LANG"] = "C.UTF-8"
    return env


def _new_cookie() -> str:
    return "".join(secrets.choice(string.ascii_uppercase) for _ in range(32))


class Epmd:
    """A private Erlang port mapper daemon, shared by reference count.

    Every node that uses it calls :meth:`acquire` before starting and :meth:`release` after
    stopping; the daemon starts with the first and stops with the last.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._port: int | None = None
        # In the daemon's environment, so that the watcher of _Reaper finds it if we are killed.
        self._marker: str | None = None

    @property
    def port(self) -> int:
        """The port epmd listens on (valid between :meth:`acquire` and the last release)."""
        if self._port is None:
            raise RabbitMQError("epmd is not running")
        return self._port

    @property
    def pid(self) -> int | None:
        """The OS pid of the daemon, or None when it is not running."""
        return None if self._proc is None else self._proc.pid

    def acquire(self) -> int:
        """Start the daemon unless it already runs, and count one more user.

        Returns:
            The port it listens on.

        Raises:
            RabbitMQNotInstalledError: If epmd is not installed.
            RabbitMQStartError: If it does not come up.
        """
        with self._lock:
            if self._proc is None:
                self._start()
            self._users += 1
            return self.port

    def release(self) -> None:
        """Count one user less, and stop the daemon after the last one."""
        with self._lock:
            self._users -= 1
            if self._users <= 0:
                self._users = 0
                self._stop()

    def _start(self) -> None:
        executable = _epmd_executable()
        if executable is None:
            ensure_rabbitmq_installed()
            raise RabbitMQNotInstalledError("epmd not found")  # pragma: no cover - defensive
        for _ in range(_START_ATTEMPTS):
            port = find_free_port()
            marker = f"epmd-{os.getpid()}-{port}"
            _reaper.watch(marker)
            proc = subprocess.Popen(
                [executable, "-port", str(port), "-address", "127.0.0.1"],
                env={**os.environ, _MARKER_VARIABLE: marker},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            if _wait_for_epmd(port, time.monotonic() + 10.0, proc):
                self._proc, self._port, self._marker = proc, port, marker
                return
            # It exited (the port was taken after our check) or hangs: end it, try another port.
            _end_process(proc, grace=0.0)
            _reaper.forget(marker)
            release_port(port)
        raise RabbitMQStartError(f"epmd did not start after {_START_ATTEMPTS} attempts")

    def _stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            _end_process(self._proc, grace=10.0)
            self._proc = None
        if self._marker is not None:
            _reaper.forget(self._marker)
            self._marker = None
        if self._port is not None:
            release_port(self._port)
            self._port = None


class RabbitMQNode:
    """One throwaway RabbitMQ node; a context manager that starts and stops it.

    Args:
        node_name: Erlang node name; unique by default (``amqp-test-<pid>-<n>@localhost``).
        extra_config: Text appended to the node's ``rabbitmq.conf`` (a TLS listener, say).
        plugins: Plugins to enable, such as ``rabbitmq_auth_mechanism_ssl``.
        cookie: Erlang cookie; nodes meant to form a cluster need the same one.
        epmd: A shared port mapper (see :func:`start_cluster`); by default a private one.
        start_timeout: Seconds to wait for Connection.Start before giving up.
    """

    def __init__(
        self,
        *,
        node_name: str | None = None,
        extra_config: str = "",
        plugins: Sequence[str] = (),
        cookie: str | None = None,
        epmd: Epmd | None = None,
        start_timeout: float = DEFAULT_START_TIMEOUT,
    ) -> None:
        self.node_name = node_name or f"amqp-test-{os.getpid()}-{next(_node_counter)}@localhost"
        self.extra_config = extra_config
        self.plugins = tuple(plugins)
        self.cookie = cookie or _new_cookie()
        self.start_timeout = start_timeout
        self._epmd = epmd or Epmd()
        self._epmd_acquired = False
        self._dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._amqp_port: int | None = None
        self._dist_port: int | None = None

    # -- properties -----------------------------------------------------------------------

    @property
    def amqp_port(self) -> int:
        """The AMQP port on 127.0.0.1."""
        if self._amqp_port is None:
            raise RabbitMQError(f"{self.node_name} is not running")
        return self._amqp_port

    @property
    def dist_port(self) -> int:
        """The Erlang distribution (inter-node) port."""
        if self._dist_port is None:
            raise RabbitMQError(f"{self.node_name} is not running")
        return self._dist_port

    @property
    def url(self) -> str:
        """``amqp://guest:guest@127.0.0.1:PORT/%2F`` (guest may log in from localhost only)."""
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/%2F"

    @property
    def directory(self) -> Path:
        """The temporary directory that holds everything the node writes."""
        if self._dir is None:
            raise RabbitMQError(f"{self.node_name} has no directory (not started)")
        return self._dir

    @property
    def epmd(self) -> Epmd:
        """The port mapper this node registers with."""
        return self._epmd

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        """The ``rabbitmq-server`` process (the leader of the node's process group), if any."""
        return self._proc

    @property
    def running(self) -> bool:
        """Whether the node's process is alive (it may still be booting)."""
        return self._proc is not None and self._proc.poll() is None

    def environment(self) -> dict[str, str]:
        """The environment under which the node and its ``rabbitmqctl`` run."""
        directory = self.directory
        env = _clean_environment()
        env.update(
            {
                "HOME": str(directory),  # the Erlang cookie is read from $HOME/.erlang.cookie
                _MARKER_VARIABLE: str(directory),
                "ERL_EPMD_PORT": str(self._epmd.port),
                # Every erl in this environment (the node, the helper its boot spawns, the CLI)
                # would otherwise launch `epmd -daemon`: when ours is running that one exits at
                # once (an orphan for init to reap), and if ours were gone it would linger.
                "ERL_ZFLAGS": "-start_epmd false",
                "RABBITMQ_NODENAME": self.node_name,
                "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
                "RABBITMQ_NODE_PORT": str(self.amqp_port),
                "RABBITMQ_DIST_PORT": str(self.dist_port),
                # Keep distribution off other interfaces, like the AMQP listener.
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": _DIST_ON_LOOPBACK,
                "RABBITMQ_MNESIA_BASE": str(directory / "mnesia"),
                "RABBITMQ_LOG_BASE": str(directory / "log"),
                "RABBITMQ_LOGS": str(directory / "log" / "rabbit.log"),
                "RABBITMQ_PID_FILE": str(directory / "rabbit.pid"),
                "RABBITMQ_CONFIG_FILE": str(directory / "rabbitmq"),  # reads rabbitmq.conf
                "RABBITMQ_CONFIG_FILES": str(directory / "conf.d"),
                "RABBITMQ_ADVANCED_CONFIG_FILE": str(directory / "advanced.config"),
                "RABBITMQ_CONF_ENV_FILE": str(directory / "rabbitmq-env.conf"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(directory / "enabled_plugins"),
            }
        )
        return env

    # -- life cycle -----------------------------------------------------------------------

    def start(self) -> RabbitMQNode:
        """Start the node and wait until it answers with Connection.Start.

        Returns:
            The node itself.

        Raises:
            RabbitMQNotInstalledError: If RabbitMQ is not installed.
            RabbitMQStartError: If the node does not come up; everything is cleaned up first.
        """
        try:
            self.launch()
            self.wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def launch(self) -> None:
        """Start the node's process without waiting for it (see :meth:`wait_until_ready`).

        Raises:
            RabbitMQError: If the node was already started.
            RabbitMQNotInstalledError: If RabbitMQ is not installed.
        """
        if self._dir is not None:
            raise RabbitMQError(f"{self.node_name} was already started")
        ensure_rabbitmq_installed()
        self._dir = Path(tempfile.mkdtemp(prefix="amqp-rabbitmq-"))
        _reaper.watch(str(self._dir))  # its processes carry the directory as their marker
        with _live_lock:
            _live_nodes.add(self)
        self._epmd.acquire()
        self._epmd_acquired = True
        self._write_files()
        self._spawn()

    def _write_files(self) -> None:
        directory = self.directory
        for sub in ("mnesia", "log", "conf.d"):
            (directory / sub).mkdir()
        cookie = directory / ".erlang.cookie"
        cookie.write_text(self.cookie)
        cookie.chmod(0o400)  # Erlang refuses a cookie file that others can read
        (directory / "rabbitmq-env.conf").write_text("")
        config = self.extra_config
        (directory / "rabbitmq.conf").write_text(config + ("\n" if config else ""))
        (directory / "enabled_plugins").write_text(f"[{','.join(self.plugins)}].\n")

    def _spawn(self, *, same_ports: bool = False) -> None:
        if not same_ports:
            self._amqp_port = find_free_port()
            self._dist_port = find_free_port()
        directory = self.directory
        with (directory / "server.out").open("wb") as out:
            self._proc = subprocess.Popen(
                [str(RABBITMQ_SERVER)],
                cwd=directory,
                env=self.environment(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                # Its own process group, so it can be killed as a whole and Ctrl-C in a
                # terminal reaches only us (we then stop it cleanly).
                start_new_session=True,
            )

    def wait_until_ready(self, timeout: float | None = None) -> None:
        """Wait until the node answers the protocol header with Connection.Start.

        A node that fails on a port clash is restarted on fresh ports, up to three times.

        Args:
            timeout: Seconds to wait (default: the node's ``start_timeout``).

        Raises:
            RabbitMQStartError: If the node exits or is not ready in time; the message ends
                with the tail of its logs.
        """
        timeout = self.start_timeout if timeout is None else timeout
        started = time.monotonic()
        for attempt in range(1, _START_ATTEMPTS + 1):
            proc = self._proc
            if proc is None:
                raise RabbitMQStartError(f"{self.node_name} was not launched")
            problem = self._poll_ready(proc, started + timeout)
            if problem is None:
                return
            log = self.log_tail(200)
            clash = any(sign in log for sign in _PORT_CLASH_SIGNS)
            if proc.poll() is None or not clash or attempt == _START_ATTEMPTS:
                raise RabbitMQStartError(
                    f"RabbitMQ node {self.node_name} did not start: {problem} "
                    f"(after {time.monotonic() - started:.1f} s, attempt {attempt}; "
                    f"directory {self._dir}).\n--- log tail ---\n{self.log_tail()}"
                )
            # Another program took a port between our check and the node's bind: try others.
            self._reset_for_retry()
            self._spawn()

    def _poll_ready(self, proc: subprocess.Popen[bytes], deadline: float) -> str | None:
        last_error = "no answer yet"
        while True:
            status = proc.poll()
            if status is not None:
                return f"rabbitmq-server exited with status {status}"
            try:
                probe_connection_start("127.0.0.1", self.amqp_port, timeout=2.0)
            except (OSError, RabbitMQProtocolError) as exc:
                last_error = f"{type(exc).__name__}: {exc}"
            else:
                return None
            if time.monotonic() > deadline:
                return f"no Connection.Start in time ({last_error})"
            time.sleep(0.2)

    def _reset_for_retry(self) -> None:
        if self._proc is not None:
            _end_process(self._proc, grace=DEFAULT_STOP_TIMEOUT)
            self._proc = None
        _kill_marked(str(self.directory))
        self._release_ports()
        for sub in ("mnesia", "log"):
            shutil.rmtree(self.directory / sub)
            (self.directory / sub).mkdir()

    def _release_ports(self) -> None:
        for port in (self._amqp_port, self._dist_port):
            if port is not None:
                release_port(port)
        self._amqp_port = self._dist_port = None

    def stop(self, timeout: float = DEFAULT_STOP_TIMEOUT) -> None:
        """Stop the node and remove every trace of it; safe to call more than once.

        Args:
            timeout: Seconds allowed for a clean shutdown before the process group is killed.

        Raises:
            RabbitMQError: If a process of the node survives SIGKILL.
        """
        try:
            if self._proc is not None:
                if self._proc.poll() is None:
                    # A clean stop flushes the node's state; whether the command reports
                    # success does not matter, as the process is waited for (or killed) below.
                    with contextlib.suppress(RabbitMQError, subprocess.TimeoutExpired):
                        self.rabbitmqctl("stop", timeout=timeout)
                _end_process(self._proc, grace=timeout)
                self._proc = None
            if self._dir is not None:
                # Children that left the process group (or outlived its leader) carry the marker.
                _kill_marked(str(self._dir))
        finally:
            self._release_ports()
            if self._epmd_acquired:
                self._epmd_acquired = False
                self._epmd.release()
            if self._dir is not None:
                shutil.rmtree(self._dir, ignore_errors=True)
                _reaper.forget(str(self._dir))
                self._dir = None
            with _live_lock:
                _live_nodes.discard(self)

    def shutdown(self, timeout: float = DEFAULT_STOP_TIMEOUT, *, abrupt: bool = False) -> None:
        """Stop the node's Erlang VM, keeping its name, ports and data for :meth:`restart`.

        Unlike ``rabbitmqctl stop_app``, the whole VM goes: its client connections end with
        the process (clients see ``Connection.Close`` 320 from a clean stop, or just a dropped
        TCP stream with ``abrupt``), and a cluster sees the node as down.

        Args:
            timeout: Seconds allowed for a clean stop before the process group is killed.
            abrupt: Kill the VM (SIGKILL) instead of stopping it cleanly: a crash.

        Raises:
            RabbitMQError: If the node is not running.
        """
        proc = self._proc
        if proc is None or proc.poll() is not None:
            raise RabbitMQError(f"{self.node_name} is not running")
        if abrupt:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        else:
            with contextlib.suppress(RabbitMQError, subprocess.TimeoutExpired):
                self.rabbitmqctl("stop", timeout=timeout)
        _end_process(proc, grace=timeout)
        self._proc = None
        # Children that left the process group (the port helpers) carry the marker.
        _kill_marked(str(self.directory))

    def restart(self, timeout: float | None = None) -> None:
        """Start a node stopped by :meth:`shutdown` again: same name, ports and data directory.

        A cluster member rejoins its cluster; durable queues and messages come back.

        Args:
            timeout: Seconds to wait for Connection.Start (default: the node's
                ``start_timeout``).

        Raises:
            RabbitMQError: If the node was never started or is still running.
            RabbitMQStartError: If it does not come up in time.
        """
        if self._dir is None or self.running:
            raise RabbitMQError(f"{self.node_name} cannot be restarted: {self!r}")
        self._spawn(same_ports=True)
        proc = self._proc
        assert proc is not None
        timeout = self.start_timeout if timeout is None else timeout
        # No retry on other ports (as wait_until_ready does): clients know these.
        problem = self._poll_ready(proc, time.monotonic() + timeout)
        if problem is not None:
            raise RabbitMQStartError(
                f"RabbitMQ node {self.node_name} did not restart: {problem}.\n"
                f"--- log tail ---\n{self.log_tail()}"
            )

    def kill(self) -> None:
        """Kill the node abruptly (a node failure, as clients see it); :meth:`stop` cleans up."""
        if self._proc is not None and self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait()
        if self._dir is not None:
            _kill_marked(str(self._dir))

    def __enter__(self) -> RabbitMQNode:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        port = self._amqp_port if self._amqp_port is not None else "-"
        return f"<RabbitMQNode {self.node_name} port={port} running={self.running}>"

    # -- inspection and control -----------------------------------------------------------

    def rabbitmqctl(self, *args: str, timeout: float = DEFAULT_CTL_TIMEOUT) -> str:
        """Run ``rabbitmqctl -n NODE ARGS...`` with the node's environment and cookie.

        Args:
            *args: The command and its arguments, e.g. ``"list_queues", "name", "messages"``.
            timeout: Seconds before the command is abandoned.

        Returns:
            Its standard output.

        Raises:
            RabbitMQCtlError: If it exits with a non-zero status.
            subprocess.TimeoutExpired: If it takes longer than ``timeout``.
        """
        result = subprocess.run(
            [str(RABBITMQCTL), "-n", self.node_name, *args],
            env=self.environment(),
            cwd=self.directory,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            output = result.stdout + result.stderr
            raise RabbitMQCtlError(
                f"rabbitmqctl {' '.join(args)} failed with status {result.returncode}: "
                f"{output.strip()}",
                result.returncode,
                output,
            )
        return result.stdout

    def rabbitmqctl_command(self) -> str:
        """A shell command line that runs this node's ``rabbitmqctl`` by hand."""
        env = self.environment()
        return (
            f"HOME={env['HOME']} ERL_EPMD_PORT={env['ERL_EPMD_PORT']} "
            f"{RABBITMQCTL} -n {self.node_name}"
        )

    def beam_pid(self) -> int | None:
        """The OS pid of the Erlang VM, from the node's pid file (None before it is written)."""
        try:
            return int((self.directory / "rabbit.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def processes(self) -> list[int]:
        """The pids of every live process started for this node (its own epmd excluded)."""
        return [] if self._dir is None else _pids_with_marker(str(self._dir))

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the node's console output and of its log files."""
        if self._dir is None:
            return "(no directory)"
        parts = []
        for path in [self._dir / "server.out", *sorted((self._dir / "log").glob("*.log"))]:
            try:
                text = path.read_text(errors="replace")
            except OSError:
                continue
            tail = "\n".join(text.splitlines()[-lines:])
            parts.append(f"==> {path.name} <==\n{tail}")
        return "\n".join(parts) or "(no output)"


@atexit.register
def _stop_forgotten_nodes() -> None:
    with _live_lock:
        forgotten = list(_live_nodes)
    # One by one: no new threads may start while the interpreter shuts down.
    for node in forgotten:
        with contextlib.suppress(RabbitMQError):
            node.stop()


def stop_nodes(nodes: Sequence[RabbitMQNode]) -> None:
    """Stop several nodes at once.

    Raises:
        RabbitMQError: The first error raised while stopping, after every node was handled.
    """
    if not nodes:
        return
    with ThreadPoolExecutor(len(nodes)) as pool:
        futures = [pool.submit(node.stop) for node in nodes]
    errors = [exc for future in futures if (exc := future.exception()) is not None]
    if errors:
        raise errors[0]


def start_cluster(
    size: int = 3,
    *,
    extra_config: str = "",
    plugins: Sequence[str] = (),
    start_timeout: float = DEFAULT_START_TIMEOUT,
) -> list[RabbitMQNode]:
    """Start ``size`` nodes sharing one cookie and one epmd, and join them into a cluster.

    The nodes boot in parallel; then every node after the first stops its app, joins the first
    node's cluster and starts its app again. The caller stops them (:func:`stop_nodes`).

    Args:
        size: Number of nodes.
        extra_config: Text appended to each node's ``rabbitmq.conf``.
        plugins: Plugins to enable on each node.
        start_timeout: Seconds each node may take to answer with Connection.Start.

    Returns:
        The running nodes; the first is the one the others joined.

    Raises:
        RabbitMQError: If a node does not start or does not join; every node is stopped first.
    """
    if size < 1:
        raise ValueError("a cluster needs at least one node")
    epmd = Epmd()
    cookie = _new_cookie()
    prefix = f"amqp-cluster-{os.getpid()}-{next(_node_counter)}"
    nodes = [
        RabbitMQNode(
            node_name=f"{prefix}-{index}@localhost",
            extra_config=extra_config,
            plugins=plugins,
            cookie=cookie,
            epmd=epmd,
            start_timeout=start_timeout,
        )
        for index in range(1, size + 1)
    ]
    try:
        with ThreadPoolExecutor(size) as pool:
            futures = [pool.submit(node.start) for node in nodes]
        for future in futures:
            future.result()
        seed = nodes[0]
        for node in nodes[1:]:
            node.rabbitmqctl("stop_app")
            node.rabbitmqctl("join_cluster", seed.node_name)
            node.rabbitmqctl("start_app")
            node.wait_until_ready()
    except BaseException:
        stop_nodes(nodes)
        raise
    return nodes


@contextlib.contextmanager
def running_cluster(
    size: int = 3,
    *,
    extra_config: str = "",
    plugins: Sequence[str] = (),
    start_timeout: float = DEFAULT_START_TIMEOUT,
) -> Iterator[list[RabbitMQNode]]:
    """Context manager around :func:`start_cluster` (same arguments) and :func:`stop_nodes`."""
    nodes = start_cluster(
        size, extra_config=extra_config, plugins=plugins, start_timeout=start_timeout
    )
    try:
        yield nodes
    finally:
        stop_nodes(nodes)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tools.broker",
        description="Start a throwaway RabbitMQ node (or cluster), print its URL, wait for Ctrl-C.",
    )
    parser.add_argument("--cluster", type=int, default=1, metavar="N", help="start N nodes")
    parser.add_argument(
        "--plugin", action="append", default=[], help="enable a plugin (repeatable)"
    )
    parser.add_argument(
        "--config", type=Path, help="a file whose text is appended to rabbitmq.conf"
    )
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_START_TIMEOUT, help="start timeout in seconds"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Start a node or a cluster, print how to reach it, and stop it on Ctrl-C or SIGTERM."""
    args = _parse_args(argv)
    extra_config = args.config.read_text() if args.config else ""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # SIGTERM (from a CI runner or `kill`) must clean up exactly like Ctrl-C.
    signal.signal(signal.SIGTERM, interrupt)
    began = time.monotonic()
    try:
        if args.cluster == 1:
            node = RabbitMQNode(
                node_name=f"amqp-dev-{os.getpid()}@localhost",
                extra_config=extra_config,
                plugins=args.plugin,
                start_timeout=args.timeout,
            )
            nodes = [node.start()]
        else:
            nodes = start_cluster(
                args.cluster,
                extra_config=extra_config,
                plugins=args.plugin,
                start_timeout=args.timeout,
            )
    except RabbitMQError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    try:
        print(f"Ready after {time.monotonic() - began:.1f} s.")
        for node in nodes:
            print(f"\n{node.node_name}\n  AMQP_URL={node.url}")
            print(f"  rabbitmqctl: {node.rabbitmqctl_command()} status")
        print("\nPress Ctrl-C to stop and remove everything.", flush=True)
        while True:
            signal.pause()
    except KeyboardInterrupt:
        print("Stopping...", file=sys.stderr)
    finally:
        stop_nodes(nodes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
