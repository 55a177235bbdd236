//! The bundled page in a real browser (issue 13): headless Chromium (Debian's `chromium`)
//! driven through `chromedriver` over WebDriver (fantoccini), against a real `enclave serve`.
//! Without chromium on the machine the tests say they are skipped; under CI (`CI=true`) they
//! never skip. One browser at a time: the tests take turns.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod fake_llm;
mod harness;
#[path = "../common/prometheus.rs"]
mod prometheus;
mod proxy;
mod reconnect;
mod usage;

use fantoccini::Locator;
use fantoccini::key::Key;
use serde_json::{Value, json};

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

/// A message sent with Enter starts a thread and a run whose timeline ends with the run's
/// summary, the one the API stores; after a reload the thread's history shows the
/// same run from the server's pages.
#[actix_web::test]
async fn a_message_runs_and_its_thread_reloads() {
    let Some(_turn) = browser_turn().await else {
        return;
    };
    let server = Server::start().await;
    let browser = Browser::start().await;
    let page = &browser.client;
    sign_in(page, &server, "carol").await;

    // Shift+Enter starts a new line; Enter sends.
    let shift_enter = [Key::Shift, Key::Enter, Key::Null]
        .into_iter()
        .map(char::from)
        .collect::<String>();
    fill(
        page,
        "#composer-input",
        &format!("analyse{shift_enter}my usage"),
    )
    .await;
    let draft = page
        .execute(
            "return document.getElementById('composer-input').value;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(draft, "analyse\nmy usage");
    assert!(
        page.find_all(Locator::Css(".message"))
            .await
            .unwrap()
            .is_empty()
    );
    press_enter(page, "#composer-input").await;
    let run = wait_for(page, ".run[data-state=run_completed]").await;
    let run_id = run.attr("data-run-id").await.unwrap().unwrap();
    assert_eq!(text_of(page, ".message.user").await, "analyse\nmy usage");
    let unnamed = unnamed_controls(page).await;
    assert!(
        unnamed.is_empty(),
        "controls with no accessible name: {unnamed:#?}"
    );
    // The ended run's timeline is folded; opened, it shows every step.
    assert_eq!(
        page.find(Locator::Css(".run details.steps"))
            .await
            .unwrap()
            .attr("open")
            .await
            .unwrap(),
        None
    );
    click(page, ".run details.steps summary").await;
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
    click(page, ".run details.steps summary").await;
    assert_eq!(texts_of(page, ".run .timeline li").await, steps);
    assert_eq!(text_of(page, ".run .summary").await, summary);

    browser.stop_clean().await;
}

/// Markup in the user's data — a `<script>`, an `<img onerror>`, a `javascript:` link in model
/// and workload names — shows as text in the timeline, the chart and the report, and runs
/// nothing; the report has its table and a chart of the savings.
#[actix_web::test]
async fn markup_in_the_data_shows_as_text_and_runs_nothing() {
    let Some(_turn) = browser_turn().await else {
        return;
    };
    let server = Server::start().await;
    let script = "<script>window.__xss=1</script>";
    let img = "<img src=x onerror=\"window.__xss=2\">";
    let link = "[x](javascript:window.__xss=3)";
    let mut rows = String::new();
    for i in 0..20_i64 {
        let (model, workload) = if i < 4 {
            (script, img)
        } else {
            ("gpt-4o", link)
        };
        let record = json!({
            "ts": 1_793_000_000_000_i64 + i * 60_000,
            "model": model,
            "workload": workload,
            "prompt_tokens": 1_000,
            "completion_tokens": 200,
            "latency_ms": 100,
            "interactive": false,
        });
        rows.push_str(&format!("{record}\n"));
    }
    let answer = server.upload("mallory", rows).await;
    assert_eq!(answer["accepted"], 20, "{answer}");

    let browser = Browser::start().await;
    let page = &browser.client;
    sign_in(page, &server, "mallory").await;
    say(page, "cut my LLM costs by 30%").await;
    wait_for(page, ".run[data-state=run_completed] .report-body table").await;
    wait_for(page, ".run .chart .bar").await;

    let report = text_of(page, ".report-body").await;
    for name in [script, img, link] {
        assert!(report.contains(name), "{name} as text in the report");
    }
    click(page, ".run details.steps summary").await;
    let timeline = texts_of(page, ".run .timeline li").await.join("\n");
    assert!(timeline.contains(link), "{timeline}");
    assert!(
        page.find_all(Locator::Css("#messages img, #messages script"))
            .await
            .unwrap()
            .is_empty()
    );
    // The usage summary's charts label the bars with the same names, as text.
    click(page, "#usage-panel > summary").await;
    wait_for(page, "#usage-summary figure .label").await;
    // The summary's chart labels and its list of models not in the catalog are text.
    let labels = texts_of(page, "#usage-summary .label").await;
    assert!(labels.iter().any(|l| l == link), "{labels:#?}");
    let unpriced = text_of(page, "#usage-summary .unpriced").await;
    assert!(unpriced.ends_with(script), "{unpriced}");
    assert!(
        page.find_all(Locator::Css("#usage-summary img, #usage-summary script"))
            .await
            .unwrap()
            .is_empty()
    );
    click(page, "#usage-panel > summary").await;
    let ran = page
        .execute("return window.__xss === undefined;", vec![])
        .await
        .unwrap();
    assert_eq!(ran, json!(true), "nothing of the data ran");
    let errors = browser.console_errors().await;
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    // Folded again, with the report in view, for the screenshot.
    click(page, ".run details.steps summary").await;
    page.execute(
        "document.querySelector('.report').scrollIntoView();",
        vec![],
    )
    .await
    .unwrap();
    browser.screenshot("report-with-chart").await;
    browser.stop().await;
}

/// When the server's history is shorter than the page's (here the account was deleted: the
/// socket closes 4009 and the new account's `seq` starts again at 1), the page starts over
/// instead of dropping every new event as a copy of one it had.
#[actix_web::test]
async fn a_page_whose_history_the_server_forgot_starts_over() {
    let Some(_turn) = browser_turn().await else {
        return;
    };
    let server = Server::start().await;
    let browser = Browser::start().await;
    let page = &browser.client;
    sign_in(page, &server, "dave").await;
    say(page, "first thread").await;
    wait_for(page, ".run[data-state=run_completed]").await;

    assert_eq!(server.delete_account("dave").await, 202);
    // The page reconnects to an account with no events: its old thread goes.
    wait_for_text(page, "#connection", "connected as dave").await;
    wait_for_gone(page, "#thread-list .thread").await;
    say(page, "after the deletion").await;
    wait_for(page, ".run[data-state=run_completed]").await;
    assert_eq!(
        texts_of(page, "#thread-list .thread").await,
        vec!["after the deletion"]
    );
    assert_eq!(
        texts_of(page, ".message.user").await,
        vec!["after the deletion"]
    );
    browser.stop_clean().await;
}

/// A synthetic request above the approval threshold: the card (what will happen, Approve /
/// Reject, time left) shows in two tabs of the same user, is approved in one, and shows
/// resolved in both; the run then completes.
#[actix_web::test]
async fn an_approval_shows_in_two_tabs_and_resolves_in_both() {
    let Some(_turn) = browser_turn().await else {
        return;
    };
    let server = Server::start().await;
    let browser = Browser::start().await;
    let page = &browser.client;
    let first = page.window().await.unwrap();
    sign_in(page, &server, "erin").await;
    let second = page.new_window(true).await.unwrap().handle;
    page.switch_to_window(second.clone()).await.unwrap();
    sign_in(page, &server, "erin").await;

    page.switch_to_window(first.clone()).await.unwrap();
    say(page, "generate 20000 synthetic chatbot records").await;
    wait_for(page, ".approval .approve").await;
    let summary = text_of(page, ".approval-summary").await;
    assert!(
        summary.contains("20000") || summary.contains("20,000"),
        "{summary}"
    );
    assert!(
        text_of(page, ".approval .time-left")
            .await
            .starts_with("expires in ")
    );
    browser.screenshot("approval-card").await;

    // The other tab sees the new thread, opens it, and approves.
    page.switch_to_window(second.clone()).await.unwrap();
    wait_for(page, "#thread-list .thread").await;
    click(page, "#thread-list .thread").await;
    wait_for(page, ".approval .approve").await;
    assert_eq!(text_of(page, ".approval-summary").await, summary);
    click(page, ".approval .approve").await;
    wait_for(page, ".approval[data-decision=approve]").await;

    page.switch_to_window(first).await.unwrap();
    wait_for(page, ".approval[data-decision=approve]").await;
    assert_eq!(text_of(page, ".approval .decision").await, "approved");
    assert!(
        page.find_all(Locator::Css(".approval button"))
            .await
            .unwrap()
            .is_empty()
    );
    wait_for(page, ".run[data-state=run_completed]").await;
    // The generation's progress shows as a bar, full at the end.
    let bar = page.find(Locator::Css(".run progress")).await.unwrap();
    let filled = page
        .execute(
            "const bar = document.querySelector('.run progress'); return [bar.value, bar.max];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(filled, json!([20000, 20000]));
    assert_eq!(
        bar.attr("aria-label").await.unwrap().as_deref(),
        Some("synthetic_data: 20000 of 20000 records")
    );
    browser.stop_clean().await;
}

/// At a phone's width the page fits the screen (nothing wider than the viewport, the thread
/// list above the chat); with the system's dark preference it turns dark.
#[actix_web::test]
async fn the_page_fits_a_phone_and_follows_the_dark_preference() {
    let Some(_turn) = browser_turn().await else {
        return;
    };
    let server = Server::start().await;
    server.upload_sample("hana").await;
    let browser = Browser::start().await;
    let page = &browser.client;
    browser
        .devtools(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": true}),
        )
        .await;
    sign_in(page, &server, "hana").await;
    say(page, "cut my LLM costs by 30%").await;
    wait_for(page, ".run[data-state=run_completed] .report-body table").await;
    let fits = page
        .execute(
            "return [document.documentElement.scrollWidth, window.innerWidth];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(fits[1], 390, "{fits}");
    assert!(
        fits[0].as_u64().unwrap() <= 390,
        "the page is wider than the phone: {fits}"
    );
    // One column: the thread list above the chat.
    let column = page
        .execute(
            "const nav = document.querySelector('nav').getBoundingClientRect(); \
             const chat = document.querySelector('.chat').getBoundingClientRect(); \
             return nav.bottom <= chat.top;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(column, json!(true));
    page.execute("window.scrollTo(0, 0);", vec![])
        .await
        .unwrap();
    browser.screenshot("phone-width").await;

    let background = "return getComputedStyle(document.body).backgroundColor;";
    let light = page.execute(background, vec![]).await.unwrap();
    assert_eq!(light, "rgb(251, 251, 250)");
    browser
        .devtools(
            "Emulation.setEmulatedMedia",
            json!({"features": [{"name": "prefers-color-scheme", "value": "dark"}]}),
        )
        .await;
    let dark = page.execute(background, vec![]).await.unwrap();
    assert_eq!(dark, "rgb(22, 22, 24)");
    browser.screenshot("dark-theme").await;
    browser.stop_clean().await;
}

/// Threads: the list comes in pages (up to 50, then the older ones on request), a thread opens with
/// its history, Delete removes it (from the server too), New thread starts another at the top.
#[actix_web::test]
async fn threads_page_switch_delete_and_start() {
    let Some(_turn) = browser_turn().await else {
        return;
    };
    let server = Server::start_with(&[
        ("ENCLAVE_MESSAGES_PER_MINUTE", "600"),
        ("ENCLAVE_MESSAGE_BURST", "100"),
        ("ENCLAVE_MAX_QUEUED_PER_USER", "100"),
    ])
    .await;
    let texts: Vec<String> = (1..=55).map(|i| format!("question {i:02}")).collect();
    server.start_threads("lena", &texts).await;
    let browser = Browser::start().await;
    let page = &browser.client;
    sign_in(page, &server, "lena").await;

    // The server's order: the most recently active first.
    let titles = |listed: Value| -> Vec<String> {
        listed["threads"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["title"].as_str().unwrap().to_owned())
            .collect()
    };
    let expected = titles(server.get_json("/api/threads?limit=200", "lena").await);
    assert_eq!(expected.len(), 55);
    wait_for(page, "#thread-list .thread").await;
    let first_page = texts_of(page, "#thread-list .thread").await;
    // At most 50 (fewer when the 50th shares its millisecond with the next: a page never
    // ends inside such a group).
    assert!((40..=50).contains(&first_page.len()), "{first_page:?}");
    assert_eq!(first_page[..], expected[..first_page.len()]);
    click(page, "#more-threads").await;
    wait_for_gone(page, "#more-threads:not([hidden])").await;
    assert_eq!(texts_of(page, "#thread-list .thread").await, expected);

    // Open one: its history from the server.
    let third = &expected[2];
    click(page, "#thread-list li:nth-child(3) .thread").await;
    wait_for_text(page, "#thread-title", third).await;
    wait_for(page, ".run[data-state=run_completed]").await;
    assert_eq!(&text_of(page, ".message.user").await, third);

    // Delete it.
    click(page, "#thread-list li:nth-child(3) .delete").await;
    wait_for_text(page, "#thread-title", "New thread").await;
    let left = titles(server.get_json("/api/threads?limit=200", "lena").await);
    let mut without: Vec<String> = expected.clone();
    without.remove(2);
    assert_eq!(left, without);
    assert_eq!(texts_of(page, "#thread-list .thread").await, without);

    // A new thread goes to the top.
    click(page, "#thread-list li:nth-child(1) .thread").await;
    wait_for_text(page, "#thread-title", &expected[0]).await;
    click(page, "#new-thread").await;
    wait_for_text(page, "#thread-title", "New thread").await;
    say(page, "a fresh start").await;
    wait_for_text(
        page,
        "#thread-list li:nth-child(1) .thread",
        "a fresh start",
    )
    .await;
    wait_for_text(page, "#thread-title", "a fresh start").await;
    browser.stop_clean().await;
}
