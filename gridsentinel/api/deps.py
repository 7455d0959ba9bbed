"""Route dependencies: the shared state, and bearer-token authentication with a minimum role."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gridsentinel.api.auth import TokenEntry, allows
from gridsentinel.api.errors import ApiError
from gridsentinel.api.state import ApiState, get_state
from gridsentinel.api.users import TokenRejected

_bearer = HTTPBearer(auto_error=False, description="An API token (gridsentinel users create / users token).")
StateDep = Annotated[ApiState, Depends(get_state)]


def require(minimum: str, *, citizen: bool = False, department: bool = False,
            city_wide: bool = False) -> Callable[..., Awaitable[TokenEntry]]:
    """A dependency: the caller's token, at least ``minimum`` on the role ladder (or ``citizen`` / a
    ``department`` user when allowed). 401 without a valid token, 403 with a role too low; with
    ``city_wide``, 403 for a user of a center (a route whose figures cannot be cut to a center)."""

    async def check(
        state: StateDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
    ) -> TokenEntry:
        challenge = {"WWW-Authenticate": "Bearer"}
        if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
            raise ApiError(401, "a bearer token is required", headers=challenge)
        entry = state.tokens.authenticate(credentials.credentials)  # the optional hashed token file
        if entry is None and state.users is not None:  # the users and tokens in the case DB
            try:
                entry = await state.users.authenticate(credentials.credentials, now=state.clock())
            except TokenRejected as why:
                raise ApiError(
                    401, str(why), headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
                ) from None
        if entry is None:
            raise ApiError(
                401, "invalid bearer token", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
            )
        if not (allows(entry.role, minimum) or (citizen and entry.role == "citizen")
                or (department and entry.role == "department")):
            wanted = (f"{minimum} or higher" + (" (or citizen)" if citizen else "")
                      + (" (or department)" if department else ""))
            raise ApiError(
                403,
                f"role {entry.role} is not allowed here; needs {wanted}",
                details={"role": entry.role, "required": minimum, "citizen_allowed": citizen},
            )
        if city_wide and entry.center is not None:
            raise ApiError(403, f"this route shows the whole city; a user of {entry.center} may not use it",
                           details={"center": entry.center})
        return entry

    return check


Viewer = Annotated[TokenEntry, Depends(require("viewer"))]
# Case reads a department user may make too (the cases dispatched to its department: authority.visible)
CaseReader = Annotated[TokenEntry, Depends(require("viewer", department=True))]
CityViewer = Annotated[TokenEntry, Depends(require("viewer", city_wide=True))]
Dispatcher = Annotated[TokenEntry, Depends(require("dispatcher"))]
Open311Reader = Annotated[TokenEntry, Depends(require("viewer", citizen=True))]
Open311Writer = Annotated[TokenEntry, Depends(require("dispatcher", citizen=True))]
# Case transitions: dispatchers and up, and department staff (cases.authority.check decides per action).
CaseWorker = Annotated[TokenEntry, Depends(require("dispatcher", department=True))]
