//! What every handler shares.

use std::sync::Arc;

use mess_core::ExchangeId;
use serde_json::Value;

use crate::hub::Hub;

/// Shared application state.
pub struct AppState {
    /// Every exchange.
    pub hub: Arc<Hub>,
    /// The capability catalog (`CAPABILITIES_FILE`), empty when none.
    pub capabilities: Arc<Vec<Value>>,
    /// The exchange a single-exchange client uses (`DEFAULT_EXCHANGE`).
    pub default_exchange: ExchangeId,
    /// Registration token and rate limits.
    pub guard: crate::limits::Guard,
    /// Renders `/metrics`, when a recorder is installed.
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// Forwarding between replicas on one bucket (`ADVERTISE_URL`); `None` for one process.
    pub replicas: Option<std::sync::Arc<crate::replicas::Forwarding>>,
}
