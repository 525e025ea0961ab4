"""Label texts with an exported model: `python -m hfx.predict [TEXT ...|-|FILE] [--output OUT]`.

TEXT: texts as arguments; `-`: one text per line on stdin; FILE: a .csv, .tsv, .jsonl or .parquet file whose
`--text-column` holds the texts. Writes JSONL to stdout or --output: {"text", "label", "score"} (plus "scores"
with --all-scores) for a text classifier, {"text", "entities": [{entity_group, score, word, start, end}]}
for a token classifier. A .csv or .parquet --output keeps the input's columns and adds those fields.
Rows are sorted by length and batched, each batch padded to its own longest row. Needs only the model
folder (never params.yaml): models/export, or what `dvc get`/`dvc import` of it gives.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from hfx.model import FORMATS, LoadedModel, ModelError

TABLES = (".csv", ".tsv", ".jsonl", ".parquet")


class PredictError(Exception):
    """Bad input: one line, exit code 1."""


def read_table(path: Path, column: str):
    import pandas as pd

    suffix = path.suffix.lower()
    try:
        frame = {".csv": pd.read_csv, ".tsv": lambda p: pd.read_csv(p, sep="\t"),
                 ".jsonl": lambda p: pd.read_json(p, lines=True), ".parquet": pd.read_parquet}[suffix](path)
    except Exception as exc:  # noqa: BLE001 - each reader raises its own types; the user needs the reason
        raise PredictError(f"cannot read {path}: {str(exc).strip().splitlines()[0]}") from None
    if column not in frame.columns:
        raise PredictError(f"--text-column: column '{column}' not in {path}; columns: {', '.join(map(str, frame.columns))}")
    return frame


def usable(texts: list, strict: bool) -> list[int]:
    """Indices of the rows that hold a non-empty string; the others are reported by row (or fail with --strict)."""
    keep = []
    for i, text in enumerate(texts):
        if isinstance(text, str) and text.strip():
            keep.append(i)
            continue
        missing = isinstance(text, str) or text is None or text != text  # a table's empty cell reads as NaN
        problem = "empty text" if missing else f"not a string ({text!r})"
        if strict:
            raise PredictError(f"row {i + 1}: {problem} (--strict)")
        print(f"warning: row {i + 1}: {problem}, skipped", file=sys.stderr)
    return keep


def predict(model: LoadedModel, texts: list[str], batch_size: int, progress: bool = False) -> list:
    """Results in the order of `texts`: rows sorted by length, so each batch pads to rows of its own size."""
    rows = model.handler.encode(texts)
    order = np.argsort([model.handler.length(row) for row in rows], kind="stable")
    results = [None] * len(texts)
    from tqdm import tqdm

    with tqdm(total=len(texts), unit="text", disable=not progress, file=sys.stderr) as bar:
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            for i, logits in zip(chunk, model([rows[i] for i in chunk])):
                results[i] = model.handler.decode(logits, rows[i], texts[i])
            bar.update(len(chunk))
    return results


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m hfx.predict", description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="+", metavar="TEXT|-|FILE", help="texts, - for stdin, or one table file")
    parser.add_argument("--model", default="models/export", help="an exported model folder (default: models/export)")
    parser.add_argument("--format", default="int8", choices=list(FORMATS), help="model format (default: int8 ONNX)")
    parser.add_argument("--text-column", default="text", help="the column of texts in a file (default: text)")
    parser.add_argument("--output", help="write here instead of stdout: .jsonl, or .csv/.parquet (input columns kept)")
    parser.add_argument("--all-scores", action="store_true", help="every label's score, not only the best")
    parser.add_argument("--batch-size", type=int, default=32, help="texts per model call (default: 32)")
    parser.add_argument("--max-length", type=int, help="truncate texts to this many tokens (default: the model's)")
    parser.add_argument("--strict", action="store_true", help="fail on an empty or non-string text instead of skipping it")
    args = parser.parse_args(argv)
    if args.batch_size < 1 or (args.max_length is not None and args.max_length < 2):
        parser.error("--batch-size must be at least 1 and --max-length at least 2")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    source = Path(args.inputs[0])
    frame = None
    if args.inputs == ["-"]:
        texts = sys.stdin.read().splitlines()
    elif len(args.inputs) == 1 and source.suffix.lower() in TABLES and source.is_file():
        frame = read_table(source, args.text_column)
        texts = frame[args.text_column].tolist()
    else:
        texts = args.inputs
    if args.output and Path(args.output).suffix.lower() in (".csv", ".parquet") and frame is None:
        raise PredictError("--output .csv/.parquet keeps a table's columns: give a table file as input, or write .jsonl")

    model = LoadedModel(args.model, args.format)
    if args.all_scores and "top_k" not in model.handler.options:
        raise PredictError(f"--all-scores gives every label's score of a text classifier; {args.model} is"
                           f" {model.info.task}")
    if args.max_length:
        model.handler.tokenizer.enable_truncation(min(args.max_length, model.info.max_length))
    keep = usable(texts, args.strict)
    results = predict(model, [texts[i] for i in keep], args.batch_size, progress=frame is not None)
    write(args, model.handler, texts, keep, results, frame)
    if args.output:
        print(f"predict: {len(keep)} of {len(texts)} texts labelled ({args.format}) -> {args.output}", file=sys.stderr)


def write(args, handler, texts: list, keep: list[int], results: list, frame) -> None:
    record, columns = handler.record, handler.columns
    if args.output and Path(args.output).suffix.lower() in (".csv", ".parquet"):
        import pandas as pd

        added = pd.DataFrame([columns(result, args.all_scores) for result in results], index=frame.index[keep])
        frame = frame.drop(columns=[c for c in added.columns if c in frame.columns]).join(added)
        tmp = Path(args.output).with_name(Path(args.output).name + ".partial")
        frame.to_csv(tmp, index=False) if args.output.lower().endswith(".csv") else frame.to_parquet(tmp, index=False)
        tmp.replace(args.output)
        return
    text = "".join(json.dumps({"text": texts[i], **record(result, args.all_scores)}, ensure_ascii=False) + "\n"
                   for i, result in zip(keep, results))
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
