//! The web console door: one page at `/console`, its script and style compiled into the binary
//! from `ui/dist/` (built from `ui/src/` by `ui/build.mjs`; the test command rebuilds it and
//! fails when the committed bundle differs). The page itself holds no data and is served
//! without a key; everything it shows it asks the API for with the caller's key or token, so
//! the API's authentication, grants, policies and limits are the console's too.
//!
//! The answers carry a Content Security Policy that lets the page load and connect to nothing
//! but this server (and, for OpenID sign-in, its provider), run no inline script, and not be
//! framed. Style attributes are allowed (the grid positions rows with them, uPlot sizes its
//! canvas); style elements need the page's nonce.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use sha2::{Digest, Sha256};
use sluice_schemas::Config;

/// The page; `__NONCE__` becomes the response's style nonce (CodeMirror adds `<style>` elements).
const INDEX: &str = include_str!("../../ui/dist/index.html");
const SCRIPT: &[u8] = include_bytes!("../../ui/dist/console.js");
const STYLE: &[u8] = include_bytes!("../../ui/dist/console.css");

/// What the console's answers need from the config.
#[derive(Debug)]
pub struct Console {
    /// `/console/config.json`: how the page offers sign-in.
    settings: serde_json::Value,
    /// The provider's origin, which the page may connect to (discovery) and post its sign-in
    /// forms to.
    provider_origin: Option<String>,
    /// The provider's token endpoint's origin, read from its discovery document in the
    /// background ([`Console::discover`]); absent until then.
    token_origin: std::sync::OnceLock<String>,
    issuer: Option<String>,
}

/// The compiled-in script and style, digested (and gzipped) once per process, at first use.
static SCRIPT_ASSET: std::sync::LazyLock<Asset> =
    std::sync::LazyLock::new(|| Asset::new(SCRIPT, "text/javascript; charset=utf-8"));
static STYLE_ASSET: std::sync::LazyLock<Asset> =
    std::sync::LazyLock::new(|| Asset::new(STYLE, "text/css; charset=utf-8"));

/// One compiled-in file, with its digest and (made at its first request) its gzip form.
#[derive(Debug)]
struct Asset {
    body: &'static [u8],
    kind: &'static str,
    etag: String,
    gzip_etag: String,
    gzipped: std::sync::OnceLock<web::Bytes>,
}

impl Asset {
    fn new(body: &'static [u8], kind: &'static str) -> Self {
        let tag = etag(body);
        Self {
            body,
            kind,
            gzip_etag: format!("{}-gzip\"", tag.trim_end_matches('"')),
            etag: tag,
            gzipped: std::sync::OnceLock::new(),
        }
    }

    fn gzipped(&self) -> web::Bytes {
        self.gzipped
            .get_or_init(|| {
                use std::io::Write as _;
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
                // Writing to a Vec cannot fail.
                let _ = gz.write_all(self.body);
                web::Bytes::from(gz.finish().unwrap_or_default())
            })
            .clone()
    }
}

/// Whether `Accept-Encoding` takes gzip (and does not refuse it with `q=0`).
fn accepts_gzip(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',').any(|item| {
                let mut parts = item.split(';').map(str::trim);
                let coding = parts.next().unwrap_or_default();
                let refused = parts.any(|p| {
                    p.strip_prefix("q=")
                        .and_then(|q| q.parse::<f32>().ok())
                        .is_some_and(|q| q == 0.0)
                });
                (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
            })
        })
}

fn etag(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    format!("\"{}\"", hex::encode(&digest[..12]))
}

/// The origin of `url` (`scheme://host[:port]`, as the browser compares them), if it has one.
fn origin(url: &str) -> Option<String> {
    let origin = reqwest::Url::parse(url).ok()?.origin();
    origin.is_tuple().then(|| origin.ascii_serialization())
}

impl Console {
    /// The console of a server configured by `config`, where bare table names resolve in
    /// `defaults` (catalog, schema), with its Flight SQL and PostgreSQL doors bound where given
    /// (the page's connection snippets name them).
    pub fn new(
        config: &Config,
        defaults: (String, String),
        flight: Option<std::net::SocketAddr>,
        pg: Option<std::net::SocketAddr>,
    ) -> Self {
        let oidc = config.auth.oidc.as_ref().and_then(|oidc| {
            let client_id = config.console.oidc_client_id.clone()?;
            let issuer = config
                .console
                .oidc_issuer
                .clone()
                .or_else(|| oidc.issuers.first().map(|i| i.issuer.clone()))?;
            let scope = config.console.oidc_scope.clone().unwrap_or_else(|| {
                std::iter::once("openid".to_owned())
                    .chain(config.auth.scopes.iter().cloned())
                    .collect::<Vec<_>>()
                    .join(" ")
            });
            Some((issuer, client_id, scope))
        });
        let issuer = oidc.as_ref().map(|(issuer, ..)| issuer.clone());
        let provider_origin = issuer.as_deref().and_then(origin);
        let tls = config.server.tls.is_some();
        let settings = serde_json::json!({
            "defaults": {"catalog": defaults.0, "schema": defaults.1},
            "flight": flight.map(|a| format!("{}://{a}", if tls { "grpc+tls" } else { "grpc" })),
            "pg": pg.map(|a| format!("postgresql://{a}")),
            "oidc": oidc.map(|(issuer, client_id, scope)| serde_json::json!({
                "issuer": issuer,
                "client_id": client_id,
                "scope": scope,
                "resource": config.auth.resource,
            })),
        });
        Self {
            settings,
            provider_origin,
            token_origin: std::sync::OnceLock::new(),
            issuer,
        }
    }

    /// Reads the provider's token endpoint (when sign-in is configured) until it is found,
    /// every 30 s, so the page may connect to it where it is on another origin than the
    /// issuer (Cognito's is). Meanwhile the page's policy names the issuer's origin only.
    pub async fn discover(&self) {
        let Some(issuer) = self.issuer.as_deref() else {
            return;
        };
        loop {
            match crate::governance::oidc::token_endpoint(issuer).await {
                Ok(endpoint) => {
                    if let Some(o) = origin(&endpoint) {
                        let _ = self.token_origin.set(o);
                    }
                    return;
                }
                Err(why) => tracing::warn!(
                    issuer,
                    %why,
                    "The console could not read the provider's token endpoint; trying again in 30 s."
                ),
            }
            tokio::time::sleep(std::time::Duration::from_secs(30)).await;
        }
    }

    fn policy(&self, nonce: &str) -> String {
        let token_origin = self.token_origin.get().map(String::as_str);
        let provider = self
            .provider_origin
            .as_deref()
            .map(|o| format!(" {o}"))
            .unwrap_or_default();
        let token = token_origin
            .filter(|t| Some(*t) != self.provider_origin.as_deref())
            .map(|t| format!(" {t}"))
            .unwrap_or_default();
        format!(
            "default-src 'none'; script-src 'self'; style-src-elem 'self' 'nonce-{nonce}'; \
             style-src-attr 'unsafe-inline'; \
             img-src 'self' data: blob:; connect-src 'self'{provider}{token}; \
             form-action 'self'{provider}; base-uri 'none'; frame-ancestors 'none'"
        )
    }
}

/// Registers the console's routes (none when `[console] enabled = false`).
pub fn routes(enabled: bool) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        if !enabled {
            return;
        }
        cfg.service(web::resource(["/console", "/console/"]).route(web::get().to(page)))
            .service(web::resource("/console/config.json").route(web::get().to(settings)))
            .service(web::resource("/console/{file}").route(web::get().to(asset)));
    }
}

fn secured(mut resp: HttpResponse, policy: &str) -> HttpResponse {
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(policy) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}

/// `GET /console`: the page, with a fresh style nonce.
async fn page(console: web::Data<Console>) -> HttpResponse {
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let body = INDEX.replace("__NONCE__", &nonce);
    let resp = HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body);
    secured(resp, &console.policy(&nonce))
}

/// `GET /console/config.json`: how the page offers sign-in.
async fn settings(console: web::Data<Console>) -> HttpResponse {
    let resp = HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .json(&console.settings);
    secured(resp, &console.policy("-"))
}

/// `GET /console/console.js` and `/console/console.css`, revalidated by their digest, gzipped
/// for clients that accept it.
async fn asset(
    req: HttpRequest,
    file: web::Path<String>,
    console: web::Data<Console>,
) -> HttpResponse {
    let asset = match file.as_str() {
        "console.js" => &*SCRIPT_ASSET,
        "console.css" => &*STYLE_ASSET,
        _ => {
            return crate::error::ApiError::not_found(
                crate::error::Code::NotFound,
                format!("no console file {file}"),
            )
            .error_response();
        }
    };
    let gzip = accepts_gzip(&req);
    let tag = if gzip { &asset.gzip_etag } else { &asset.etag };
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag));
    let mut resp = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    resp.insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::VARY, "Accept-Encoding"))
        .insert_header((header::ETAG, tag.as_str()));
    let resp = if fresh {
        resp.finish()
    } else if gzip {
        resp.insert_header((header::CONTENT_ENCODING, "gzip"))
            .content_type(asset.kind)
            .body(asset.gzipped())
    } else {
        resp.content_type(asset.kind).body(asset.body)
    };
    secured(resp, &console.policy("-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_and_policy() {
        assert_eq!(
            origin("https://idp.example.com/realms/x").as_deref(),
            Some("https://idp.example.com")
        );
        assert_eq!(
            origin("http://127.0.0.1:3000").as_deref(),
            Some("http://127.0.0.1:3000")
        );
        assert_eq!(origin("nope"), None);
        let defaults = ("local".to_owned(), "public".to_owned());
        let c = Console::new(&Config::default(), defaults, None, None);
        assert_eq!(
            c.settings,
            serde_json::json!({"oidc": null, "flight": null, "pg": null,
                "defaults": {"catalog": "local", "schema": "public"}})
        );
        let p = c.policy("abc");
        assert!(p.contains("connect-src 'self';"), "{p}");
        assert!(p.contains("'nonce-abc'"), "{p}");
        // A token endpoint on another origin than the issuer's may be connected to.
        let _ = c.token_origin.set("https://auth.example.com".to_owned());
        let p = c.policy("abc");
        assert!(
            p.contains("connect-src 'self' https://auth.example.com;"),
            "{p}"
        );
        assert!(INDEX.contains("__NONCE__"), "the page takes the nonce");
    }
}
