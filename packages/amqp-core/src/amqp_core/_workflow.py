"""The connection workflow: which host, which address, how many times, how long.

Written once over :class:`~amqp_core.transport.IOServices`, so every adapter connects the same
way (pika's ``AMQPConnectionWorkflow``):

* the parameter sets are tried in order; each one ``connection_attempts`` times, waiting
  ``retry_delay`` seconds before a repeated attempt (moving on to the next parameter set does
  not wait);
* each attempt resolves the host and tries every address in the resolver's order;
* one address gets ``stack_timeout`` seconds for TCP + TLS + AMQP handshake together (the TCP
  connect alone is bounded by ``socket_timeout``, enforced by the adapter through
  :attr:`~amqp_core.transport.StreamSettings.connect_timeout`);
* the first address whose AMQP handshake completes ends the workflow; when everything failed,
  :class:`~amqp_core.exceptions.AMQPConnectionWorkflowFailed` lists every failure in order.

The per-address work (open the stream, run the handshake) is the connection's: the workflow
calls ``attempt(params, address, on_done)`` and gets back something it can abort.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from amqp_core.exceptions import (
    AMQPConnectionWorkflowAborted,
    AMQPConnectionWorkflowFailed,
    AMQPConnectorSocketConnectError,
    AMQPConnectorStackTimeout,
)
from amqp_core.parameters import Parameters
from amqp_core.transport import AddressInfo, Cancellable, IOServices

__all__ = ("Attempt", "ConnectionWorkflow")


class Attempt(Protocol):
    """One address being connected; the workflow aborts it on ``stack_timeout``."""

    def abort(self) -> None:
        """Give up this address at once; its ``on_done`` must not be called afterwards."""


AttemptFactory = Callable[
    [Parameters, AddressInfo, Callable[[BaseException | None], None]], Attempt
]
"""Start connecting one address; ``on_done(None)`` once open, ``on_done(error)`` if not."""


class ConnectionWorkflow:
    """Walk parameter sets x attempts x resolved addresses until one connection opens.

    Args:
        io: the loop's services.
        params: the parameter sets, in order (at least one).
        attempt: starts one address (see :data:`AttemptFactory`).
        on_done: called once: with the parameters that worked, or with
            :class:`AMQPConnectionWorkflowFailed` / :class:`AMQPConnectionWorkflowAborted`.
    """

    def __init__(
        self,
        io: IOServices,
        params: Sequence[Parameters],
        attempt: AttemptFactory,
        on_done: Callable[[Parameters | BaseException], None],
    ) -> None:
        self._io = io
        self._params = list(params)
        self._attempt_factory = attempt
        self._on_done: Callable[[Parameters | BaseException], None] | None = on_done
        self._errors: list[BaseException] = []
        self._index = 0
        self._round = 0
        self._addresses: list[AddressInfo] = []
        self._pending: Cancellable | None = None
        self._current: Attempt | None = None
        self._stack_timer: Cancellable | None = None

    @property
    def errors(self) -> list[BaseException]:
        """The failures so far, one per address or resolution, in order."""
        return self._errors

    def start(self) -> None:
        """Begin with the first parameter set's first attempt (unless already aborted)."""
        if self._on_done is not None:
            self._resolve()

    def abort(self) -> None:
        """Stop now: cancel what is pending and report :class:`AMQPConnectionWorkflowAborted`."""
        if self._on_done is None:
            return
        self._cancel_all()
        self._finish(AMQPConnectionWorkflowAborted("the connection workflow was aborted"))

    # ------------------------------------------------------------------ steps

    def _resolve(self) -> None:
        params = self._params[self._index]
        self._pending = self._io.getaddrinfo(params.host, params.port, self._on_resolved)

    def _on_resolved(self, result: Sequence[AddressInfo] | BaseException) -> None:
        self._pending = None
        if self._on_done is None:
            return
        params = self._params[self._index]
        if isinstance(result, BaseException) or not result:
            cause = (
                result
                if isinstance(result, BaseException)
                else OSError(f"no address found for {params.host!r}")
            )
            self._errors.append(
                AMQPConnectorSocketConnectError(
                    cause,
                    f"{params.host}:{params.port}: TCP phase failed (name resolution)",
                )
            )
            self._next_round()
            return
        self._addresses = list(result)
        self._try_next_address()

    def _try_next_address(self) -> None:
        if not self._addresses:
            self._next_round()
            return
        address = self._addresses.pop(0)
        params = self._params[self._index]
        if params.stack_timeout is not None:
            self._stack_timer = self._io.call_later(
                params.stack_timeout, lambda: self._on_stack_timeout(params, address)
            )
        self._current = self._attempt_factory(params, address, self._on_attempt_done)

    def _on_attempt_done(self, error: BaseException | None) -> None:
        if self._on_done is None:
            return
        self._current = None
        self._cancel_stack_timer()
        if error is None:
            self._finish(self._params[self._index])
            return
        self._errors.append(error)
        self._try_next_address()

    def _on_stack_timeout(self, params: Parameters, address: AddressInfo) -> None:
        self._stack_timer = None
        current, self._current = self._current, None
        if current is not None:
            current.abort()
        self._errors.append(
            AMQPConnectorStackTimeout(
                f"{params.host}:{params.port} ({address.sockaddr[0]}): the TCP/TLS/AMQP "
                f"bring-up took longer than stack_timeout={params.stack_timeout} s"
            )
        )
        self._try_next_address()

    def _next_round(self) -> None:
        params = self._params[self._index]
        self._round += 1
        if self._round < params.connection_attempts:
            # A repeated attempt of the same parameter set waits retry_delay first.
            self._pending = self._io.call_later(max(params.retry_delay, 0.0), self._retry)
            return
        self._round = 0
        self._index += 1
        if self._index < len(self._params):
            self._resolve()
            return
        self._finish(AMQPConnectionWorkflowFailed(self._errors))

    def _retry(self) -> None:
        self._pending = None
        self._resolve()

    # ------------------------------------------------------------------ helpers

    def _cancel_stack_timer(self) -> None:
        if self._stack_timer is not None:
            self._stack_timer.cancel()
            self._stack_timer = None

    def _cancel_all(self) -> None:
        self._cancel_stack_timer()
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        current, self._current = self._current, None
        if current is not None:
            current.abort()

    def _finish(self, result: Parameters | BaseException) -> None:
        on_done, self._on_done = self._on_done, None
        assert on_done is not None
        on_done(result)
