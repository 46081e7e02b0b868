"""The console's forms, checked by the HTTP API's own body models: a form accepts exactly
what the matching API request accepts, and a refusal is one sentence to show in the page."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError

Body = TypeVar("Body", bound=BaseModel)


class FormInvalid(ValueError):
    """A form's fields fail the API's checks; the message names each field and what is wrong."""


def check_form(model: type[Body], **fields: object) -> Body:
    """The form's fields as the API body `model`, or `FormInvalid`."""
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(part) for part in e['loc']).capitalize() or 'Form'}: {e['msg']}."
            for e in exc.errors()
        ]
        raise FormInvalid(" ".join(problems)) from None
