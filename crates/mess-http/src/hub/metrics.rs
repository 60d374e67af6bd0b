//! Metrics helpers: figures gathered across every exchange.

use mess_core::Status;

use super::Hub;

/// Counts threads by status across every exchange (for `/metrics`).
pub fn status_totals(hub: &Hub) -> std::collections::HashMap<Status, usize> {
    let mut totals = std::collections::HashMap::default();
    for h in hub.exchanges() {
        h.read(|x| {
            for (s, n) in x.status_counts() {
                *totals.entry(s).or_insert(0) += n;
            }
        });
    }
    totals
}
