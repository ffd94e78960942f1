"""Errors a request can meet, each with the code that `/accompgen/error` carries."""

from __future__ import annotations

from accompgen.core.errors import UserError

# The public error codes of /accompgen/error, stable like the addresses.
MISSING_FILE = "missing_file"  # the input path does not exist
UNREADABLE = "unreadable"  # the file exists but is not audio libsndfile can read
EMPTY_AUDIO = "empty_audio"  # no samples, or silence only where the region lies
BAD_AUDIO = "bad_audio"  # NaN or infinite samples
BAD_REGION = "bad_region"  # start/duration outside the file, or not positive
TOO_LONG = "too_long"  # the region exceeds the bridge's --max-duration
BAD_ARGUMENT = "bad_argument"  # unknown key, wrong type or value out of range
UNKNOWN_JOB = "unknown_job"  # status/cancel for an id the bridge never gave
FINISHED = "finished"  # cancel for a job that has already ended
MALFORMED = "malformed"  # not an OSC packet, or an address the bridge does not serve
BUSY = "busy"  # the queue is full: try again when a job has finished
OUTPUT = "output"  # the output directory cannot be written (permissions, full disk)
UNAUTHORIZED = "unauthorized"  # missing or wrong token on a non-loopback bridge
INTERRUPTED = "interrupted"  # the bridge stopped twice while running this job
INTERNAL = "internal"  # a bug: the message says what failed


MAX_MESSAGE = 400  # characters of an error message: a 60 KB path must not come back whole
MAX_SHOWN = 120  # characters of a value quoted inside a message


class JobError(UserError):
    """A request the bridge turns down or a job that failed, with its public code."""

    def __init__(self, code: str, message: str):
        super().__init__(message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 3] + "...")
        self.code = code


def shown(value: object) -> str:
    """A value as a message quotes it: its type and repr, the middle cut out when it is long."""
    text = f"{type(value).__name__} {value!r}" if not isinstance(value, str) else repr(value)
    if len(text) <= MAX_SHOWN:
        return text
    half = (MAX_SHOWN - 5) // 2
    return f"{text[:half]} ... {text[-half:]}"
