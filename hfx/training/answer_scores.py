"""Extractive answers scored as SQuAD's official evaluation script (v1.1) scores them, and the lexical baseline
they are compared with.

An answer is normalised (lower case, punctuation and the articles a/an/the removed, spaces collapsed) and
compared with every gold answer of its question: exact match is 1 when it equals one of them, token F1 is the
best F1 of its words against any of them. Both are averaged over questions.
"""

import re
import string
from collections import Counter

PUNCTUATION = set(string.punctuation)
ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    text = "".join(c for c in text.lower() if c not in PUNCTUATION)
    return " ".join(ARTICLES.sub(" ", text).split())


def exact_match(predicted: str, gold: list[str]) -> float:
    return float(max(normalize_answer(predicted) == normalize_answer(answer) for answer in gold))


def token_f1(predicted: str, gold: list[str]) -> float:
    def f1(answer: str) -> float:
        ours, theirs = normalize_answer(predicted).split(), normalize_answer(answer).split()
        common = sum((Counter(ours) & Counter(theirs)).values())
        if common == 0:
            return 0.0
        precision, recall = common / len(ours), common / len(theirs)
        return 2 * precision * recall / (precision + recall)

    return max(f1(answer) for answer in gold)


def answer_scores(pairs: list[tuple[list[str], str]]) -> dict:
    """Exact match and token F1, averaged over (gold answers, predicted answer) pairs, as fractions of 1."""
    count = max(len(pairs), 1)
    return {
        "exact_match": sum(exact_match(predicted, gold) for gold, predicted in pairs) / count,
        "f1": sum(token_f1(predicted, gold) for gold, predicted in pairs) / count,
    }


# The baseline: find the context sentence that shares the most words with the question, then answer with the
# run of that sentence's words the question does not contain, preferring a run that fits the question's type.
WORD = re.compile(r"\w+(?:[-'.]\w+)*")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
STOPWORDS = frozenset(
    "a an the of in on at to for from by with and or is are was were be been what which who whom whose when where"
    " why how did do does that this these those it its as into than then there their his her he she they".split()
)
NUMBER_QUESTIONS = ("when", "how many", "how much", "how long", "how old", "what year", "which year", "how far")
NAME_QUESTIONS = ("who", "whom", "whose", "where", "which")


def content_words(text: str) -> set[str]:
    return {word.lower() for word in WORD.findall(text)} - STOPWORDS


def sentence_answer(question: str, context: str) -> str:
    """The lexical baseline's answer: a run of words of the sentence most like the question."""
    sentences = [s for s in SENTENCE_END.split(context) if s.strip()] or [context]
    asked = content_words(question)
    sentence = max(sentences, key=lambda s: len(content_words(s) & asked))  # the first of the best
    runs, run = [], []
    for match in WORD.finditer(sentence):
        if match.group().lower() in asked:
            runs, run = runs + [run] if run else runs, []
        else:
            run.append(match)
    runs = [r for r in runs + [run] if r and any(m.group().lower() not in STOPWORDS for m in r)]
    if not runs:
        return sentence.strip()
    lowered = question.lower()
    if lowered.startswith(NUMBER_QUESTIONS) or " year" in lowered:
        wanted = [[m for m in r if any(c.isdigit() for c in m.group())] for r in runs]
    elif lowered.startswith(NAME_QUESTIONS):
        wanted = [leading_names(r) for r in runs]
    else:
        wanted = []
    span = next((w for w in wanted if w), None) or max(runs, key=len)
    return sentence[span[0].start() : span[-1].end()]


def leading_names(run: list) -> list:
    """The first stretch of capitalised words in a run of words."""
    names = []
    for match in run:
        if match.group()[0].isupper():
            names.append(match)
        elif names:
            break
    return names
