//! The bundled page (issue 13): `GET /` and its assets come from the binary with the page's
//! security headers (a CSP with nothing inline and connections to this origin only, nosniff,
//! no framing, no referrer); the page itself holds no inline script or style; an unknown asset
//! is `not_found`; a browser's CSP violation report is counted.

use crate::helpers::*;

/// `path` fetched without a token: status, headers as (name, value) text, body.
async fn fetch(app: &TestApp, path: &str) -> (u16, Vec<(String, String)>, String) {
    let mut resp = awc::Client::default()
        .get(app.http(path))
        .send()
        .await
        .unwrap();
    let headers = resp
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap().to_owned()))
        .collect();
    let body = String::from_utf8(resp.body().await.unwrap().to_vec()).unwrap();
    (resp.status().as_u16(), headers, body)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map_or("", |(_, v)| v.as_str())
}

/// The page's files in the source tree (`src/web/page/`), every one of which is served.
fn page_files() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/web/page");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name != "index.html")
        .collect();
    names.sort();
    names
}

#[actix_web::test]
async fn the_page_and_its_assets_come_with_a_strict_policy() {
    let db = TestDb::new(Backend::Sqlite).unwrap();
    let app = TestApp::spawn(&db).await;
    let assets = page_files();
    let scripts: Vec<String> = assets
        .iter()
        .filter(|name| name.ends_with(".js"))
        .map(|name| format!("/assets/{name}"))
        .collect();
    assert!(scripts.len() >= 3, "{assets:?}");
    let mut pages = vec![("/".to_owned(), "text/html")];
    for name in &assets {
        let kind = match name.rsplit('.').next() {
            Some("js") => "text/javascript",
            Some("css") => "text/css",
            Some("svg") => "image/svg+xml",
            _ => continue,
        };
        pages.push((format!("/assets/{name}"), kind));
    }
    for (path, kind) in pages {
        let path = path.as_str();
        let (status, headers, body) = fetch(&app, path).await;
        assert_eq!(status, 200, "{path}");
        assert!(header(&headers, "content-type").starts_with(kind), "{path}");
        assert!(!body.is_empty(), "{path}");
        let csp = header(&headers, "content-security-policy");
        for part in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
            "report-uri /api/csp-report",
        ] {
            assert!(csp.contains(part), "{path}: {part} in {csp}");
        }
        assert!(!csp.contains("unsafe"), "{path}: {csp}");
        assert_eq!(header(&headers, "x-content-type-options"), "nosniff");
        assert_eq!(header(&headers, "x-frame-options"), "DENY");
        assert_eq!(header(&headers, "referrer-policy"), "no-referrer");
    }

    // Nothing inline: every script is a module loaded from this origin, no style attribute,
    // no inline handler.
    let (_, _, html) = fetch(&app, "/").await;
    assert!(html.contains(r#"<script type="module" src="/assets/app.js"></script>"#));
    assert_eq!(html.matches("<script").count(), 1, "{html}");
    for inline in ["style=", "<style", " onclick", " onload", "javascript:"] {
        assert!(!html.contains(inline), "{inline} in the page");
    }
    // Every control has an accessible name.
    for id in ["user-name", "token"] {
        assert!(
            html.contains(&format!(r#"<label for="{id}">"#)),
            "a label for {id}"
        );
    }
    // The scripts write user strings as text only.
    let sinks = [
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
    ];
    for script in &scripts {
        let (_, _, js) = fetch(&app, script).await;
        for sink in sinks {
            assert!(!js.contains(sink), "{sink} in {script}");
        }
    }

    let (status, _, body) = fetch(&app, "/assets/nothing.js").await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("not_found"), "{body}");

    // A violation report, as Chromium sends one, is counted.
    assert_eq!(metric(&app, "csp_reports_total").await, 0.0);
    let resp = awc::Client::default()
        .post(app.http("/api/csp-report"))
        .insert_header(("Content-Type", "application/csp-report"))
        .send_body(
            r#"{"csp-report":{"document-uri":"http://x/","violated-directive":"script-src-elem"}}"#,
        )
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 204);
    assert_eq!(metric(&app, "csp_reports_total").await, 1.0);
    app.stop().await;
}
