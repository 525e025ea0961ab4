"""The server a user would write: FastAPI with `transformers.pipeline` in a plain endpoint.

`HFX_MODEL=models/export uvicorn benchmarks.peer_server:app`; `make loadtest` drives it beside hfx.serve.
"""

import os

from fastapi import FastAPI
from pydantic import BaseModel
from transformers import pipeline

classifier = pipeline("text-classification", model=os.environ.get("HFX_MODEL", "models/export"))
app = FastAPI()


class Query(BaseModel):
    inputs: str | list[str]


@app.post("/predict")
def predict(query: Query):
    return classifier(query.inputs)
