"""SQuAD's own JSON ({"data": [{"title", "paragraphs": [{"context", "qas": [...]}]}]}), read as one question per
row in the Hub's `squad` layout, the one question answering reads everywhere else."""

import json
from pathlib import Path

import fsspec
from datasets import Dataset


def is_squad_json(name: str) -> bool:
    """SQuAD's own JSON ({"data": [{"title", "paragraphs": [{"context", "qas": [...]}]}]}), not JSON rows."""
    if not name.lower().endswith((".json", ".json.gz", ".json.bz2", ".json.xz")) or not Path(name).is_file():
        return False
    with fsspec.open(name, "rt", encoding="utf-8", compression="infer") as file:
        head = file.read(4096)
    return head.lstrip().startswith("{") and '"paragraphs"' in head


def read_squad_json(files: list[str]) -> Dataset:
    """SQuAD's JSON as one question per row, in the Hub's `squad` layout: id, title, context, question, answers."""
    rows = []
    for name in files:
        with fsspec.open(name, "rt", encoding="utf-8", compression="infer") as file:
            articles = json.load(file).get("data") or []
        for article in articles:
            for paragraph in article.get("paragraphs", []):
                for qa in paragraph.get("qas", []):
                    answers = qa.get("answers") or []
                    rows.append(
                        {
                            "id": str(qa.get("id", len(rows))),
                            "title": article.get("title"),
                            "context": paragraph.get("context"),
                            "question": qa.get("question"),
                            "answers": {
                                "text": [a.get("text") for a in answers],
                                "answer_start": [a.get("answer_start") for a in answers],
                            },
                        }
                    )
    return Dataset.from_list(rows)
