//! The HTTP API sections of service.json turned into server settings (auth, CORS, TLS), and
//! the Pinning Service API of the peer: its backend over [`Cluster`] and its actor.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use async_trait::async_trait;
use cluster_actors::{Actor, ActorError, Context};
use cluster_api::{CorsConfig, DEFAULT_TOKEN_TTL, SecurityConfig, TlsFiles, load_tls};
use cluster_core::Cluster;
use cluster_pinsvc::{PinSvcConfig, PinningBackend, PinningService, RequestIndex, serve_pinsvc};
use cluster_types::{ApiError, Cid, GlobalPinInfo, Pin, PinOptions};
use tokio::task::JoinHandle;

/// Folder (inside the config folder) holding the Pinning Service API's request index.
pub const PINSVC_INDEX_DIR: &str = "pinsvc";

/// What the REST API and the Pinning Service API sections share.
pub trait HttpApiSection {
    /// Authentication and CORS settings of the section. Tokens live [`DEFAULT_TOKEN_TTL`].
    fn security(&self) -> SecurityConfig;
    /// Certificate and key, resolved against the config folder, when HTTPS is on.
    fn tls(&self, dir: &Path) -> Option<TlsFiles>;
}

macro_rules! http_api_section {
    ($t:ty) => {
        impl HttpApiSection for $t {
            fn security(&self) -> SecurityConfig {
                SecurityConfig {
                    basic_auth: self.basic_auth_credentials.clone(),
                    token_ttl: DEFAULT_TOKEN_TTL,
                    cors: CorsConfig {
                        allowed_origins: self.cors_allowed_origins.clone(),
                        allowed_methods: self.cors_allowed_methods.clone(),
                        allowed_headers: self.cors_allowed_headers.clone(),
                        exposed_headers: self.cors_exposed_headers.clone(),
                        allow_credentials: self.cors_allow_credentials,
                        max_age: self.cors_max_age,
                    },
                }
            }

            fn tls(&self, dir: &Path) -> Option<TlsFiles> {
                self.ssl_paths(dir)
                    .map(|(cert, key)| TlsFiles { cert, key })
            }
        }
    };
}

http_api_section!(cluster_config::RestApiConfig);
http_api_section!(cluster_config::PinSvcApiConfig);

/// Checks the certificate and key now, so a bad file is a startup error, not a restart loop.
pub fn check_tls(tls: &Option<TlsFiles>, section: &str) -> Result<()> {
    if let Some(files) = tls {
        load_tls(files).with_context(|| format!("{section}.ssl_cert_file/ssl_key_file"))?;
    }
    Ok(())
}

/// The Pinning Service API's listener settings from its section.
pub fn pinsvc_config(
    section: &cluster_config::PinSvcApiConfig,
    dir: &Path,
) -> Result<PinSvcConfig> {
    let cfg = PinSvcConfig {
        headers: section
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.join(", ")))
            .collect(),
        max_header_bytes: section.max_header_bytes,
        read_header_timeout: section.read_header_timeout,
        idle_timeout: section.idle_timeout,
        security: section.security(),
        tls: section.tls(dir),
        ..PinSvcConfig::default()
    }
    .with_listen_multiaddrs(&section.http_listen_multiaddress)
    .context("api.pinsvcapi.http_listen_multiaddress")?;
    check_tls(&cfg.tls, "api.pinsvcapi")?;
    Ok(cfg)
}

/// Opens the request index in the config folder and builds the service over the cluster.
pub fn pinning_service(cluster: Cluster, dir: &Path) -> Result<Arc<PinningService>> {
    let index_dir = dir.join(PINSVC_INDEX_DIR);
    let index = RequestIndex::open(&index_dir).with_context(|| {
        format!(
            "opening the pinning service request index in {}",
            index_dir.display()
        )
    })?;
    Ok(PinningService::new(
        Arc::new(PeerPinning(cluster)),
        Arc::new(index),
    ))
}

/// The Pinning Service API's view of the peer.
struct PeerPinning(Cluster);

#[async_trait]
impl PinningBackend for PeerPinning {
    async fn pin(&self, cid: Cid, opts: PinOptions) -> Result<Pin, ApiError> {
        self.0.pin(cid, opts).await
    }

    async fn unpin(&self, cid: Cid) -> Result<(), ApiError> {
        self.0.unpin(cid).await.map(|_| ())
    }

    async fn status(&self, cid: Cid) -> Result<GlobalPinInfo, ApiError> {
        self.0.status(cid, false).await
    }

    async fn fallback_delegates(&self) -> Vec<String> {
        let id = self.0.id().await;
        let suffix = format!("/p2p/{}", id.ipfs.id);
        id.ipfs
            .addresses
            .into_iter()
            .map(|a| {
                if a.contains("/p2p/") || id.ipfs.id.is_empty() {
                    a
                } else {
                    format!("{a}{suffix}")
                }
            })
            .collect()
    }
}

/// Aborts the server task when the actor instance owning it goes away, freeing the ports.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Messages of the Pinning Service API actor.
pub enum PinSvcMsg {
    /// The server task ended on its own: fail, so the supervisor rebinds.
    ServerStopped(String),
}

/// Serves the Pinning Service API; restarted by the supervisor when its listener dies.
pub struct PinSvcActor {
    cfg: PinSvcConfig,
    service: Arc<PinningService>,
    bound: Vec<String>,
}

impl PinSvcActor {
    /// Builds the actor.
    pub fn new(cfg: PinSvcConfig, service: Arc<PinningService>) -> Self {
        PinSvcActor {
            cfg,
            service,
            bound: Vec::new(),
        }
    }
}

impl Actor for PinSvcActor {
    type Msg = PinSvcMsg;

    async fn started(&mut self, ctx: &Context<PinSvcMsg>) -> Result<(), ActorError> {
        let (addrs, handle) = serve_pinsvc(
            self.cfg.clone(),
            Arc::clone(&self.service),
            std::future::pending(),
        )
        .await
        .map_err(ActorError::failure)?;
        self.bound = addrs.iter().map(|a| a.to_string()).collect();
        tracing::info!(addrs = ?self.bound, "pinning service api listening");
        let server = AbortOnDrop(handle);
        let me = ctx.myself();
        ctx.spawn_background(async move {
            let mut server = server;
            let res = (&mut server.0).await;
            let _ = me
                .send(PinSvcMsg::ServerStopped(format!(
                    "pinning service api stopped: {res:?}"
                )))
                .await;
        });
        Ok(())
    }

    async fn handle(
        &mut self,
        msg: PinSvcMsg,
        _ctx: &Context<PinSvcMsg>,
    ) -> Result<(), ActorError> {
        match msg {
            PinSvcMsg::ServerStopped(why) => {
                tracing::error!(%why, "pinning service api stopped unexpectedly");
                Err(ActorError::Failure(why))
            }
        }
    }

    fn observable_state(&self) -> serde_json::Value {
        serde_json::json!({ "listeners": self.bound })
    }
}
