"""The destination interface: small enough to implement in one screen.

A destination receives batches of one operation each (insert / update / delete / clear), already within its
row and byte limits, and answers with the records it rejected. It raises `Transient` for anything worth
retrying (429, 5xx, timeouts: the runner backs off, honouring `retry_after`) and `Terminal` for anything that
retrying cannot fix (auth, configuration): the sync then stops without committing what was not acknowledged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, overload

if TYPE_CHECKING:  # annotations only: reading the destinations' options (validate) does not import Arrow
    import pyarrow as pa

from sync_runner.core.fields import AnyOf, Field, Number, Option, Surface, Text

OPS = ("insert", "update", "delete", "clear")
ROWS = Number(integer=True, minimum=1)  # a batch size (the option's `limit` is the destination's maximum)
POSITIVE = Number(minimum=0, above=True)  # seconds, rates
CALLING_CODE = AnyOf((Number(integer=True, minimum=1), Text("digits", r"\+?\d{1,4}")),
                     "a calling code (1 to 4 digits, with or without +)")
MODES = ("insert", "update", "upsert", "mirror")
ON_DELETE = ("nothing", "clear", "delete")


class Transient(Exception):
    """Worth retrying; `retry_after` seconds if the destination said so."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Terminal(Exception):
    """Retrying cannot fix it (auth, configuration): the sync fails with this one-line reason."""


class JsonRecords(Sequence[dict[str, Any]]):
    """Records as the warehouse wrote them, each one's compact JSON text in UTF-8 (macros/sync/records.sql), for a
    destination that sends them unchanged (`Destination.sends_json_records`): `json()` joins the texts into one
    array without a value passing through Python. Reading a record decodes them all, once, into the dicts the
    runner would have built (the warehouse writes each value as the runner does)."""

    __slots__ = ("texts", "_decoded")

    def __init__(self, texts: list[bytes]) -> None:
        self.texts = texts
        self._decoded: list[dict[str, Any]] | None = None

    def json(self) -> bytes:
        """The records as one JSON array."""
        return b"[" + b",".join(self.texts) + b"]"

    def _records(self) -> list[dict[str, Any]]:
        if self._decoded is None:
            import orjson

            self._decoded = [orjson.loads(text) for text in self.texts]
        return self._decoded

    def __len__(self) -> int:
        return len(self.texts)

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...
    @overload
    def __getitem__(self, index: slice) -> JsonRecords: ...

    def __getitem__(self, index: int | slice) -> dict[str, Any] | JsonRecords:
        if isinstance(index, slice):
            return JsonRecords(self.texts[index])
        return self._records()[index]


@dataclass(frozen=True)
class Batch:
    """One request's worth of plan rows of a single operation.

    `records` are dicts keyed by destination field (JsonRecords when the warehouse wrote them as JSON for a
    destination that sends them unchanged); `keys` the primary keys as strings; `seqs` the plan row numbers the
    runner commits by; `table` the same rows as typed Arrow (destination field names), only for destinations
    that set `wants_table` (None for the others: a sync whose destination takes records may never load Arrow).
    """

    op: str
    keys: list[str]
    seqs: list[int]
    records: Sequence[dict[str, Any]]
    table: pa.Table | None

    def typed(self) -> pa.Table:
        """`table`, for a destination that sets `wants_table` (the runner fills it for every such batch)."""
        if self.table is None:
            raise TypeError("this batch has no table: its destination does not set wants_table")
        return self.table


@dataclass
class BatchResult:
    """Rejected records by their index in the batch, with the destination's reason."""

    rejected: dict[int, str] = field(default_factory=dict)


class Destination:
    """Base class: subclasses set the class attributes and implement `send` (and `open` / `close` if needed)."""

    type: ClassVar[str] = ""
    modes: ClassVar[tuple[str, ...]] = MODES
    on_delete: ClassVar[tuple[str, ...]] = ON_DELETE
    options: ClassVar[tuple[Option, ...]] = ()  # the type's own config keys: type, default, required, help
    required: ClassVar[tuple[str, ...]] = ()  # derived from `options`
    # defaults of the delivery limits for a type that does not declare them among its options
    max_rows: ClassVar[int] = 1000
    max_bytes: ClassVar[int | None] = None
    concurrency: ClassVar[int] = 4
    rate_per_second: ClassVar[float | None] = None
    commits_on_close: ClassVar[bool] = False  # only durable once close() succeeds (e.g. a file renamed into place)
    wants_table: ClassVar[bool] = False  # needs `Batch.table` (typed Arrow rows), not only `records`

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.required = tuple(o.name for o in cls.options if o.required)

    @classmethod
    def surface(cls) -> Surface:
        """Every config key of the type: its own options, then the delivery limits every type takes."""
        own = {o.name for o in cls.options}
        limits = (Option("batch_size", ROWS, "records per request", default=cls.max_rows),
                  Option("max_bytes", ROWS, "bytes of records per request", default=cls.max_bytes),
                  Option("concurrency", ROWS, "requests in flight", default=cls.concurrency),
                  Option("rate_per_second", POSITIVE, "request rate", default=cls.rate_per_second))
        fields: tuple[Field, ...] = cls.options + tuple(o for o in limits if o.name not in own)
        return Surface(f"destination_{cls.type}", f"a {cls.type} destination", fields)

    def __init__(self, name: str, config: Mapping[str, Any], sync_name: str, run_id: str,
                 base_dir: Path | None = None) -> None:
        self.name = name
        self.config = dict(config)
        self.sync_name = sync_name
        self.run_id = run_id
        self.base_dir = base_dir or Path.cwd()

    def local_path(self, value: Any) -> Path:
        """A path from the config; relative paths are relative to the dbt project, not to the shell."""
        path = Path(str(value)).expanduser()
        return path if path.is_absolute() else self.base_dir / path

    def setting(self, name: str) -> Any:
        """An option's value: the config's, else the default declared with the option (the one place defaults
        live: validation, the docs, `dbt-studio destinations` and the run read the same)."""
        value = self.config.get(name)
        return self.surface().fields_by_name[name].default if value is None else value

    def limits(self) -> tuple[int, int | None, int, float | None]:
        """(rows, bytes, concurrency, requests per second) for this run."""
        size, rate = self.setting("max_bytes"), self.setting("rate_per_second")
        return (int(self.setting("batch_size")), int(size) if size else None, int(self.setting("concurrency")),
                float(rate) if rate else None)

    def sends_json_records(self) -> bool:
        """Whether `send` (as configured, after `open`) writes each record as its JSON object and nothing else:
        then a batch may carry JsonRecords the warehouse wrote, and the runner converts no value itself."""
        return False

    def open(self) -> None:
        """Check config and credentials before anything is sent (raise Terminal on failure)."""

    def send(self, batch: Batch) -> BatchResult:
        raise NotImplementedError

    def close(self, success: bool) -> None:
        """Finish the run; with success=False, discard what is not durable."""
