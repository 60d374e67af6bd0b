//! What the exchange decides for an operator: the claims of a member it is about to remove
//! are taken back, each thread going back to `pending` as the exchange's own move (the
//! protocol's "release" row, made by the exchange because the assignee is leaving).

use super::{Decision, Env, Exchange};
use crate::clock::Timestamp;
use crate::error::DomainError;
use crate::ids::{Actor, ExecutorId, ThreadRef};
use crate::rules;
use crate::status::Status;

impl Exchange {
    /// The active threads (claimed, in progress, waiting...) that `executor` holds, by ref:
    /// the claims [`Command::ReleaseClaim`](crate::Command::ReleaseClaim) takes back before
    /// the member is removed. Read from the status index, so a copy made by
    /// [`Exchange::for_deciding`] finds none.
    pub fn held_by(&self, executor: &ExecutorId) -> Vec<ThreadRef> {
        let mut held: Vec<ThreadRef> = Status::ACTIVE
            .iter()
            .filter_map(|s| self.by_status.get(s))
            .flat_map(|set| set.iter().map(|(_, r)| r.0.clone()))
            .filter(|r| {
                self.threads
                    .get(r)
                    .is_some_and(|t| t.executor_id.as_ref() == Some(executor))
            })
            .collect();
        held.sort();
        held
    }

    /// `ReleaseClaim`: only the exchange itself; the thread must be active and held by
    /// `executor`. Two events, as any move the exchange makes: the `status_changed` to
    /// `pending` (no assignee) and a status message saying why (`reason: member_removed`).
    pub(super) fn release_claim(
        &self,
        actor: &Actor,
        r: &ThreadRef,
        executor: &ExecutorId,
        now: Timestamp,
        env: Env<'_>,
    ) -> Result<Decision, DomainError> {
        if *actor != Actor::Exchange {
            return Err(DomainError::Forbidden(
                "only the exchange itself takes back a member's claim".into(),
            ));
        }
        let t = self.existing(r)?;
        let from = t.status;
        if !Status::ACTIVE.contains(&from) || t.executor_id.as_ref() != Some(executor) {
            return Err(DomainError::Conflict {
                rule: rules::Conflict::NoSuchMove,
                message: format!("the request is not held by {executor}"),
                from,
                to: Status::Pending,
            });
        }
        let message =
            format!("{executor} was removed from the exchange: the request is open again.");
        Ok(self.reopen(env, now, r, t, "member_removed", message))
    }
}
