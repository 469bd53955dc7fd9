"""Numbered CSV files per entity, written under hidden names and published together."""

from __future__ import annotations

import re
from pathlib import Path
from typing import BinaryIO, Final

import polars as pl

from ecommerce_lakehouse.domain.errors import ConfigurationError
from ecommerce_lakehouse.domain.schemas import SCHEMAS
from ecommerce_lakehouse_datagen._format import BoolArray
from ecommerce_lakehouse_datagen.summary import ProgressCallback

#: A file name this generator writes, for any entity of the catalogue.
GENERATED_NAME: Final = re.compile(
    rf"^({'|'.join(re.escape(schema.name) for schema in SCHEMAS)})_[0-9]+\.csv$"
)
# Extra (non-schema) columns, when an entity has some, go into files 1, 4, 7, ...
_EXTRA_COLUMN_EVERY: Final = 3


class CsvWriter:
    """Streams frames into numbered CSV files of at most ``rows_per_file`` rows.

    Deferred frames (cross-file duplicates, corrections) are held back until a new file opens,
    so they always land in a file later than the rows they repeat. Files are written under a
    hidden ``.part`` name and renamed by :meth:`publish`; ``entity`` (a catalogue name) names
    the files and the progress reports.

    Attributes:
        rows: data rows written so far.
        extra_column_files: files opened with the extra columns.
    """

    def __init__(
        self,
        *,
        directory: Path,
        entity: str,
        columns: tuple[str, ...],
        extra_columns: tuple[str, ...],
        rows_per_file: int,
        digits: int,
        progress: ProgressCallback | None,
    ) -> None:
        self._directory = directory
        self._entity = entity
        self._columns = columns
        self._extra_columns = extra_columns
        self._rows_per_file = rows_per_file
        self._digits = digits
        self._progress = progress
        self._handle: BinaryIO | None = None
        self._file_columns = columns
        self._file_rows = 0
        self._pending: list[pl.DataFrame] = []
        self._parts: list[tuple[Path, Path]] = []
        self.rows = 0
        self.extra_column_files = 0

    @property
    def files(self) -> list[Path]:
        """The final paths of the files opened so far, in order."""
        return [final for _, final in self._parts]

    def prepare(self) -> None:
        """Create the folder; refuse to mix with files of an earlier generation.

        Raises:
            ConfigurationError: the folder cannot be created or holds generated files.
        """
        try:
            self._directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ConfigurationError(f"cannot create {self._directory}: {error}") from error
        existing = sorted(p.name for p in self._directory.iterdir() if GENERATED_NAME.match(p.name))
        if existing:
            raise ConfigurationError(
                f"{self._directory} already holds generated files ({existing[0]}, ...);"
                " move them away or choose another output directory"
            )

    def write(self, frame: pl.DataFrame, *, keep_with_previous: BoolArray | None = None) -> None:
        """Append rows; a row flagged in ``keep_with_previous`` stays in its predecessor's file."""
        position = 0
        while position < frame.height:
            if self._handle is None or self._file_rows >= self._rows_per_file:
                self._start_file()
                continue
            end = min(frame.height, position + self._rows_per_file - self._file_rows)
            if end < frame.height and keep_with_previous is not None and keep_with_previous[end]:
                # The pair would straddle two files: end this file early, or, when the pair
                # cannot fit in an empty file (rows_per_file == 1), let the file run one over.
                if end - 1 > position:
                    end -= 1
                elif self._file_rows:
                    self._start_file()
                    continue
                else:
                    end += 1
            self._emit(frame.slice(position, end - position))
            position = end

    def defer(self, frame: pl.DataFrame) -> None:
        """Hold rows back until the next file opens."""
        if frame.height:
            self._pending.append(frame)

    def report(self) -> None:
        """Tell the progress callback how many rows are written so far."""
        if self._progress is not None:
            self._progress(self._entity, self.rows)

    def close(self) -> None:
        """Write the deferred rows into a last file and close it."""
        if self._pending:
            self._start_file()
        self._close_handle()
        self.report()

    def publish(self) -> None:
        """Rename every file from its hidden ``.part`` name to its final name."""
        for part, final in self._parts:
            part.replace(final)
        self._parts = [(final, final) for _, final in self._parts]

    def abort(self) -> None:
        """Close and delete the files not yet published."""
        self._close_handle()
        for part, final in self._parts:
            if part != final:
                part.unlink(missing_ok=True)

    def _open_next(self) -> None:
        self._close_handle()
        number = len(self._parts) + 1
        name = f"{self._entity}_{number:0{self._digits}d}.csv"
        part = self._directory / f".{name}.part"
        self._parts.append((part, self._directory / name))
        self._handle = part.open("wb")
        self._file_rows = 0
        with_extras = bool(self._extra_columns) and number % _EXTRA_COLUMN_EVERY == 1
        self._file_columns = self._columns + (self._extra_columns if with_extras else ())
        self.extra_column_files += with_extras

    def _start_file(self) -> None:
        self._open_next()
        self._drain_pending()

    def _drain_pending(self) -> None:
        # Every pending row was deferred before this file opened, so any file from here is later.
        pending, self._pending = self._pending, []
        for frame in pending:
            position = 0
            while position < frame.height:
                if self._file_rows >= self._rows_per_file:
                    self._open_next()
                take = min(frame.height - position, self._rows_per_file - self._file_rows)
                self._emit(frame.slice(position, take))
                position += take

    def _emit(self, frame: pl.DataFrame) -> None:
        assert self._handle is not None
        frame.select(self._file_columns).write_csv(
            self._handle, include_header=self._file_rows == 0
        )
        self._file_rows += frame.height
        self.rows += frame.height

    def _close_handle(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
