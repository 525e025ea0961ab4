"""Label texts or images with an exported model: `python -m hfx.predict [INPUT ...|-|FILE|FOLDER] [--output OUT]`.

INPUT: texts (or image files) as arguments; `-`: one per line on stdin; FILE: a .csv, .tsv, .jsonl or .parquet
file whose `--text-column` holds the texts (`--image-column`: image paths, relative to the file's folder;
`--text-pair-column`: the second texts, for a model trained on pairs); FOLDER: every image in it (image models).
Writes JSONL to stdout or --output: {"text", "label", "score"} (plus "scores" with --all-scores; "text_pair"
for a pair model) for a text classifier, {"image", "label", "score"} for an image
classifier, {"text", "entities": [{entity_group, score, word, start, end}]} for a token classifier,
{"question", "context", "answer", "score", "start", "end"} for question answering (a table's `--question-column`
and `--context-column`). A .csv
or .parquet --output keeps the input's columns and adds those fields (`predicted_label` where the input has a
`label` already). Rows are read, labelled and written a chunk at a time, so memory does not grow with the
input; within a chunk they are sorted by length and batched, each batch padded to its own longest row. Needs
only the model folder (never params.yaml): models/export, or what `dvc get`/`dvc import` of it gives.
"""

import argparse
import sys
from itertools import islice
from pathlib import Path

from hfx.serving.folder import FORMATS, ModelError
from hfx.serving.handlers.interface import Handler
from hfx.serving.input_errors import InputError
from hfx.serving.loaded_model import LoadedModel
from hfx.serving.tables import TABLES, Output, TableError, parquet_rows, read_chunks

CHUNK = 4096  # inputs read, encoded, labelled and written at a time


class PredictError(Exception):
    """Bad input: one line, exit code 1."""


def usable(items: list, strict: bool, read, first_row: int = 1) -> tuple[list[int], list]:
    """(indices, what `read` made of them) of the items the model can take; the others are reported by row
    (or fail with --strict)."""
    keep, taken = [], []
    for i, item in enumerate(items):
        try:
            taken.append(read(item))
            keep.append(i)
        except InputError as exc:
            if strict:
                raise PredictError(f"row {first_row + i}: {exc} (--strict)") from None
            print(f"warning: row {first_row + i}: {exc}, skipped", file=sys.stderr)
    return keep, taken


def image_files(folder: Path) -> list[str]:
    """The images under a folder, sorted by path."""
    from PIL import Image

    suffixes = {suffix for suffix, kind in Image.registered_extensions().items() if kind in Image.OPEN}
    return [str(path) for path in sorted(folder.rglob("*")) if path.suffix.lower() in suffixes and path.is_file()]


def parse_args(argv, prog: str = "python -m hfx.predict"):
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT|-|FILE|FOLDER",
        help="texts or image files, - for stdin, one table file, or a folder of images",
    )
    parser.add_argument("--model", default="models/export", help="an exported model folder (default: models/export)")
    parser.add_argument("--format", default="int8", choices=list(FORMATS), help="model format (default: int8 ONNX)")
    parser.add_argument("--text-column", default="text", help="the column of texts in a file (default: text)")
    parser.add_argument(
        "--text-pair-column",
        help="the column of second texts in a file, for a model trained on text pairs (data.text_pair_column)",
    )
    parser.add_argument("--question-column", default="question", help="question answering: the questions' column")
    parser.add_argument("--context-column", default="context", help="question answering: the contexts' column")
    parser.add_argument(
        "--image-column",
        default="image",
        help="the column of image paths in a file, relative to its folder (default: image)",
    )
    parser.add_argument("--output", help="write here instead of stdout: .jsonl, or .csv/.parquet (input columns kept)")
    parser.add_argument("--all-scores", action="store_true", help="every label's score, not only the best")
    parser.add_argument("--batch-size", type=int, default=32, help="inputs per model call (default: 32)")
    parser.add_argument("--max-length", type=int, help="truncate texts to this many tokens (default: the model's)")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="fail on an input the model cannot take (an empty text, an unreadable image) instead of skipping it",
    )
    args = parser.parse_args(argv)
    if args.batch_size < 1 or (args.max_length is not None and args.max_length < 2):
        parser.error("--batch-size must be at least 1 and --max-length at least 2")
    return args


def option(key: str) -> str:
    return "--" + key.replace("_", "-")


def input_chunks(args, handler: Handler):
    """(items, the table's rows or None) a chunk at a time, and the number of items where it is known. A table's
    item is its `handler.table_columns` cell, or a list of their cells (a text pair; a question and a context)."""
    images = handler.input_field == "image"
    columns = [getattr(args, key) for key in handler.table_columns]
    column, more = columns[0], {getattr(args, key): option(key) for key in handler.table_columns[1:]}
    source = Path(args.inputs[0])
    if args.inputs == ["-"]:
        lines = (line.rstrip("\r\n") for line in sys.stdin)
        return iter(lambda: (list(islice(lines, CHUNK)), None), ([], None)), None
    if len(args.inputs) == 1 and source.suffix.lower() in TABLES and source.is_file():

        def table_chunks():
            for frame in read_chunks(source, column, option(handler.table_columns[0]), CHUNK, more):
                items = frame[column].tolist()
                if len(columns) > 1:
                    items = [list(cells) for cells in zip(*(frame[name].tolist() for name in columns))]
                if images:  # paths in a table are relative to the table
                    items = [str(source.parent / i) if isinstance(i, str) and i.strip() else i for i in items]
                yield items, frame

        return table_chunks(), parquet_rows(source)
    items = args.inputs
    if len(args.inputs) == 1 and images and source.is_dir():
        items = image_files(source)
        if not items:
            raise PredictError(f"no image files in the folder {source}")
    return ((items[i : i + CHUNK], None) for i in range(0, len(items), CHUNK)), len(items)


def main(argv=None, prog: str = "python -m hfx.predict") -> None:
    """`python -m hfx.predict` and `hfx predict`: bad input is one line on stderr and exit code 1."""
    args = parse_args(argv, prog)
    try:
        label(args)
    except (PredictError, ModelError, TableError) as exc:
        raise SystemExit(f"error: {exc}") from None


def label(args) -> None:
    model = LoadedModel(args.model, args.format)
    handler = model.handler
    images = handler.input_field == "image"
    table_input = len(args.inputs) == 1 and Path(args.inputs[0]).suffix.lower() in TABLES
    if table_input and not Path(args.inputs[0]).is_file():
        raise PredictError(f"{args.inputs[0]}: no such file (a table to label: {', '.join(TABLES)})")
    out = Output(args.output)
    if out.is_table and not table_input:
        raise PredictError(
            "--output .csv/.parquet keeps a table's columns: give a table file as input, or write .jsonl"
        )
    if args.all_scores and "top_k" not in handler.options:
        raise PredictError(f"--all-scores gives every label's score of a classifier; {args.model} is {model.info.task}")
    keys = handler.table_columns
    if len(keys) > 1 and not (table_input and all(getattr(args, key) for key in keys)):
        what = " and a ".join(key.removesuffix("_column").replace("_", " ") for key in keys)
        raise PredictError(
            f"{args.model} reads a {what} per input: give a table file with {' and '.join(map(option, keys))}"
        )
    if args.text_pair_column and "text_pair_column" not in handler.table_columns:
        raise PredictError(f"--text-pair-column: {args.model} takes one text per row, not pairs")
    if args.max_length:
        if images:
            raise PredictError("--max-length cuts texts; an image model takes images at its processor's size")
        try:
            handler.cut_at(min(args.max_length, model.info.max_length))
        except InputError as exc:
            raise PredictError(f"--max-length {args.max_length}: {exc}") from None

    from tqdm import tqdm

    source, total = input_chunks(args, handler)
    seen = labelled = 0
    names = handler.column_names(args.all_scores)
    with tqdm(total=total, unit=handler.input_field, disable=not table_input, file=sys.stderr) as bar, out:
        for items, frame in source:
            keep, taken = usable(items, args.strict, handler.read, first_row=seen + 1)
            results = model.predict(taken, args.batch_size)
            if out.is_table:
                import pandas as pd

                added = pd.DataFrame(
                    [handler.columns(r, args.all_scores) for r in results], index=frame.index[keep], columns=names
                )
                out.table(
                    frame.join(added.rename(columns={name: output_column(name, frame.columns) for name in names}))
                )
            else:
                out.records(
                    [{**handler.fields(items[i]), **handler.record(r, args.all_scores)} for i, r in zip(keep, results)]
                )
            seen, labelled = seen + len(items), labelled + len(keep)
            bar.update(len(items))
    if args.output:
        print(
            f"predict: {labelled} of {seen} {handler.input_field}s labelled ({args.format}) -> {args.output}",
            file=sys.stderr,
        )


def output_column(name: str, taken) -> str:
    """A result column's name in an output table: `predicted_<name>` where the input has `name` already (a gold
    `label`), so an input column is never replaced."""
    while name in taken:
        name = f"predicted_{name}"
    return name


if __name__ == "__main__":
    main()
