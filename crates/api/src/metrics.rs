//! The Prometheus endpoint (`prometheus_endpoint`, port 8888): `GET /metrics` and nothing else.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cluster_types::ApiError;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use tokio::task::JoinHandle;
use warp::Filter;

use crate::error::ApiServerError;
use crate::seam::ClusterApi;
use crate::server::{self, ServerOptions, WarpResponse};

/// Content type of the classic Prometheus text format.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Content type of the OpenMetrics text format (what `prometheus-client` renders).
const OPENMETRICS_TEXT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Starts the metrics endpoint on `listen` and serves it until `shutdown` resolves.
///
/// `GET /metrics` answers `prometheus_text()`, labelled OpenMetrics when the text ends with the
/// OpenMetrics `# EOF` marker and classic Prometheus text otherwise. Other paths are 404.
pub async fn serve_metrics(
    listen: SocketAddr,
    api: Arc<dyn ClusterApi>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(SocketAddr, JoinHandle<()>), ApiServerError> {
    let filter = warp::method()
        .and(warp::path::full())
        .then(move |method: Method, path: warp::path::FullPath| {
            let api = api.clone();
            async move { metrics_response(api, method, path.as_str()).await }
        })
        .boxed();
    let opts = ServerOptions {
        name: "metrics",
        extra_headers: HeaderMap::new(),
        max_header_bytes: 4096,
        read_header_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(120),
    };
    server::serve(listen, opts, filter, shutdown).await
}

async fn metrics_response(api: Arc<dyn ClusterApi>, method: Method, path: &str) -> WarpResponse {
    if path.trim_end_matches('/') != "/metrics" {
        return error(ApiError::not_found("not found"));
    }
    if method != Method::GET && method != Method::HEAD {
        return error(ApiError {
            code: 405,
            message: "method not allowed".into(),
        });
    }
    // Rendering walks every metric family and may take locks: keep it off the async workers.
    let text = match tokio::task::spawn_blocking(move || api.prometheus_text()).await {
        Ok(text) => text,
        Err(e) => {
            tracing::error!(error = %e, "rendering metrics failed");
            return error(ApiError::internal("rendering metrics failed"));
        }
    };
    let content_type = if text.trim_end().ends_with("# EOF") {
        OPENMETRICS_TEXT
    } else {
        PROMETHEUS_TEXT
    };
    let mut resp = WarpResponse::new(text.into());
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

fn error(e: ApiError) -> WarpResponse {
    let status = StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut body = serde_json::to_vec(&e).unwrap_or_default();
    body.push(b'\n');
    let mut resp = WarpResponse::new(body.into());
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}
