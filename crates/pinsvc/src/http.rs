//! Routes, request bodies and responses of the API.
//!
//! One warp filter hands method, path, query and body to a route table, so every outcome,
//! including unknown paths (404), wrong methods (405 with `Allow`) and unreadable input (400,
//! 413), is answered with the spec's `{"error":{"reason","details"}}` body rather than warp's
//! plain-text rejections. A trailing or doubled slash reaches the same route as the clean path.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use cluster_types::ApiError;
use futures::StreamExt;
use futures::stream::BoxStream;
use http::header::{ALLOW, CONTENT_TYPE};
use http::{HeaderValue, Method, StatusCode};
use serde::Serialize;
use warp::Filter;
use warp::filters::BoxedFilter;

use crate::error::{Failure, bad_request};
use crate::model::PinObject;
use crate::query::{ListQuery, percent_decode};
use crate::service::PinningService;

/// What the API's filter produces: a complete HTTP response.
pub type Response = warp::reply::Response;

/// Largest accepted request body. A `Pin` with 1000 meta entries and 20 origins fits easily.
pub const MAX_BODY_BYTES: usize = 1 << 20;

type BodyStream = BoxStream<'static, Result<Bytes, warp::Error>>;

/// Every endpoint, with the request id still as text.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    List,
    Add,
    Get(String),
    Replace(String),
    Delete(String),
    Health,
}

/// Why no route matched.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Miss {
    NotFound,
    MethodNotAllowed(&'static str),
}

fn resolve(method: &Method, segs: &[String]) -> Result<Route, Miss> {
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    match (s.as_slice(), method.as_str()) {
        (["pins"], "GET") => Ok(Route::List),
        (["pins"], "POST") => Ok(Route::Add),
        (["pins"], _) => Err(Miss::MethodNotAllowed("GET, POST")),
        (["pins", id], "GET") => Ok(Route::Get(id.to_string())),
        (["pins", id], "POST") => Ok(Route::Replace(id.to_string())),
        (["pins", id], "DELETE") => Ok(Route::Delete(id.to_string())),
        (["pins", _], _) => Err(Miss::MethodNotAllowed("GET, POST, DELETE")),
        // Kept from the original for load balancers and monitoring; not part of the spec.
        (["health"], "GET" | "HEAD") => Ok(Route::Health),
        (["health"], _) => Err(Miss::MethodNotAllowed("GET, HEAD")),
        _ => Err(Miss::NotFound),
    }
}

impl PinningService {
    /// The whole API as one warp filter that never rejects.
    ///
    /// Authentication and CORS are not part of it: [`crate::serve_filter`] applies them
    /// (from [`crate::PinSvcConfig::security`]) before a request reaches this filter.
    pub fn filter(self: &Arc<Self>) -> BoxedFilter<(Response,)> {
        let svc = Arc::clone(self);
        let raw_query = warp::query::raw().or(warp::any().map(String::new)).unify();
        let declared_len = warp::header::optional::<u64>("content-length")
            .or(warp::any().map(|| None))
            .unify();
        let body = warp::body::stream()
            .map(box_body)
            .or(warp::any().map(|| None))
            .unify();
        never_rejects(
            warp::method()
                .and(warp::path::full())
                .and(raw_query)
                .and(declared_len)
                .and(body)
                .then(
                    move |method: Method,
                          path: warp::path::FullPath,
                          query: String,
                          len: Option<u64>,
                          body: Option<BodyStream>| {
                        let svc = Arc::clone(&svc);
                        async move { svc.handle(method, path.as_str(), &query, len, body).await }
                    },
                ),
        )
        .boxed()
    }

    async fn handle(
        &self,
        method: Method,
        raw_path: &str,
        raw_query: &str,
        declared_len: Option<u64>,
        body: Option<BodyStream>,
    ) -> Response {
        let segs = match decode_path(raw_path) {
            Ok(s) => s,
            Err(e) => return error_response(&e),
        };
        let route = match resolve(&method, &segs) {
            Ok(r) => r,
            Err(Miss::NotFound) => {
                return error_response(&ApiError::not_found(format!(
                    "no such endpoint: {raw_path}"
                )));
            }
            Err(Miss::MethodNotAllowed(allow)) => {
                let mut resp = error_response(&ApiError {
                    code: 405,
                    message: format!("{method} is not allowed on {raw_path}"),
                });
                resp.headers_mut()
                    .insert(ALLOW, HeaderValue::from_static(allow));
                return resp;
            }
        };
        tracing::trace!(?route, "routed pinning service request");
        let result = match route {
            Route::List => match ListQuery::parse(raw_query) {
                Ok(q) => self.list(&q).await.map(|r| json(StatusCode::OK, &r)),
                Err(e) => Err(e),
            },
            Route::Add => match read_pin(declared_len, body).await {
                Ok(pin) => self.add(pin).await.map(|s| json(StatusCode::ACCEPTED, &s)),
                Err(e) => Err(e),
            },
            Route::Get(id) => self.get(&id).await.map(|s| json(StatusCode::OK, &s)),
            Route::Replace(id) => match read_pin(declared_len, body).await {
                Ok(pin) => self
                    .replace(&id, pin)
                    .await
                    .map(|s| json(StatusCode::ACCEPTED, &s)),
                Err(e) => Err(e),
            },
            Route::Delete(id) => self.remove(&id).await.map(|()| empty(StatusCode::ACCEPTED)),
            Route::Health => Ok(empty(StatusCode::NO_CONTENT)),
        };
        result.unwrap_or_else(|e| error_response(&e))
    }
}

/// Reads and parses a `Pin` body of at most [`MAX_BODY_BYTES`], with or without a declared
/// length.
async fn read_pin(
    declared_len: Option<u64>,
    body: Option<BodyStream>,
) -> Result<PinObject, ApiError> {
    let too_large = || ApiError {
        code: 413,
        message: format!("request body is larger than {MAX_BODY_BYTES} bytes"),
    };
    if declared_len.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    let mut buf = BytesMut::new();
    if let Some(mut body) = body {
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| bad_request(format!("cannot read request body: {e}")))?;
            if buf.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(too_large());
            }
            buf.extend_from_slice(&chunk);
        }
    }
    PinObject::from_body(&buf)
}

/// Boxes warp's body stream, whose type cannot be named.
fn box_body<S, B>(s: S) -> Option<BodyStream>
where
    S: futures::Stream<Item = Result<B, warp::Error>> + Send + 'static,
    B: Buf,
{
    Some(
        s.map(|chunk| chunk.map(|mut b| b.copy_to_bytes(b.remaining())))
            .boxed(),
    )
}

/// Compile-time proof that a filter cannot reject.
fn never_rejects<F: Filter<Error = Infallible>>(f: F) -> F {
    f
}

/// Splits a path into decoded, non-empty segments.
fn decode_path(raw: &str) -> Result<Vec<String>, ApiError> {
    raw.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_decode(s, false)
                .ok_or_else(|| bad_request(format!("invalid path segment '{s}'")))
        })
        .collect()
}

fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(mut body) => {
            body.push(b'\n');
            with_body(status, body)
        }
        Err(e) => error_response(&ApiError::internal(format!("cannot encode response: {e}"))),
    }
}

fn empty(status: StatusCode) -> Response {
    let mut resp = Response::new(Vec::<u8>::new().into());
    *resp.status_mut() = status;
    resp
}

fn with_body(status: StatusCode, body: Vec<u8>) -> Response {
    let mut resp = Response::new(body.into());
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// The spec's failure body with the error's status (500 when that is not an error status).
pub(crate) fn error_response(e: &ApiError) -> Response {
    let status = StatusCode::from_u16(e.code)
        .ok()
        .filter(|s| s.is_client_error() || s.is_server_error())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status.is_server_error() {
        tracing::warn!(code = status.as_u16(), error = %e.message, "pinning service request failed");
    }
    let failure = Failure::from_api_error(&ApiError {
        code: status.as_u16(),
        message: e.message.clone(),
    });
    let mut body = serde_json::to_vec(&failure)
        .unwrap_or_else(|_| br#"{"error":{"reason":"INTERNAL_SERVER_ERROR"}}"#.to_vec());
    body.push(b'\n');
    with_body(status, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(m: Method, p: &str) -> Result<Route, Miss> {
        resolve(&m, &decode_path(p).unwrap())
    }

    #[test]
    fn routes() {
        assert_eq!(route(Method::GET, "/pins"), Ok(Route::List));
        assert_eq!(route(Method::GET, "/pins/"), Ok(Route::List));
        assert_eq!(route(Method::POST, "//pins"), Ok(Route::Add));
        assert_eq!(
            route(Method::GET, "/pins/abc"),
            Ok(Route::Get("abc".into()))
        );
        assert_eq!(
            route(Method::POST, "/pins/abc/"),
            Ok(Route::Replace("abc".into()))
        );
        assert_eq!(
            route(Method::DELETE, "/pins/abc"),
            Ok(Route::Delete("abc".into()))
        );
        assert_eq!(route(Method::HEAD, "/health"), Ok(Route::Health));
        assert_eq!(
            route(Method::PUT, "/pins"),
            Err(Miss::MethodNotAllowed("GET, POST"))
        );
        assert_eq!(
            route(Method::DELETE, "/pins"),
            Err(Miss::MethodNotAllowed("GET, POST"))
        );
        assert_eq!(route(Method::GET, "/"), Err(Miss::NotFound));
        assert_eq!(route(Method::GET, "/pins/a/b"), Err(Miss::NotFound));
        assert!(decode_path("/pins/%zz").is_err());
    }
}
