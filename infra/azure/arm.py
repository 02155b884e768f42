"""Small builders of ARM template JSON: expressions, resources, role assignments and checkov suppressions.

ARM expressions are strings in brackets (``"[parameters('location')]"``); the helpers return the inner
expression (no brackets) so that they compose, and :func:`expr` wraps the outermost one.
"""

from __future__ import annotations

from typing import Any

from infra.azure.config import API, ROLES


def expr(inner: str) -> str:
    """``[inner]``: a template expression from its inner text."""
    return f"[{inner}]"


def param(name: str) -> str:
    return f"parameters('{name}')"


def var(name: str) -> str:
    return f"variables('{name}')"


def rid(kind: str, *names: str) -> str:
    """``resourceId('kind', name...)``; each name is an inner expression (quote literals with :func:`lit`)."""
    return f"resourceId('{kind}', {', '.join(names)})"


def lit(text: str) -> str:
    """A string literal inside an expression (ARM doubles single quotes)."""
    return "'" + text.replace("'", "''") + "'"


def ref(resource_id: str, kind: str, full: bool = False) -> str:
    """``reference(id, apiVersion[, 'Full'])``: a deployed resource's properties (or, Full, its identity)."""
    return f"reference({resource_id}, '{API[kind]}'{', ' + lit('Full') if full else ''})"


def resource(type_: str, name: str, /, *, api: str | None = None, depends_on: list[str] = (), **body: Any) -> dict:
    """One resource: type, apiVersion (``API[type_]`` unless given), name, then ``body`` as written."""
    return {"type": type_, "apiVersion": api or API[type_], "name": name,
            **({"dependsOn": list(depends_on)} if depends_on else {}), **body}


def suppress(resource_body: dict, check_id: str, reason: str) -> dict:
    """Record a checkov suppression on ``resource_body``, with its reason, where checkov reads it.

    checkov's ARM runner reads ``metadata.checkov``: a list of ``"CHECK_ID:reason"`` strings (its
    ``ContextParser.collect_skip_comments``). A resource's ``metadata`` is free-form data that ARM stores and
    otherwise ignores (Azure/bicep issue 223), so the reason ships with the template.
    """
    if not reason.strip():
        raise ValueError(f"{check_id}: a suppression needs its reason")
    resource_body.setdefault("metadata", {}).setdefault("checkov", []).append(f"{check_id}:{reason}")
    return resource_body


def role_assignment(role: str, *, scope_kind: str, scope_name: str, principal_id: str, principal_key: str,
                    depends_on: list[str], principal_type: str | None = "ServicePrincipal") -> dict:
    """Grant built-in ``role`` to a service principal on one resource (an extension resource of it).

    Parameters
    ----------
    role : str
        A key of ``config.ROLES``.
    scope_kind, scope_name : str
        The resource type and its name expression (inner) that the assignment is scoped to.
    principal_id : str
        Inner expression of the principal's object id.
    principal_key : str
        A stable literal naming the principal in the assignment's guid (a principal id is only known at
        deploy time, and a role assignment's name must be the same on every redeploy).
    principal_type : str or None
        ``ServicePrincipal`` for managed identities (lets ARM assign a just-created identity); None when
        the principal may be a user or a group.
    """
    return resource(
        "Microsoft.Authorization/roleAssignments", expr(_assignment_guid(role, scope_kind, scope_name, principal_key)),
        scope=expr(f"concat({lit(scope_kind + '/')}, {scope_name})"),
        depends_on=depends_on,
        properties={"roleDefinitionId": expr(f"subscriptionResourceId('Microsoft.Authorization/roleDefinitions', "
                                             f"{lit(ROLES[role])})"),
                    "principalId": expr(principal_id),
                    **({"principalType": principal_type} if principal_type else {}),
                    "description": f"predictd: {role} for {principal_key}"})


def _assignment_guid(role: str, scope_kind: str, scope_name: str, principal_key: str) -> str:
    return f"guid({rid(scope_kind, scope_name)}, {lit(principal_key)}, {lit(ROLES[role])})"


def role_assignment_id(role: str, *, scope_kind: str, scope_name: str, principal_key: str) -> str:
    """The resource id (inner expression) of the :func:`role_assignment` with the same arguments (dependsOn)."""
    return (f"extensionResourceId({rid(scope_kind, scope_name)}, 'Microsoft.Authorization/roleAssignments', "
            f"{_assignment_guid(role, scope_kind, scope_name, principal_key)})")
