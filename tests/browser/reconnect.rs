//! Connections lost mid-run: the socket cut under the page while the server runs on, and the
//! server killed and started again. Each time the page reconnects by itself, resumes after its
//! last `seq` and shows every event of the run exactly once, as the server's pages list them.

use crate::fake_llm::{FakeLlm, HELD_WORD};
use crate::harness::*;
use crate::proxy::Proxy;

/// The page's connection (socket and HTTP) cut while a run is held mid-way, and refused until
/// the run has completed on the server: the page misses the run's end, reconnects, and shows
/// the run completed with every event once.
#[actix_web::test]
async fn after_the_socket_is_cut_every_event_shows_exactly_once() {
    let Some(_turn) = browser_turn().await else {
        return;
    };
    let mut llm = FakeLlm::start();
    let server = Server::start_with(&llm.env()).await;
    server.upload_sample("gina").await;
    let proxy = Proxy::start(server.addr().to_owned()).await;
    let browser = Browser::start().await;
    let page = &browser.client;
    sign_in_at(page, &proxy.url("/"), "gina").await;
    say(page, "cut my LLM costs by 30%").await;
    llm.held(1).await;
    let held = format!("reporting: {HELD_WORD}");
    wait_for_text_that(page, ".run .timeline", &held, |t| t.contains(&held)).await;
    let run_id = wait_for(page, ".run[data-state=running]")
        .await
        .attr("data-run-id")
        .await
        .unwrap()
        .unwrap();

    proxy.cut_and_refuse();
    wait_for_text_that(page, "#connection", "disconnected", |t| {
        t.starts_with("disconnected")
    })
    .await;
    llm.open();
    // The run ends on the server while the page cannot hear of it.
    // Bounded well under the page's growing retry pause (0.5 s doubling), so its next try
    // after the proxy lets it through comes within the page waits below.
    let mut status = String::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(12);
    while status != "completed" && tokio::time::Instant::now() < deadline {
        let view = server
            .get_json(&format!("/api/runs/{run_id}"), "gina")
            .await;
        status = view["status"].as_str().unwrap().to_owned();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(status, "completed");
    assert_eq!(
        page.find(fantoccini::Locator::Css(".run"))
            .await
            .unwrap()
            .attr("data-state")
            .await
            .unwrap()
            .as_deref(),
        Some("running"),
        "the page has not heard of the end"
    );
    proxy.resume();

    wait_for(page, ".run[data-state=run_completed]").await;
    wait_for_text(page, "#connection", "connected as gina").await;
    assert_eq!(shown_seqs(page).await, stored_seqs(&server, "gina").await);
    click(page, ".run details.steps summary").await;
    let shown = texts_of(page, ".run .timeline li").await;
    assert_eq!(shown.last().map(String::as_str), Some("completed"));
    // The streamed answer's pieces (which carry no line of their own) are all there: its
    // line reads as the run's summary.
    let summary = text_of(page, ".run .summary").await;
    assert!(
        shown.contains(&format!("reporting: {summary}")),
        "{summary:?} in {shown:#?}"
    );
    // The cut itself is logged by the browser as failed requests; nothing else may be.
    browser
        .stop_clean_but(|line| {
            line.contains("ERR_CONNECTION") || line.contains("ERR_EMPTY_RESPONSE")
        })
        .await;
}

/// The server killed mid-run and started again on the same address and database: the page
/// reconnects by itself, resumes after its last `seq`, and shows every event of the run
/// exactly once — those before the kill, then the `run_interrupted` the new server records —
/// as the server's own pages list them.
#[actix_web::test]
async fn after_a_server_restart_every_event_shows_exactly_once() {
    let Some(_turn) = browser_turn().await else {
        return;
    };
    // Triage takes a minute: the run is mid-way when the server dies.
    let server = Server::start_with(&[("ENCLAVE_FAULTS", "triage:slow:60000")]).await;
    let browser = Browser::start().await;
    let page = &browser.client;
    sign_in(page, &server, "frank").await;
    say(page, "analyse my usage").await;
    wait_for(page, ".run .step.agent_started").await;

    let server = server.kill_and_restart::<&str>(&[]).await;
    wait_for(page, ".run[data-state=run_interrupted]").await;
    wait_for_text(page, "#connection", "connected as frank").await;
    click(page, ".run details.steps summary").await;
    let shown = texts_of(page, ".run .timeline li").await;

    // The thread's events as the server stores them, one line each.
    assert_eq!(
        shown_seqs(page).await,
        stored_seqs(&server, "frank").await,
        "{shown:#?}"
    );
    assert_eq!(
        shown.last().map(String::as_str),
        Some("interrupted (crash)")
    );
    assert_eq!(
        shown
            .iter()
            .filter(|s| s.as_str() == "triage: started")
            .count(),
        1,
        "{shown:#?}"
    );
    browser.stop().await;
}

/// With one run at a time per user, a second message's run waits in the queue and the page
/// says where; Cancel takes it out of the queue, and Cancel on the running one (held mid-way
/// by the fake LLM) ends it too.
#[actix_web::test]
async fn a_queued_run_shows_its_place_and_both_runs_cancel() {
    let Some(_turn) = browser_turn().await else {
        return;
    };
    let mut llm = FakeLlm::start();
    let mut env = llm.env();
    env.push(("ENCLAVE_MAX_RUNNING_PER_USER", "1".to_owned()));
    let server = Server::start_with(&env).await;
    let browser = Browser::start().await;
    let page = &browser.client;
    sign_in(page, &server, "ivan").await;
    say(page, "cut my LLM costs by 30%").await;
    llm.held(1).await;
    wait_for(page, ".run[data-state=running]").await;
    say(page, "and what about latency?").await;
    wait_for_text(
        page,
        ".run:nth-of-type(2) .status",
        "queued — position 1 Cancel",
    )
    .await;
    assert_eq!(
        text_of(page, ".run:nth-of-type(1) .status").await,
        "working… Cancel"
    );
    browser.screenshot("queued-run").await;

    click(page, ".run:nth-of-type(2) .status .cancel").await;
    wait_for_text(page, ".run:nth-of-type(2) .status", "cancelled (user)").await;
    assert_eq!(
        text_of(page, ".run:nth-of-type(1) .status").await,
        "working… Cancel"
    );
    click(page, ".run:nth-of-type(1) .status .cancel").await;
    wait_for_text(page, ".run:nth-of-type(1) .status", "cancelled (user)").await;
    assert_eq!(shown_seqs(page).await, stored_seqs(&server, "ivan").await);
    browser.stop_clean().await;
}

/// An agent that fails and is restarted, and one that keeps failing and falls back, show in
/// the run's timeline as they happen, and the run still completes.
#[actix_web::test]
async fn restarts_and_fallbacks_show_in_the_timeline() {
    let Some(_turn) = browser_turn().await else {
        return;
    };
    let server =
        Server::start_with(&[("ENCLAVE_FAULTS", "data:fail:1,goals_triage:panic:9")]).await;
    server.upload_sample("mona").await;
    let browser = Browser::start().await;
    let page = &browser.client;
    sign_in(page, &server, "mona").await;
    say(page, "cut my LLM costs by 30%").await;
    wait_for(page, ".run[data-state=run_completed]").await;
    click(page, ".run details.steps summary").await;
    let timeline = texts_of(page, ".run .timeline li").await;
    let has = |prefix: &str| timeline.iter().any(|line| line.starts_with(prefix));
    assert!(has("data: error: "), "{timeline:#?}");
    assert!(has("data: restarting after "), "{timeline:#?}");
    assert!(has("data: started (attempt 2)"), "{timeline:#?}");
    assert!(
        has("goals_triage: gave up after 4 attempts: fallback"),
        "{timeline:#?}"
    );
    assert_eq!(
        timeline.last().map(String::as_str),
        Some("completed"),
        "the run goes on"
    );
    assert_eq!(shown_seqs(page).await, stored_seqs(&server, "mona").await);
    // Errors and fallbacks in the bad colour.
    let colours = page
        .execute(
            "const bad = getComputedStyle(document.documentElement).getPropertyValue('--bad');
             const probe = document.createElement('span');
             probe.style.color = bad;
             document.body.append(probe);
             const want = getComputedStyle(probe).color;
             probe.remove();
             return [...document.querySelectorAll('.timeline .agent_error, .timeline .agent_fallback')]
               .map((step) => getComputedStyle(step).color === want);",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(colours.as_array().unwrap().len(), 6, "{colours}");
    assert!(
        colours.as_array().unwrap().iter().all(|c| c == true),
        "{colours}"
    );
    browser.screenshot("restarts-and-fallback").await;
    browser.stop_clean().await;
}
