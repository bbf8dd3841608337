"""The lab page against an inference service that has a token (``PERMEABILITY_INFERENCE_TOKEN``):
the page opens without it, asks for it once when a POST answers 401, keeps it for the session
(sessionStorage) and sends it on every later POST; a refused token is not kept.

A second ``permeability serve inference`` runs on a copy of the session's storage (the same
trained champion and specification file), with the token in its environment.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import LabService, running_inference_service
from tests.e2e.test_page import fill_sample, submit_and_wait_for_answer

pytestmark = pytest.mark.e2e

TOKEN = "bench-token-42"


@pytest.fixture(scope="module")
def guarded_url(lab_service: LabService, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    work = tmp_path_factory.mktemp("guarded_page")
    home = work / "storage"
    shutil.copytree(lab_service.home, home)
    specs = work / "specs.yaml"
    shutil.copyfile(lab_service.home.parent / "specs.yaml", specs)
    env = {
        **os.environ,
        "PERMEABILITY_HOME": str(home),
        "PERMEABILITY_SPECS_FILE": str(specs),
        "PERMEABILITY_INFERENCE_TOKEN": TOKEN,
    }
    with running_inference_service(work, env) as url:
        yield url


@pytest.fixture
def guarded_page(browser: Any, guarded_url: str) -> Iterator[Any]:
    """A fresh tab on the guarded service, recording prompts and the Authorization it sends."""
    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.prompts = []
    page.answers = []  # what the technician types at each prompt, in order
    page.sent = []

    def on_dialog(dialog: Any) -> None:
        page.prompts.append(dialog.message)
        dialog.accept(page.answers.pop(0) if page.answers else "")

    def on_request(request: Any) -> None:
        if request.method == "POST":
            page.sent.append(request.headers.get("authorization"))

    page.on("dialog", on_dialog)
    page.on("request", on_request)
    page.goto(f"{guarded_url}/")
    page.wait_for_selector("body[data-ready='true']", timeout=15_000)
    yield page
    context.close()


def _token_kept(page: Any) -> str | None:
    kept: str | None = page.evaluate("sessionStorage.getItem('permeability.token')")
    return kept


def test_the_page_asks_for_the_token_once_and_keeps_it_for_the_session(
    guarded_page: Any, lab_service: LabService, screenshots: Path
) -> None:
    page = guarded_page
    page.answers.append(TOKEN)
    fill_sample(page, lab_service.samples["approve"])
    submit_and_wait_for_answer(page)
    assert len(page.prompts) == 1
    assert "access token" in page.prompts[0]
    assert page.sent == [None, f"Bearer {TOKEN}"]  # refused without it, answered with it
    assert page.get_attribute("#decision", "data-decision") == "approve"
    assert _token_kept(page) == TOKEN
    page.click("#predict")
    page.wait_for_function("document.querySelector('#predict').disabled === false")
    assert len(page.prompts) == 1  # not asked again
    assert page.sent[-1] == f"Bearer {TOKEN}"
    page.screenshot(path=str(screenshots / "07-token-accepted.png"), full_page=True)


def test_a_refused_token_is_not_kept_and_is_asked_again(
    guarded_page: Any, lab_service: LabService
) -> None:
    page = guarded_page
    page.answers.extend(["wrong-token", TOKEN])
    fill_sample(page, lab_service.samples["approve"])
    page.click("#predict")
    page.wait_for_selector("#page-error:not([hidden])")
    assert "refused" in (page.text_content("#page-error") or "")
    assert _token_kept(page) is None
    submit_and_wait_for_answer(page)  # asked again, given the right one
    assert len(page.prompts) == 2
    assert _token_kept(page) == TOKEN
    assert page.is_hidden("#page-error")
