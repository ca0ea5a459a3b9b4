"""Provenance: who produced a store and from what."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


def params_digest(params: Any) -> str:
    """A stable SHA-256 digest of JSON-serialisable parameters (keys sorted)."""
    payload = json.dumps(params, sort_keys=True, default=str, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(payload.encode()).hexdigest()


class Producer(BaseModel):
    """The program that wrote a store.

    Attributes:
        package: Distribution name, e.g. ``mammo-breastseg``.
        version: Its version.
        command: The command or function that wrote the store.
        model_ids: Ids of the model folders used (architecture/fold), if any.
        params: The parameters that shaped the output.
        params_digest: Digest of ``params``, for quick comparison.
    """

    model_config = ConfigDict(extra="forbid")

    package: str
    version: str
    command: str
    model_ids: list[str] = Field(default_factory=list)
    params: dict[str, Any] = Field(default_factory=dict)
    params_digest: str = ""

    def model_post_init(self, __context: Any) -> None:
        if not self.params_digest:
            self.params_digest = params_digest(self.params)


class ParentRef(BaseModel):
    """A store (or raw folder) that an output was derived from."""

    model_config = ConfigDict(extra="forbid")

    path: str
    kind: str
    digest: str = Field(description="Digest of the parent's metadata (or of the raw file list).")
