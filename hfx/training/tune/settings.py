"""The `tune:` section of params.yaml: what `hfx tune` searches and how. No stage reads it; check_params checks
it with the rest of the file, and a searched key's bounds and choices against that key's own schema."""

import difflib
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Value = bool | int | float | str | None

# The sections a search may vary: what can change the validation score it optimises.
SEARCHABLE = ("model", "preprocess", "finetune")


class SearchRange(BaseModel):
    """One searched param: numbers from low to high (whole numbers when both are; `log` for a log scale,
    `step` for a grid), or one of `choices`."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    low: int | float | None = None
    high: int | float | None = None
    log: bool = False
    step: int | float | None = Field(None, gt=0)
    choices: list[Value] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _range_or_choices(self):
        if self.choices is not None:
            if self.low is not None or self.high is not None:
                raise ValueError("give either low and high or choices, not both")
            return self
        if self.low is None or self.high is None:
            raise ValueError("needs low and high (a range) or choices (a list)")
        if not self.low < self.high:
            raise ValueError(f"empty range: low {self.low} must be below high {self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"a log scale needs low above 0, not {self.low}")
        if self.log and self.step is not None:
            raise ValueError("a log scale takes no step")
        return self

    @property
    def whole_numbers(self) -> bool:
        return isinstance(self.low, int) and isinstance(self.high, int) and isinstance(self.step or 1, int)

    def values_to_check(self) -> list[Value]:
        return list(self.choices) if self.choices is not None else [self.low, self.high]


class Tune(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    study: str = Field("tune", pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$", max_length=64)  # names its experiments
    trials: int = Field(20, ge=1)
    timeout_s: int | None = Field(None, gt=0)
    metric: str = "auto"  # a validation score of the task; auto: finetune's metric_for_best_model
    direction: Literal["auto", "maximize", "minimize"] = "auto"
    until: Literal["evaluate", "export"] = "evaluate"
    pruner: Literal["median", "hyperband", "none"] = "median"
    seed: int = 42
    storage: str | None = None  # null: a SQLite file in `folder`; a .log path: a journal file; or a database URL
    folder: str = Field("tune", min_length=1)
    results: str = Field("metrics/tune.json", pattern=r"\.json$")
    space: dict[str, SearchRange] = Field(min_length=1)


def check_space(tune: Tune, sections: dict[str, BaseModel]) -> None:
    """Each searched key names a param of a searchable section, and its bounds or choices are values that key
    takes (checked against the section's own schema); ValueError naming the first that is not."""
    for key, search in tune.space.items():
        section_name, _, name = key.partition(".")
        section = sections.get(section_name) if section_name in SEARCHABLE else None
        if section is None or name not in type(section).model_fields:
            known = [f"{s}.{field}" for s in SEARCHABLE for field in type(sections[s]).model_fields]
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"searchable: keys of {', '.join(SEARCHABLE)}"
            raise ValueError(f"tune.space: '{key}' is not a param a search can vary; {hint}")
        for value in search.values_to_check():
            try:
                type(section).model_validate({**section.model_dump(), name: value})
            except ValidationError as exc:
                reason = exc.errors()[0]["msg"].removeprefix("Value error, ")
                raise ValueError(f"tune.space.{key}: {value!r} is not a value {key} takes: {reason}") from None
