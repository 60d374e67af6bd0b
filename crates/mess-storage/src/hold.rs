//! [`Hold`]: an operator command's hold on one exchange of a bucket, so that it works on
//! the exchange while replicas may be running (docs/architecture.md, "Replicas").
//!
//! The command takes the exchange's lease the way a replica does (one epoch more, the
//! epochs before sealed, a deposed owner's late segments moved to `fenced/`), but with no
//! address: nobody forwards to it, and replicas answer the exchange's requests with a 503
//! that clients retry until the command gives the lease back. It renews the lease in the
//! background while it works; its writes are named by its epoch and acknowledged only
//! under the lease, like a replica's. Given back, the lease says the exchange's timers are
//! due now, so a replica's sweep takes it back within a few periods.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use mess_core::{ExchangeId, Located, Ownership, Storage, StorageError, Taken};
use object_store::ObjectStore;
use object_store::path::Path;

use crate::error::from_object_store;
use crate::lease::{Seals, segment_name};
use crate::object::load_seals;
use crate::replicas::Replicas;

/// Why an operator command could not hold an exchange.
#[derive(Debug, thiserror::Error)]
pub enum HoldError {
    /// Nothing of the exchange is stored.
    #[error("no exchange {0} in this store")]
    NoExchange(ExchangeId),
    /// A running replica serves it (it gives an idle exchange back by itself).
    #[error(
        "exchange {exchange} is served by the replica at {url}, which kept it for the {waited:?} \
         waited: run again with a longer --wait (a replica gives an exchange back after 60 \
         lease periods without a request, or when it stops), or stop the replicas"
    )]
    Served {
        /// The exchange.
        exchange: ExchangeId,
        /// The replica's `ADVERTISE_URL`.
        url: String,
        /// How long the command waited.
        waited: Duration,
    },
    /// Another operator command holds it.
    #[error(
        "another operator command holds exchange {exchange} (it kept it for the {waited:?} \
         waited): let it finish, then run this again"
    )]
    Operator {
        /// The exchange.
        exchange: ExchangeId,
        /// How long the command waited.
        waited: Duration,
    },
    /// The bucket cannot be reached or is misconfigured.
    #[error(transparent)]
    Open(#[from] crate::OpenError),
    /// The bucket failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// An operator command's lease on one exchange (see the module's documentation). Give it
/// back with [`Hold::release`]; dropped, it stops renewing and runs out by itself.
pub struct Hold {
    replicas: Arc<Replicas>,
    exchange: ExchangeId,
    seals: Seals,
    renewing: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Hold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hold")
            .field("exchange", &self.exchange)
            .field("epoch", &self.epoch())
            .finish_non_exhaustive()
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.renewing.abort();
    }
}

impl Hold {
    /// Takes `exchange`'s lease on `store` (leases of `period`, which should be the
    /// replicas' `LEASE_PERIOD` or longer), waiting up to `wait` for a replica or another
    /// command holding it to give it back (a dead replica's lease runs out in a period:
    /// wait more than one). Returns the hold and the exchange as stored.
    pub async fn take(
        store: Arc<dyn ObjectStore>,
        exchange: &ExchangeId,
        period: Duration,
        wait: Duration,
    ) -> Result<(Self, Taken), HoldError> {
        if !stored(&store, exchange).await? {
            return Err(HoldError::NoExchange(exchange.clone()));
        }
        let replicas = Arc::new(Replicas::new(Arc::clone(&store), String::new(), period));
        // Renewed from the start: reading a big exchange back may take longer than a lease.
        let renewer = Arc::clone(&replicas);
        let renewing = tokio::spawn(async move {
            loop {
                tokio::time::sleep(renewer.period() / 3).await;
                if !renewer.renew().await.is_empty() {
                    break;
                }
            }
        });
        // Dropped on an early return: the renewal stops.
        let mut hold = Self {
            replicas: Arc::clone(&replicas),
            exchange: exchange.clone(),
            seals: Seals::default(),
            renewing,
        };
        let started = Instant::now();
        let taken = loop {
            match replicas.locate(exchange).await? {
                Located::Taken(taken) => break *taken,
                Located::There(url) if started.elapsed() >= wait => {
                    let waited = started.elapsed();
                    let exchange = exchange.clone();
                    return Err(if url.is_empty() {
                        HoldError::Operator { exchange, waited }
                    } else {
                        HoldError::Served {
                            exchange,
                            url,
                            waited,
                        }
                    });
                }
                Located::There(_) => tokio::time::sleep(period / 4).await,
                Located::Here | Located::Idle => {
                    return Err(StorageError::Unavailable(format!(
                        "the lease of exchange {exchange} is changing hands"
                    ))
                    .into());
                }
            }
        };
        // Read after the take, which sealed every epoch before this one: a segment of an
        // earlier epoch landing from now on is judged by these.
        hold.seals = load_seals(&store, Some(exchange)).await?;
        Ok((hold, taken))
    }

    /// The storage that writes under this lease (members, events).
    pub fn storage(&self) -> Arc<dyn Storage> {
        self.replicas.storage()
    }

    /// Whether the lease is held and valid now: whatever was made durable before this
    /// said `true` counts.
    pub fn holds(&self) -> bool {
        self.replicas.holds(&self.exchange)
    }

    /// The lease's epoch (0 once lost).
    pub fn epoch(&self) -> u32 {
        self.replicas
            .lease_table()
            .get(&self.exchange)
            .map_or(0, |h| h.epoch)
    }

    /// The name of a new event segment (`{uuid}.jsonl`) written under this lease, if it is
    /// still held: a segment must be named by it to count after the next owner seals this
    /// epoch.
    pub fn segment_name(&self) -> Option<String> {
        let (epoch, batch) = self.replicas.lease_table().begin(&self.exchange)?;
        Some(segment_name(epoch, batch))
    }

    /// Whether the event segment at `path` counts (replay reads it): a deposed owner's
    /// segment that its epoch's seal leaves out does not.
    pub fn counts(&self, path: &str) -> bool {
        self.seals.counts(&self.exchange, path)
    }

    /// Gives the lease back, saying the exchange's timers are due (a replica's sweep takes
    /// it within a few periods; a request, at once).
    pub async fn release(self) {
        self.renewing.abort();
        let now = mess_core::Clock::now(&mess_core::SystemClock);
        self.replicas.release(&self.exchange, Some(now)).await;
    }
}

/// Whether anything of `exchange` (an event or a member) is in `store`.
async fn stored(store: &Arc<dyn ObjectStore>, exchange: &ExchangeId) -> Result<bool, StorageError> {
    for prefix in [
        mess_core::layout::events_prefix(exchange),
        mess_core::layout::members_prefix(exchange),
    ] {
        let first = store.list(Some(&Path::from(prefix.as_str()))).next().await;
        match first {
            Some(Ok(_)) => return Ok(true),
            Some(Err(e)) => return Err(from_object_store("list", &prefix, e)),
            None => {}
        }
    }
    Ok(false)
}
