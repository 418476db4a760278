"""The Prefect UI in a browser, clicked as a person would, against a real Prefect stack.

Playwright drives Debian's Chromium (`/usr/bin/chromium`; `.ci/run` installs it, and no
browser is ever downloaded) against the stack of `tests/stack.py`, serving
`tests/data/ui.yaml`: one migration task per scenario. The block form, the deployment's
Custom run form, the approval dialog and the runs lists are used through the pages; the
Prefect API and the sandbox's state only check the outcome.

Set `UI_SCREENSHOTS=docs` to write the screenshots the README shows (1280x800 PNGs).
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

import pytest
from playwright.async_api import (
    Browser,
    Locator,
    Page,
    Response,
    async_playwright,
    expect,
)
from playwright.async_api import Error as PlaywrightError

from tests.stack import DATA, ROOT, Stack, prefect, running_stack, runs_of, until

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
# The machines this runs on have no way out: without these Chromium keeps trying to reach
# Google's services (updates, sync, field trials) and logs every refusal.
CLOSED_NETWORK = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 800}
#: Milliseconds from Submit to a run paused or finished: a worker starts a process per run.
RUN_MS = 150_000
README = " ".join((ROOT / "README.md").read_text().split())  # one line, one space
#: How often a person clicks again after the server refused a write.
WRITE_ATTEMPTS = 4
#: The runbook's, as `<flow>/<deployment>`: the migrate and fleet flows have a "manual" too.
MANUAL = "dcs-migration-runbook/manual"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Prefect server, sandbox, blocks, deployments and a process worker, all on loopback."""
    with running_stack(tmp_path_factory.mktemp("ui"), DATA / "ui.yaml") as running:
        yield running


@pytest.fixture(scope="module")
def chromium() -> Path:
    """Debian's Chromium, which `.ci/run` installs; never a browser Playwright downloads."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (see .ci/run)")
    return CHROMIUM


@pytest.fixture(scope="module")
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    """Chromium, headless, with a fresh profile, for a closed network."""
    expect.set_options(timeout=30_000)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(chromium), args=CLOSED_NETWORK
        )
        yield launched
        await launched.close()


@pytest.fixture
async def page(
    browser: Browser, stack: Stack, request: pytest.FixtureRequest
) -> AsyncIterator[Page]:
    """A new tab in a new browser context (no cookies, no storage) on the Prefect UI.

    What it showed last, and every API answer of 400 or more, are kept beside the stack's
    logs, to see why a test failed.
    """
    context = await browser.new_context(viewport=VIEWPORT, base_url=stack.ui_url)
    opened = await context.new_page()
    opened.set_default_timeout(30_000)
    refused: list[str] = []

    async def keep(response: Response) -> None:
        if response.status >= 400 and "/api/" in response.url:
            try:
                body = await response.text()
            except PlaywrightError:  # the page moved on before the body was read
                body = "(body gone)"
            refused.append(f"{response.status} {response.request.method} {response.url}\n{body}")

    opened.on("response", keep)
    yield opened
    trail = stack.logs / request.node.name
    await opened.screenshot(path=trail.with_suffix(".png"))
    trail.with_suffix(".log").write_text("\n".join(refused))
    await context.close()


async def _screenshot(page: Page, name: str) -> None:
    """Save what the page shows as `ui-<name>.png` when UI_SCREENSHOTS names a folder."""
    folder = os.environ.get("UI_SCREENSHOTS")
    if folder:
        await page.screenshot(path=ROOT / folder / f"ui-{name}.png")


def _field(scope: Page | Locator, label: str) -> Locator:
    """One field of a Prefect schema form, by the label it shows (its controls have none)."""
    page = scope if isinstance(scope, Page) else scope.page
    # `has` looks inside each candidate, so it must start from the page, not from `scope`.
    return scope.locator(".schema-form-property").filter(has=page.get_by_text(label, exact=True))


async def _until_accepted(
    page: Page, act: Callable[[], Awaitable[None]], method: str, path: str
) -> Response:
    """`act()`, which ends in the UI sending `method path`, again while the server refuses it.

    On SQLite, a busy Prefect server refuses a write with 503 ("database is locked",
    PrefectHQ/prefect#16102, #18934): Prefect's Python client retries, the UI shows an error
    toast, and a person tries again. So `act` starts from a page it loads itself.
    """

    def the_write(response: Response) -> bool:
        return response.request.method == method and urlsplit(response.url).path.endswith(path)

    for _ in range(WRITE_ATTEMPTS):
        async with page.expect_response(the_write) as answer:
            await act()
        response = await answer.value
        if response.status != 503:
            assert response.ok, f"{response.status} from {response.url}: {await response.text()}"
            return response
    pytest.fail(f"the Prefect server refused {method} {path} {WRITE_ATTEMPTS} times with 503")


def _deployment_link(page: Page, deployment: str) -> Locator:
    """The deployments list's link to `flow/deployment`: a row shows both names."""
    flow, name = deployment.split("/")
    row = page.locator(".deployment-list__deployment").filter(has_text=flow)
    return row.get_by_role("link", name=name, exact=True)


async def _custom_run(page: Page, deployment: str, fill: Any) -> UUID:
    """Deployments > `flow/deployment` > Run > Custom run, `fill(page)`, Submit, View run."""

    async def submit() -> None:
        await page.goto("/deployments")
        await _deployment_link(page, deployment).click()
        await page.get_by_role("button", name="Run", exact=True).click()
        await page.get_by_role("button", name="Custom run").click()
        await fill(page)
        await page.get_by_role("button", name="Submit").click()

    created = await (await _until_accepted(page, submit, "POST", "/create_flow_run")).json()
    # Where the "View run" button of the toast leads (the toast itself slides and
    # re-renders while it shows, too restless to click reliably).
    await expect(page.get_by_text(f"{created['name']} scheduled to start").first).to_be_visible()
    await page.goto(f"/runs/flow-run/{created['id']}")
    return UUID(created["id"])


async def _choose(field: Locator, current: str, option: str) -> None:
    """Pick `option` in a schema form's dropdown showing `current`."""
    # A click opens and at once closes this dropdown in Prefect 3.9's UI; the keyboard opens it.
    await field.get_by_role("button", name=current, exact=True).press("ArrowDown")
    await field.page.get_by_role("option", name=option, exact=True).click()
    await expect(field.get_by_role("button", name=option, exact=True)).to_be_visible()


async def _run_runbook(page: Page, task_id: str, screenshot: str | None = None) -> UUID:
    """Start the manual runbook from its Custom run form: task_id, cutover exchange_ip."""

    async def fill(page: Page) -> None:
        await _field(page, "task_id").get_by_role("textbox").fill(task_id)
        await _choose(_field(page, "cutover (Optional)"), "none", "exchange_ip")
        # Follow the exchange every second rather than every 5 (the default is 15).
        await _field(page, "poll_interval_seconds (Optional)").get_by_role("spinbutton").fill("1")
        if screenshot:
            await _field(page, "task_id").evaluate("e => e.scrollIntoView({block: 'start'})")
            await _screenshot(page, screenshot)

    run_id = await _custom_run(page, MANUAL, fill)
    # The run names itself after its task once it starts.
    await expect(_state(page, f"runbook-{task_id}")).to_be_visible(timeout=RUN_MS)
    return run_id


def _state(page: Page, text: str) -> Locator:
    """Text in the page heading of a flow run: its name, or its state badge."""
    return page.get_by_role("banner").get_by_text(text, exact=True)


async def _answer_approval(
    page: Page, approve: bool, comment: str, screenshot: str | None = None
) -> None:
    """Wait for the run to pause, then answer its Resume dialog."""
    await expect(_state(page, "Paused")).to_be_visible(timeout=RUN_MS)
    dialog = page.get_by_role("dialog")

    tries = 0

    async def answer() -> None:
        nonlocal tries
        tries += 1
        if tries > 1:
            await page.reload()  # after a refusal: the run as the server has it
            await expect(_state(page, "Paused")).to_be_visible()
        await page.get_by_role("button", name="Resume").click()
        switch = _field(dialog, "Approve").get_by_role("switch")
        await expect(switch).not_to_be_checked()  # rejecting is the default
        if approve:
            await switch.click()
            await expect(switch).to_be_checked()
        await _field(dialog, "Comment (Optional)").get_by_role("textbox").fill(comment)
        if screenshot:
            await _screenshot(page, screenshot)
        await dialog.get_by_role("button", name="Submit").click()

    await _until_accepted(page, answer, "POST", "/resume")
    await expect(dialog).to_be_hidden()


async def test_a_dcs_credentials_block_made_in_the_ui_loads_and_shows_no_secret(
    page: Page, stack: Stack
) -> None:
    """Blocks > + > DCS Credentials > Create: the block loads and works; the page masks the SK."""
    credentials = stack.credentials

    async def create() -> None:
        await page.goto("/blocks")
        await page.get_by_role("banner").get_by_role("button").click()  # the "+" by the title
        await expect(page.get_by_role("banner").get_by_text("Catalog")).to_be_visible()
        await page.get_by_role("searchbox", name="Search blocks").fill("DCS Credentials")
        create = page.get_by_role("button", name="Create", exact=True)
        await expect(create).to_have_count(1)  # the search has left one card: DCS Credentials
        await expect(page.get_by_role("heading", name="DCS Credentials")).to_be_visible()
        await create.click()

        name = page.get_by_text("Block Name", exact=True).locator("xpath=following::input[1]")
        await name.fill("ui-dcs")
        await _field(page, "Endpoint").get_by_role("textbox").fill(stack.sandbox_url)
        await _field(page, "Project Id").get_by_role("textbox").fill(credentials["project_id"])
        await _screenshot(page, "block-form")
        await _field(page, "Access Key").get_by_role("textbox").fill(credentials["access_key"])
        await _field(page, "Secret Key").get_by_role("textbox").fill(credentials["secret_key"])
        await page.get_by_role("button", name="Create", exact=True).click()

    await _until_accepted(page, create, "POST", "/block_documents/")
    await expect(page.get_by_role("banner").get_by_text("ui-dcs")).to_be_visible()
    await expect(page.get_by_text("********", exact=True)).to_be_visible()
    await expect(page.get_by_text(credentials["access_key"], exact=True)).to_be_visible()
    await _screenshot(page, "block-saved")
    assert credentials["secret_key"] not in await page.content()

    from prefect.settings import PREFECT_API_URL, temporary_settings

    from blocks import DcsCredentials

    with temporary_settings({PREFECT_API_URL: stack.api_url}):
        block = await DcsCredentials.aload("ui-dcs")
    assert block.auth_method == "aksk"
    assert block.secret_key is not None
    assert block.secret_key.get_secret_value() == credentials["secret_key"]
    async with block.get_async_client() as client:  # signed with the keys typed in the form
        task = await client.show_migration_task("ui-approve")
    assert task.task_id == "ui-approve"


async def test_a_custom_run_approved_in_the_dialog_exchanges_once(page: Page, stack: Stack) -> None:
    """Custom run (task_id, exchange_ip), Paused, Approve on, Submit: one exchange, Completed."""
    run_id = await _run_runbook(page, "ui-approve", screenshot="custom-run")
    assert stack.sandbox_task("ui-approve")["exchange_requests"] == 0  # nothing before approval
    await _answer_approval(page, True, "window agreed with the app team", "approval")
    await expect(_state(page, "Completed")).to_be_visible(timeout=RUN_MS)
    await _screenshot(page, "run-completed")
    task = stack.sandbox_task("ui-approve")
    assert task["exchange_requests"] == 1
    assert task["task_status"] == "EXCHANGE_SUCCESS"
    runs = await runs_of(stack, "dcs-migration-runbook/manual")
    assert [run.id for run in runs if run.parameters["task_id"] == "ui-approve"] == [run_id]


async def test_a_custom_run_rejected_in_the_dialog_fails_without_an_exchange(
    page: Page, stack: Stack
) -> None:
    """Rejected in the dialog (Approve left off): Failed with CutoverRejected, no exchange."""
    assert "Failed with `CutoverRejected`" in README  # what the README promises

    await _run_runbook(page, "ui-reject")
    await _answer_approval(page, False, "not tonight")
    await expect(_state(page, "Failed")).to_be_visible(timeout=RUN_MS)
    await expect(page.get_by_text("CutoverRejected").first).to_be_visible()  # in the log
    # The run's log up to the first line that says why it failed, with the comment (the
    # traceback below it names this machine's paths).
    why = page.get_by_text("rejected: not tonight").first
    await why.evaluate("e => e.scrollIntoView({block: 'end'})")
    await _screenshot(page, "run-rejected")
    assert stack.sandbox_task("ui-reject")["exchange_requests"] == 0


async def test_the_automatic_cutover_stands_down_for_a_task_a_person_is_running(
    page: Page, stack: Stack
) -> None:
    """Automation on, a manual run paused for ui-held: the automatic run completes, stood down.

    Last in this file: it turns the automation on for the rest of the stack's life.
    """

    async def automation() -> Any:
        async with prefect(stack) as client:
            (found,) = await client.read_automations_by_name("dcs-auto-cutover")
        return found

    off = await automation()
    assert off.enabled is False  # nothing cuts over unless asked
    # Turn it on where the README says a person can: the Automations page's toggle.
    switch = (
        page.locator(".automation-card")
        .filter(has=page.get_by_role("link", name="dcs-auto-cutover", exact=True))
        .get_by_role("switch")
    )

    async def turn_on() -> None:
        await page.goto("/automations")  # after a refusal: the toggle as the server has it
        await expect(switch).not_to_be_checked()
        await switch.click()

    await _until_accepted(page, turn_on, "PATCH", f"/automations/{off.id}")
    await expect(switch).to_be_checked()
    assert (await automation()).enabled is True

    manual = await _run_runbook(page, "ui-held")
    await expect(_state(page, "Paused")).to_be_visible(timeout=RUN_MS)

    # The sensor, with a state of its own: the deployment's schedule may have seen the
    # task already, and would then report no change.
    async def fill(page: Page) -> None:
        filter_field = _field(page, "name_filter (Optional)")
        await filter_field.get_by_role("button", name="str", exact=True).click()
        await filter_field.get_by_role("textbox").fill("ui-held")
        state = _field(page, "state_variable (Optional)").get_by_role("textbox")
        await state.fill("ui-test-sensor-state")

    await _custom_run(page, "dcs-migration-sensor/every-2-minutes", fill)
    await expect(_state(page, "Completed")).to_be_visible(timeout=RUN_MS)

    async def automatic_runs_done() -> list[Any] | None:
        runs = await runs_of(stack, "dcs-migration-runbook/cutover-on-ready")
        held = [run for run in runs if run.parameters["task_id"] == "ui-held"]
        return held if held and all(run.state.is_final() for run in held) else None

    held = await until(stack, "no automatic run for ui-held finished", automatic_runs_done, 150)
    assert all(run.state.is_completed() for run in held), [run.state for run in held]

    # What a person checks: the automatic deployment's runs, and the run's own log.
    await page.goto("/deployments")
    await _deployment_link(page, "dcs-migration-runbook/cutover-on-ready").click()
    run_link = page.get_by_role("link", name="auto-cutover-ui-held", exact=True)
    rows = page.locator(".flow-run-list-item").filter(has=run_link)
    await expect(rows.first.get_by_text("Completed", exact=True)).to_be_visible()
    await expect(rows.filter(has_not=page.get_by_text("Completed", exact=True))).to_have_count(0)
    await _screenshot(page, "auto-cutover-runs")
    await run_link.first.click()
    await expect(_state(page, "Completed")).to_be_visible()
    reason = re.compile(r"stands down: runbook 'runbook-ui-held' .* already stands for it")
    await expect(page.get_by_text(reason).first).to_be_visible()  # in the run's log
    assert stack.sandbox_task("ui-held")["exchange_requests"] == 0
    async with prefect(stack) as client:
        still = await client.read_flow_run(manual)
    assert still.state is not None
    assert still.state.is_paused()  # the person's run goes on
