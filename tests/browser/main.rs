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

/// A message sent with Enter starts a thread and a run whose timeline shows live and ends with
/// the run's summary, the one the API stores; after a reload the thread's history shows the
/// same run from the server's pages.
#[actix_web::test]
async fn a_message_runs_live_and_its_thread_reloads() {
    let Some(_turn) = browser_turn().await else {
        return;
    };
    let server = Server::start().await;
    let browser = Browser::start().await;
    let page = &browser.client;
    page.goto(&server.url("/")).await.unwrap();
    fill(page, "#user-name", "carol").await;
    click(page, "#dev-sign-in button[type=submit]").await;
    wait_for_text(page, "#connection", "connected as carol").await;

    fill(page, "#composer-input", "analyse my usage").await;
    press_enter(page, "#composer-input").await;
    let run = wait_for(page, ".run[data-state=run_completed]").await;
    let run_id = run.attr("data-run-id").await.unwrap().unwrap();
    assert_eq!(text_of(page, ".message.user").await, "analyse my usage");
    let steps = texts_of(page, ".run .timeline li").await;
    assert!(
        steps.iter().any(|s| s.starts_with("triage: started")),
        "{steps:#?}"
    );
    assert_eq!(
        steps.last().map(String::as_str),
        Some("completed"),
        "{steps:#?}"
    );
    // The summary shown is the one stored with the run's events.
    let view = server
        .get_json(&format!("/api/runs/{run_id}"), "carol")
        .await;
    assert_eq!(view["status"], "completed");
    let thread = view["thread_id"].as_str().unwrap();
    let events = server
        .get_json(&format!("/api/threads/{thread}/events"), "carol")
        .await;
    let completed = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "run_completed")
        .unwrap();
    let summary = text_of(page, ".run .summary").await;
    assert!(!summary.is_empty());
    assert_eq!(
        summary,
        completed["data"]["summary"].as_str().unwrap().trim()
    );
    assert_eq!(texts_of(page, "#thread-list .thread").await.len(), 1);
    browser.screenshot("chat-run-completed").await;

    // Reloaded, the page signs in again from the session and shows the thread's history.
    page.refresh().await.unwrap();
    wait_for_text(page, "#connection", "connected as carol").await;
    wait_for(page, "#thread-list .thread").await;
    click(page, "#thread-list .thread").await;
    wait_for(page, ".run[data-state=run_completed]").await;
    assert_eq!(texts_of(page, ".run .timeline li").await, steps);
    assert_eq!(text_of(page, ".run .summary").await, summary);

    let errors = browser.console_errors().await;
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    browser.stop().await;
}
