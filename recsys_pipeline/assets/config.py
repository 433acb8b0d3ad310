"""Launchpad config classes generated from the plain settings models.

Every field of a settings model becomes a field of the asset's ``dg.Config`` with the same type
(``Literal`` choices become a validated enum), bounds and description, and the profile's value as
its default; a field added to a settings model is configurable at once. Fields that belong to the
Dagster step and not to the science (how many processes to launch, which model to serve) are
added per asset.
"""

from __future__ import annotations

from typing import Any, TypeVar

import dagster as dg
from pydantic import BaseModel, create_model
from pydantic.fields import FieldInfo

S = TypeVar("S", bound=BaseModel)


class SettingsConfig(dg.Config):
    """Base of the generated classes: ``settings()`` gives back the validated plain settings."""

    def settings(self) -> Any:  # noqa: ANN401 - the settings model the class was made from
        values = self.model_dump(include=set(self.settings_model.model_fields))
        return self.settings_model(**values)


def config_from_settings(
    name: str, defaults: S, doc: str, **extra: tuple[type, FieldInfo]
) -> type[SettingsConfig]:
    """A ``dg.Config`` named ``name`` with one field per field of ``type(defaults)``, defaulting
    to the values of ``defaults``, plus the ``extra`` (annotation, Field) pairs."""
    model = type(defaults)
    fields: dict[str, Any] = {
        field: (
            info.annotation,
            FieldInfo.merge_field_infos(info, default=getattr(defaults, field)),
        )
        for field, info in model.model_fields.items()
    }
    config = create_model(name, __base__=SettingsConfig, __doc__=doc, **fields, **extra)
    config.settings_model = model
    return config
