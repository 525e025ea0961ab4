"""Per-task pre- and post-processing for `predict` and `serve`, behind one small interface.

A handler turns a request's `inputs` into items (`parse`; `read` for one item of a file or the command line),
items into encoded inputs (`encode`), each into the rows the model runs (`windows`, `pad`: one, or several
windows of a long text), their logits into the input's (`merge`), those into its result
(`decode(logits, encoded, item)`), and a result into output fields (`record` for JSON, `columns` for a table).
`options` names the request options the task takes; `input_field` names the input in a JSON result.

A task's handler is the module named after the task here (`question-answering.py`), which hfx/tasks.py names
and imports by that name: nothing else imports it, so a change to it concerns its task alone (dvc.yaml lists it
by `${task}`). What several handlers share is named by what it does: `texts.py` (text inputs),
`class_scores.py` (a label per input). The server and the command never name a task.
"""
