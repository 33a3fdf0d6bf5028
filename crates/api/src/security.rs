//! Authentication (basic and JWT), CORS and the `/token` endpoint, shared by every HTTP API of
//! a peer (§2.3).
//!
//! The checks run in the connection loop ([`crate::server`]) before a request reaches the
//! route table, so an unauthenticated request can learn nothing about the routes or the pinset:
//! every such request gets the same 401. A [`Security`] is built once per API with the
//! API's own error shape ([`ErrorRenderer`]): `{"code","message"}` on the REST API, the
//! spec's `{"error":{"reason","details"}}` on the Pinning Service API.
//!
//! Behaviour, as in the original unless noted:
//! * With `basic_auth_credentials` set, every request except `OPTIONS` and `GET|HEAD /health`
//!   needs `Authorization: Basic …` or `Authorization: Bearer <jwt>`. Failures are 401 with
//!   `WWW-Authenticate` challenges for realm "Restricted IPFS Cluster API".
//! * `POST /token` (basic auth only) answers `{"token": "<jwt>"}`: HS256 signed with the
//!   user's password, `iss` = user. Unlike the original, tokens carry `exp` (issue time plus
//!   [`SecurityConfig::token_ttl`]) and tokens without it are refused.
//! * CORS follows rs/cors with the `cors_*` keys: pre-flights are answered here, without
//!   authentication; actual requests from an allowed origin get the allow/expose headers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, AUTHORIZATION, CONTENT_TYPE,
    ORIGIN, VARY, WWW_AUTHENTICATE,
};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::server::WarpResponse;

/// The realm named in every `WWW-Authenticate` challenge.
pub const REALM: &str = "Restricted IPFS Cluster API";

/// How long a token from `POST /token` stays valid unless configured otherwise.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// Request headers rs/cors allows when `cors_allowed_headers` is empty.
const DEFAULT_CORS_HEADERS: [&str; 4] = ["Origin", "Accept", "Content-Type", "X-Requested-With"];

/// CORS settings (the `cors_*` keys). Defaults match the original's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsConfig {
    /// Origins allowed; `*` allows all, one `*` inside an entry is a wildcard.
    pub allowed_origins: Vec<String>,
    /// Methods allowed for cross-origin requests (`OPTIONS` always is).
    pub allowed_methods: Vec<String>,
    /// Request headers a pre-flight may ask for; empty means rs/cors's default set.
    pub allowed_headers: Vec<String>,
    /// Response headers exposed to cross-origin scripts.
    pub exposed_headers: Vec<String>,
    /// Whether `Access-Control-Allow-Credentials: true` is sent.
    pub allow_credentials: bool,
    /// How long a browser may cache a pre-flight answer (zero: header not sent).
    pub max_age: Duration,
}

impl Default for CorsConfig {
    fn default() -> Self {
        CorsConfig {
            allowed_origins: vec!["*".into()],
            allowed_methods: vec!["GET".into()],
            allowed_headers: Vec::new(),
            exposed_headers: [
                "Content-Type",
                "X-Stream-Output",
                "X-Chunked-Output",
                "X-Content-Length",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            allow_credentials: true,
            max_age: Duration::ZERO,
        }
    }
}

/// Who may call an API and from which web origins.
#[derive(Clone, PartialEq, Eq)]
pub struct SecurityConfig {
    /// user → password (`basic_auth_credentials`); `None` disables authentication.
    pub basic_auth: Option<BTreeMap<String, String>>,
    /// Lifetime of tokens issued by `POST /token`.
    pub token_ttl: Duration,
    /// CORS settings.
    pub cors: CorsConfig,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            basic_auth: None,
            token_ttl: DEFAULT_TOKEN_TTL,
            cors: CorsConfig::default(),
        }
    }
}

impl std::fmt::Debug for SecurityConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Passwords stay out of logs.
        f.debug_struct("SecurityConfig")
            .field(
                "users",
                &self
                    .basic_auth
                    .as_ref()
                    .map(|m| m.keys().collect::<Vec<_>>()),
            )
            .field("token_ttl", &self.token_ttl)
            .field("cors", &self.cors)
            .finish()
    }
}

/// Builds an API's error response from a status and a message, in that API's error shape.
pub type ErrorRenderer = Arc<dyn Fn(StatusCode, &str) -> WarpResponse + Send + Sync>;

/// The checks of one API: authentication, CORS and `/token`.
pub struct Security {
    cfg: SecurityConfig,
    render: ErrorRenderer,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

/// What the connection loop does with a request after [`Security::gate`].
pub(crate) struct Gate {
    /// Answer with this instead of routing the request.
    pub(crate) respond: Option<WarpResponse>,
    /// CORS headers to add to whatever answer the request gets.
    pub(crate) cors: HeaderMap,
}

/// The claims of the tokens issued here.
#[derive(Serialize, Deserialize)]
struct Claims {
    iss: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat: Option<u64>,
    #[serde(default)]
    exp: Option<u64>,
}

#[derive(Deserialize)]
struct JwtHeader {
    alg: String,
}

/// Why a bearer token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url parts with JSON header and claims.
    #[error("malformed token")]
    Malformed,
    /// Signed with something other than HS256.
    #[error("unsupported signing algorithm")]
    Algorithm,
    /// The issuer is not a configured user.
    #[error("unknown issuer")]
    UnknownIssuer,
    /// The signature does not match the issuer's password.
    #[error("bad signature")]
    Signature,
    /// No `exp` claim, or it has passed.
    #[error("token expired or without expiry")]
    Expired,
}

type HmacSha256 = Hmac<Sha256>;

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn mac(password: &str) -> HmacSha256 {
    // HMAC takes keys of any length, so this cannot fail.
    <HmacSha256 as Mac>::new_from_slice(password.as_bytes())
        .unwrap_or_else(|_| unreachable!("hmac accepts any key length"))
}

/// Signs an HS256 token for `user` with `password`, expiring at `expires_at` (unix seconds).
pub fn issue_token(user: &str, password: &str, expires_at: u64) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = Claims {
        iss: user.to_string(),
        iat: Some(now_unix()),
        exp: Some(expires_at),
    };
    let claims = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap_or_default());
    let signing_input = format!("{header}.{claims}");
    let mut m = mac(password);
    m.update(signing_input.as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(m.finalize().into_bytes());
    format!("{signing_input}.{sig}")
}

/// Checks an HS256 token against the users' passwords; returns the user it was issued to.
pub fn verify_token(
    users: &BTreeMap<String, String>,
    token: &str,
    now: u64,
) -> Result<String, TokenError> {
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let header: JwtHeader = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(h)
            .map_err(|_| TokenError::Malformed)?,
    )
    .map_err(|_| TokenError::Malformed)?;
    if header.alg != "HS256" {
        return Err(TokenError::Algorithm);
    }
    let claims: Claims = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(c)
            .map_err(|_| TokenError::Malformed)?,
    )
    .map_err(|_| TokenError::Malformed)?;
    let sig = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| TokenError::Malformed)?;
    let password = users.get(&claims.iss).ok_or(TokenError::UnknownIssuer)?;
    let mut m = mac(password);
    m.update(h.as_bytes());
    m.update(b".");
    m.update(c.as_bytes());
    m.verify_slice(&sig).map_err(|_| TokenError::Signature)?;
    match claims.exp {
        Some(exp) if exp > now => Ok(claims.iss),
        _ => Err(TokenError::Expired),
    }
}

/// Compares in time independent of where the inputs differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The credentials a request presents.
enum Presented {
    None,
    Basic(String, String),
    Bearer(String),
}

fn presented(headers: &HeaderMap) -> Presented {
    let Some(value) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return Presented::None;
    };
    let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let Ok(decoded) = STANDARD.decode(rest) else {
            return Presented::None;
        };
        let Ok(text) = String::from_utf8(decoded) else {
            return Presented::None;
        };
        match text.split_once(':') {
            Some((u, p)) => Presented::Basic(u.to_string(), p.to_string()),
            None => Presented::None,
        }
    } else if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
        Presented::Bearer(rest.to_string())
    } else {
        Presented::None
    }
}

fn challenge(scheme: &str, error: Option<&str>) -> HeaderValue {
    let text = match error {
        Some(e) => format!("{scheme} realm=\"{REALM}\", error=\"{e}\""),
        None => format!("{scheme} realm=\"{REALM}\""),
    };
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("Basic"))
}

/// Splits a path into percent-decoded, non-empty segments, as the routers see it.
fn segments(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            let bytes = s.as_bytes();
            let mut out = Vec::with_capacity(bytes.len());
            let mut i = 0;
            while i < bytes.len() {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok());
                match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
                    (b'%', Some(b)) => {
                        out.push(b);
                        i += 3;
                    }
                    (b, _) => {
                        out.push(b);
                        i += 1;
                    }
                }
            }
            String::from_utf8_lossy(&out).into_owned()
        })
        .collect()
}

impl Security {
    /// Builds the checks of one API, answering failures with `render`.
    pub fn new(cfg: SecurityConfig, render: ErrorRenderer) -> Arc<Self> {
        Arc::new(Security { cfg, render })
    }

    /// Whether authentication is required.
    pub fn auth_enabled(&self) -> bool {
        self.cfg.basic_auth.is_some()
    }

    /// Decides, before routing, whether a request is answered here and which CORS headers its
    /// answer carries.
    pub(crate) fn gate(&self, method: &Method, path: &str, headers: &HeaderMap) -> Gate {
        let origin = headers.get(ORIGIN).and_then(|v| v.to_str().ok());
        if *method == Method::OPTIONS
            && let Some(origin) = origin
            && headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD)
        {
            return Gate {
                respond: Some(self.preflight(origin, headers)),
                cors: HeaderMap::new(),
            };
        }
        let cors = origin
            .map(|o| self.actual_cors(o, method))
            .unwrap_or_default();
        let respond = self.auth(method, path, headers);
        Gate { respond, cors }
    }

    /// The authentication answer, or `None` when the request may proceed to the routes.
    fn auth(&self, method: &Method, path: &str, headers: &HeaderMap) -> Option<WarpResponse> {
        let users = self.cfg.basic_auth.as_ref()?;
        if *method == Method::OPTIONS {
            return None;
        }
        let segs = segments(path);
        let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
        if matches!(segs.as_slice(), ["health"])
            && (*method == Method::GET || *method == Method::HEAD)
        {
            return None;
        }
        let is_token = matches!(segs.as_slice(), ["token"]);
        match presented(headers) {
            Presented::Basic(user, pass) => {
                let ok = users
                    .get(&user)
                    .is_some_and(|p| constant_time_eq(p.as_bytes(), pass.as_bytes()));
                if !ok {
                    tracing::debug!(%user, "basic auth refused");
                    return Some(
                        self.unauthorized(
                            "unauthorized: access denied",
                            &[challenge("Basic", None)],
                        ),
                    );
                }
                if is_token {
                    return Some(self.token(method, &user, users));
                }
                None
            }
            Presented::Bearer(token) => match verify_token(users, &token, now_unix()) {
                Ok(_) if is_token => Some(self.unauthorized(
                    "unauthorized: a token can only be requested with basic auth",
                    &[challenge("Basic", None)],
                )),
                Ok(_) => None,
                Err(e) => {
                    tracing::debug!(error = %e, "bearer token refused");
                    Some(self.unauthorized(
                        "unauthorized: invalid token",
                        &[challenge("Bearer", Some("invalid_token"))],
                    ))
                }
            },
            Presented::None => Some(self.unauthorized(
                "unauthorized: no auth provided",
                &[challenge("Bearer", None), challenge("Basic", None)],
            )),
        }
    }

    fn unauthorized(&self, message: &str, challenges: &[HeaderValue]) -> WarpResponse {
        let mut resp = (self.render)(StatusCode::UNAUTHORIZED, message);
        for c in challenges {
            resp.headers_mut().append(WWW_AUTHENTICATE, c.clone());
        }
        resp
    }

    /// `POST /token` for an authenticated user.
    fn token(&self, method: &Method, user: &str, users: &BTreeMap<String, String>) -> WarpResponse {
        if *method != Method::POST {
            let mut resp = (self.render)(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
            resp.headers_mut()
                .insert(http::header::ALLOW, HeaderValue::from_static("POST"));
            return resp;
        }
        let password = users.get(user).map(String::as_str).unwrap_or_default();
        let token = issue_token(
            user,
            password,
            now_unix().saturating_add(self.cfg.token_ttl.as_secs()),
        );
        tracing::info!(%user, ttl_secs = self.cfg.token_ttl.as_secs(), "issued api token");
        let mut body =
            serde_json::to_vec(&serde_json::json!({ "token": token })).unwrap_or_default();
        body.push(b'\n');
        let mut resp = WarpResponse::new(body.into());
        resp.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        resp
    }

    fn origin_allowed(&self, origin: &str) -> bool {
        let origin = origin.to_ascii_lowercase();
        self.cfg.cors.allowed_origins.iter().any(|allowed| {
            let allowed = allowed.to_ascii_lowercase();
            if allowed == "*" {
                return true;
            }
            match allowed.split_once('*') {
                Some((pre, post)) => {
                    origin.len() >= pre.len() + post.len()
                        && origin.starts_with(pre)
                        && origin.ends_with(post)
                }
                None => allowed == origin,
            }
        })
    }

    fn method_allowed(&self, method: &str) -> bool {
        method.eq_ignore_ascii_case("OPTIONS")
            || self
                .cfg
                .cors
                .allowed_methods
                .iter()
                .any(|m| m.eq_ignore_ascii_case(method))
    }

    fn headers_allowed(&self, requested: &str) -> bool {
        let configured = &self.cfg.cors.allowed_headers;
        if configured.iter().any(|h| h == "*") {
            return true;
        }
        requested
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .all(|h| {
                h.eq_ignore_ascii_case("origin")
                    || if configured.is_empty() {
                        DEFAULT_CORS_HEADERS
                            .iter()
                            .any(|d| d.eq_ignore_ascii_case(h))
                    } else {
                        configured.iter().any(|d| d.eq_ignore_ascii_case(h))
                    }
            })
    }

    /// The `Access-Control-Allow-Origin` value: the origin itself when credentials are allowed
    /// (browsers refuse `*` with credentials), `*` when every origin is allowed otherwise.
    fn allow_origin(&self, origin: &str) -> HeaderValue {
        let all = self.cfg.cors.allowed_origins.iter().any(|o| o == "*");
        if all && !self.cfg.cors.allow_credentials {
            return HeaderValue::from_static("*");
        }
        HeaderValue::from_str(origin).unwrap_or_else(|_| HeaderValue::from_static("null"))
    }

    /// Answers a CORS pre-flight: 204, with the allow headers only when everything asked for
    /// is allowed (a browser then refuses the actual request).
    fn preflight(&self, origin: &str, headers: &HeaderMap) -> WarpResponse {
        let mut resp = WarpResponse::new(Vec::new().into());
        *resp.status_mut() = StatusCode::NO_CONTENT;
        let h = resp.headers_mut();
        h.append(VARY, HeaderValue::from_static("Origin"));
        h.append(
            VARY,
            HeaderValue::from_static("Access-Control-Request-Method"),
        );
        h.append(
            VARY,
            HeaderValue::from_static("Access-Control-Request-Headers"),
        );
        let req_method = headers
            .get(ACCESS_CONTROL_REQUEST_METHOD)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let req_headers: Vec<&str> = headers
            .get_all(ACCESS_CONTROL_REQUEST_HEADERS)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let req_headers = req_headers.join(",");
        if !self.origin_allowed(origin)
            || !self.method_allowed(req_method)
            || !self.headers_allowed(&req_headers)
        {
            tracing::debug!(%origin, method = %req_method, headers = %req_headers, "cors pre-flight refused");
            return resp;
        }
        h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, self.allow_origin(origin));
        if let Ok(v) = HeaderValue::from_str(&req_method.to_ascii_uppercase()) {
            h.insert(ACCESS_CONTROL_ALLOW_METHODS, v);
        }
        if !req_headers.is_empty()
            && let Ok(v) = HeaderValue::from_str(&req_headers)
        {
            h.insert(ACCESS_CONTROL_ALLOW_HEADERS, v);
        }
        if self.cfg.cors.allow_credentials {
            h.insert(
                ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        if !self.cfg.cors.max_age.is_zero() {
            h.insert(
                ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from(self.cfg.cors.max_age.as_secs()),
            );
        }
        resp
    }

    /// CORS headers of an actual (non-pre-flight) cross-origin request.
    fn actual_cors(&self, origin: &str, method: &Method) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(VARY, HeaderValue::from_static("Origin"));
        if !self.origin_allowed(origin) || !self.method_allowed(method.as_str()) {
            return h;
        }
        h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, self.allow_origin(origin));
        if !self.cfg.cors.exposed_headers.is_empty()
            && let Ok(v) = HeaderValue::from_str(&self.cfg.cors.exposed_headers.join(", "))
        {
            h.insert(ACCESS_CONTROL_EXPOSE_HEADERS, v);
        }
        if self.cfg.cors.allow_credentials {
            h.insert(
                ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users() -> BTreeMap<String, String> {
        [("alice".to_string(), "secret".to_string())]
            .into_iter()
            .collect()
    }

    fn sec(cors: CorsConfig) -> Arc<Security> {
        let render: ErrorRenderer = Arc::new(|status, msg| {
            let mut r = WarpResponse::new(msg.to_string().into());
            *r.status_mut() = status;
            r
        });
        Security::new(
            SecurityConfig {
                basic_auth: Some(users()),
                token_ttl: Duration::from_secs(60),
                cors,
            },
            render,
        )
    }

    #[test]
    fn tokens_round_trip_and_fail_closed() {
        let now = now_unix();
        let t = issue_token("alice", "secret", now + 60);
        assert_eq!(verify_token(&users(), &t, now), Ok("alice".to_string()));
        assert_eq!(
            verify_token(&users(), &t, now + 61),
            Err(TokenError::Expired)
        );
        assert_eq!(
            verify_token(&users(), &issue_token("alice", "wrong", now + 60), now),
            Err(TokenError::Signature)
        );
        assert_eq!(
            verify_token(&users(), &issue_token("bob", "secret", now + 60), now),
            Err(TokenError::UnknownIssuer)
        );
        assert_eq!(
            verify_token(&users(), "a.b", now),
            Err(TokenError::Malformed)
        );
        // A token without exp (as the original issues) is refused.
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let claims = URL_SAFE_NO_PAD.encode(br#"{"iss":"alice"}"#);
        let mut m = mac("secret");
        m.update(format!("{header}.{claims}").as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(m.finalize().into_bytes());
        assert_eq!(
            verify_token(&users(), &format!("{header}.{claims}.{sig}"), now),
            Err(TokenError::Expired)
        );
        // alg=none is refused.
        let none = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
        assert_eq!(
            verify_token(&users(), &format!("{none}.{claims}."), now),
            Err(TokenError::Algorithm)
        );
    }

    #[test]
    fn health_and_options_skip_auth_others_do_not() {
        let s = sec(CorsConfig::default());
        let h = HeaderMap::new();
        assert!(s.gate(&Method::GET, "/health", &h).respond.is_none());
        assert!(s.gate(&Method::HEAD, "/health/", &h).respond.is_none());
        assert!(s.gate(&Method::OPTIONS, "/pins", &h).respond.is_none());
        assert_eq!(
            s.gate(&Method::GET, "/health/graph", &h)
                .respond
                .unwrap()
                .status(),
            401
        );
        assert_eq!(
            s.gate(&Method::POST, "/health", &h)
                .respond
                .unwrap()
                .status(),
            401
        );
        assert_eq!(
            s.gate(&Method::GET, "/%69d", &h).respond.unwrap().status(),
            401
        );
    }

    #[test]
    fn cors_matching() {
        let s = sec(CorsConfig {
            allowed_origins: vec!["https://*.example.com".into()],
            allowed_methods: vec!["GET".into(), "POST".into()],
            ..CorsConfig::default()
        });
        assert!(s.origin_allowed("https://app.example.com"));
        assert!(!s.origin_allowed("https://example.org"));
        assert!(s.method_allowed("post") && !s.method_allowed("DELETE"));
        assert!(s.headers_allowed("content-type, Origin"));
        assert!(!s.headers_allowed("Authorization"));
        let mut h = HeaderMap::new();
        h.insert(ORIGIN, HeaderValue::from_static("https://app.example.com"));
        h.insert(
            ACCESS_CONTROL_REQUEST_METHOD,
            HeaderValue::from_static("POST"),
        );
        let resp = s.gate(&Method::OPTIONS, "/pins", &h).respond.unwrap();
        assert_eq!(resp.status(), 204);
        assert_eq!(
            resp.headers()[ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://app.example.com"
        );
        h.insert(
            ACCESS_CONTROL_REQUEST_METHOD,
            HeaderValue::from_static("DELETE"),
        );
        let resp = s.gate(&Method::OPTIONS, "/pins", &h).respond.unwrap();
        assert!(!resp.headers().contains_key(ACCESS_CONTROL_ALLOW_ORIGIN));
    }
}
