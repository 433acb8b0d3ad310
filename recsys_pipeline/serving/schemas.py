"""The API's request and response models (pydantic) and its limits: what the OpenAPI schema
declares, every refusal included."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_BODY_BYTES = 1 << 20
MAX_K = 100
MAX_BATCH = 1024
ItemId = int | str  # the catalog's own ids: integers or strings (ASINs, SKUs)


class RecommendRequest(BaseModel):
    # strict: JSON true is no item id, user id or k, 5.0 no k and "yes" no boolean (pydantic's
    # lax mode took true as item 1); an id given as text is matched to the catalog's kind later
    model_config = ConfigDict(extra="forbid", strict=True)

    history: list[ItemId] | None = Field(
        None, description="item ids, oldest first; the most recent ones the model reads are used"
    )
    user_id: int | str | None = Field(None, description="a known user: their whole history is used")
    k: Annotated[int, Field(ge=1, le=MAX_K)] = 10
    exclude_history: bool = Field(True, description="never recommend an item of the history")

    @model_validator(mode="after")
    def _one_source(self) -> RecommendRequest:
        if (self.history is None) == (self.user_id is None):
            raise ValueError("give exactly one of history or user_id")
        return self


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    requests: Annotated[list[RecommendRequest], Field(min_length=1, max_length=MAX_BATCH)]


class Item(BaseModel):
    item_id: ItemId
    title: str
    score: float


class RecommendResponse(BaseModel):
    items: list[Item] = Field(
        description="best first; fewer than k where fewer items can be recommended (a history "
        "excluding nearly the whole catalog)"
    )
    model: str
    model_version: str
    fallback: str | None = Field(None, description="popularity: the history was empty")
    history_used: int = Field(description="how many of the most recent items the model read")
    truncated: bool = Field(description="the history was longer than the model reads")


class BatchResponse(BaseModel):
    responses: list[RecommendResponse]


class ItemInfo(BaseModel):
    item_id: ItemId
    title: str
    purchases: int


class Health(BaseModel):
    status: Literal["ok", "degraded"] = Field(
        description="degraded (answered 503): the last reload failed, the model before it serves"
    )
    model: str
    model_version: str
    index_version: str
    index_kind: str
    catalog_size: int
    known_users: int
    max_history_length: int
    loaded_at: float
    uptime_seconds: float
    last_error: str | None = Field(description="why the last reload failed; null once one works")


class Refusal(BaseModel):
    detail: str = Field(description="what was refused, and why")


class FieldError(BaseModel):
    """One field pydantic refused."""

    loc: list[str | int] = Field(description="where: body, then the path to the field")
    msg: str
    type: str
    input: Any = Field(None, description="what was sent (NaN, infinities: as text)")
    ctx: dict[str, Any] | None = None


class UnknownItemsError(BaseModel):
    loc: list[str | int] = Field(description='["body", "history"]')
    msg: str
    unknown: list[ItemId] = Field(description="the history's ids that the catalog does not hold")


class Invalid(BaseModel):
    detail: list[FieldError] | UnknownItemsError


# what the POST routes answer besides 200, declared so that the OpenAPI schema holds every answer
REFUSED_RECOMMENDATIONS: dict[int | str, dict[str, Any]] = {
    400: {
        "model": Refusal,
        "description": "not JSON that Python reads (not UTF-8, an integer of over 4300 digits)",
    },
    404: {"model": Refusal, "description": "an unknown user_id"},
    413: {"model": Refusal, "description": f"a body over {MAX_BODY_BYTES} bytes"},
    422: {"model": Invalid, "description": "invalid fields, or history items not in the catalog"},
}
