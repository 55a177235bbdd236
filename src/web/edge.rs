//! What every request meets before its route: security headers on every answer, the browser
//! origin policy (a request whose `Origin` is neither the server's own nor listed in
//! `http.allowed_origins` is refused 403 `forbidden` outside dev mode; CORS for the listed
//! ones), `HEAD` answered as `GET` without a body, and `OPTIONS` answered with the methods a
//! path takes.
//!
//! A request without `Origin` is not a browser's cross-site request and is never refused for
//! it: command-line clients, the load client and other servers send none.

use actix_cors::Cors;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{RequestHead, ServiceRequest, ServiceResponse};
use actix_web::http::{Method, header};
use actix_web::middleware::{DefaultHeaders, Next};
use actix_web::{HttpResponse, ResponseError, web};

use super::AppState;
use super::error::ApiError;
use crate::error::ErrorCode;

/// Which browser origins may use the server.
#[derive(Debug, Clone)]
pub struct OriginPolicy {
    /// `scheme://host[:port]`, lower case, besides the server's own.
    listed: Vec<String>,
    /// Dev mode: every origin (a dev token is anyone's for the asking anyway).
    any: bool,
}

impl OriginPolicy {
    /// The configured list; `dev` allows every origin.
    pub fn new(listed: &[String], dev: bool) -> Self {
        Self {
            listed: listed
                .iter()
                .map(|origin| origin.trim_end_matches('/').to_ascii_lowercase())
                .collect(),
            any: dev,
        }
    }

    /// Whether a request from `origin` to a server reached as `host` is served.
    pub fn allows(&self, origin: &str, host: Option<&str>) -> bool {
        let origin = origin.to_ascii_lowercase();
        if self.any || self.listed.contains(&origin) {
            return true;
        }
        let authority = origin
            .strip_prefix("https://")
            .or_else(|| origin.strip_prefix("http://"));
        matches!((authority, host), (Some(a), Some(h)) if a == h.to_ascii_lowercase())
    }

    /// Whether `head` comes from an origin served (none: not a browser's cross-site request).
    fn allows_request(&self, head: &RequestHead) -> bool {
        let Some(origin) = head.headers.get(header::ORIGIN) else {
            return true;
        };
        let host = head
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| head.uri.authority().map(|a| a.as_str()));
        origin
            .to_str()
            .is_ok_and(|origin| self.allows(origin, host))
    }

    /// CORS for the origins served: the headers a browser needs to call the API from them.
    pub fn cors(&self) -> Cors {
        let policy = self.clone();
        Cors::default()
            .allowed_origin_fn(move |_, head| policy.allows_request(head))
            .allowed_methods(["GET", "POST", "DELETE"])
            .allowed_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::HeaderName::from_static("idempotency-key"),
            ])
            .expose_headers([header::RETRY_AFTER])
            .max_age(3600)
    }
}

/// Headers every answer carries unless its route set its own (the page sets its CSP).
pub fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::X_FRAME_OPTIONS, "DENY"))
        .add((header::REFERRER_POLICY, "no-referrer"))
        .add(("Cross-Origin-Resource-Policy", "same-origin"))
        .add((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; frame-ancestors 'none'",
        ))
}

/// Refuses a request from a browser origin not served, before CORS and the routes see it.
pub async fn origin_guard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let allowed = req
        .app_data::<web::Data<AppState>>()
        .is_none_or(|state| state.origins.allows_request(req.head()));
    if allowed {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    }
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .unwrap_or("?")
        .to_owned();
    state_metric(&req, "origin");
    let refusal = ApiError::new(
        ErrorCode::Forbidden,
        format!(
            "requests from the origin {origin:?} are not served here; an operator can list it \
             in http.allowed_origins"
        ),
    );
    Ok(req.into_response(refusal.error_response()))
}

/// Counts a request refused at the edge, by why.
fn state_metric(req: &ServiceRequest, why: &str) {
    if let Some(state) = req.app_data::<web::Data<AppState>>() {
        state.metrics.edge_refusals.with_label_values(&[why]).inc();
    }
}

/// `HEAD` is routed as `GET` (actix-http leaves the body out of a `HEAD` answer, keeping its
/// length); `OPTIONS` without CORS preflight headers is answered 204 with the path's `Allow`.
pub async fn head_and_options(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if req.method() == Method::HEAD {
        req.head_mut().method = Method::GET;
    }
    let allow = allowed_methods(req.path());
    if req.method() == Method::OPTIONS {
        let response = match allow {
            Some(allow) => HttpResponse::NoContent()
                .insert_header((header::ALLOW, allow))
                .finish(),
            None => ApiError::not_found("path", req.path()).error_response(),
        };
        return Ok(req.into_response(response));
    }
    if let Some(allow) = allow
        && !allow.split(", ").any(|m| m == req.method().as_str())
    {
        let refusal = ApiError::new(
            ErrorCode::MethodNotAllowed,
            format!("{} takes {allow}, not {}", req.path(), req.method()),
        );
        let mut response = refusal.error_response();
        if let Ok(value) = header::HeaderValue::from_str(&allow) {
            response.headers_mut().insert(header::ALLOW, value);
        }
        return Ok(req.into_response(response));
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_boxed_body)
}

/// Every route: its path as the OpenAPI document writes it (`{…}` one segment, which may end
/// in a fixed suffix) and the methods it takes besides HEAD and OPTIONS. The OpenAPI test
/// checks the document against this list, and `OPTIONS` answers from it.
pub const ROUTES: &[(&str, &[&str])] = &[
    ("/", &["GET"]),
    ("/healthz", &["GET"]),
    ("/readyz", &["GET"]),
    ("/metrics", &["GET"]),
    ("/ws", &["GET"]),
    ("/assets/{name}", &["GET"]),
    ("/api/openapi.json", &["GET"]),
    ("/api/usage", &["POST", "DELETE"]),
    ("/api/usage/summary", &["GET"]),
    ("/api/limits", &["GET"]),
    ("/api/export", &["GET"]),
    ("/api/threads", &["GET"]),
    ("/api/threads/{id}", &["DELETE"]),
    ("/api/threads/{id}/events", &["GET"]),
    ("/api/runs/{id}", &["GET"]),
    ("/api/reports/{id}.md", &["GET"]),
    ("/api/reports/{id}.html", &["GET"]),
    ("/api/account", &["DELETE"]),
    ("/api/dev/token", &["POST"]),
    ("/api/csp-report", &["POST"]),
];

/// Whether `path` is an instance of the route `template`.
fn matches(template: &str, path: &str) -> bool {
    let (template, path): (Vec<&str>, Vec<&str>) =
        (template.split('/').collect(), path.split('/').collect());
    template.len() == path.len()
        && template
            .iter()
            .zip(&path)
            .all(|(t, p)| match t.split_once('}') {
                Some((_, suffix)) if t.starts_with('{') => {
                    p.len() > suffix.len() && p.ends_with(suffix)
                }
                _ => t == p,
            })
}

/// The methods `path` is served with, for `Allow`; `None` for a path with no route.
pub fn allowed_methods(path: &str) -> Option<String> {
    let (_, methods) = ROUTES
        .iter()
        .find(|(template, _)| matches(template, path))?;
    let mut allow: Vec<&str> = Vec::new();
    for method in *methods {
        allow.push(method);
        if *method == "GET" {
            allow.push("HEAD");
        }
    }
    allow.push("OPTIONS");
    Some(allow.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_servers_own_origin_and_listed_ones_are_served() {
        let policy = OriginPolicy::new(&[String::from("https://App.example.com/")], false);
        assert!(policy.allows("http://127.0.0.1:8080", Some("127.0.0.1:8080")));
        assert!(policy.allows("https://enclave.example", Some("enclave.example")));
        assert!(policy.allows("https://app.example.com", Some("enclave.example")));
        assert!(!policy.allows("http://127.0.0.1:8081", Some("127.0.0.1:8080")));
        assert!(!policy.allows("https://evil.example", Some("enclave.example")));
        assert!(!policy.allows("null", Some("enclave.example")));
        assert!(!policy.allows("https://enclave.example", None));
        assert!(OriginPolicy::new(&[], true).allows("https://evil.example", None));
    }

    #[test]
    fn allow_lists_each_paths_methods() {
        let allow = |path| allowed_methods(path);
        assert_eq!(
            allow("/api/usage").as_deref(),
            Some("POST, DELETE, OPTIONS")
        );
        assert_eq!(allow("/api/threads/t1").as_deref(), Some("DELETE, OPTIONS"));
        assert_eq!(
            allow("/api/threads/t1/events").as_deref(),
            Some("GET, HEAD, OPTIONS")
        );
        assert_eq!(
            allow("/api/reports/r1.md").as_deref(),
            Some("GET, HEAD, OPTIONS")
        );
        assert_eq!(allow("/api/reports/.md"), None);
        assert_eq!(allow("/").as_deref(), Some("GET, HEAD, OPTIONS"));
        assert_eq!(allow("/nope"), None);
    }
}
