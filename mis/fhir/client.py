"""A FHIR R4 client for the clinic's MIS, on `requests`, with fhir.resources' R4B models.

- Connection from settings (`FhirClient.from_settings()`): `MIS_FHIR_BASE_URL`,
  `MIS_FHIR_AUTH` ("bearer" with `MIS_FHIR_TOKEN`, "basic" with `MIS_FHIR_USERNAME` /
  `MIS_FHIR_PASSWORD`, or "" for none) and `MIS_FHIR_TIMEOUT_SECONDS`.
- Typed errors: `MisUnavailable` (network error, timeout, 5xx, 429, a garbled answer:
  try again later, with backoff) and `MisRejected` (any other 4xx: the MIS said no; the
  message is the OperationOutcome's text, `status` the HTTP status).
- Searches send `Prefer: handling=strict`, so a search parameter the MIS does not know
  fails loudly instead of being ignored (an ignored `_lastUpdated` would return
  everything, or worse, a wrong page). `search_pages` follows the Bundle's `next` links,
  only to the same server (credentials never go elsewhere).
- Search pages hand back each entry's JSON as it came (`SearchPage.resources`): the
  caller parses them one by one with `parse_resource`, so one malformed resource can be
  set aside while the rest of the page is applied. Reads and writes return R4B models.
- `create(..., if_none_exist="identifier=system|value")` is FHIR's conditional create:
  a retry of the same create finds the resource made the first time and creates nothing.

Nothing here logs bodies or URLs with parameters (they may carry personal data).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
from django.conf import settings
from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError as PydanticValidationError

FHIR_JSON = "application/fhir+json"
USER_AGENT = "clinic-portal-mis/1"
MAX_PAGES = 10_000  # a server whose `next` never ends is a broken server
OUTCOME_TEXT_MAX = 2_000


class MisError(Exception):
    """Something went wrong talking to the MIS."""

    retryable = False

    def __init__(self, message: str, *, status: int | None = None, outcome: dict | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.outcome = outcome


class MisNotConfigured(MisError):
    """No MIS_FHIR_BASE_URL: the integration is off."""


class MisUnavailable(MisError):
    """The MIS could not be reached or failed (network, timeout, 5xx, 429): retry later."""

    retryable = True


class MisRejected(MisError):
    """The MIS refused the request (4xx other than 429); `message` is its explanation."""


class MalformedResource(ValueError):
    """A resource that is not valid FHIR R4 (by the R4B models) or not what was asked for."""


def parse_resource(data: Any, expected_type: str | None = None) -> Any:
    """An R4B model of `data`, or MalformedResource saying what is wrong with it."""
    if not isinstance(data, Mapping):
        raise MalformedResource("not a JSON object")
    resource_type = data.get("resourceType")
    if not isinstance(resource_type, str) or not resource_type:
        raise MalformedResource("no resourceType")
    if expected_type and resource_type != expected_type:
        raise MalformedResource(f"expected {expected_type}, got {resource_type}")
    try:
        model = get_fhir_model_class(resource_type)
    except (KeyError, ValueError, LookupError) as exc:
        raise MalformedResource(f"unknown resourceType {resource_type[:40]}") from exc
    try:
        return model.model_validate(dict(data))
    except PydanticValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg')}"
            for err in exc.errors()[:10]
        )
        raise MalformedResource(f"{resource_type}: {problems}") from exc
    except (ValueError, TypeError) as exc:
        raise MalformedResource(f"{resource_type}: {exc}") from exc


def outcome_text(outcome: Any) -> str:
    """The human part of an OperationOutcome (diagnostics, details), bounded in length."""
    if not isinstance(outcome, Mapping):
        return ""
    parts = []
    for issue in outcome.get("issue") or []:
        if not isinstance(issue, Mapping):
            continue
        text = issue.get("diagnostics") or (issue.get("details") or {}).get("text") or ""
        if text:
            parts.append(f"{issue.get('severity', 'error')}: {text}")
    return "; ".join(parts)[:OUTCOME_TEXT_MAX]


@dataclass
class SearchPage:
    """One Bundle of a search: entries with mode "match" (as JSON), and where to go next."""

    resources: list[dict]
    next_url: str | None
    total: int | None
    server_time: datetime | None  # Bundle.meta.lastUpdated: when the server ran the search
    included: list[dict] = field(default_factory=list)


def _parse_instant(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


class FhirClient:
    def __init__(
        self,
        *,
        base_url: str,
        auth: str = "",
        token: str = "",
        username: str = "",
        password: str = "",
        timeout: float = 10.0,
        session: requests.Session | None = None,
    ) -> None:
        if not base_url:
            raise MisNotConfigured("MIS_FHIR_BASE_URL is not set")
        self.base_url = base_url.rstrip("/")
        self.timeout = float(timeout)
        self.session = session or requests.Session()
        self.session.headers.update({"Accept": FHIR_JSON, "User-Agent": USER_AGENT})
        auth = (auth or "").strip().lower()
        if auth == "bearer":
            self.session.headers["Authorization"] = f"Bearer {token}"
        elif auth == "basic":
            self.session.auth = (username, password)
        elif auth not in ("", "none"):
            raise MisNotConfigured(f"MIS_FHIR_AUTH must be bearer, basic or empty, not {auth!r}")

    @classmethod
    def from_settings(cls) -> FhirClient:
        return cls(
            base_url=settings.MIS_FHIR_BASE_URL,
            auth=settings.MIS_FHIR_AUTH,
            token=settings.MIS_FHIR_TOKEN,
            username=settings.MIS_FHIR_USERNAME,
            password=settings.MIS_FHIR_PASSWORD,
            timeout=settings.MIS_FHIR_TIMEOUT_SECONDS,
        )

    @property
    def system(self) -> str:
        """The name of this MIS in `mis.ExternalLink.system`."""
        return f"fhir:{self.base_url}"

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> FhirClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- transport -----------------------------------------------------------------------

    def _same_server(self, url: str) -> bool:
        ours, theirs = urlsplit(self.base_url), urlsplit(url)
        return (ours.scheme, ours.netloc) == (theirs.scheme, theirs.netloc) and (
            theirs.path.rstrip("/") + "/"
        ).startswith(ours.path.rstrip("/") + "/")

    def _request(
        self,
        method: str,
        url: str,
        *,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> requests.Response:
        if not self._same_server(url):
            raise MisRejected("refusing to follow a link to another server")
        send_headers = dict(headers or {})
        if json_body is not None:
            send_headers["Content-Type"] = FHIR_JSON
        try:
            response = self.session.request(
                method, url, json=json_body, headers=send_headers, timeout=self.timeout
            )
        except requests.Timeout as exc:
            raise MisUnavailable(f"the MIS did not answer within {self.timeout:g} s") from exc
        except requests.RequestException as exc:
            raise MisUnavailable(f"cannot reach the MIS: {type(exc).__name__}") from exc
        status = response.status_code
        if status >= 500 or status == 429:
            outcome = self._json_or_none(response)
            text = outcome_text(outcome) or response.reason or ""
            raise MisUnavailable(
                f"the MIS failed ({status}): {text}"[:OUTCOME_TEXT_MAX], status=status
            )
        if status >= 400:
            outcome = self._json_or_none(response)
            text = outcome_text(outcome) or response.reason or "rejected"
            raise MisRejected(
                f"{status}: {text}"[:OUTCOME_TEXT_MAX], status=status, outcome=outcome
            )
        return response

    @staticmethod
    def _json_or_none(response: requests.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            return None

    def _json(self, response: requests.Response) -> dict:
        try:
            body = response.json()
        except ValueError as exc:
            raise MisUnavailable("the MIS answered with something that is not JSON") from exc
        if not isinstance(body, dict):
            raise MisUnavailable("the MIS answered with something that is not a FHIR resource")
        return body

    def _url(
        self, *parts: str, params: Mapping[str, Any] | list[tuple[str, str]] | None = None
    ) -> str:
        url = "/".join([self.base_url, *parts])
        if params:
            url += "?" + urlencode(list(params.items()) if isinstance(params, Mapping) else params)
        return url

    # --- interactions --------------------------------------------------------------------

    def capabilities(self) -> dict:
        return self._json(self._request("GET", self._url("metadata")))

    def read(self, resource_type: str, resource_id: str) -> Any:
        body = self._json(self._request("GET", self._url(resource_type, resource_id)))
        return parse_resource(body, resource_type)

    def read_raw(self, resource_type: str, resource_id: str) -> dict:
        return self._json(self._request("GET", self._url(resource_type, resource_id)))

    def search_page(
        self, resource_type: str, params: Mapping[str, Any] | list[tuple[str, str]] | None = None
    ) -> SearchPage:
        return self._page(self._url(resource_type, params=params))

    def _page(self, url: str) -> SearchPage:
        body = self._json(self._request("GET", url, headers={"Prefer": "handling=strict"}))
        if body.get("resourceType") != "Bundle":
            raise MisUnavailable("a search answered with something that is not a Bundle")
        resources, included = [], []
        for entry in body.get("entry") or []:
            if not isinstance(entry, Mapping):
                continue
            mode = (entry.get("search") or {}).get("mode", "match")
            resource = entry.get("resource")
            if mode == "outcome":
                continue  # warnings; with handling=strict errors are a 4xx instead
            (resources if mode == "match" else included).append(resource)
        next_url = None
        for link in body.get("link") or []:
            if isinstance(link, Mapping) and link.get("relation") == "next" and link.get("url"):
                next_url = str(link["url"])
        total = body.get("total")
        return SearchPage(
            resources=resources,
            next_url=next_url,
            total=total if isinstance(total, int) else None,
            server_time=_parse_instant((body.get("meta") or {}).get("lastUpdated")),
            included=included,
        )

    def search_pages(
        self, resource_type: str, params: Mapping[str, Any] | list[tuple[str, str]] | None = None
    ) -> Iterator[SearchPage]:
        """Every page of a search, following `next` links."""
        page = self.search_page(resource_type, params)
        seen = 1
        yield page
        while page.next_url:
            if seen >= MAX_PAGES:
                raise MisUnavailable("the search has no end (too many pages)")
            page = self._page(page.next_url)
            seen += 1
            yield page

    def search(
        self, resource_type: str, params: Mapping[str, Any] | list[tuple[str, str]] | None = None
    ) -> list[Any]:
        """All matches of a search as R4B models (for small searches)."""
        return [
            parse_resource(resource, resource_type)
            for page in self.search_pages(resource_type, params)
            for resource in page.resources
        ]

    @staticmethod
    def _body_of(resource: Any) -> dict:
        if hasattr(resource, "model_dump"):
            return resource.model_dump(mode="json", exclude_none=True, by_alias=True)
        if isinstance(resource, Mapping):
            return dict(resource)
        raise TypeError("a FHIR resource (model or dict) is needed")

    def _written(self, response: requests.Response, resource_type: str) -> Any:
        if response.content:
            body = self._json(response)
            if body.get("resourceType") == resource_type:
                return parse_resource(body, resource_type)
        location = response.headers.get("Location") or response.headers.get("Content-Location")
        if location:
            path = urlsplit(location).path.split("/_history/")[0].rstrip("/")
            resource_id = path.rsplit("/", 1)[-1]
            return self.read(resource_type, resource_id)
        raise MisUnavailable("the MIS did not say what it stored")

    def create(
        self,
        resource: Any,
        *,
        if_none_exist: str | Mapping[str, str] | None = None,
    ) -> tuple[Any, bool]:
        """POST a resource. With `if_none_exist` (a search, e.g. "identifier=sys|val"),
        an existing match is returned instead. Returns (the stored resource, created)."""
        body = self._body_of(resource)
        resource_type = body.get("resourceType") or ""
        headers = {"Prefer": "return=representation"}
        if if_none_exist:
            headers["If-None-Exist"] = (
                if_none_exist if isinstance(if_none_exist, str) else urlencode(if_none_exist)
            )
        response = self._request("POST", self._url(resource_type), json_body=body, headers=headers)
        return self._written(response, resource_type), response.status_code == 201

    def update(self, resource: Any, *, if_match: str | None = None) -> Any:
        """PUT a resource with its id (creates it if the server allows client ids)."""
        body = self._body_of(resource)
        resource_type, resource_id = body.get("resourceType") or "", body.get("id") or ""
        if not resource_id:
            raise ValueError("update needs the resource's id")
        headers = {"Prefer": "return=representation"}
        if if_match:
            headers["If-Match"] = if_match if if_match.startswith("W/") else f'W/"{if_match}"'
        response = self._request(
            "PUT", self._url(resource_type, resource_id), json_body=body, headers=headers
        )
        return self._written(response, resource_type)

    def conditional_update(self, resource: Any, *, search: str | Mapping[str, str]) -> Any:
        """PUT [type]?search: update the one match, or create when there is none."""
        body = self._body_of(resource)
        resource_type = body.get("resourceType") or ""
        query = search if isinstance(search, str) else urlencode(search)
        response = self._request(
            "PUT",
            f"{self._url(resource_type)}?{query}",
            json_body=body,
            headers={"Prefer": "return=representation"},
        )
        return self._written(response, resource_type)

    def delete(self, resource_type: str, resource_id: str) -> None:
        self._request("DELETE", self._url(resource_type, resource_id))


def client_from_settings() -> FhirClient:
    return FhirClient.from_settings()
