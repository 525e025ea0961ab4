"""Label texts or images with an exported model: `python -m hfx.predict [INPUT ...|-|FILE|FOLDER] [--output OUT]`.

INPUT: texts (or image files) as arguments; `-`: one per line on stdin; FILE: a .csv, .tsv, .jsonl or .parquet
file whose `--text-column` holds the texts (`--image-column`: image paths, relative to the file's folder);
FOLDER: every image in it (image models). Writes JSONL to stdout or --output: {"text", "label", "score"}
(plus "scores" with --all-scores) for a text classifier, {"image", "label", "score"} for an image
classifier, {"text", "entities": [{entity_group, score, word, start, end}]} for a token classifier. A .csv
or .parquet --output keeps the input's columns and adds those fields. Rows are read a window at a time
(memory stays bounded), sorted by length and batched, each batch padded to its own longest row. Needs only
the model folder (never params.yaml): models/export, or what `dvc get`/`dvc import` of it gives.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from hfx.model import FORMATS, LoadedModel, ModelError
from hfx.tasks import InputError

TABLES = (".csv", ".tsv", ".jsonl", ".parquet")
WINDOW = 4096  # inputs read, encoded and labelled at a time


class PredictError(Exception):
    """Bad input: one line, exit code 1."""


def read_table(path: Path, column: str, option: str):
    import pandas as pd

    suffix = path.suffix.lower()
    try:
        frame = {".csv": pd.read_csv, ".tsv": lambda p: pd.read_csv(p, sep="\t"),
                 ".jsonl": lambda p: pd.read_json(p, lines=True), ".parquet": pd.read_parquet}[suffix](path)
    except Exception as exc:  # noqa: BLE001 - each reader raises its own types; the user needs the reason
        raise PredictError(f"cannot read {path}: {str(exc).strip().splitlines()[0]}") from None
    if column not in frame.columns:
        raise PredictError(f"{option}: column '{column}' not in {path}; columns: {', '.join(map(str, frame.columns))}")
    return frame


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


def predict(model: LoadedModel, inputs: list, batch_size: int) -> list:
    """Results in the order of `inputs` (as the handler's `read` gives them): rows sorted by length, so each
    batch pads to rows of its own size."""
    rows = model.handler.encode(inputs)
    order = np.argsort([model.handler.length(row) for row in rows], kind="stable")
    results = [None] * len(inputs)
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        for i, logits in zip(chunk, model([rows[i] for i in chunk])):
            results[i] = model.handler.decode(logits, rows[i], inputs[i])
    return results


def image_files(folder: Path) -> list[str]:
    """The images under a folder, sorted by path."""
    from PIL import Image

    suffixes = {suffix for suffix, kind in Image.registered_extensions().items() if kind in Image.OPEN}
    return [str(path) for path in sorted(folder.rglob("*")) if path.suffix.lower() in suffixes and path.is_file()]


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m hfx.predict", description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="+", metavar="INPUT|-|FILE|FOLDER",
                        help="texts or image files, - for stdin, one table file, or a folder of images")
    parser.add_argument("--model", default="models/export", help="an exported model folder (default: models/export)")
    parser.add_argument("--format", default="int8", choices=list(FORMATS), help="model format (default: int8 ONNX)")
    parser.add_argument("--text-column", default="text", help="the column of texts in a file (default: text)")
    parser.add_argument("--image-column", default="image",
                        help="the column of image paths in a file, relative to its folder (default: image)")
    parser.add_argument("--output", help="write here instead of stdout: .jsonl, or .csv/.parquet (input columns kept)")
    parser.add_argument("--all-scores", action="store_true", help="every label's score, not only the best")
    parser.add_argument("--batch-size", type=int, default=32, help="inputs per model call (default: 32)")
    parser.add_argument("--max-length", type=int, help="truncate texts to this many tokens (default: the model's)")
    parser.add_argument("--strict", action="store_true", help="fail on an input the model cannot take (an empty text,"
                        " an unreadable image) instead of skipping it")
    args = parser.parse_args(argv)
    if args.batch_size < 1 or (args.max_length is not None and args.max_length < 2):
        parser.error("--batch-size must be at least 1 and --max-length at least 2")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    model = LoadedModel(args.model, args.format)
    handler = model.handler
    images = handler.input_field == "image"
    column, option = (args.image_column, "--image-column") if images else (args.text_column, "--text-column")
    source = Path(args.inputs[0])
    frame = None
    if args.inputs == ["-"]:
        items = sys.stdin.read().splitlines()
    elif len(args.inputs) == 1 and source.suffix.lower() in TABLES and source.is_file():
        frame = read_table(source, column, option)
        items = frame[column].tolist()
        if images:  # paths in a table are relative to the table
            items = [str(source.parent / item) if isinstance(item, str) and item.strip() else item for item in items]
    elif len(args.inputs) == 1 and images and source.is_dir():
        items = image_files(source)
        if not items:
            raise PredictError(f"no image files in the folder {source}")
    else:
        items = args.inputs
    if args.output and Path(args.output).suffix.lower() in (".csv", ".parquet") and frame is None:
        raise PredictError("--output .csv/.parquet keeps a table's columns: give a table file as input, or write .jsonl")
    if args.all_scores and "top_k" not in handler.options:
        raise PredictError(f"--all-scores gives every label's score of a classifier; {args.model} is"
                           f" {model.info.task}")
    if args.max_length:
        if images:
            raise PredictError("--max-length cuts texts; an image model takes images at its processor's size")
        handler.tokenizer.enable_truncation(min(args.max_length, model.info.max_length))

    from tqdm import tqdm

    keep, results = [], []
    with tqdm(total=len(items), unit=handler.input_field, disable=frame is None, file=sys.stderr) as bar:
        for start in range(0, len(items), WINDOW):
            window, taken = usable(items[start:start + WINDOW], args.strict, handler.read, first_row=start + 1)
            keep += [start + i for i in window]
            results += predict(model, taken, args.batch_size)
            bar.update(min(WINDOW, len(items) - start))
    write(args, handler, items, keep, results, frame)
    if args.output:
        print(f"predict: {len(keep)} of {len(items)} {handler.input_field}s labelled ({args.format}) -> {args.output}",
              file=sys.stderr)


def write(args, handler, items: list, keep: list[int], results: list, frame) -> None:
    record, columns = handler.record, handler.columns
    if args.output and Path(args.output).suffix.lower() in (".csv", ".parquet"):
        import pandas as pd

        added = pd.DataFrame([columns(result, args.all_scores) for result in results], index=frame.index[keep])
        frame = frame.drop(columns=[c for c in added.columns if c in frame.columns]).join(added)
        tmp = Path(args.output).with_name(Path(args.output).name + ".partial")
        frame.to_csv(tmp, index=False) if args.output.lower().endswith(".csv") else frame.to_parquet(tmp, index=False)
        tmp.replace(args.output)
        return
    text = "".join(json.dumps({handler.input_field: items[i], **record(result, args.all_scores)}, ensure_ascii=False)
                   + "\n" for i, result in zip(keep, results))
    if args.output:
        tmp = Path(args.output).with_name(Path(args.output).name + ".partial")
        tmp.write_text(text)
        tmp.replace(args.output)
    else:
        sys.stdout.write(text)


def run() -> None:
    try:
        main()
    except (PredictError, ModelError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    run()
