"""Exception types; each maps to one exit code and carries a message that says what to do."""


class GateError(Exception):
    """Base class. ``exit_code`` is what the CLI returns for it."""

    exit_code = 3


class ConfigError(GateError):
    """The config file or a command-line override is wrong (exit 2)."""

    exit_code = 2


class DataError(GateError):
    """The GSM8K data could not be obtained or failed its checksum (exit 2)."""

    exit_code = 2


class ServerError(GateError):
    """The server could not be started, died, or never became healthy (exit 3)."""


class RequestFailed(GateError):
    """An HTTP request to a running server failed (unreachable, timeout, HTTP error)."""


class BenchError(GateError):
    """``sglang.bench_serving`` failed or wrote output we cannot parse."""


class Interrupted(GateError):
    """SIGTERM/SIGINT arrived; the server was torn down (exit 130)."""

    exit_code = 130
