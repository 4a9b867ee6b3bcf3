"""The JSON API's models: they validate request bodies and generate the OpenAPI schema (``docs/serve.md``)."""

from __future__ import annotations

from typing import Any, Optional, Union

from pydantic import BaseModel, ConfigDict, Field


class PathImage(BaseModel):
    """A file under the server's ``--allow-paths`` folder (relative to it, or absolute inside it)."""

    model_config = ConfigDict(extra="forbid")
    path: str


# A base64 string (raw or a ``data:image/…;base64,`` URL) or a {"path": …} object.
Image = Union[str, PathImage]


class ScoreItem(BaseModel):
    """One edit to judge."""

    model_config = ConfigDict(extra="forbid")
    id: Optional[str] = Field(None, description="echoed back; default: the item's position")
    source: Union[Image, list[Image]] = Field(
        description="the source (input) image: base64, a data URL, or {'path': …}; an edit of several source "
        "images: a list of them, in order (at most 15)")
    edited: Image = Field(description="the edited (output) image, same forms")
    instruction: str = Field(description="the edit instruction")
    samples: Optional[int] = Field(None, ge=1, strict=True, description="responses to average (Avg@k); default: the server's")


class ScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[ScoreItem] = Field(min_length=1)


class DimensionScore(BaseModel):
    """A dimension judge's answer on one dimension."""

    score: Optional[int] = Field(None, description="the answer's digit 0-9 for this dimension (Avg@k: rounded mean)")
    mean_score: Optional[float] = None
    expected_score: Optional[float] = Field(None, description="Σ k·p(k) over this dimension's digit")
    scores: Optional[list[Optional[int]]] = Field(None, description="each sample's digit (Avg@k only)")


class ItemScore(BaseModel):
    """The judge's verdict on one item. ``error`` is set when it could not be judged (``input_error: <reason>: …``,
    ``backend_error: …``) or its answer did not parse (a parse reason); the other items are unaffected. A judge that
    scores dimensions (``serve --format dimensions:SET``) adds ``dimensions``, and ``score`` / ``expected_score`` are
    then the overall by its set's rule."""

    id: str
    score: Optional[int] = Field(None, description="the parsed answer 0-9 (Avg@k: the rounded mean); a dimension "
                                                   "judge's overall")
    expected_score: Optional[float] = Field(None, description="Σ k·p(k) over the answer digit (tie-free); a dimension "
                                                             "judge's overall of its dimensions' expected scores")
    mean_score: Optional[float] = None
    scores: Optional[list[Optional[int]]] = Field(None, description="each sample's answer (Avg@k only)")
    reasoning: Optional[str] = None
    error: Optional[str] = None
    dimensions: Optional[dict[str, DimensionScore]] = Field(
        None, description="a dimension judge only: per dimension, in its set's order")


class ScoreResponse(BaseModel):
    results: list[ItemScore]


class RankRequest(BaseModel):
    """Best-of-N: one source, one instruction, N candidate edits."""

    model_config = ConfigDict(extra="forbid")
    source: Image
    instruction: str
    candidates: list[Image] = Field(min_length=1)
    ids: Optional[list[str]] = Field(None, description="candidate names (default: '0', '1', …)")
    samples: Optional[int] = Field(None, ge=1, strict=True)
    rank_by: Optional[str] = Field(None, description="a dimension judge: rank by this dimension instead of the "
                                                     "overall (best-of-n --rank-by)")


class RankedItem(ItemScore):
    rank: int = Field(description="1 is the best")
    index: int = Field(description="position in the request's candidates")


class RankResponse(BaseModel):
    """Candidates best first (by score, ties by expected score, then input order — the rule of ``best-of-n``; a
    dimension judge's by the overall, or by ``rank_by``'s dimension)."""

    best: Optional[str] = Field(None, description="the best candidate's id; null when none could be judged")
    best_index: Optional[int] = None
    instruction: str
    candidates: list[RankedItem]


class ErrorBody(BaseModel):
    reason: str = Field(description="a stable code, e.g. malformed_json, too_many_items, decompression_bomb")
    detail: str
    items: Optional[list[dict[str, Any]]] = Field(None, description="per item: index and reason, when items failed")


class ErrorResponse(BaseModel):
    error: ErrorBody


class Health(BaseModel):
    status: str
    replicas: Optional[int] = None


# ------------------------------------------------------------------------------------------ pairwise judges


class CompareItem(BaseModel):
    """Two candidate edits of one source, for a pairwise judge."""

    model_config = ConfigDict(extra="forbid")
    id: Optional[str] = Field(None, description="echoed back; default: the item's position")
    source: Union[Image, list[Image]] = Field(description="the source image (or a list of them, in order)")
    a: Image = Field(description="candidate A")
    b: Image = Field(description="candidate B")
    instruction: str = Field(description="the edit instruction")
    both_orders: bool = Field(False, description="judge (B, A) too and combine; reports whether the orders agree")
    samples: Optional[int] = Field(None, ge=1, description="responses per order (Avg@k: the most frequent answer)")


class CompareRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[CompareItem] = Field(min_length=1)


class Probabilities(BaseModel):
    A: float
    B: float
    tie: float


class ItemComparison(BaseModel):
    """The pairwise judge's verdict on one pair; ``error`` as in :class:`ItemScore`."""

    id: str
    preference: Optional[str] = Field(None, description="A, B or tie (null when no answer parsed)")
    probabilities: Optional[Probabilities] = Field(None, description="p(A), p(B), p(tie) at the answer token")
    consistent: Optional[bool] = Field(None, description="both_orders: whether the two orders agreed")
    reasoning: Optional[str] = None
    error: Optional[str] = None


class CompareResponse(BaseModel):
    results: list[ItemComparison]
