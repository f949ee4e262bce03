"""The workbench's exceptions. Every error a user can cause is a WorkbenchError.

Each message says what is wrong, the value given, what is allowed and what to do.
Edges (CLI, dashboard, notebook runner) turn these into one clear line; anything
else is a bug and keeps its traceback.
"""


class WorkbenchError(Exception):
    """Base class for errors caused by input, environment or configuration.

    Messages often quote a library's error, which can quote a token: they are redacted."""

    def __init__(self, message: str = ""):
        from workbench.secrets import redact

        super().__init__(redact(str(message)))


class ConfigError(WorkbenchError, ValueError):
    """One or more configuration problems, all reported at once."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        count = len(self.problems)
        heading = "1 problem in the config:" if count == 1 else f"{count} problems in the config:"
        super().__init__("\n".join([heading] + [f"  - {p}" for p in self.problems]))


class DataError(WorkbenchError, ValueError):
    """A dataset that cannot be used; the message names the file and line."""


class ModelError(WorkbenchError):
    """A model that cannot be found or loaded."""


class BackendUnavailable(WorkbenchError):
    """A training backend that cannot run here; the message has the install command."""


class RunError(WorkbenchError):
    """A run folder that cannot be used (resume, generate, list)."""


class ExportError(WorkbenchError):
    """An adapter or model that cannot be exported."""
