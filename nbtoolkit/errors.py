"""The nbtoolkit exception tree.

Every error raised on purpose by nbtoolkit derives from :class:`NbToolkitError`. Errors carry
structured attributes and build their message from them, name the problem *and* the fix, and
survive pickling across processes (sweeps run in worker processes and on Dask clusters).

::

    NbToolkitError
    ├── InputError                  a user mistake: exit code 2 in the CLI, UsageError in magics
    │   ├── ConfigError             bad [tool.nbtoolkit] / NBTOOLKIT_* value
    │   ├── DeclarationError        bad hypothesis / options / names in %%experiment
    │   ├── CriteriaError           a Success criterion that does not parse
    │   ├── RunNotFoundError        no run (or baseline) matches an id, prefix or name
    │   │   └── AmbiguousRunIdError a prefix matches several runs
    │   ├── ParameterError          unknown or malformed notebook parameters
    │   ├── ArtifactLinkError       a folder given to log_artifact holds a link pointing outside it
    │   ├── NoActiveRunError        log_* called outside a run
    │   ├── SignatureError          input to Bundle.predict does not match the model's signature
    │   └── BadScoringRequest       a request to `nbtk serve` it cannot answer (HTTP 400)
    ├── StoreError                  the project store cannot serve the request
    │   ├── SchemaVersionError      store written by a newer nbtoolkit
    │   ├── StoreCorruptError       the store database file is damaged (left untouched)
    │   ├── ArtifactIntegrityError  an artifact's bytes do not match its digest
    │   ├── ArtifactLocationError   blobs would be written outside their location (a symlinked folder)
    │   ├── ArtifactStoreUnavailableError
    │   │                           the artifact location (object storage) cannot be reached or used:
    │   │                           endpoint down, no such bucket, credentials refused (exit code 2)
    │   └── DiskFullError           a write hit ENOSPC / EDQUOT / EIO; nothing was recorded
    ├── ExecutionError              the work itself failed: exit code 1
    │   └── NotebookExecutionError  a notebook cell raised (papermill / nbclient)
    └── HandoffError                export / verify / load refused
        ├── GateError               the run is not vetted for export
        │   └── PromotionRefused    a promotion or rollback failed its gates
        ├── BundleIntegrityError    a bundle was changed, is incomplete or unsafe
        └── BundleUnavailableError  a registry version's bundle is neither at its path nor in the store

    UserWarning
    └── NbToolkitWarning            recorded differently from how it was given (not an error)
        └── StoreLocationWarning    the SQLite store sits on a network filesystem
"""

from __future__ import annotations

from typing import Any


def _rebuild(cls: type[NbToolkitError], args: tuple[Any, ...], kwargs: dict[str, Any]) -> NbToolkitError:
    return cls(*args, **kwargs)


class NbToolkitError(Exception):
    """Root of every nbtoolkit error.

    Subclasses take structured keyword arguments and render them in :meth:`describe`.
    ``exit_code`` is what the CLI exits with when this error reaches it.
    """

    exit_code: int = 1

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._init_args = args
        self._init_kwargs = kwargs
        for key, value in kwargs.items():
            setattr(self, key, value)
        super().__init__(*args)

    def describe(self) -> str:
        """Return the message; subclasses build it from their attributes."""
        return " ".join(str(a) for a in self._init_args) or self.__class__.__name__

    def __str__(self) -> str:
        return self.describe()

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self.__class__, self._init_args, self._init_kwargs))


class InputError(NbToolkitError):
    """A user mistake: bad argument, option, name or file. The CLI exits with 2."""

    exit_code = 2


class ConfigError(InputError):
    """A configuration value is invalid."""


class DeclarationError(InputError):
    """An ``%%experiment`` declaration or option is invalid."""


class CriteriaError(InputError):
    """A success criterion does not parse.

    Attributes:
        criterion: the offending text.
        reason: why it was refused.
    """

    criterion: str
    reason: str

    def __init__(self, criterion: str, reason: str) -> None:
        super().__init__(criterion=criterion, reason=reason)

    def describe(self) -> str:
        return (
            f"Success criterion {self.criterion!r} is invalid: {self.reason}. "
            "Write it as 'METRIC OP NUMBER' or 'METRIC OP baseline.METRIC [+|- NUMBER]' "
            "with OP one of >= <= > < ==, e.g. 'roc_auc >= baseline.roc_auc + 0.02'."
        )


class RunNotFoundError(InputError):
    """No run matches the given id, prefix, experiment name or alias."""

    ref: str
    hint: str

    def __init__(self, ref: str, hint: str = "") -> None:
        super().__init__(ref=ref, hint=hint)

    def describe(self) -> str:
        msg = f"No run matches {self.ref!r}."
        return f"{msg} {self.hint}" if self.hint else f"{msg} List runs with `nbtk runs`."


class AmbiguousRunIdError(RunNotFoundError):
    """A run-id prefix matches more than one run."""

    matches: list[str]

    def __init__(self, ref: str, matches: list[str]) -> None:
        NbToolkitError.__init__(self, ref=ref, matches=list(matches), hint="")

    def describe(self) -> str:
        shown = ", ".join(self.matches[:5])
        return f"Run id prefix {self.ref!r} is ambiguous ({shown}); give more characters."


class ParameterError(InputError):
    """Notebook parameters are unknown or malformed."""


class NoActiveRunError(InputError):
    """A ``log_*`` function was called while no run is active."""

    function: str

    def __init__(self, function: str) -> None:
        super().__init__(function=function)

    def describe(self) -> str:
        return (
            f"nbtk.{self.function}() needs an active run. Call it inside an %%experiment cell "
            "or a `with nbtk.start_run('name'):` block."
        )


class ArtifactLinkError(InputError):
    """A folder passed to ``log_artifact`` holds a symbolic link that points outside it."""

    link: str
    target: str
    folder: str

    def __init__(self, link: str, target: str, folder: str) -> None:
        super().__init__(link=link, target=target, folder=folder)

    def describe(self) -> str:
        return (
            f"log_artifact refuses {self.folder}: the link {self.link} points to {self.target}, "
            "outside the folder, and links are never followed out of bounds. Copy the file into "
            "the folder, or log it separately with its own log_artifact call."
        )


class SignatureError(InputError):
    """Input passed to ``Bundle.predict`` does not match the model's signature.

    Attributes:
        problems: one line per mismatch, each naming the column (or the shape / dtype).
    """

    problems: list[str]

    def __init__(self, problems: list[str]) -> None:
        super().__init__(problems=list(problems))

    def describe(self) -> str:
        return (
            "Input does not match the model's signature (signature.json): "
            + "; ".join(self.problems)
            + ". Pass data shaped like the sample input logged with the model."
        )


class BadScoringRequest(InputError):
    """A scoring request ``nbtk serve`` cannot answer: HTTP 400 with MLflow's error body.

    Attributes:
        message: what is wrong with the request and how to fix it (names the column).
    """

    message: str

    def __init__(self, message: str) -> None:
        super().__init__(message=message)

    def describe(self) -> str:
        return self.message

    def body(self) -> dict[str, str]:
        """MLflow's error body."""
        return {"error_code": "BAD_REQUEST", "message": self.message}


class StoreError(NbToolkitError):
    """The project store cannot serve the request."""


class SchemaVersionError(StoreError):
    """The store was written by a newer nbtoolkit than the one running."""

    found: int
    supported: int
    path: str

    def __init__(self, found: int, supported: int, path: str) -> None:
        super().__init__(found=found, supported=supported, path=path)

    def describe(self) -> str:
        return (
            f"The store at {self.path} has schema version {self.found}, newer than this "
            f"nbtoolkit supports ({self.supported}). Upgrade nbtoolkit: pip install -U nbtoolkit."
        )


class StoreCorruptError(StoreError):
    """The store's SQLite file is damaged; nbtoolkit refuses to open (or replace) it."""

    path: str
    finding: str

    def __init__(self, path: str, finding: str) -> None:
        super().__init__(path=path, finding=finding)

    def describe(self) -> str:
        finding = " ".join(self.finding.split())[:300]
        return (
            f"The store database {self.path} is damaged ({finding}); it was left untouched. "
            "Run `nbtk store check` for details, then restore it from a copy made with "
            "`nbtk store backup` (or move it aside to start an empty store)."
        )


class ArtifactIntegrityError(StoreError):
    """An artifact's content does not match its recorded digest."""

    digest: str
    path: str

    def __init__(self, digest: str, path: str) -> None:
        super().__init__(digest=digest, path=path)

    def describe(self) -> str:
        return (
            f"Artifact {self.path} does not match its sha256 {self.digest[:12]}...; it was "
            "changed or truncated on disk. Restore it from a backup or re-run the experiment."
        )


class ArtifactLocationError(StoreError):
    """The artifact folder (or a folder under it) resolves outside the place it must stay in."""

    path: str
    real: str
    bound: str

    def __init__(self, path: str, real: str, bound: str) -> None:
        super().__init__(path=path, real=real, bound=bound)

    def describe(self) -> str:
        return (
            f"Refusing to write artifacts through {self.path}: it resolves to {self.real}, outside "
            f"{self.bound}. Replace the symbolic link by a real folder, or set NBTOOLKIT_ARTIFACTS "
            "to the location you mean."
        )


#: Where the artifact location is set, as messages name it.
ARTIFACTS_SETTING = "NBTOOLKIT_ARTIFACTS (or artifacts = \"...\" under [tool.nbtoolkit] in pyproject.toml)"


class ArtifactStoreUnavailableError(StoreError):
    """The configured artifact location cannot be reached or used (object storage through fsspec).

    Raised on the first use of the location (a quick probe with short timeouts) and when a
    later request fails for the same reasons, before any row refers to the blob being written.
    A configuration problem more often than an outage, so the CLI exits with 2.

    Attributes:
        location: the artifact location without credentials.
        reason: one line saying what failed (no secrets).
    """

    location: str
    reason: str
    exit_code = 2

    def __init__(self, location: str, reason: str) -> None:
        super().__init__(location=location, reason=reason)

    def describe(self) -> str:
        endpoint = ", AWS_ENDPOINT_URL (for an S3-compatible server)" if self.location.startswith(("s3://", "s3a://")) else ""
        return (
            f"The artifact store {self.location} cannot be used: {self.reason}. What was already "
            "recorded is kept; no artifact is recorded without its blob.\n"
            f"Check {ARTIFACTS_SETTING}{endpoint}, "
            "that the bucket exists and that the credentials are valid for it; then run `nbtk store check`."
        )


class DiskFullError(StoreError):
    """A write failed because the disk is full (ENOSPC, EDQUOT) or failing (EIO)."""

    path: str
    reason: str

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(path=path, reason=reason)

    def describe(self) -> str:
        return (
            f"The disk holding {self.path} is full or failing ({self.reason}); nothing was recorded "
            "and temporary files were removed. Free some space (or point NBTOOLKIT_ARTIFACTS at a "
            "larger location) and run again."
        )


class ExecutionError(NbToolkitError):
    """The work itself failed (a cell raised, a check failed). The CLI exits with 1."""


class NotebookExecutionError(ExecutionError):
    """A notebook cell raised during re-execution."""

    notebook: str
    cell_index: int
    ename: str
    evalue: str
    output_path: str

    def __init__(
        self, notebook: str, cell_index: int, ename: str, evalue: str, output_path: str = ""
    ) -> None:
        super().__init__(
            notebook=notebook,
            cell_index=cell_index,
            ename=ename,
            evalue=evalue,
            output_path=output_path,
        )

    def describe(self) -> str:
        where = f"; output notebook kept at {self.output_path}" if self.output_path else ""
        return f"{self.notebook}: cell {self.cell_index} raised {self.ename}: {self.evalue}{where}"


class HandoffError(NbToolkitError):
    """Export, verify or load was refused."""


class GateError(HandoffError):
    """A run is not vetted: it fails one or more gates.

    Attributes:
        run_id: the run that was refused.
        unmet: one line per unmet gate, each saying how to meet it.
    """

    run_id: str
    unmet: list[str]
    exit_code = 1

    def __init__(self, run_id: str, unmet: list[str]) -> None:
        super().__init__(run_id=run_id, unmet=list(unmet))

    def describe(self) -> str:
        lines = "\n".join(f"  - {u}" for u in self.unmet)
        return (
            f"Run {self.run_id[:12]} is not vetted for handoff:\n{lines}\n"
            "Meet the gates, or override with --force --reason TEXT (recorded)."
        )


class BundleIntegrityError(HandoffError):
    """A bundle is changed, incomplete or unsafe.

    Attributes:
        problems: one line per problem, each naming the file.
    """

    path: str
    problems: list[str]

    def __init__(self, path: str, problems: list[str]) -> None:
        super().__init__(path=path, problems=list(problems))

    def describe(self) -> str:
        lines = "\n".join(f"  - {p}" for p in self.problems)
        return f"Bundle {self.path} failed verification:\n{lines}"


class BundleUnavailableError(HandoffError):
    """A registry version's bundle is not on this machine and its archive is not in the store.

    Attributes:
        model: the model.
        version: the version.
        path: where the export wrote the bundle (on the exporting machine).
        blob: where its archive should be in the artifact location (credential-free).
    """

    model: str
    version: str
    path: str
    blob: str

    def __init__(self, model: str, version: str, path: str, blob: str) -> None:
        super().__init__(model=model, version=version, path=path, blob=blob)

    def describe(self) -> str:
        return (
            f"{self.model} {self.version}: its bundle is neither at {self.path} (where it was exported; not on this "
            f"machine) nor in the store's artifact location ({self.blob} is missing). Copy the bundle to that path, "
            "restore the blob with `nbtk store copy` from a store that holds it, or export the run again "
            f"(`nbtk export RUN --model {self.model} -o DIR --new-version`)."
        )


class PromotionRefused(GateError):
    """A promotion (or rollback) of a registered model version failed one or more gates."""

    model: str
    version: str
    alias: str

    def __init__(self, run_id: str, unmet: list[str], *, model: str = "", version: str = "", alias: str = "") -> None:
        NbToolkitError.__init__(self, run_id=run_id, unmet=list(unmet), model=model, version=version, alias=alias)

    def describe(self) -> str:
        lines = "\n".join(f"  - {u}" for u in self.unmet)
        return f"Promotion of {self.model} {self.version} to {self.alias} refused:\n{lines}"


class NbToolkitWarning(UserWarning):
    """Something was recorded differently from how it was given (e.g. a repr for a non-JSON value)."""


class StoreLocationWarning(NbToolkitWarning):
    """The embedded SQLite store sits on a network filesystem, where WAL is unsafe."""
