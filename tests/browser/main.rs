//! The bundled page in a real browser (issue 13): headless Chromium (Debian's `chromium`)
//! driven through `chromedriver` over WebDriver (fantoccini), against a real `enclave serve`.
//! Without chromium on the machine the tests say they are skipped; under CI (`CI=true`) they
//! never skip. One browser at a time: the tests take turns.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod harness;

use harness::*;

/// Signing in with a dev-mode user name connects the page's socket; the page loads with no
/// console error and nothing blocked by its Content-Security-Policy.
#[actix_web::test]
async fn the_page_signs_in_and_connects_with_no_error() {
    let Some(_turn) = browser_turn().await else {
        return;
    };
    let server = Server::start().await;
    let browser = Browser::start().await;
    let page = &browser.client;
    page.goto(&server.url("/")).await.unwrap();
    assert_eq!(text_of(page, "#connection").await, "signed out");

    fill(page, "#user-name", "alice").await;
    click(page, "#dev-sign-in button[type=submit]").await;
    wait_for_text(page, "#connection", "connected as alice").await;
    assert_eq!(text_of(page, "#user-label").await, "alice");

    // Sign out and in again with a pasted token.
    click(page, "#sign-out").await;
    wait_for_text(page, "#connection", "signed out").await;
    let token = server.dev_token("bob").await;
    fill(page, "#token", &token).await;
    click(page, "#token-sign-in button[type=submit]").await;
    wait_for_text(page, "#connection", "connected as bob").await;

    // A refused token says so and leaves the page signed out.
    click(page, "#sign-out").await;
    fill(page, "#token", "not-a-token").await;
    click(page, "#token-sign-in button[type=submit]").await;
    wait_for_text(
        page,
        "#sign-in-error",
        "The server refused the token: sign in again.",
    )
    .await;
    assert_eq!(text_of(page, "#connection").await, "signed out");

    let problems = browser.console_errors().await;
    // The refused token's 401 is logged by the browser as a failed resource: expected.
    let unexpected: Vec<_> = problems
        .iter()
        .filter(|line| !line.contains("/api/threads?limit=1") || !line.contains("401"))
        .collect();
    assert!(unexpected.is_empty(), "console errors: {unexpected:#?}");
    assert_eq!(server.metric("csp_reports_total").await, 0.0);
    browser.screenshot("signed-out-after-refused-token").await;
    browser.stop().await;
}
