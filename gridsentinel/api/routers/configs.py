"""``/api/v1/configs``: the live config of a kind, validation, apply (stored + published), history.

Engineer role. Every route takes ``?kind=`` (detectors, the default, cameras, categories, routing,
receivers, calendar; ``GET /api/v1/configs/kinds`` lists them). Apply stores a new version of that kind
(author = the token's holder) in the config versions file and publishes it on ``gs.config``; running
workers with the ``live-config`` stage switch without a restart.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from gridsentinel.api.auth import TokenEntry
from gridsentinel.api.deps import StateDep, require
from gridsentinel.api.errors import ApiError, responses
from gridsentinel.engineering import configs as ops
from gridsentinel.engineering.configs import KindSpec
from gridsentinel.engineering.versions import VersionNotFound, VersionStore
from gridsentinel.errors import ConfigError, ServiceError
from gridsentinel.liveconfig.kinds import KINDS

router = APIRouter(prefix="/api/v1/configs", tags=["configs"])
Engineer = Annotated[TokenEntry, Depends(require("engineer"))]


class ConfigIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    yaml: str = Field(min_length=1, max_length=1_000_000, description="The detectors.yaml text.")


class ValidationOut(BaseModel):
    valid: bool = Field(description="Whether the config is valid.")
    problems: list[str] = Field(description="One line per problem: key path, bad value, expectation.")


KindName = Literal["detectors", "cameras", "categories", "routing", "receivers", "calendar"]
KindQuery = Annotated[KindName, Query(description="Config kind (default detectors).")]
assert set(get_args(KindName)) == set(KINDS)  # the query's choices are the registry's kinds


def _store(state: Any, kind: str = "detectors") -> VersionStore:
    return VersionStore.default(state.settings.run_dir, kind)


@router.get("/kinds", summary="The config kinds and what applying each changes", responses=responses(401, 403))
async def kinds(_: Engineer) -> list[dict[str, str]]:
    return [{"kind": k.name, "file": k.file_name, "what": k.what, "affects": k.affects} for k in KINDS.values()]


@router.get("", summary="The live config of a kind", responses=responses(401, 403))
async def get_current(state: StateDep, _: Engineer, kind: KindQuery = "detectors") -> dict[str, Any]:
    with _store(state, kind) as store:
        return ops.current(state.settings, store, KINDS[kind])


@router.post("/validate", response_model=ValidationOut, summary="Validate a config of a kind",
             responses=responses(401, 403, 422))
async def validate(body: ConfigIn, state: StateDep, _: Engineer, kind: KindQuery = "detectors") -> ValidationOut:
    spec: KindSpec = KINDS[kind]
    with _store(state, kind) as store:
        config, problems = ops.validate_kind(state.settings, store, body.yaml, "body", spec, KINDS)
    return ValidationOut(valid=config is not None, problems=problems)


@router.post("", status_code=201, summary="Apply a config of a kind (store a version and publish it)",
             responses=responses(401, 403, 422, 503))
async def apply(body: ConfigIn, state: StateDep, who: Engineer, kind: KindQuery = "detectors") -> dict[str, Any]:
    def work() -> tuple[Any, bool]:
        with _store(state, kind) as store:
            return ops.apply_text(state.settings, store, body.yaml, author=f"user:{who.id}", where="body",
                                  kind=KINDS[kind], kinds=KINDS)

    try:
        version, created = await asyncio.to_thread(work)
    except ConfigError as exc:
        raise ApiError(422, f"invalid {KINDS[kind].what}", code="invalid_config",
                       details={"problems": str(exc).splitlines()}) from None
    except ServiceError as exc:  # stored, but Kafka did not take it: apply again to re-publish
        raise ApiError(503, str(exc)) from None
    return {"created": created, **version.to_dict()}


@router.get("/history", summary="Applied versions, newest first", responses=responses(401, 403))
async def history(state: StateDep, _: Engineer,
                  limit: Annotated[int, Query(ge=1, le=500, description="How many.")] = 50,
                  kind: KindQuery = "detectors") -> list[dict[str, Any]]:
    with _store(state, kind) as store:
        return [v.to_dict(with_yaml=False) for v in store.history(limit)]


@router.get("/history/{number}", summary="One stored version with its YAML and diff",
            responses=responses(401, 403, 404))
async def version(state: StateDep, _: Engineer,
                  number: Annotated[int, Path(ge=1, le=2**31 - 1, description="Version number.")],
                  kind: KindQuery = "detectors") -> dict[str, Any]:
    with _store(state, kind) as store:
        try:
            return store.get(number).to_dict()
        except VersionNotFound as exc:
            raise ApiError(404, str(exc)) from None
