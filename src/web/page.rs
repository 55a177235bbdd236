//! The bundled web page: `GET /` and `GET /assets/{name}`, HTML, CSS and JavaScript modules of
//! the project's own (`web/page/`), embedded in the binary — no CDN, no build step — and
//! `POST /api/csp-report`, where browsers report what the page's policy blocked. Every page
//! response carries the page's security headers: a strict Content-Security-Policy (scripts,
//! styles and connections from this origin only, nothing inline, no framing, violations
//! reported), `nosniff` and no referrer.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, get, post, web};

use crate::protocol::http::ErrorBody;
use crate::web::AppState;
use crate::web::error::ApiError;
use crate::web::extract::small_body;

/// The page's policy: everything from this origin, nothing inline (so a string that slipped
/// into the document as markup could not run), WebSockets back to this origin only.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'; report-uri /api/csp-report";

/// The page.
const INDEX_HTML: &str = include_str!("page/index.html");

/// The page's files by name: content type and contents.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("page/app.js"),
    ),
    (
        "chat.js",
        "text/javascript; charset=utf-8",
        include_str!("page/chat.js"),
    ),
    (
        "chart.js",
        "text/javascript; charset=utf-8",
        include_str!("page/chart.js"),
    ),
    (
        "report.js",
        "text/javascript; charset=utf-8",
        include_str!("page/report.js"),
    ),
    (
        "usage.js",
        "text/javascript; charset=utf-8",
        include_str!("page/usage.js"),
    ),
    (
        "ingest.js",
        "text/javascript; charset=utf-8",
        include_str!("page/ingest.js"),
    ),
    (
        "upload.js",
        "text/javascript; charset=utf-8",
        include_str!("page/upload.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("page/app.css"),
    ),
    ("icon.svg", "image/svg+xml", include_str!("page/icon.svg")),
];

/// The largest violation report looked into (a browser's are a few hundred bytes).
const MAX_CSP_REPORT_BYTES: usize = 16 * 1024;

/// `GET /`: the page.
#[utoipa::path(get, path = "/", tag = "page",
    responses((status = 200, description = "the web page", content_type = "text/html", body = String)))]
#[get("/")]
pub async fn index() -> HttpResponse {
    page_response("text/html; charset=utf-8", INDEX_HTML)
}

/// `GET /assets/{name}`: one of the page's files; `not_found` for any other name.
#[utoipa::path(get, path = "/assets/{name}", tag = "page",
    params(("name" = String, Path, description = "a file of the page, e.g. app.js")),
    responses(
        (status = 200, description = "the file", content_type = "text/plain", body = String),
        (status = 404, description = "no such file", body = ErrorBody)))]
#[get("/assets/{name}")]
pub async fn asset(name: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let name = name.into_inner();
    ASSETS
        .iter()
        .find(|(file, _, _)| *file == name)
        .map(|(_, content_type, body)| page_response(content_type, body))
        .ok_or_else(|| ApiError::not_found("asset", &name))
}

/// `POST /api/csp-report`: a browser says the policy blocked something on the page. Counted
/// (`csp_reports_total`) and logged — only the directive and what was blocked, quoted and cut
/// short, since anyone can post here; answered 204 whatever it says (413 over 16 KiB).
#[utoipa::path(post, path = "/api/csp-report", tag = "page",
    request_body(content = Object, description = "a browser's violation report (browsers send it as application/csp-report or application/reports+json; any type is read)", content_type = "application/json"),
    responses(
        (status = 204, description = "counted"),
        (status = 413, description = "over 16 KiB", body = ErrorBody)))]
#[post("/api/csp-report")]
pub async fn csp_report(
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = small_body(payload, MAX_CSP_REPORT_BYTES).await?;
    state.metrics.csp_reports.inc();
    let report: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    // The report-uri format (`csp-report`), or the Reporting API's (`body`).
    let fields = report
        .get("csp-report")
        .or_else(|| report.get(0).and_then(|r| r.get("body")))
        .or_else(|| report.get("body"));
    let field = |names: &[&str]| -> String {
        let value = names
            .iter()
            .find_map(|name| fields.and_then(|f| f.get(*name)).and_then(|v| v.as_str()))
            .unwrap_or("?");
        value.chars().take(200).collect()
    };
    log::warn!(
        "the page's Content-Security-Policy blocked {:?} under {:?}",
        field(&["blocked-uri", "blockedURL"]),
        field(&["violated-directive", "effectiveDirective"]),
    );
    Ok(HttpResponse::NoContent().finish())
}

/// `body` with the page's security headers.
fn page_response(content_type: &'static str, body: &'static str) -> HttpResponse {
    let mut response = HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body);
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}
