//! The `observations` section: Prometheus metrics and tracing.

use std::time::Duration;

use cluster_types::duration::serde_go;
use serde::{Deserialize, Serialize};

use crate::check;
use crate::error::ConfigErrors;

/// `observations` section.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ObservationsConfig {
    /// Prometheus exporter.
    pub metrics: MetricsConfig,
    /// Distributed tracing.
    pub tracing: TracingConfig,
}

/// `observations.metrics`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Serve Prometheus metrics. Unlike the original (false), on by default: the endpoint only
    /// listens on localhost and operators nearly always want it.
    pub enable_stats: bool,
    /// Where `/metrics` is served.
    pub prometheus_endpoint: String,
    /// How often gauges are refreshed.
    #[serde(with = "serde_go")]
    pub reporting_interval: Duration,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enable_stats: true,
            prometheus_endpoint: "/ip4/127.0.0.1/tcp/8888".into(),
            reporting_interval: Duration::from_secs(2),
        }
    }
}

/// `observations.tracing`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TracingConfig {
    /// Export traces.
    pub enable_tracing: bool,
    /// Jaeger agent address.
    pub jaeger_agent_endpoint: String,
    /// Fraction of requests traced (0..=1).
    pub sampling_prob: f64,
    /// Service name attached to spans.
    pub service_name: String,
}

impl Default for TracingConfig {
    fn default() -> Self {
        TracingConfig {
            enable_tracing: false,
            jaeger_agent_endpoint: "/ip4/0.0.0.0/udp/6831".into(),
            sampling_prob: 0.3,
            service_name: "cluster-daemon".into(),
        }
    }
}

impl ObservationsConfig {
    pub(crate) fn validate_into(&self, errs: &mut ConfigErrors) {
        check::multiaddr(errs, "observations.metrics.prometheus_endpoint", &self.metrics.prometheus_endpoint);
        check::positive(errs, "observations.metrics.reporting_interval", self.metrics.reporting_interval);
        check::multiaddr(errs, "observations.tracing.jaeger_agent_endpoint", &self.tracing.jaeger_agent_endpoint);
        if !(0.0..=1.0).contains(&self.tracing.sampling_prob) {
            errs.push("observations.tracing.sampling_prob", "must be between 0 and 1");
        }
        check::non_empty(errs, "observations.tracing.service_name", &self.tracing.service_name);
    }
}
