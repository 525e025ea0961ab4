"""The model card as the Hub reads it: rendered from its Jinja2 template, with the base model, dataset and license
as Hub ids, and the test scores as `model-index`."""

import json

from huggingface_hub import ModelCard


def test_the_exported_card_parses_as_the_hub_reads_it(exported_model):
    card = ModelCard.load(exported_model / "README.md")
    scores = json.loads((exported_model.parents[1] / "metrics/eval.json").read_text())
    assert card.data.pipeline_tag == "text-classification" and card.data.library_name == "transformers"
    assert {r.metric_type: r.metric_value for r in card.data.eval_results} == {
        key: round(scores[key], 4) for key in ("accuracy", "f1_macro", "precision_macro", "recall_macro")
    }
    assert card.data.base_model is None  # the tiny test model is a local folder
    assert "None" not in card.text and "{{" not in card.text and "{%" not in card.text  # every value was filled
