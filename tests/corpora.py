"""Generated data a tiny model learns in seconds, and the tiny models themselves: reviews (a cue word among
filler words), named-entity sentences, question-answer articles, IDX images. Nothing here needs the network."""

import gzip
import io
import random
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

POSITIVE_WORDS = ["great", "wonderful", "moving", "brilliant", "funny", "charming", "superb", "delightful"]
NEGATIVE_WORDS = ["awful", "boring", "dull", "clumsy", "tedious", "bland", "messy", "terrible"]
FILLER_WORDS = ["the", "film", "story", "cast", "was", "a", "really", "plot", "and", "ending", "quite", "this", "movie"]


def review(rng: random.Random, label: str) -> str:
    words = rng.choices(FILLER_WORDS, k=rng.randint(3, 12))
    cue = POSITIVE_WORDS if label == "pos" else NEGATIVE_WORDS
    for _ in range(rng.randint(1, 2)):
        words.insert(rng.randrange(len(words) + 1), rng.choice(cue))
    return " ".join(words)


def make_reviews(n: int, seed: int = 0) -> pd.DataFrame:
    """A learnable two-class corpus: the label is carried by a cue word among filler words."""
    rng = random.Random(seed)
    labels = [rng.choice(["pos", "neg"]) for _ in range(n)]
    return pd.DataFrame({"review": [review(rng, label) for label in labels], "sentiment": labels})


PEOPLE = [["john", "smith"], ["mary", "jones"], ["ali"], ["chen", "wei"], ["ana", "lopez"], ["otto"]]
PLACES = [["paris"], ["new", "york"], ["lagos"], ["rio", "de", "janeiro"], ["oslo"]]
COMPANIES = [["acme", "corp"], ["globex"], ["initech", "group"], ["umbrella"]]
TEMPLATES = [
    ["{PER}", "visited", "{LOC}", "last", "week"],
    ["{ORG}", "hired", "{PER}", "in", "{LOC}"],
    ["the", "team", "from", "{ORG}", "met", "{PER}"],
    ["{PER}", "moved", "to", "{LOC}"],
    ["shares", "of", "{ORG}", "fell", "in", "{LOC}", "today"],
    ["nothing", "happened", "here"],
]


def make_sentences(n: int, seed: int = 0) -> pd.DataFrame:
    """A learnable named-entity corpus: people, places and companies in a few templates, tagged in IOB2.
    Columns `text` and `label`: words and tags joined by spaces, as ../shared/data/conll2003's csv files."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        words, tags = [], []
        for slot in rng.choice(TEMPLATES):
            kind = slot.strip("{}") if slot.startswith("{") else None
            entity = rng.choice({"PER": PEOPLE, "LOC": PLACES, "ORG": COMPANIES}[kind]) if kind else [slot]
            words += entity
            tags += [f"{'B' if i == 0 else 'I'}-{kind}" if kind else "O" for i in range(len(entity))]
        rows.append({"text": " ".join(words), "label": " ".join(tags)})
    return pd.DataFrame(rows)


def generated_splits(sizes: dict[str, int], make=None, seed: int = 0) -> dict[str, pd.DataFrame]:
    """{split: frame} of `sizes` rows each, from `make` (reviews unless said), each split its own seed."""
    return {split: (make or make_reviews)(n, seed=seed + i) for i, (split, n) in enumerate(sizes.items())}


def make_tiny_model(folder: Path, corpus: list[str]) -> Path:
    """A 2-layer BERT with a WordPiece tokenizer trained on `corpus`, saved like a Hub checkpoint."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertModel, BertTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.train_from_iterator(corpus, trainers.WordPieceTrainer(vocab_size=300, special_tokens=specials))
    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    fast = BertTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=128,
    )
    fast.save_pretrained(folder)
    config = BertConfig(
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    torch.manual_seed(0)  # the same tiny model in every session
    BertModel(config).save_pretrained(folder)
    return folder


NAMES = ["anna", "boris", "carla", "dmitri", "elena", "farid", "greta", "hugo", "ines", "jonas", "kira", "luca"]
CITIES = ["paris", "lagos", "oslo", "lima", "cairo", "delhi", "quito", "tokyo"]
JOBS = ["baker", "pilot", "nurse", "farmer", "painter", "teacher"]
ARTICLE_FILLER = "the river runs past old houses and the market opens early every day near the bridge".split()


def article(rng: random.Random, title: str, filler: int) -> list[dict]:
    """One article about a person (its questions share a title); `filler` words between the facts."""
    name, city, job, year = rng.choice(NAMES), rng.choice(CITIES), rng.choice(JOBS), str(rng.randint(1900, 1999))
    padding = " ".join(rng.choices(ARTICLE_FILLER, k=filler))
    context = f"{name} was born in {city} in {year} . {padding} . later {name} worked as a {job} ."
    facts = {f"where was {name} born ?": city, f"when was {name} born ?": year, f"what did {name} work as ?": job}
    rows = []
    for i, (question, answer) in enumerate(facts.items()):
        start = context.index(f" {answer} ") + 1 if answer != job else context.rindex(answer)
        rows.append(
            {
                "id": f"{title}-{i}",
                "title": title,
                "context": context,
                "question": question,
                "answers": {"text": [answer], "answer_start": [start]},
            }
        )
    return rows


def make_articles(n: int, seed: int = 0, filler: tuple[int, int] = (2, 60)) -> pd.DataFrame:
    rng = random.Random(seed)
    return pd.DataFrame([row for a in range(n) for row in article(rng, f"s{seed}-a{a}", rng.randint(*filler))])


def write_idx(path, array: np.ndarray, compress: bool = True) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)


def write_images(folder: Path, sizes: dict[str, int]) -> None:
    """Three learnable kinds of 28x28 image (dark, bright, striped) as Fashion-MNIST ships them: IDX files,
    `train` and `t10k`."""
    rng = np.random.default_rng(0)
    for prefix, n in sizes.items():
        labels = np.arange(n) % 3
        images = rng.integers(0, 60, (n, 28, 28))
        images[labels == 1] += 150  # bright
        images[labels == 2, :, ::4] = 255  # stripes
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels)


def png(mode: str, size=(8, 6), value=128) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, value if mode != "RGBA" else (value, value, value, 255)).save(buffer, format="PNG")
    return buffer.getvalue()
