"""Binding the operations of ``_ops`` to the clients, sync or async, written once.

A transport provides one ``_execute(command) -> event`` (and ``_execute_many`` for batches);
the descriptors here turn each operation into a method calling it, with the operation's
signature and docstring, so the three clients cannot drift apart and mypy sees exact types:
``Client.put`` returns ``int``, ``AsyncClient.put`` an awaitable of ``int``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, overload

from jackstalk._api import operations as ops
from jackstalk._api.base import AsyncJob, ClientBase, Job
from jackstalk._api.operations import Batch, Call
from jackstalk._protocol import commands as c
from jackstalk._protocol import events as e

__all__ = ["AsyncCommands", "SyncCommands"]

T = TypeVar("T")
P = ParamSpec("P")


# ---------------------------------------------------------------------------- binding
#
# Each binder writes, when its class is created, a plain function with the operation's own
# parameters that calls the operation and the transport: no ``*args`` forwarding and no
# per-call closure on the hot path. The function replaces the binder in the class; the
# binder's overloads only tell type checkers what the method is.

_SYNC = """\
def {name}(self, {params}):
    command, convert = op(self, {args})
    return convert(self, self.{executor}(command))
"""

_ASYNC = """\
async def {name}(self, {params}):
    command, convert = op(self, {args})
    return convert(self, await self.{executor}(command))
"""


def _forwarder(op: Callable[..., Any], name: str, template: str, executor: str) -> Any:
    """The method calling ``op``, with ``op``'s signature (minus the client) and docstring."""
    import inspect  # when a client class is created, never on ``import jackstalk``

    signature = inspect.signature(op)
    params = list(signature.parameters.values())[1:]
    namespace: dict[str, Any] = {"op": op}
    declared = []
    for index, param in enumerate(params):
        if param.kind is not param.POSITIONAL_OR_KEYWORD:
            raise TypeError(f"{op.__name__}: only plain parameters can be bound")
        if param.default is param.empty:
            declared.append(param.name)
        else:
            namespace[f"default_{index}"] = param.default
            declared.append(f"{param.name}=default_{index}")
    source = template.format(
        name=name,
        params=", ".join(declared),
        args=", ".join(param.name for param in params),
        executor=executor,
    )
    exec(source, namespace)
    method = namespace[name]
    method.__qualname__ = name
    method.__doc__ = op.__doc__
    method.__module__ = op.__module__
    result = signature.return_annotation
    if isinstance(result, str) and result.startswith(("Call[", "Batch[")):
        result = result[result.index("[") + 1 : -1]  # what the method returns
    this = next(iter(signature.parameters.values())).replace(name="self")
    method.__signature__ = signature.replace(parameters=[this, *params], return_annotation=result)
    method.op = op
    return method


class _Binder(Generic[P, T]):
    _template = _SYNC
    _executor = "_execute"
    """The transport method that runs what the operation built."""

    def __init__(self, op: Callable[Concatenate[Any, P], Any]) -> None:
        self.op = op
        self.__doc__ = op.__doc__

    def __set_name__(self, owner: type[Any], name: str) -> None:
        setattr(owner, name, _forwarder(self.op, name, self._template, self._executor))


class sync_method(_Binder[P, T]):
    """Bind an operation as a blocking method returning ``T``."""

    def __init__(self, op: Callable[Concatenate[Any, P], Call[T]]) -> None:
        super().__init__(op)

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> sync_method[P, T]: ...
    @overload
    def __get__(self, obj: object, owner: type[Any]) -> Callable[P, T]: ...
    def __get__(self, obj: object | None, owner: type[Any]) -> Any:
        raise AssertionError("replaced by the generated method when the class is created")


class async_method(_Binder[P, T]):
    """Bind an operation as an async method returning an awaitable of ``T``."""

    _template = _ASYNC

    def __init__(self, op: Callable[Concatenate[Any, P], Call[T]]) -> None:
        super().__init__(op)

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> async_method[P, T]: ...
    @overload
    def __get__(self, obj: object, owner: type[Any]) -> Callable[P, Awaitable[T]]: ...
    def __get__(self, obj: object | None, owner: type[Any]) -> Any:
        raise AssertionError("replaced by the generated method when the class is created")


class sync_batch(sync_method[P, T]):
    """Bind a batch operation (a list of commands, pipelined) as a blocking method."""

    _executor = "_execute_many"

    def __init__(self, op: Callable[Concatenate[Any, P], Batch[T]]) -> None:
        _Binder.__init__(self, op)


class async_batch(async_method[P, T]):
    """Bind a batch operation (a list of commands, pipelined) as an async method."""

    _executor = "_execute_many"

    def __init__(self, op: Callable[Concatenate[Any, P], Batch[T]]) -> None:
        _Binder.__init__(self, op)


J = TypeVar("J")


def _optional(
    op: Callable[Concatenate[Any, P], Call[Any]], job: type[J]
) -> Callable[Concatenate[Any, P], Call[J | None]]:
    """Type an operation returning a job or None with the job class of one client kind."""
    return op


def _exact(
    op: Callable[Concatenate[Any, P], Call[Any]], job: type[J]
) -> Callable[Concatenate[Any, P], Call[J]]:
    """Type an operation returning a job with the job class of one client kind."""
    return op


class SyncCommands(ClientBase):
    """Every operation as a blocking method; a transport supplies ``_execute``."""

    _job_type = Job

    def _execute(self, command: c.Command, /) -> e.Event:
        raise NotImplementedError

    def _execute_many(self, commands: list[c.Command], /) -> list[e.Event]:
        raise NotImplementedError

    put = sync_method(ops.put)
    put_many = sync_batch(ops.put_many)
    use = sync_method(ops.use)
    using = sync_method(ops.using)
    watch = sync_method(ops.watch)
    ignore = sync_method(ops.ignore)
    watching = sync_method(ops.watching)
    tubes = sync_method(ops.tubes)
    reserve = sync_method(_optional(ops.reserve, Job))
    reserve_job = sync_method(_exact(ops.reserve_job, Job))
    delete = sync_method(ops.delete)
    release = sync_method(ops.release)
    bury = sync_method(ops.bury)
    touch = sync_method(ops.touch)
    kick = sync_method(ops.kick)
    kick_job = sync_method(ops.kick_job)
    peek = sync_method(_optional(ops.peek, Job))
    peek_ready = sync_method(_optional(ops.peek_ready, Job))
    peek_delayed = sync_method(_optional(ops.peek_delayed, Job))
    peek_buried = sync_method(_optional(ops.peek_buried, Job))
    stats = sync_method(ops.stats)
    stats_tube = sync_method(ops.stats_tube)
    stats_job = sync_method(ops.stats_job)
    pause_tube = sync_method(ops.pause_tube)


class AsyncCommands(ClientBase):
    """Every operation as an async method; a transport supplies ``_execute``."""

    _job_type = AsyncJob

    async def _execute(self, command: c.Command, /) -> e.Event:
        raise NotImplementedError

    async def _execute_many(self, commands: list[c.Command], /) -> list[e.Event]:
        raise NotImplementedError

    put = async_method(ops.put)
    put_many = async_batch(ops.put_many)
    use = async_method(ops.use)
    using = async_method(ops.using)
    watch = async_method(ops.watch)
    ignore = async_method(ops.ignore)
    watching = async_method(ops.watching)
    tubes = async_method(ops.tubes)
    reserve = async_method(_optional(ops.reserve, AsyncJob))
    reserve_job = async_method(_exact(ops.reserve_job, AsyncJob))
    delete = async_method(ops.delete)
    release = async_method(ops.release)
    bury = async_method(ops.bury)
    touch = async_method(ops.touch)
    kick = async_method(ops.kick)
    kick_job = async_method(ops.kick_job)
    peek = async_method(_optional(ops.peek, AsyncJob))
    peek_ready = async_method(_optional(ops.peek_ready, AsyncJob))
    peek_delayed = async_method(_optional(ops.peek_delayed, AsyncJob))
    peek_buried = async_method(_optional(ops.peek_buried, AsyncJob))
    stats = async_method(ops.stats)
    stats_tube = async_method(ops.stats_tube)
    stats_job = async_method(ops.stats_job)
    pause_tube = async_method(ops.pause_tube)
