"""Token classification (named entities): one IOB2 tag per word, scored by entity as conlleval does (seqeval)."""

from collections import Counter

import numpy as np
import pandas as pd
from datasets import ClassLabel, Dataset
from seqeval.metrics import classification_report
from seqeval.scheme import IOB2
from transformers import AutoModelForTokenClassification, DataCollatorForTokenClassification

from stages.params import Data, ParamsError, Preprocess
from stages.tasks.text_inputs import TextInputs
from stages.tasks.common import require_columns, FIXED, Evaluation, label_text, score_curves

def entity_type(tag: str) -> str | None:
    return None if tag == "O" else tag[2:]


def to_iob2(tags: list[str]) -> tuple[list[str], int]:
    """I-X that begins an entity (after O, another type or nothing) becomes B-X: IOB1's convention, or an
    invalid IOB2 sequence. Returns (tags, how many were changed)."""
    fixed, changed, previous = [], 0, "O"
    for tag in tags:
        if tag.startswith("I-") and entity_type(previous) != tag[2:]:
            tag, changed = "B-" + tag[2:], changed + 1
        fixed.append(tag)
        previous = tag
    return fixed, changed


def looks_iob1(sentences: list[list[str]]) -> bool:
    """IOB1 writes B- only between two adjacent entities of one type, so every entity it opens follows one."""
    opens_with_i = False
    for tags in sentences:
        previous = "O"
        for tag in tags:
            if tag.startswith("B-") and entity_type(previous) != tag[2:]:
                return False
            opens_with_i |= tag.startswith("I-") and entity_type(previous) != tag[2:]
            previous = tag
    return opens_with_i


def _as_list(value, names: list[str] | None) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value.split()
    return [label_text(v, names) or "" for v in value]


def word_features(words: list[str], i: int) -> dict:
    """The usual CRF features of a word and its neighbours: the word, its affixes and its shape."""
    def describe(word: str, prefix: str) -> dict:
        shape = "".join("X" if c.isupper() else "x" if c.islower() else "d" if c.isdigit() else c for c in word)
        return {f"{prefix}lower": word.lower(), f"{prefix}suffix3": word[-3:].lower(), f"{prefix}suffix2": word[-2:],
                f"{prefix}prefix2": word[:2].lower(), f"{prefix}title": word.istitle(), f"{prefix}upper": word.isupper(),
                f"{prefix}digit": word.isdigit(), f"{prefix}shape": shape[:6]}

    features = {"bias": 1.0, **describe(words[i], "")}
    features.update(describe(words[i - 1], "-1:") if i > 0 else {"BOS": True})
    features.update(describe(words[i + 1], "+1:") if i < len(words) - 1 else {"EOS": True})
    return features


class TokenClassification(TextInputs):
    name = "token-classification"
    auto_model = AutoModelForTokenClassification
    stratify_column = None  # a sentence has many tags: carving and capping sample plainly
    columns = ("tokens", "tags")
    headline = "f1"
    best_metric = "f1"
    validation_metrics = ("accuracy", "f1", "f1_macro", "precision", "recall")
    card_metrics = ("f1", "precision", "recall", "f1_macro", "accuracy")  # the model card's test scores
    pipeline_kwargs = {"aggregation_strategy": "simple"}  # entity spans, not sub-token tags
    margin_keys = ("f1",)
    logits_axes = {0: "batch", 1: "sequence"}
    truncated_unit = "words"

    def has_head(self, config) -> bool:
        return any(name.endswith("ForTokenClassification") for name in config.architectures or ())

    def standardize(self, split: Dataset, data: Data, split_name: str) -> tuple[Dataset, Counter]:
        """Rows as {tokens, tags} lists in IOB2. Drops (and counts) empty sentences; converts IOB1 and repairs
        invalid IOB2 (counted under `fixed:`); a sentence whose word and tag counts differ is an error."""
        require_columns(split, data, split_name)
        inner = getattr(split.features[data.label_column], "feature", None)  # List(ClassLabel): Hub conll2003
        names = inner.names if isinstance(inner, ClassLabel) else None
        sentences, counts = [], Counter()
        for row, (words, tags) in enumerate(zip(split[data.text_column], split[data.label_column]), 1):
            words, tags = _as_list(words, None), _as_list(tags, names)
            if not words:
                counts["empty_sentence"] += 1
                continue
            if tags is None or len(tags) != len(words):
                raise ParamsError(f"data: {split_name} row {row} has {len(words)} words and"
                                  f" {len(tags or [])} tags; each word needs one tag")
            bad = next((t for t in tags if t != "O" and (t[:2] not in ("B-", "I-") or len(t) < 3)), None)
            if bad is not None:
                raise ParamsError(f"data: {split_name} row {row} has the tag '{bad}'; tags are O, B-<type> or"
                                  " I-<type> (IOB1 or IOB2)")
            sentences.append((list(words), tags))
        iob1 = data.tag_scheme == "iob1" or (data.tag_scheme == "auto" and looks_iob1([t for _, t in sentences]))
        fixed_tags = []
        for _, tags in sentences:
            tags, changed = to_iob2(tags)
            fixed_tags.append(tags)
            counts[f"{FIXED}{'iob1_to_iob2' if iob1 else 'invalid_iob2_repaired'}"] += changed
        counts = Counter({k: v for k, v in counts.items() if v})
        return Dataset.from_dict({"tokens": [w for w, _ in sentences], "tags": fixed_tags}), counts

    def label_counts(self, split: Dataset) -> dict:
        """Entities per type."""
        return dict(sorted(Counter(t[2:] for tags in split["tags"] for t in tags if t.startswith("B-")).items()))

    def check_labels(self, splits: dict[str, Dataset]) -> None:
        types = set(self.label_counts(splits["train"]))
        if not types:
            raise ParamsError("data: train has no entity (every tag is O); token classification needs some")
        for split in ("validation", "test"):
            unseen = sorted(set(self.label_counts(splits[split])) - types)
            if unseen:
                raise ParamsError(f"data: entity types {unseen} in {split} never appear in train"
                                  f" (train types: {sorted(types)})")

    def label_names(self, train: Dataset, data: Data) -> list[str]:
        """O first, then B- and I- of each entity type in train, alphabetically: a stable order."""
        return ["O"] + [f"{prefix}-{kind}" for kind in self.label_counts(train) for prefix in ("B", "I")]

    def tokenize(self, batch: dict, processor, settings: Preprocess, label2id: dict) -> dict:
        """The first sub-token of each word carries its tag; the others (or, with label_all_subtokens, their
        I- form) and special tokens -100. `truncated`: words cut off by max_length."""
        encoded = processor(batch["tokens"], is_split_into_words=True, truncation=True,
                            max_length=settings.max_length)
        labels, truncated = [], []
        for i, tags in enumerate(batch["tags"]):
            word_ids, previous, row = encoded.word_ids(i), None, []
            for word in word_ids:
                if word is None:
                    row.append(-100)
                elif word != previous:
                    row.append(label2id[tags[word]])
                elif settings.label_all_subtokens:
                    row.append(label2id["I-" + tags[word][2:] if tags[word] != "O" else "O"])
                else:
                    row.append(-100)
                previous = word
            labels.append(row)
            kept = max((w for w in word_ids if w is not None), default=-1) + 1
            truncated.append(len(tags) - kept)
        encoded["labels"] = labels
        encoded["length"] = [len(ids) for ids in encoded["input_ids"]]
        encoded["truncated"] = truncated
        return encoded

    def collator(self, tokenizer):
        return DataCollatorForTokenClassification(tokenizer)

    def decode(self, logits: np.ndarray, labels: np.ndarray) -> list[tuple]:
        """(gold ids, predicted ids) per sentence, at the labelled positions (each word's first sub-token)."""
        predicted = logits.argmax(-1)
        return [(row[row != -100].tolist(), guess[row != -100].tolist()) for row, guess in zip(labels, predicted)]

    def metrics(self, pairs: list[tuple], names: list[str]) -> dict:
        gold = [[names[i] for i in g] for g, _ in pairs]
        predicted = [[names[i] for i in p] for _, p in pairs]
        return entity_scores(gold, predicted)

    def trainer_metrics(self, names: list[str]):
        def compute(eval_prediction) -> dict:
            scores = self.metrics(self.decode(eval_prediction.predictions, eval_prediction.label_ids), names)
            return {key: scores[key] for key in self.validation_metrics}

        return compute

    def evaluation(self, raw_test: Dataset, logits: np.ndarray, labels: np.ndarray, names: list[str]) -> Evaluation:
        """Whole sentences: a word cut off by max_length counts as predicted O."""
        pairs = self.decode(logits, labels)
        gold = [list(tags) for tags in raw_test["tags"]]
        predicted = [[names[i] for i in p] + ["O"] * (len(g) - len(p)) for g, (_, p) in zip(gold, pairs)]
        scores = entity_scores(gold, predicted)
        words = raw_test["tokens"]
        predictions = pd.DataFrame([{"sentence": s, "word": word, "actual": g, "predicted": p}
                                    for s, (sentence, gs, ps) in enumerate(zip(words, gold, predicted))
                                    for word, g, p in zip(sentence, gs, ps)])
        sentences = pd.DataFrame({"words": [" ".join(w) for w in words], "gold": [" ".join(g) for g in gold],
                                  "predicted": [" ".join(p) for p in predicted],
                                  "correct": [g == p for g, p in zip(gold, predicted)]})
        per_class = pd.DataFrame([{"label": kind, **values} for kind, values in scores["per_class"].items()])
        # ROC and precision-recall of the tag scores, one-vs-rest over every labelled word (the words kept).
        kept = labels != -100
        curve_summary, curves = score_curves(labels[kept], logits[kept], names)
        return Evaluation(metrics={**{k: v for k, v in scores.items() if k != "per_class"},
                                   **{f"token_{k}": v for k, v in curve_summary.items()}},
                          per_class=scores["per_class"], predictions=predictions,
                          files={**curves, "per_class.csv": per_class, "sentences.csv": sentences})

    def baseline(self, train: Dataset, test: Dataset) -> dict:
        """A CRF on word, affix and shape features of each word and its neighbours, on the same train split."""
        import sklearn_crfsuite

        crf = sklearn_crfsuite.CRF(algorithm="lbfgs", c1=0.1, c2=0.1, max_iterations=100)
        crf.fit([[word_features(w, i) for i in range(len(w))] for w in train["tokens"]], list(train["tags"]))
        predicted = crf.predict([[word_features(w, i) for i in range(len(w))] for w in test["tokens"]])
        scores = entity_scores([list(t) for t in test["tags"]], [list(p) for p in predicted])
        return {"model": "crf-word-shape", **{key: scores[key] for key in ("f1", "precision", "recall")}}


def entity_scores(gold: list[list[str]], predicted: list[list[str]]) -> dict:
    """Entity-level precision, recall and F1 in strict IOB2 mode (as conlleval), per type with support, their
    micro average (`f1`) and macro average (`f1_macro`), and token accuracy."""
    report = classification_report(gold, predicted, mode="strict", scheme=IOB2, output_dict=True, zero_division=0)
    tokens = [(g, p) for gs, ps in zip(gold, predicted) for g, p in zip(gs, ps)]
    micro = report["micro avg"]
    return {
        "f1": float(micro["f1-score"]), "precision": float(micro["precision"]), "recall": float(micro["recall"]),
        "f1_macro": float(report["macro avg"]["f1-score"]),
        "accuracy": sum(g == p for g, p in tokens) / max(len(tokens), 1),
        "per_class": {kind: {"precision": float(v["precision"]), "recall": float(v["recall"]),
                             "f1": float(v["f1-score"]), "support": int(v["support"])}
                      for kind, v in sorted(report.items()) if not kind.endswith(" avg")},
    }
