"""The benchmark suite: every adapter against pika and the raw socket, in one run.

Run it with ``hatch run bench`` (``python -m bench.run``); ``--quick`` for a short run,
``--help`` for the rest. With no ``AMQP_URL`` it starts a throwaway RabbitMQ
(:class:`tools.broker.RabbitMQNode`) and removes it at the end.

Each (client, scenario, repetition) runs in a fresh interpreter (:mod:`bench.clients`), so the
peak RSS it reports is that client's alone. Repetitions are interleaved (every client once, then
again) so that the noise of a shared machine spreads over all clients; the table shows medians.
The scenarios are described in :mod:`bench.clients`; ``docs/performance.md`` explains the rows.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from amqp_core import spec
from bench import raw
from bench.clients import CLIENTS

RAW = "raw socket"
OURS_BLOCKING = "amqp-blocking"
PIKA_BLOCKING = "pika BlockingConnection"
PIKA_SELECT = "pika SelectConnection"
#: Each framework adapter's like-for-like pika: its memory baseline. These pika clients run the
#: consume scenario only, unless asked for by name (--client); pika's Twisted adapter only
#: ever runs it.
FRAMEWORK_PIKA = {
    "amqp-asyncio (callback)": "pika AsyncioConnection",
    "amqp-asyncio native (asyncio)": "pika AsyncioConnection",
    "amqp-tornado": "pika TornadoConnection",
    "amqp-twisted": "pika TwistedProtocolConnection",
    "amqp-gevent": "pika GeventConnection",
}
CONSUME_ONLY = {"pika TwistedProtocolConnection"}
# Named after this run, and deleted at its end: two runs against one broker would otherwise
# purge each other's queues, and a consumer whose messages were purged waits forever.
_RUN = f"{os.getpid()}"
QUEUE = f"bench.q.{_RUN}"
RPC_REQUESTS = f"bench.rpc.requests.{_RUN}"
RPC_REPLIES = f"bench.rpc.replies.{_RUN}"


@dataclass
class Scenario:
    """One row group of the table."""

    key: str
    title: str
    scenario: str
    size: int
    n: int
    quick_n: int
    higher_is_better: bool = True
    #: ``n`` for pika's BlockingConnection when it is far slower (one round trip per confirm).
    slow_n: int | None = None
    #: Latency scenarios: this many round trips (connects) first, run but not counted, so that
    #: one-off costs (lazy imports, first allocations, the broker still busy with the previous
    #: client) do not land in any client's samples.
    warmup: int = 0
    #: Repetitions beyond ``--repeat`` (not with ``--quick``), for a row that needs more.
    extra_repeats: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def repetitions(self, repeat: int, quick: bool) -> int:
        """How many times each client runs this scenario."""
        return repeat if quick else repeat + self.extra_repeats


SCENARIOS = [
    Scenario("publish64", "publish 64 B, no confirms", "publish", 64, 50_000, 5_000),
    Scenario("publish4k", "publish 4 KiB, no confirms", "publish", 4096, 10_000, 2_000),
    Scenario(
        "confirm",
        "publish 64 B with confirms (fastest mode)",
        "confirm",
        64,
        30_000,
        5_000,
        slow_n=3_000,
    ),
    # Two more runs: this row was bistable at the broker (a few deliveries per write, twice the
    # broker's CPU per message) until each run got a new queue instead of a purged one (see
    # Admin.reset and docs/performance.md); seven runs keep a stray slow run out of the median.
    Scenario(
        "consume", "consume 64 B, manual acks", "consume", 64, 100_000, 5_000, extra_repeats=2
    ),
    Scenario("rpc", "RPC round trip", "rpc", 64, 2_000, 200, higher_is_better=False, warmup=100),
    Scenario(
        "connect",
        "connect + channel + close",
        "connect",
        0,
        100,
        5,
        higher_is_better=False,
        warmup=10,
    ),
]


def baseline(client: str, scenario: str) -> str:
    """The pika adapter a client is compared with in a scenario (as issue 8 fixes them)."""
    if scenario == "rpc":
        return PIKA_BLOCKING
    if client in (OURS_BLOCKING, PIKA_BLOCKING) and scenario != "consume":
        return PIKA_BLOCKING
    return PIKA_SELECT


# ---------------------------------------------------------------------------------------------
# Running jobs
# ---------------------------------------------------------------------------------------------


#: Parts of the standard library that no benchmark client imports (a regular expression).
_STDLIB_SKIP = r"[/\\](test|tests|idlelib|lib2to3|tkinter|turtledemo|ensurepip|site-packages)[/\\]"


@contextlib.contextmanager
def compiled_bytecode() -> Iterator[None]:
    """Give every job process compiled bytecode, as an installed package has.

    Where ``PYTHONDONTWRITEBYTECODE`` is set (as on the development machine) and
    site-packages holds no ``__pycache__``, every fresh interpreter would compile each module it
    imports from source, and the compiler's memory would count in every client's peak RSS
    (pika's and ours alike). So everything importable is compiled once, before the clock
    starts, into a private ``PYTHONPYCACHEPREFIX`` that the job processes inherit.

    The standard library too: under the prefix, Python no longer finds the stdlib's own
    ``__pycache__``, and compiling a big module such as ``datetime`` (which every client
    imports) alone raised a worker's peak by over 3 MiB, more for a client whose framework
    imports more of the stdlib (trio). Its test suites and GUI modules are left out (no client
    imports them; they would only make the compile slower).
    """
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with tempfile.TemporaryDirectory(prefix="bench-pycache-") as prefix:
        env = dict(os.environ, PYTHONPYCACHEPREFIX=prefix)
        paths = sysconfig.get_paths()
        subprocess.run(
            [sys.executable, "-m", "compileall", "-q", "-j0", "-x", _STDLIB_SKIP, paths["stdlib"]],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,  # as below
        )
        sources = [paths["purelib"], os.path.join(root, "packages")]
        sources.append(os.path.join(root, "bench"))
        subprocess.run(
            [sys.executable, "-m", "compileall", "-q", "-j0", *sources],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,  # a module that does not compile is reported by its own import
        )
        previous = os.environ.get("PYTHONPYCACHEPREFIX")
        os.environ["PYTHONPYCACHEPREFIX"] = prefix
        try:
            yield
        finally:
            if previous is None:
                del os.environ["PYTHONPYCACHEPREFIX"]
            else:
                os.environ["PYTHONPYCACHEPREFIX"] = previous


def run_worker(job: dict[str, Any], timeout: float = 300.0) -> dict[str, Any]:
    """Run one job in a fresh interpreter; return its JSON result (or ``{"error": ...}``)."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "bench.clients", json.dumps(job)],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": tail}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


class Admin:
    """Queue housekeeping on a raw connection of its own."""

    def __init__(self, url: str) -> None:
        self.connection = raw.RawConnection(url)

    def reset(self, *queues: str) -> None:
        """Give each queue a fresh start: deleted (if it exists) and declared anew, empty.

        Not purged: a purged queue's Erlang process keeps the heap its earlier fills grew
        (about 200 MB after a few 100k-message fills, against 117 MB for a new queue after
        one), and the broker consumed from such a queue in its slow mode in 11 of 16 runs,
        against none of 16 from a new queue (see docs/performance.md).
        """
        for queue in queues:
            self.connection.rpc(spec.Queue.Delete(queue=queue), spec.Queue.DeleteOk)
            self.connection.rpc(spec.Queue.Declare(queue=queue), spec.Queue.DeclareOk)

    def delete(self, *queues: str) -> None:
        for queue in queues:
            self.connection.rpc(spec.Queue.Delete(queue=queue), spec.Queue.DeleteOk)

    def close(self) -> None:
        self.connection.close()


@contextlib.contextmanager
def rpc_responder(url: str) -> Iterator[None]:
    """A raw responder in a process of its own, for the RPC scenario."""
    code = (
        "import sys\nfrom bench.raw import rpc_responder\n"
        f"rpc_responder({url!r}, {RPC_REQUESTS!r}, {RPC_REPLIES!r}, "
        "lambda: print('ready', flush=True))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the RPC responder did not start")
        yield
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


@contextlib.contextmanager
def broker() -> Iterator[tuple[str, Any]]:
    """The broker's URL, and the node (for rabbitmqctl) when this run started it."""
    url = os.environ.get("AMQP_URL")
    if url:
        yield url, None
        return
    from tools.broker import RabbitMQNode

    print("AMQP_URL is not set: starting a throwaway RabbitMQ ...", file=sys.stderr, flush=True)
    with RabbitMQNode() as node:
        yield node.url, node


def machine_facts(node: Any) -> dict[str, str]:
    """CPU, cores, Python, pika and RabbitMQ versions, for the report."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    import pika

    rabbit = "unknown"
    if node is not None:
        with contextlib.suppress(Exception):
            status = node.rabbitmqctl("version")
            rabbit = status.strip().splitlines()[-1]
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": f"{cpu}, {os.cpu_count()} cores (shared with the broker)",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "pika": pika.__version__,
        "rabbitmq": rabbit,
        "os": platform.platform(),
    }


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


def run_suite(
    url: str,
    clients: list[str],
    scenarios: list[Scenario],
    repeat: int,
    quick: bool,
    log: Any = sys.stderr,
    consume_only: frozenset[str] = frozenset(),
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Run every scenario for every client ``repeat`` times; results[scenario][client].

    The clients in ``consume_only`` run the consume scenario and no other.
    """

    def runs(client: str, scenario: Scenario) -> bool:
        return client not in consume_only or scenario.key == "consume"

    results: dict[str, dict[str, list[dict[str, Any]]]] = {
        s.key: {c: [] for c in clients if runs(c, s)} for s in scenarios
    }
    admin = Admin(url)
    admin.reset(QUEUE, RPC_REQUESTS, RPC_REPLIES)
    try:
        for scenario in scenarios:
            needs_responder = scenario.scenario == "rpc"
            with rpc_responder(url) if needs_responder else contextlib.nullcontext():
                reps = scenario.repetitions(repeat, quick)
                for rep in range(reps):
                    # Rotate the order each repetition, so nobody always runs first or last.
                    shift = rep % len(clients)
                    for client in clients[shift:] + clients[:shift]:
                        if not runs(client, scenario):
                            continue
                        n = scenario.quick_n if quick else scenario.n
                        if client == PIKA_BLOCKING and scenario.slow_n is not None:
                            n = min(n, scenario.slow_n)
                        job = {
                            "client": client,
                            "scenario": scenario.scenario,
                            "url": url,
                            "queue": RPC_REQUESTS if needs_responder else QUEUE,
                            "replies": RPC_REPLIES,
                            "n": n + scenario.warmup,
                            "warmup": scenario.warmup,
                            "size": scenario.size,
                        }
                        admin.reset(QUEUE, RPC_REPLIES)
                        if needs_responder:
                            # Let a slow client's late request or reply not spill over.
                            time.sleep(0.05)
                            admin.reset(RPC_REPLIES)
                        if scenario.scenario == "consume":
                            raw.fill_queue(url, QUEUE, n, b"x" * scenario.size)
                        started = time.monotonic()
                        result = run_worker(job)
                        result["n"] = n
                        results[scenario.key][client].append(result)
                        shown = result.get("error") or f"{result['value']:,.1f} {result['unit']}"
                        print(
                            f"[{scenario.key} {rep + 1}/{reps}] {client}: {shown} "
                            f"({time.monotonic() - started:.1f} s)",
                            file=log,
                            flush=True,
                        )
    finally:
        with contextlib.suppress(Exception):
            admin.delete(QUEUE, RPC_REPLIES, RPC_REQUESTS)
        admin.close()
    return results


def run_blocked(
    url: str, node: Any, clients: list[str], n: int, seconds: float, log: Any = sys.stderr
) -> dict[str, dict[str, Any]]:
    """Publish while the broker blocks publishers; report each client's peak RSS."""
    out: dict[str, dict[str, Any]] = {}
    if node is None:
        print("blocked: skipped (needs the run's own broker for rabbitmqctl)", file=log)
        return out
    admin = Admin(url)
    try:
        node.rabbitmqctl("set_vm_memory_high_watermark", "0.0000001")
        time.sleep(1.0)
        for client in clients:
            admin.reset(QUEUE)
            job = {
                "client": client,
                "scenario": "blocked",
                "url": url,
                "queue": QUEUE,
                "n": n,
                "size": 64,
                "seconds": seconds,
            }
            result = run_worker(job, timeout=seconds + 60)
            out[client] = result
            shown = result.get("error") or (
                f"{result['value']:,} publishes returned, peak RSS "
                f"{result['maxrss_kb'] / 1024:.1f} MiB"
            )
            print(f"[blocked] {client}: {shown}", file=log, flush=True)
    finally:
        # Always restore the watermark, or the broker stays blocked for everyone.
        node.rabbitmqctl("set_vm_memory_high_watermark", "0.4")
        with contextlib.suppress(Exception):
            admin.delete(QUEUE)
        admin.close()
    return out


# ---------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------


def _median(results: list[dict[str, Any]], key: str = "value") -> float | None:
    values = [r[key] for r in results if "error" not in r and key in r]
    return statistics.median(values) if values else None


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "failed"
    if unit == "msg/s":
        return f"{value:,.0f} msg/s"
    if unit == "us":
        return f"{value:,.0f} us"
    return f"{value:,.2f} {unit}"


def report(
    facts: dict[str, str],
    results: dict[str, dict[str, list[dict[str, Any]]]],
    scenarios: list[Scenario],
    blocked: dict[str, dict[str, Any]],
    repeat: int,
) -> tuple[str, list[tuple[str, str, bool | None]]]:
    """The markdown report, and the targets as (what, measured, met)."""
    more = [
        f"{len(next(iter(results[s.key].values())))} for {s.key}"
        for s in scenarios
        if results.get(s.key) and len(next(iter(results[s.key].values()))) != repeat
    ]
    lines = [
        f"Machine: {facts['cpu']}; {facts['python']}; RabbitMQ {facts['rabbitmq']}; "
        f"pika {facts['pika']}; {facts['os']}; {facts['date']}. Medians of {repeat} "
        f"run(s) per cell{' (' + ', '.join(more) + ')' if more else ''}; every client in a "
        "fresh process.",
        "",
    ]
    medians: dict[tuple[str, str], float | None] = {}
    for scenario in scenarios:
        per_client = results[scenario.key]
        unit = "msg/s" if scenario.higher_is_better else ("us" if scenario.key == "rpc" else "ms")
        for client, runs in per_client.items():
            medians[(scenario.key, client)] = _median(runs)
            if scenario.key == "rpc":
                medians[("rpc99", client)] = _median(runs, "p99")
        lines.append(f"### {scenario.title}")
        lines.append("")
        head = "| client | median | vs pika | share of the ceiling | peak RSS |"
        if scenario.key == "rpc":
            head = "| client | p50 | p99 | p50 vs pika | ceiling / p50 | peak RSS |"
        lines.append(head)
        lines.append("|" + "---|" * (head.count("|") - 1))
        ceiling = medians.get((scenario.key, RAW))
        for client, runs in per_client.items():
            value = medians[(scenario.key, client)]
            base_name = baseline(client, scenario.scenario)
            base = medians.get((scenario.key, base_name))
            if client in (RAW, base_name) or value is None or base is None:
                versus = "-"
            else:
                versus = f"{value / base:.2f}x {base_name.split()[1].replace('Connection', '')}"
            share = "-"
            if ceiling and value and client != RAW:
                ratio = value / ceiling if scenario.higher_is_better else ceiling / value
                share = f"{ratio:.0%}"
            rss = _median(runs, "maxrss_kb")
            rss_text = f"{rss / 1024:.0f} MiB" if rss else "-"
            if scenario.key == "rpc":
                p99 = medians[("rpc99", client)]
                lines.append(
                    f"| {client} | {_fmt(value, unit)} | {_fmt(p99, unit)} | {versus} | "
                    f"{share} | {rss_text} |"
                )
            else:
                name = client
                if scenario.key == "confirm" and client == PIKA_BLOCKING:
                    name += f" (n={runs[0]['n'] if runs else '?'})"
                lines.append(f"| {name} | {_fmt(value, unit)} | {versus} | {share} | {rss_text} |")
        lines.append("")
    if blocked:
        lines.append("### publishing while the broker blocks the connection")
        lines.append("")
        lines.append("| client | publish calls returned | peak RSS |")
        lines.append("|---|---|---|")
        for client, result in blocked.items():
            if "error" in result:
                lines.append(f"| {client} | failed: {result['error']} | - |")
            else:
                lines.append(
                    f"| {client} | {result['value']:,} | {result['maxrss_kb'] / 1024:.0f} MiB |"
                )
        lines.append("")
    return "\n".join(lines), targets(medians, results)


def targets(
    medians: dict[tuple[str, str], float | None],
    results: dict[str, dict[str, list[dict[str, Any]]]],
) -> list[tuple[str, str, bool | None]]:
    """Issue 8's targets, each as (what, measured ratio, met)."""
    out: list[tuple[str, str, bool | None]] = []

    def ratio(key: str, client: str, base: str, goal: float, higher: bool = True) -> None:
        if key not in results or client not in results[key]:
            return  # not run this time (--scenario / --client)
        value, ref = medians.get((key, client)), medians.get((key, base))
        what = f"{key}: {client} {'>=' if higher else '<='} {goal}x {base}"
        if value is None or ref is None:
            out.append((what, "n/a", None))
            return
        measured = value / ref
        met = measured >= goal if higher else measured <= goal
        out.append((what, f"{measured:.2f}x", met))

    async_clients = [
        c
        for c in (
            "amqp-select",
            "amqp-asyncio (callback)",
            "amqp-asyncio native (asyncio)",
            "amqp-asyncio native (trio)",
            "amqp-tornado",
            "amqp-twisted",
            "amqp-gevent",
        )
        if any(c in by_client for by_client in results.values())
    ]
    ratio("publish64", OURS_BLOCKING, PIKA_BLOCKING, 2.5)
    ratio("confirm", OURS_BLOCKING, PIKA_BLOCKING, 10.0)
    for client in async_clients:
        ratio("publish64", client, PIKA_SELECT, 1.5)
    for client in async_clients:
        ratio("confirm", client, PIKA_SELECT, 1.5)
    for client in [OURS_BLOCKING, *async_clients]:
        ratio("consume", client, PIKA_SELECT, 1.3)
    for client in [OURS_BLOCKING, *async_clients]:
        ratio("rpc", client, PIKA_BLOCKING, 0.8, higher=False)
    ratio("connect", OURS_BLOCKING, PIKA_BLOCKING, 1.0, higher=False)
    for client in async_clients:
        ratio("connect", client, PIKA_SELECT, 1.0, higher=False)
    if "consume" in results:
        # Memory against pika on the same framework where pika has an adapter for it (a
        # framework's own imports weigh the same in both), else against SelectConnection.
        rss = {c: _median(r, "maxrss_kb") for c, r in results["consume"].items()}
        for client in [OURS_BLOCKING, *async_clients]:
            if client not in results["consume"]:
                continue
            base = FRAMEWORK_PIKA.get(client, PIKA_SELECT)
            value, ref = rss.get(client), rss.get(base)
            what = f"consume peak RSS: {client} <= {base}"
            if value is None or ref is None:
                out.append((what, "n/a", None))
            else:
                out.append((what, f"{value / ref:.2f}x", value <= ref))
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the suite and print the markdown report; return the exit status."""
    parser = argparse.ArgumentParser(prog="bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one repetition")
    parser.add_argument("--repeat", type=int, help="repetitions per cell (default 5, quick 1)")
    parser.add_argument(
        "--client", action="append", choices=list(CLIENTS), help="only these clients"
    )
    parser.add_argument(
        "--scenario",
        action="append",
        choices=[s.key for s in SCENARIOS] + ["blocked"],
        help="only these scenarios",
    )
    parser.add_argument("--blocked-count", type=int, help="messages for the blocked scenario")
    parser.add_argument("--blocked-seconds", type=float, help="how long to publish while blocked")
    parser.add_argument("--output", help="also write the report to this file")
    parser.add_argument("--json", help="write the raw results as JSON to this file")
    args = parser.parse_args(argv)
    repeat = args.repeat or (1 if args.quick else 5)
    clients = [c for c in CLIENTS if c in (args.client or CLIENTS) and c not in SKIPPED]
    clients += [c for c in (args.client or []) if c not in clients]
    chosen = args.scenario or [s.key for s in SCENARIOS] + ["blocked"]
    scenarios = [s for s in SCENARIOS if s.key in chosen]
    with compiled_bytecode(), broker() as (url, node):
        facts = machine_facts(node)
        # pika's framework adapters are memory baselines: consume only, unless named.
        consume_only = frozenset(
            CONSUME_ONLY | (set(FRAMEWORK_PIKA.values()) - set(args.client or ()))
        )
        results = run_suite(url, clients, scenarios, repeat, args.quick, consume_only=consume_only)
        blocked: dict[str, dict[str, Any]] = {}
        if "blocked" in chosen:
            blocked_clients = [c for c in clients if c != RAW and c not in consume_only]
            blocked = run_blocked(
                url,
                node,
                blocked_clients,
                args.blocked_count or (100_000 if args.quick else 1_000_000),
                args.blocked_seconds or (2.0 if args.quick else 6.0),
            )
    text, goals = report(facts, results, scenarios, blocked, repeat)
    text += "\n### targets (issue 8)\n\n| target | measured | met |\n|---|---|---|\n"
    for what, measured, met in goals:
        text += f"| {what} | {measured} | {'yes' if met else ('n/a' if met is None else 'NO')} |\n"
    print(text)
    if args.output:
        with open(args.output, "w") as out:
            out.write(text)
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"facts": facts, "results": results, "blocked": blocked}, out, indent=1)
    failed = any("error" in r for per in results.values() for rs in per.values() for r in rs)
    return 1 if failed else 0


#: Clients left out by default (none at present). Name one with ``--client`` to run it anyway.
SKIPPED: set[str] = set()

if __name__ == "__main__":
    sys.exit(main())
