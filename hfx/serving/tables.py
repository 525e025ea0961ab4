"""Tables read and written a chunk of rows at a time, so that predict's memory does not grow with the file.

In: .csv, .tsv, .jsonl and .parquet (pandas' chunked readers; pyarrow's row batches). Out: JSON lines to stdout
or a file, or a .csv or .parquet table, written into a `.partial` sibling that is renamed when every row is in
(and removed if the run fails), so no half-written file is ever left under the output's name.
"""

import json
import sys
from collections.abc import Iterator
from pathlib import Path

TABLES = (".csv", ".tsv", ".jsonl", ".parquet")


class TableError(Exception):
    """A table that cannot be read as asked: one line."""


def read_chunks(path: Path, column: str, option: str, rows: int, more: dict | None = None) -> Iterator:
    """The table's rows, `rows` at a time, as DataFrames indexed by row number (0 first); fails on the first
    chunk when `column` (or a column of `more`, {column: its option}) is missing."""
    wanted = {column: option, **{name: flag for name, flag in (more or {}).items() if name}}
    import pandas as pd

    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            table = pq.ParquetFile(path)
            _require(wanted, table.schema_arrow.names, path)
            start = 0
            for batch in table.iter_batches(batch_size=rows):
                frame = batch.to_pandas()
                frame.index = range(start, start + len(frame))
                start += len(frame)
                yield frame
            return
        reader = (
            pd.read_json(path, lines=True, chunksize=rows)
            if suffix == ".jsonl"
            else pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", chunksize=rows)
        )
        with reader:
            for i, frame in enumerate(reader):
                if i == 0:
                    _require(wanted, frame.columns, path)
                yield frame
    except TableError:
        raise
    except Exception as exc:  # noqa: BLE001 - each reader raises its own types; the user needs the reason
        raise TableError(f"cannot read {path}: {str(exc).strip().splitlines()[0]}") from None


def parquet_rows(path: Path) -> int | None:
    """How many rows a table holds, where its metadata says (Parquet), for a progress bar."""
    if path.suffix.lower() != ".parquet":
        return None
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


def _require(wanted: dict, columns, path: Path) -> None:
    for column, option in wanted.items():
        if column not in columns:
            raise TableError(f"{option}: column '{column}' not in {path}; columns: {', '.join(map(str, columns))}")


class Output:
    """Where results go, a chunk at a time: stdout (JSON lines), or a .jsonl, .csv or .parquet file."""

    def __init__(self, path: str | None):
        self.path = Path(path) if path else None
        self.suffix = self.path.suffix.lower() if self.path else ".jsonl"
        self.partial = self.path.with_name(self.path.name + ".partial") if self.path else None
        self.file = self.parquet = self.columns = None

    @property
    def is_table(self) -> bool:
        return self.suffix in (".csv", ".parquet")

    def __enter__(self):
        if self.partial is not None and self.suffix != ".parquet":
            self.file = open(self.partial, "w", encoding="utf-8", newline="")
        return self

    def records(self, records: list[dict]) -> None:
        text = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
        (self.file or sys.stdout).write(text)

    def table(self, frame) -> None:
        """Rows of a table, its columns in the order of the first chunk."""
        if self.columns is None:
            self.columns = list(frame.columns)
        frame = frame.reindex(columns=self.columns)
        if self.suffix == ".csv":
            frame.to_csv(self.file, index=False, header=self.file.tell() == 0)
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        batch = pa.Table.from_pandas(frame, preserve_index=False)
        if self.parquet is None:
            self.parquet = pq.ParquetWriter(self.partial, batch.schema)
        self.parquet.write_table(batch.cast(self.parquet.schema))

    def __exit__(self, kind, value, traceback) -> None:
        for handle in (self.file, self.parquet):
            if handle is not None:
                handle.close()
        if self.partial is None:
            return
        if kind is None and (self.partial.exists() or self.suffix == ".parquet"):
            if not self.partial.exists():  # a table with no rows at all
                import pandas as pd

                pd.DataFrame(columns=self.columns or []).to_parquet(self.partial, index=False)
            self.partial.replace(self.path)
        else:
            self.partial.unlink(missing_ok=True)
