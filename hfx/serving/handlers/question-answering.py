"""Extractive question answering in the serving half: a question and a context in, the span of the context that
answers it out, as `pipeline("question-answering")` answered before transformers 5 removed it.

A context longer than the model's window is read in overlapping windows, each holding the whole question (cut
to its first `question_room` tokens when it is longer, as training cuts it). In each window the start and end
logits become probabilities over the context's tokens (a softmax with the question and padding masked out), a
span scores start x end probability, spans longer than `max_answer_len` tokens or ending before they start are
out, and the span is widened to whole words. The same
answer found in two windows adds its scores and keeps the place where it scored best; the best answer over all
windows wins. That is transformers' `select_starts_ends` and `decode_spans` (kept in its document question
answering pipeline), which a test compares with this.

The window's first token (BERT's [CLS], RoBERTa's <s>: the tokenizer's own, from the folder) stays in each
window's softmax: training points a window that does not hold the answer at it, so a window without the answer
puts its weight there instead of on spans of its context.
"""

import heapq
import re

import numpy as np
from tokenizers import Tokenizer

from hfx.serving.handlers.texts import TextInputsHandler
from hfx.serving.input_errors import InputError
from hfx.serving.transforms import probabilities

CONTEXT = 1  # the context's sequence id in a (question, context) encoding
MASKED = -10000.0  # the logit a token that cannot be in the answer gets before the softmax, as transformers
DEFAULT_STRIDE = 128  # tokens each window shares with the one before: transformers' doc_stride
LETTER_OR_DIGIT = re.compile(r"[A-Za-z0-9]")


def question_room(max_length: int, stride: int, special_tokens: int) -> int:
    """The most tokens a question may have: each window holds it, the pair's special tokens (3 for BERT's
    [CLS] q [SEP] c [SEP], 4 for RoBERTa's) and more context tokens than the stride (what the tokenizer needs
    to move on)."""
    return max_length - stride - special_tokens - 1


def cut_question(question: str, offsets: list[tuple[int, int]], room: int) -> str:
    """The question as the model reads it: whole, or its first `room` tokens (`offsets`: its tokens' characters)."""
    return question if len(offsets) <= room else question[: offsets[room - 1][1]]


def best_spans(start: np.ndarray, end: np.ndarray, allowed: np.ndarray, top_k: int, max_answer_len: int) -> list:
    """(start token, end token, score) of the `top_k` best spans of one window: `start`/`end` are probabilities,
    `allowed` the tokens an answer may hold. Spans end at or after their start, at most `max_answer_len` tokens.
    Only the k best are selected (argpartition), never a sort of every pair; ties go to the earlier span."""
    valid = np.tril(np.triu(np.outer(allowed, allowed)), max_answer_len - 1)
    scores = np.outer(start, end)
    flat = np.where(valid, scores, -1.0).ravel()  # a span that cannot be an answer is never chosen
    k = min(top_k, int(valid.sum()))
    if k == 0:
        return []
    if k == 1:
        order = np.array([int(np.argmax(flat))])
    else:
        chosen = np.argpartition(-flat, k - 1)[:k]
        order = chosen[np.lexsort((chosen, -flat[chosen]))]
    starts, ends = np.unravel_index(order, scores.shape)
    return [(int(s), int(e), float(scores[s, e])) for s, e in zip(starts, ends)]


class QuestionAnsweringHandler(TextInputsHandler):
    """Items are [question, context]; a result is {answer, score, start, end} (`start`/`end` index the context's
    characters), or with `top_k` a list of the k best."""

    auto_model = "AutoModelForQuestionAnswering"
    outputs = ("start_logits", "end_logits")  # as optimum's ONNX export names them; runners stack them
    options = frozenset({"top_k", "max_answer_len"})
    capped_options = frozenset({"top_k"})  # answers searched per window: the server caps it (--max-top-k)
    input_field = "question"
    table_columns = ("question_column", "context_column")  # predict's options naming a table's columns

    def __init__(self, info):
        # Questions and contexts are measured whole, by a copy of the tokenizer that never cuts: cutting a lone
        # question with the windows' `only_second` strategy is an error in `tokenizers`.
        self.whole = Tokenizer.from_file(str(info.folder / self.processor_file))
        self.whole.no_truncation()
        self.whole.no_padding()
        super().__init__(info)
        self.max_answer_len = info.max_answer_length
        self.cls_id = self.special_id("cls_token", "bos_token")  # None where the folder names neither

    def cut_at(self, max_length: int) -> None:
        """Windows of `max_length` tokens, each the whole question and as much of the context as fits."""
        if self.stride is None:  # a folder export did not write: transformers' default
            self.stride = min(DEFAULT_STRIDE, max_length // 2 - 1)
        super().cut_at(max_length)
        self.question_room = question_room(max_length, self.stride, self.tokenizer.num_special_tokens_to_add(True))
        if self.question_room < 1:
            raise InputError(f"windows of {max_length} tokens leave no room for a question beside the context")
        self.tokenizer.enable_truncation(
            max_length, stride=self.stride, strategy="only_second", direction=self.truncation_side
        )

    def warmup_rows(self) -> list:
        return self.encode([["what is it?", " ".join(["film"] * n)] for n in (16, self.max_length)])

    def parse(self, inputs) -> tuple[list, bool]:
        """{"question": ..., "context": ...} is one item, a list of them several."""
        single = isinstance(inputs, dict)
        items = [inputs] if single else inputs
        if not isinstance(items, list) or not items:
            raise InputError('send inputs as {"question": "...", "context": "..."} or a list of them')
        parsed = []
        for i, item in enumerate(items):
            where = "inputs" if single else f"inputs[{i}]"
            if not isinstance(item, dict) or set(item) != {"question", "context"}:
                raise InputError(f'{where} must be {{"question": "...", "context": "..."}}')
            try:
                parsed.append(self.read([item["question"], item["context"]]))
            except InputError as exc:
                raise InputError(f"{where}.{exc}") from None
        return parsed, single

    def read(self, item):
        """[question, context] of a file or a request (a question past `question_room` tokens cut there, as
        training cuts it), or an InputError saying which is missing or holds nothing the model reads."""
        if isinstance(item, dict):
            item = [item.get("question"), item.get("context")]
        if not isinstance(item, (list, tuple)) or len(item) != 2:
            raise InputError("not a question and a context")
        question, context = (self._read_text(text, f"{name}: ") for text, name in zip(item, ("question", "context")))
        asked = self.whole.encode(question, add_special_tokens=False)
        # A letter or digit always makes a token; only a context without one is tokenized here to find out.
        empty_context = (
            not LETTER_OR_DIGIT.search(context) and not self.whole.encode(context, add_special_tokens=False).ids
        )
        for name, empty in (("question", not asked.ids), ("context", empty_context)):
            if empty:
                raise InputError(
                    f"{name}: no words the model reads (only control, zero-width or other dropped characters)"
                )
        return [cut_question(question, asked.offsets, self.question_room), context]

    def fields(self, item) -> dict:
        return {"question": item[0], "context": item[1]}

    def encode(self, items: list) -> list:
        return self.tokenizer.encode_batch([tuple(item) for item in items])

    def windows(self, encoded) -> list:
        return [encoded, *encoded.overflowing]

    def merge(self, window_logits: list[np.ndarray], encoded, item) -> list[np.ndarray]:
        """Each window's (tokens, 2) start and end logits, as they are: answers are decided across windows."""
        return window_logits

    @staticmethod
    def truncated(encoded) -> bool:
        return False  # a context is read whole, in windows

    @staticmethod
    def decision_logits(logits: list[np.ndarray], encoded, item) -> np.ndarray:
        """Every window's start and end logits, one row per token."""
        return np.concatenate(logits)

    def decode(self, logits: list[np.ndarray], encoded, item, top_k: int | None = None, max_answer_len=None):
        """The best answer {answer, score, start, end} (`top_k` > 1: a list of the k best), over every window."""
        top_k, max_answer_len = top_k or 1, max_answer_len or self.max_answer_len
        context = item[1]
        answers, best_at = {}, {}  # answer text -> its result, and its best single span's score
        for window, window_logits in zip(self.windows(encoded), logits):
            in_context = np.array([sequence == CONTEXT for sequence in window.sequence_ids])
            # The first token, which training points at, and the tokenizer's cls token wherever it is (transformers)
            softmaxed = in_context | (np.asarray(window.ids) == self.cls_id)
            softmaxed[0] = True
            start, end = probabilities(np.where(softmaxed[:, None], window_logits, MASKED).astype(np.float64).T)
            start[0] = end[0] = 0.0  # never the first token (SQuAD 1.1: every question has an answer), as transformers
            for first, last, score in best_spans(start, end, in_context, top_k, max_answer_len):
                begin = window.word_to_chars(window.token_to_word(first), CONTEXT)[0]
                finish = window.word_to_chars(window.token_to_word(last), CONTEXT)[1]
                text = context[begin:finish]
                if text not in answers:
                    answers[text], best_at[text] = {"score": 0.0, "start": begin, "end": finish, "answer": text}, score
                elif score > best_at[text]:  # the same words elsewhere: report where they scored best
                    answers[text] |= {"start": begin, "end": finish}
                    best_at[text] = score
                answers[text]["score"] += score
        if not answers:  # `read` refuses a context without tokens; a window never holds none
            raise InputError("context: no span of it can answer")
        best = heapq.nlargest(top_k, answers.values(), key=lambda answer: answer["score"])
        return best[0] if top_k == 1 else best

    @staticmethod
    def record(result, all_scores: bool) -> dict:
        return result if isinstance(result, dict) else {"answers": result}

    @staticmethod
    def column_names(all_scores: bool) -> list[str]:
        return ["answer", "score", "start", "end"]

    @staticmethod
    def columns(result, all_scores: bool) -> dict:
        return result
