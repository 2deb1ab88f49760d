"""What a program on the native API loads: on trio, no asyncio (it only costs memory there)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.broker

_PROGRAM = textwrap.dedent(
    """
    import json
    import sys

    import anyio

    from amqp_asyncio import connect


    async def main() -> None:
        async with connect(sys.argv[1]) as connection:
            channel = await connection.channel()
            declared = await channel.queue_declare("", exclusive=True)
            await channel.basic_publish("", declared.queue, b"hello")
            async with channel.consume(declared.queue, auto_ack=True) as messages:
                async for message in messages:
                    assert message.body == b"hello"
                    break


    anyio.run(main, backend=sys.argv[2])
    print(json.dumps(sorted(sys.modules)))
    """
)


def _modules_after_a_session(amqp_url: str, backend: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", _PROGRAM, amqp_url, backend],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_trio_program_loads_no_asyncio(amqp_url: str) -> None:
    modules = _modules_after_a_session(amqp_url, "trio")
    assert "amqp_asyncio.native" in modules  # the session did run on the native API
    unwanted = {"asyncio", "amqp_asyncio.io_services", "amqp_asyncio.native._asyncio_stream"}
    assert not modules & unwanted
    assert "anyio.from_thread" not in modules


def test_asyncio_program_uses_the_loops_transport(amqp_url: str) -> None:
    modules = _modules_after_a_session(amqp_url, "asyncio")
    assert "amqp_asyncio.native._asyncio_stream" in modules
