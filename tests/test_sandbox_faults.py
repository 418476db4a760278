"""Every fault kind is observable, fires on the requests it names, and (for POSTs) can
strike before or after the request took effect. Drops are checked over a real socket."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from sandbox import ManualClock, MigrationScript, Scenario, create_app, serve
from sandbox.app import ConnectionDropped
from tests.test_sandbox_support import asgi_client, task_url, token_headers

TASK = MigrationScript.incremental("inc", full_seconds=1)


def faulty(*faults: dict[str, Any], seed: int = 0) -> Scenario:
    return Scenario.model_validate(
        {"seed": seed, "tasks": [TASK.model_dump()], "faults": list(faults)}
    )


class Sleeps:
    """An injected async sleep that records instead of waiting."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


async def get_show(scenario: Scenario, times: int = 1, **app_kwargs: Any) -> list[httpx.Response]:
    app = create_app(scenario, ManualClock(), **app_kwargs)
    async with asgi_client(app) as client:
        return [
            await client.get(task_url(scenario, "inc"), headers=token_headers(scenario))
            for _ in range(times)
        ]


async def test_server_error_500_is_dcs_5000() -> None:
    """`server_error` 500 answers DCS's JSON error body with DCS.5000."""
    (response,) = await get_show(faulty({"kind": "server_error"}))
    assert response.status_code == 500
    assert response.json() == {
        "error_code": "DCS.5000", "error_msg": "Internal service error.", "error_ext_msg": None,
    }  # fmt: skip
    assert response.headers["x-request-id"]


@pytest.mark.parametrize("status", [pytest.param(502, id="502"), pytest.param(503, id="503")])
async def test_gateway_errors_are_html_pages(status: int) -> None:
    """`server_error` 502/503 answers a gateway's HTML page, not JSON."""
    (response,) = await get_show(faulty({"kind": "server_error", "status": status}))
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/html")
    assert f"<title>{status}" in response.text


async def test_rate_limit_is_429_with_retry_after() -> None:
    """`rate_limit` answers 429 with `Retry-After` and the gateway's throttling code."""
    (response,) = await get_show(faulty({"kind": "rate_limit", "retry_after": 7}))
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert response.json()["error_code"] == "APIGW.0308"


async def test_busy_fault_is_a_dcs_busy_code() -> None:
    """`busy` answers a DCS "try later" code (400 DCS.4975 by default)."""
    (response,) = await get_show(faulty({"kind": "busy"}))
    assert response.status_code == 400
    assert response.json()["error_code"] == "DCS.4975"


async def test_html_fault_is_a_200_html_page() -> None:
    """`html` answers 200 with an HTML page where JSON was expected."""
    (response,) = await get_show(faulty({"kind": "html"}))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.text.startswith("<!DOCTYPE html>")


async def test_slow_fault_delays_then_answers() -> None:
    """`slow` waits its seconds (an injected sleep here) and then answers normally."""
    sleeps = Sleeps()
    (response,) = await get_show(faulty({"kind": "slow", "seconds": 12.5}), sleep=sleeps)
    assert response.status_code == 200
    assert sleeps.calls == [12.5]


async def test_drop_in_process_raises() -> None:
    """Without a socket to close, `drop` surfaces as ConnectionDropped (no answer)."""
    with pytest.raises(ConnectionDropped):
        await get_show(faulty({"kind": "drop"}))


@pytest.mark.parametrize(
    ("fault", "faulted"),
    [
        pytest.param({"count": 2}, [True, True, False, False], id="count"),
        pytest.param({"skip": 1, "count": 1}, [False, True, False, False], id="skip-then-count"),
        pytest.param({"routes": ["list_migration_tasks"]}, [False] * 4, id="other-route"),
        pytest.param(
            {"routes": ["show_migration_task"], "count": 1}, [True] + [False] * 3, id="route"
        ),
        pytest.param({"rate": 0.0}, [False] * 4, id="rate-0"),
    ],
)
async def test_which_requests_a_fault_hits(fault: dict[str, Any], faulted: list[bool]) -> None:
    """`count`, `skip`, `routes` and `rate` select exactly the requests they say."""
    responses = await get_show(faulty({"kind": "server_error", **fault}), times=len(faulted))
    assert [response.status_code == 500 for response in responses] == faulted


async def test_rate_is_seeded_and_roughly_right() -> None:
    """A 30 % rate hits about 30 % of requests, the same ones for the same seed."""
    scenario = faulty({"kind": "server_error", "rate": 0.3}, seed=42)
    first = [r.status_code for r in await get_show(scenario, times=200)]
    again = [r.status_code for r in await get_show(scenario, times=200)]
    assert first == again
    assert 40 <= first.count(500) <= 80


async def test_first_fault_in_order_wins() -> None:
    """When two faults fire on one request, the first listed is applied."""
    scenario = faulty({"kind": "rate_limit", "count": 1}, {"kind": "server_error", "count": 2})
    statuses = [r.status_code for r in await get_show(scenario, times=3)]
    assert statuses == [429, 500, 200]


@pytest.mark.parametrize(
    ("when", "exchanges"),
    [pytest.param("before", 0, id="before-acting"), pytest.param("after", 1, id="after-acting")],
)
async def test_fault_before_or_after_the_exchange_acts(when: str, exchanges: int) -> None:
    """A 500 on exchange-ip `before` leaves the IPs alone; `after`, the swap happened anyway."""
    scenario = faulty({"kind": "server_error", "when": when, "routes": ["exchange_instance_ip"]})
    clock = ManualClock()
    app = create_app(scenario, clock)
    clock.advance(10)
    async with asgi_client(app) as client:
        url = task_url(scenario, "inc", "/exchange-ip")
        response = await client.post(
            url, json={"exchanged_ip": []}, headers=token_headers(scenario)
        )
    assert response.status_code == 500
    assert app.sandbox_state.exchanges("inc") == exchanges
    assert app.sandbox_state.exchange_requests("inc") == 1
    assert app.sandbox_state.faults_injected == {"server_error": 1}


async def test_token_expiry_cuts_an_issued_token_short() -> None:
    """`token_expiry` (count 1): the first token dies after its seconds, before `expires_at`."""
    scenario = Scenario.model_validate(
        {
            "tasks": [TASK.model_dump()],
            "faults": [{"kind": "token_expiry", "seconds": 30, "count": 1}],
        }
    )
    clock = ManualClock()
    app = create_app(scenario, clock)
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {
                        "name": scenario.iam_username,
                        "password": scenario.iam_password,
                        "domain": {"name": scenario.iam_domain_name},
                    }
                },
            },
            "scope": {"project": {"id": scenario.project_id}},
        }
    }
    async with asgi_client(app) as client:
        first = (await client.post("/v3/auth/tokens", json=body)).headers["x-subject-token"]
        clock.advance(30)
        refused = await client.get(task_url(scenario, "inc"), headers={"X-Auth-Token": first})
        assert (refused.status_code, refused.json()["error_code"]) == (401, "DCS.1001")
        second = (await client.post("/v3/auth/tokens", json=body)).headers["x-subject-token"]
        clock.advance(3600)
        fine = await client.get(task_url(scenario, "inc"), headers={"X-Auth-Token": second})
        assert fine.status_code == 200
    assert app.sandbox_state.faults_injected == {"token_expiry": 1}


def test_drop_closes_the_connection_without_an_answer() -> None:
    """Over a real socket `drop` closes the connection: the client gets no HTTP answer."""
    scenario = faulty({"kind": "drop", "count": 1})
    with serve(scenario) as sandbox, httpx.Client(base_url=sandbox.url) as client:
        headers = token_headers(scenario)
        with pytest.raises(httpx.RemoteProtocolError):
            client.get(task_url(scenario, "inc"), headers=headers)
        assert client.get(task_url(scenario, "inc"), headers=headers).status_code == 200
        records = sandbox.state.requests
    assert [(record.status, record.fault) for record in records] == [(None, "drop"), (200, None)]


def test_drop_after_an_exchange_acted() -> None:
    """A dropped answer to exchange-ip (`when: after`) still swapped the IPs: the danger case."""
    fault = {"kind": "drop", "when": "after", "routes": ["exchange_instance_ip"]}
    scenario = faulty(fault)
    clock = ManualClock()
    with serve(scenario, clock=clock) as sandbox, httpx.Client(base_url=sandbox.url) as client:
        clock.advance(10)
        with pytest.raises(httpx.RemoteProtocolError):
            client.post(
                task_url(scenario, "inc", "/exchange-ip"),
                json={"exchanged_ip": ["192.168.1.2"]},
                headers=token_headers(scenario),
            )
        assert sandbox.state.exchanges("inc") == 1


def test_flaky_scenario_shows_every_kind() -> None:
    """The bundled flaky scenario mixes 5xx, 503 pages, 429, busy, slow, drops and HTML."""
    sleeps = Sleeps()
    seen: set[str] = set()
    with serve("flaky", sleep=sleeps) as sandbox, httpx.Client(base_url=sandbox.url) as client:
        url = task_url(sandbox.scenario, "a276c1ffa0a54c2597fc824b917db317")
        for _ in range(300):
            try:
                response = client.get(url, headers={"X-Auth-Token": sandbox.credentials["token"]})
            except httpx.TransportError:
                seen.add("drop")
                continue
            if response.headers["content-type"].startswith("text/html"):
                seen.add(f"html-{response.status_code}")
            else:
                seen.add(str(response.status_code))
        injected = sandbox.state.faults_injected
    assert {"200", "500", "429", "400", "html-503", "html-200", "drop"} <= seen
    assert set(injected) == {"server_error", "rate_limit", "busy", "slow", "drop", "html"}
    assert sum(injected.values()) < 300 * 0.3
    assert sleeps.calls
