"""Tests of the real-RabbitMQ harness: tools.broker and the tools.pytest_rabbitmq plugin.

These start nodes of their own (besides the session's node of the plugin) because what they test
is the starting and the stopping. The Connection.Start checks here parse the bytes with
``struct`` alone, independently of amqp_core's codec.
"""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tools import broker
from tools.broker import (
    PROTOCOL_HEADER,
    Epmd,
    RabbitMQCtlError,
    RabbitMQNode,
    RabbitMQNotInstalledError,
    RabbitMQStartError,
    probe_connection_start,
    running_cluster,
)

# -- a minimal, test-only reading of Connection.Start ----------------------------------------


@dataclass(frozen=True)
class ConnectionStart:
    version: tuple[int, int]
    server_properties: dict[bytes, object]
    mechanisms: list[bytes]
    locales: list[bytes]


def _read_table(data: bytes) -> dict[bytes, object]:
    # Only the value types RabbitMQ puts in its server properties: S (long string), F (nested
    # table) and t (boolean). Anything else fails the test loudly.
    table: dict[bytes, object] = {}
    offset = 0
    while offset < len(data):
        key_size = data[offset]
        key = data[offset + 1 : offset + 1 + key_size]
        offset += 1 + key_size
        tag = data[offset : offset + 1]
        offset += 1
        value: object
        if tag == b"t":
            value = data[offset] != 0
            offset += 1
        elif tag in (b"S", b"F"):
            (size,) = struct.unpack_from(">I", data, offset)
            raw = data[offset + 4 : offset + 4 + size]
            value = raw if tag == b"S" else _read_table(raw)
            offset += 4 + size
        else:
            raise AssertionError(f"unexpected field type {tag!r} for {key!r}")
        table[key] = value
    assert offset == len(data)
    return table


def _read_connection_start(payload: bytes) -> ConnectionStart:
    class_id, method_id, major, minor, table_size = struct.unpack_from(">HHBBI", payload)
    assert (class_id, method_id) == (10, 10)
    offset = 10
    properties = _read_table(payload[offset : offset + table_size])
    offset += table_size
    strings = []
    for _ in range(2):  # mechanisms, then locales: long strings of space-separated words
        (size,) = struct.unpack_from(">I", payload, offset)
        strings.append(payload[offset + 4 : offset + 4 + size].split())
        offset += 4 + size
    assert offset == len(payload), "bytes left after Connection.Start's arguments"
    return ConnectionStart((major, minor), properties, strings[0], strings[1])


def _raw_connection_start(port: int) -> bytes:
    """Read the broker's first frame over a plain socket and check its framing by hand."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(PROTOCOL_HEADER)
        data = b""
        while len(data) < 7 or len(data) < 8 + struct.unpack_from(">I", data, 3)[0]:
            chunk = sock.recv(65536)
            assert chunk, "broker closed the connection before a whole frame"
            data += chunk
    frame_type, channel, size = struct.unpack_from(">BHI", data)
    assert (frame_type, channel) == (1, 0), "expected a method frame on channel 0"
    assert len(data) == 7 + size + 1, "the broker must wait for Start-Ok after Connection.Start"
    assert data[-1] == 0xCE
    return data[7:-1]


# -- process checks, from /proc, independent of the harness's own bookkeeping ------------------


def _alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie (a zombie has exited already)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _pids_whose_environment_has(entry: str) -> list[int]:
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if entry.encode() in environ:
            found.append(int(proc.name))
    return found


def _epmd_pids(port: int) -> list[int]:
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"epmd") and str(port).encode() in argv:
            found.append(int(proc.name))
    return found


def _refuses_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return False
    except ConnectionRefusedError:
        return True


@dataclass(frozen=True)
class Traces:
    """What a running node leaves on the machine, recorded before it stops."""

    node_name: str
    directory: Path
    pids: list[int]
    amqp_port: int
    epmd_port: int


def _traces(node: RabbitMQNode) -> Traces:
    beam = node.beam_pid()
    assert beam is not None
    pids = node.processes()
    assert beam in pids, "the Erlang VM must be among the node's processes"
    assert node.process is not None
    assert node.process.pid in pids
    epmd_pid = node.epmd.pid
    assert epmd_pid is not None
    return Traces(
        node.node_name,
        node.directory,
        [*pids, epmd_pid],
        node.amqp_port,
        node.epmd.port,
    )


def _assert_gone(traces: Traces) -> None:
    assert not traces.directory.exists()
    assert [pid for pid in traces.pids if _alive(pid)] == []
    assert _pids_whose_environment_has(f"RABBITMQ_NODENAME={traces.node_name}") == []
    assert _epmd_pids(traces.epmd_port) == []
    assert _refuses_connections(traces.amqp_port)
    assert _refuses_connections(traces.epmd_port)


# -- a node of this module's own -------------------------------------------------------------


@pytest.fixture(scope="module")
def node() -> Iterator[RabbitMQNode]:
    with RabbitMQNode() as started:
        yield started


def test_node_answers_the_protocol_header_with_connection_start(node: RabbitMQNode) -> None:
    raw = _raw_connection_start(node.amqp_port)
    assert raw == probe_connection_start("127.0.0.1", node.amqp_port)

    start = _read_connection_start(raw)
    assert start.version == (0, 9)
    properties = start.server_properties
    assert properties[b"product"] == b"RabbitMQ"
    assert isinstance(properties[b"version"], bytes)
    assert properties[b"version"].startswith(b"3.")
    capabilities = properties[b"capabilities"]
    assert isinstance(capabilities, dict)
    for capability in (
        b"publisher_confirms",
        b"exchange_exchange_bindings",
        b"basic.nack",
        b"consumer_cancel_notify",
        b"connection.blocked",
        b"authentication_failure_close",
    ):
        assert capabilities[capability] is True, capability
    assert {b"PLAIN", b"AMQPLAIN"} <= set(start.mechanisms)
    assert start.locales == [b"en_US"]


def test_url_names_the_node_on_localhost(node: RabbitMQNode) -> None:
    url = urllib.parse.urlsplit(node.url)
    assert (url.scheme, url.username, url.password) == ("amqp", "guest", "guest")
    assert (url.hostname, url.port, url.path) == ("127.0.0.1", node.amqp_port, "/%2F")
    assert node.amqp_port != node.dist_port


def test_rabbitmqctl_talks_to_the_node(node: RabbitMQNode) -> None:
    assert node.rabbitmqctl("eval", "node().").strip() == f"'{node.node_name}'"
    assert node.rabbitmqctl("list_vhosts", "--quiet").split() == ["name", "/"]
    with pytest.raises(RabbitMQCtlError) as raised:
        node.rabbitmqctl("no_such_command")
    assert raised.value.returncode != 0
    assert "no_such_command" in raised.value.output


def test_node_keeps_to_its_directory_and_loopback(node: RabbitMQNode) -> None:
    status = json.loads(node.rabbitmqctl("status", "--formatter", "json"))
    directory = str(node.directory)
    assert status["data_directory"].startswith(directory + "/")
    assert status["config_files"] == [f"{directory}/rabbitmq.conf"]
    assert status["enabled_plugin_file"] == f"{directory}/enabled_plugins"
    files = [path for path in status["log_files"] if path != "<stdout>"]
    assert files
    assert all(path.startswith(directory + "/") for path in files)
    listeners = {
        (item["protocol"], item["interface"], item["port"]) for item in status["listeners"]
    }
    assert listeners == {
        ("amqp", "127.0.0.1", node.amqp_port),
        ("clustering", "127.0.0.1", node.dist_port),
    }
    assert status["pid"] == node.beam_pid()


# -- starting and stopping -------------------------------------------------------------------


def test_stop_leaves_no_process_and_no_directory() -> None:
    node = RabbitMQNode().start()
    try:
        traces = _traces(node)
        assert traces.directory.is_dir()
        assert all(_alive(pid) for pid in traces.pids)
    finally:
        node.stop()
    _assert_gone(traces)
    node.stop()  # a second stop is harmless
    assert not node.running


_START_AND_WAIT = """
import json, sys, time
from tools.broker import RabbitMQNode
node = RabbitMQNode().start()
print(json.dumps({
    "node_name": node.node_name, "directory": str(node.directory),
    "pids": [*node.processes(), node.epmd.pid],
    "amqp_port": node.amqp_port, "epmd_port": node.epmd.port,
}), flush=True)
time.sleep(600)
"""


def test_a_killed_process_leaves_no_node_behind() -> None:
    # SIGKILL: no atexit, no finally. The harness's watcher process cleans up instead.
    process = subprocess.Popen(
        [sys.executable, "-c", _START_AND_WAIT],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line, "the node did not start"
        started = json.loads(line)
        traces = Traces(
            started["node_name"],
            Path(started["directory"]),
            started["pids"],
            started["amqp_port"],
            started["epmd_port"],
        )
        assert all(_alive(pid) for pid in traces.pids)
    finally:
        process.kill()
        process.wait()
        if process.stdout is not None:
            process.stdout.close()
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline and (
        traces.directory.exists() or any(_alive(pid) for pid in traces.pids)
    ):
        time.sleep(0.1)
    _assert_gone(traces)


def test_two_nodes_run_side_by_side_and_fail_alone() -> None:
    with RabbitMQNode() as first, RabbitMQNode() as second:
        assert first.node_name != second.node_name
        ports = {first.amqp_port, first.dist_port, second.amqp_port, second.dist_port}
        assert len(ports) == 4
        assert first.epmd.port != second.epmd.port
        assert first.rabbitmqctl("eval", "node().").strip() == f"'{first.node_name}'"
        assert second.rabbitmqctl("eval", "node().").strip() == f"'{second.node_name}'"
        first_traces, second_traces = _traces(first), _traces(second)

        second.kill()
        assert not second.running
        assert _refuses_connections(second.amqp_port)
        assert _read_connection_start(probe_connection_start("127.0.0.1", first.amqp_port))
    _assert_gone(first_traces)
    _assert_gone(second_traces)


@pytest.mark.slow
def test_a_taken_port_is_retried_on_another(monkeypatch: pytest.MonkeyPatch) -> None:
    epmd = Epmd()
    epmd.acquire()  # so that the next port handed out is the node's AMQP port
    real_find_free_port = broker.find_free_port
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        taken_port = taken.getsockname()[1]
        handed_out: list[int] = []

        def find_free_port() -> int:
            # The first port handed out (the node's AMQP port) is one that is already taken.
            handed_out.append(real_find_free_port() if handed_out else taken_port)
            return handed_out[-1]

        monkeypatch.setattr(broker, "find_free_port", find_free_port)
        try:
            with RabbitMQNode(epmd=epmd) as node:
                assert handed_out[0] == taken_port
                assert node.amqp_port not in (taken_port, handed_out[1])
                assert node.amqp_port in handed_out[2:]
                assert _read_connection_start(probe_connection_start("127.0.0.1", node.amqp_port))
        finally:
            epmd.release()


def test_a_node_that_cannot_start_fails_with_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    node = RabbitMQNode(extra_config="this line = is not valid rabbitmq.conf", start_timeout=60)
    with pytest.raises(RabbitMQStartError) as raised:
        node.start()
    message = str(raised.value)
    assert node.node_name in message
    assert "--- log tail ---" in message
    assert "failed_to_parse_configuration_file" in message
    assert list(tmp_path.iterdir()) == []
    assert _pids_whose_environment_has(f"RABBITMQ_NODENAME={node.node_name}") == []


def test_a_missing_installation_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(broker, "RABBITMQ_SERVER", tmp_path / "no-rabbitmq-server")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with pytest.raises(RabbitMQNotInstalledError, match=r"apt-get install .*rabbitmq-server"):
        broker.ensure_rabbitmq_installed()
    with pytest.raises(RabbitMQNotInstalledError):
        RabbitMQNode().start()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_three_nodes_form_a_cluster() -> None:
    with running_cluster(3) as nodes:
        names = {node.node_name for node in nodes}
        assert len(names) == 3
        assert len({node.epmd.port for node in nodes}) == 1, "one epmd serves the cluster"
        assert len({node.cookie for node in nodes}) == 1
        for node in nodes:
            status = json.loads(node.rabbitmqctl("cluster_status", "--formatter", "json"))
            assert set(status["running_nodes"]) == names
            assert set(status["disk_nodes"]) == names
            assert _read_connection_start(probe_connection_start("127.0.0.1", node.amqp_port))
        traces = [_traces(node) for node in nodes]
    for trace in traces:
        _assert_gone(trace)


# -- the pytest plugin -----------------------------------------------------------------------


def test_amqp_url_fixture_gives_a_broker_and_marks_the_test(
    amqp_url: str, rabbitmq: RabbitMQNode | None, request: pytest.FixtureRequest
) -> None:
    assert request.node.get_closest_marker("broker") is not None
    url = urllib.parse.urlsplit(amqp_url)
    assert url.hostname is not None
    assert url.port is not None
    if rabbitmq is not None:
        assert amqp_url == rabbitmq.url
        assert rabbitmq.running
    assert _read_connection_start(probe_connection_start(url.hostname, url.port)).version == (0, 9)


_INNER_TESTS = textwrap.dedent(
    """
    import os

    import pytest


    def test_uses_the_url(amqp_url, rabbitmq):
        assert rabbitmq is None
        assert amqp_url == os.environ["AMQP_URL"]


    @pytest.mark.broker
    def test_marked_without_fixture():
        pass


    def test_plain():
        pass
    """
)


def _inner_pytester(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_inner=_INNER_TESTS)
    pytester.makeini("[pytest]\nmarkers =\n    broker: talks to a real RabbitMQ\n")


def test_plugin_uses_amqp_url_and_hides_its_password(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    _inner_pytester(pytester)
    monkeypatch.setenv("AMQP_URL", "amqp://guest:secret@broker.invalid:5672/%2F")
    result = pytester.runpytest_inprocess("-p", "tools.pytest_rabbitmq", "--strict-markers")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["rabbitmq: AMQP_URL=amqp://guest:***@broker.invalid:5672/%2F"])
    assert "secret" not in result.stdout.str()


def test_plugin_marks_fixture_users_so_they_can_be_deselected(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    _inner_pytester(pytester)
    monkeypatch.delenv("AMQP_URL", raising=False)
    monkeypatch.setattr(broker, "RABBITMQ_SERVER", pytester.path / "no-rabbitmq-server")
    result = pytester.runpytest_inprocess("-p", "tools.pytest_rabbitmq", "-m", "not broker")
    result.assert_outcomes(passed=1, deselected=2)


def test_plugin_errors_instead_of_skipping_without_a_broker(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    _inner_pytester(pytester)
    monkeypatch.delenv("AMQP_URL", raising=False)
    monkeypatch.setattr(broker, "RABBITMQ_SERVER", pytester.path / "no-rabbitmq-server")
    result = pytester.runpytest_inprocess("-p", "tools.pytest_rabbitmq")
    # Both broker tests (the fixture user and the test marked by hand) error; none is skipped.
    result.assert_outcomes(passed=1, errors=2)
    result.stdout.fnmatch_lines(["*RabbitMQNotInstalledError*"])
