"""The client API's own errors: those that come from a client's options, not from a reply."""

from __future__ import annotations

from typing import Any

from jackstalk._api.jobs import BaseJob
from jackstalk._protocol.errors import CommandError, InvalidArgument, JackstalkError

__all__ = ["BatchError", "BodyDecodeError", "JobBodyTooLarge"]


class BodyDecodeError(JackstalkError, UnicodeError):
    """A reserved or peeked job's body does not decode with the client's encoding.

    ``job`` is the job with its body left as ``bytes``: it is still reserved (for a
    reserve), so it can be buried or deleted; nothing is lost.
    """

    def __init__(self, message: str, job: BaseJob) -> None:
        super().__init__(message)
        self.job = job


class BatchError(CommandError):
    """Some commands of a batch failed; ``results`` holds, in order, each result or error."""

    def __init__(self, message: str, results: list[Any]) -> None:
        super().__init__(message)
        self.results = results


class JobBodyTooLarge(InvalidArgument):
    """A body is larger than the client's ``max_job_size``; nothing was sent."""
