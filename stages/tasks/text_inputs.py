"""What the text tasks share: a fast tokenizer is their processor, and rows have a length in tokens."""

from transformers import AutoTokenizer

from stages.params import Data, Model, Params, ParamsError, Preprocess
from stages.sources import from_pretrained


class TextInputs:
    input_key = "text_column"  # the data.* key naming the input column

    def input_column(self, data: Data) -> str:
        return data.text_column
    group_by_length = True  # batches of rows of similar length pad less; rows carry a `length` column
    quantize_op_types = None  # int8: every op onnxruntime quantizes dynamically
    static_int8 = False  # weights only: activation ranges are computed per batch

    def input_summary(self, split) -> dict:
        """What the data card says of a split's inputs beside its labels: nothing for texts here (their length
        in tokens depends on the model: preprocess reports it)."""
        return {}

    def card_figures(self, out, test, predictions_csv: str) -> list[tuple[str, str]]:
        """Figures of the task's own for the model card: none beyond the shared ones for text."""
        return []

    def train_transform(self, settings: Preprocess, seed: int = 0):
        """What changes training rows as they are read: nothing for text."""
        return None

    def load_processor(self, model: Model):
        """The model's tokenizer; a fast one, since word alignment and offsets need it."""
        tokenizer = from_pretrained(AutoTokenizer, model)
        if not tokenizer.is_fast:
            raise ParamsError(f"model.name: '{model.name}' has no fast tokenizer (tokenizer.json); hfx needs one")
        return tokenizer

    def saved_processor(self, folder):
        return AutoTokenizer.from_pretrained(folder)

    def input_names(self, tokenizer) -> list[str]:
        return list(tokenizer.model_input_names)

    def sample_inputs(self, tokenizer) -> tuple[dict, dict]:
        """Inputs to trace the ONNX graph with, and their dynamic axes."""
        names = list(tokenizer.model_input_names)
        sample = tokenizer(["a short example", "a somewhat longer example sentence"], padding=True, return_tensors="pt")
        return {name: sample[name] for name in names}, {name: {0: "batch", 1: "sequence"} for name in names}

    def prepare_export(self, tokenizer, params: Params) -> None:
        # predict, serve and pipeline() truncate to the length the model was fine-tuned on, as preprocess did.
        tokenizer.model_max_length = params.preprocess.max_length
