"""The dashboard in a real browser (Playwright driving Debian's chromium): log in with the token,
see an agent after requests to it, open it, watch a line it logs appear in the live tail, see a
vault listed without its value, the apps page; a screenshot of each page in the test's folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from test_gateway_process import Server, http, servers  # noqa: F401  (the servers fixture)
from test_workers import publish

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed "
                                "(apt-get install chromium; .ci/run does it)")

TOKEN = "browser-test-token"
AGENT = """\
async function main(request) {
  const req = JSON.parse(request);
  console.log("hello from " + (req.queries.who || ["nobody"])[0]);
  return JSON.stringify({status: 200, headers: {}, body: "ok"});
}
"""


@pytest.fixture
def page():
    """A page of Debian's chromium (Playwright downloads no browser here). Started and stopped
    with the test: pytest-playwright's own fixtures are session-scoped and their sync API keeps an
    event loop marked running in the main thread until the session ends, which breaks every
    later test calling asyncio.run."""
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                            "--disable-component-update", "--disable-sync",
                                            "--disable-dev-shm-usage"])
        try:
            yield browser.new_context().new_page()
        finally:
            browser.close()


def test_the_dashboard_in_a_browser(tmp_path, servers, page):
    from playwright.sync_api import expect
    data_dir = tmp_path / "data"
    (tmp_path / "hi.js").write_text("WapoServer.serve(async (req) => new Response('hi'));")
    config = tmp_path / "wapo.toml"
    cid = publish(tmp_path, data_dir, "agent.js", AGENT)
    config.write_text(f'admin_token = "{TOKEN}"\n[app.greeter]\nfile = "hi.js"\n'
                      f'[cron.new-year]\ncid = "{cid}"\nschedule = "0 0 1 1 *"\n')
    server = Server(data_dir, "--config", str(config))
    servers.append(server)
    for who in ("ada", "bob", "cy"):
        assert http("GET", f"{server.base}/ipfs/{cid}?who={who}")[0] == 200
    status, _, body = http("POST", f"{server.base}/vaults",
                           json.dumps({"cid": cid, "data": {"apiKey": "NEVER-SHOWN-VALUE"}}).encode())
    vault_key = json.loads(body)["key"]
    shots = tmp_path / "screenshots"
    shots.mkdir()

    assert page.request.get(f"{server.base}/admin/api/agents").status == 404  # no token, no cookie

    page.goto(f"{server.base}/dashboard")
    page.screenshot(path=shots / "login.png")
    page.fill("#token", "wrong")
    page.click("button[type=submit]")
    expect(page.locator(".error")).to_have_text("Wrong token.")
    page.fill("#token", TOKEN)
    page.click("button[type=submit]")

    row = page.locator(f"tr[data-cid='{cid}']")
    expect(row).to_be_visible(timeout=15000)
    expect(row.locator("td").nth(1)).to_have_text("3")
    page.screenshot(path=shots / "agents.png", full_page=True)

    row.locator("a").click()
    expect(page.locator("svg.chart rect.bar").first).to_be_attached()
    expect(page.locator("#tail")).to_contain_text("hello from cy")  # the stored lines
    assert http("GET", f"{server.base}/ipfs/{cid}?who=the-live-tail")[0] == 200
    expect(page.locator("#tail")).to_contain_text("hello from the-live-tail")  # pushed to the open page
    page.screenshot(path=shots / "agent.png", full_page=True)

    page.click("#nav-vaults")
    expect(page.locator(f"tr[data-key='{vault_key}']")).to_contain_text(cid)
    assert "NEVER-SHOWN-VALUE" not in page.content()
    page.screenshot(path=shots / "vaults.png", full_page=True)

    page.click("#nav-apps")
    expect(page.locator("main table")).to_contain_text("greeter")
    page.screenshot(path=shots / "apps.png", full_page=True)

    page.click("#nav-cron")
    expect(page.locator("tr[data-job='new-year']")).to_contain_text("0 0 1 1 *")
    page.screenshot(path=shots / "cron.png", full_page=True)

    assert sorted(p.name for p in shots.iterdir()) == ["agent.png", "agents.png", "apps.png", "cron.png",
                                                       "login.png", "vaults.png"]
    page.click("text=Log out")
    expect(page.locator("#token")).to_be_visible()
    assert page.request.get(f"{server.base}/admin/api/agents").status == 404
