"""What transformers itself answers for an exported folder, to hold hfx's torch-free answers against."""

import json
from pathlib import Path

import numpy as np


def pipeline_as_served(task: str, folder: Path, **kwargs):
    """`transformers.pipeline` on an exported folder with its logits divided by the folder's temperature
    (calibration.json), as hfx.predict and hfx.serve score them: the classifier's last linear layer is scaled."""
    import torch
    from transformers import pipeline

    served = pipeline(task, model=str(folder), **kwargs)
    calibration = Path(folder) / "calibration.json"
    temperature = json.loads(calibration.read_text())["temperature"] if calibration.is_file() else 1.0
    head = [module for module in served.model.classifier.modules() if isinstance(module, torch.nn.Linear)][-1]
    with torch.no_grad():
        head.weight /= temperature
        head.bias /= temperature
    return served


def pipeline_answers(handler, question: str, context: str, window_logits, top_k: int, max_answer_len: int) -> list:
    """What transformers 4's pipeline("question-answering") answered, through the decoding transformers 5 keeps
    (`select_starts_ends`, in its document question answering pipeline) and the pipeline's own steps around it:
    the question's tokens masked but [CLS], whole words, the same answer from several windows summed."""
    from transformers.pipelines.document_question_answering import select_starts_ends

    encoded, answers, null_score = handler.encode([[question, context]])[0], [], 1000000
    for window, logits in zip(handler.windows(encoded), window_logits):
        p_mask = np.array([[int(sequence != 1) for sequence in window.sequence_ids]])
        p_mask[0, np.asarray(window.ids) == handler.tokenizer.token_to_id("[CLS]")] = 0
        starts, ends, scores, null_score = select_starts_ends(
            logits[None, :, 0],
            logits[None, :, 1],
            p_mask,
            np.array([window.attention_mask]),
            null_score,
            top_k,
            False,
            max_answer_len,
        )
        for s, e, score in zip(starts, ends, scores):
            begin = window.word_to_chars(window.token_to_word(s), 1)[0]
            finish = window.word_to_chars(window.token_to_word(e), 1)[1]
            same = next((a for a in answers if a["answer"] == context[begin:finish]), None)
            if same:  # one difference from the pipeline, which kept the first place found: the best-scoring one
                if score.item() > same["best"]:
                    same.update(start=begin, end=finish, best=score.item())
                same["score"] += score.item()
            else:
                answers.append(
                    {
                        "score": score.item(),
                        "start": begin,
                        "end": finish,
                        "answer": context[begin:finish],
                        "best": score.item(),
                    }
                )
    return sorted(answers, key=lambda a: a["score"], reverse=True)[:top_k]
