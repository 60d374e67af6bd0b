//! The transition table and the permission rules of protocol.md, as data.
//!
//! | from | to | who |
//! |---|---|---|
//! | pending | claimed | any member |
//! | pending | cancelled, superseded | requestor |
//! | pending | expired | the exchange itself |
//! | active | any other active status | assignee |
//! | active | completed, partial, failed, declined, delegated | assignee |
//! | active | pending (release the claim) | assignee |
//! | active | cancelled, superseded | requestor |
//! | partial | completed | assignee |
//! | waiting, held | expired | the exchange itself |
//! | terminal | anything | nobody |
//!
//! Beside the table, the protocol's bullet rules, each a named function: [`claim_conflict`],
//! [`awaits_confirmation`], [`repeat_status`] (the no-op) and [`may_append`].

use crate::error::DomainError;
use crate::status::Group;
use crate::status::Status::{self, *};

/// Who may make a move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// Any member of the exchange (the requestor included).
    AnyMember,
    /// The member who created the thread.
    Requestor,
    /// The member who claimed it.
    Assignee,
    /// The exchange itself (expiry), never a member.
    Exchange,
}

impl Who {
    /// Names the role in an error message.
    pub fn describe(self) -> &'static str {
        match self {
            Who::AnyMember => "members",
            Who::Requestor => "requestor",
            Who::Assignee => "assignee",
            Who::Exchange => "exchange itself",
        }
    }
}

/// One row of the table.
#[derive(Debug, Clone, Copy)]
pub struct Transition {
    /// The row's name, as tests and docs refer to it.
    pub name: &'static str,
    /// The statuses it moves from.
    pub from: &'static [Status],
    /// The statuses it moves to.
    pub to: &'static [Status],
    /// Who may make it.
    pub who: Who,
}

const ACTIVE: &[Status] = &Status::ACTIVE;
const ACTIVE_ENDINGS: &[Status] = &[Completed, Partial, Failed, Declined, Delegated];

/// The table, row by row as protocol.md has it.
pub const TRANSITIONS: &[Transition] = &[
    Transition {
        name: "claim",
        from: &[Pending],
        to: &[Claimed],
        who: Who::AnyMember,
    },
    Transition {
        name: "withdraw_pending",
        from: &[Pending],
        to: &[Cancelled, Superseded],
        who: Who::Requestor,
    },
    Transition {
        name: "expire_pending",
        from: &[Pending],
        to: &[Expired],
        who: Who::Exchange,
    },
    Transition {
        name: "progress",
        from: ACTIVE,
        to: ACTIVE,
        who: Who::Assignee,
    },
    Transition {
        name: "finish",
        from: ACTIVE,
        to: ACTIVE_ENDINGS,
        who: Who::Assignee,
    },
    Transition {
        name: "release",
        from: ACTIVE,
        to: &[Pending],
        who: Who::Assignee,
    },
    Transition {
        name: "withdraw_active",
        from: ACTIVE,
        to: &[Cancelled, Superseded],
        who: Who::Requestor,
    },
    Transition {
        name: "complete_partial",
        from: &[Partial],
        to: &[Completed],
        who: Who::Assignee,
    },
    Transition {
        name: "expire_waiting",
        from: &[Waiting, Held],
        to: &[Expired],
        who: Who::Exchange,
    },
];

/// The row that allows `from -> to`, if any. A status never moves to itself through the
/// table: that is a no-op the caller handles before asking.
pub fn transition(from: Status, to: Status) -> Option<&'static Transition> {
    if from == to {
        return None;
    }
    TRANSITIONS
        .iter()
        .find(|t| t.from.contains(&from) && t.to.contains(&to))
}

/// The roles an actor holds on one thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Roles {
    /// It created the thread.
    pub requestor: bool,
    /// It holds the claim.
    pub assignee: bool,
    /// It is the exchange itself, not a member.
    pub exchange: bool,
}

impl Roles {
    /// Whether these roles satisfy `who`.
    pub fn may(self, who: Who) -> bool {
        match who {
            Who::AnyMember => !self.exchange,
            Who::Requestor => self.requestor,
            Who::Assignee => self.assignee,
            Who::Exchange => self.exchange,
        }
    }
}

/// Which rule refused a move with a 409; the API names it in its error `code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    /// The table has no row for the move (a terminal thread, a move it does not list).
    NoSuchMove,
    /// Another member holds the claim.
    HeldByAnother,
    /// `confirm_before`: the requestor has not confirmed yet.
    AwaitingConfirmation,
}

/// A claim of a thread another member holds is a conflict (409: the claimer lost a race),
/// not a permission problem.
pub fn claim_conflict(to: Status, held: bool, roles: Roles) -> bool {
    to == Claimed && held && !roles.assignee
}

/// Passing on an offer: `declined` (alone) on a `pending` thread by a member other than
/// its requestor records that member's message (`offer_passed`); the thread stays pending.
pub fn passes_offer(steps: &[Status], from: Status, roles: Roles) -> bool {
    steps == [Status::Declined] && from == Pending && !roles.requestor && !roles.exchange
}

/// `confirm_before: true` on a request: `completed` is refused until the assignee has sent
/// `needs_confirmation` and the requestor has replied.
pub fn awaits_confirmation(to: Status, confirm_before: bool, confirmed: bool) -> bool {
    to == Completed && confirm_before && !confirmed
}

/// A status equal to the current one is a no-op answered 200 (a repeated claim by the
/// assignee), except on a terminal thread (409), on a claimed thread someone else holds
/// (409), and on an active thread from anyone but its assignee (403).
pub fn repeat_status(from: Status, roles: Roles) -> Result<(), DomainError> {
    let conflict = |rule, message: String| DomainError::Conflict {
        rule,
        message,
        from,
        to: from,
    };
    if from.is_terminal() {
        return Err(conflict(
            Conflict::NoSuchMove,
            format!("the request is already {from}"),
        ));
    }
    if from == Claimed && !roles.assignee {
        return Err(conflict(
            Conflict::HeldByAnother,
            "the request is already claimed by another member".into(),
        ));
    }
    if from.group() == Group::Active && !roles.assignee {
        return Err(DomainError::Forbidden(format!(
            "only the assignee may set the status {from}"
        )));
    }
    Ok(())
}

/// Requestor and assignee may add messages at any time; other members only to a `pending`
/// thread (a question before claiming).
pub fn may_append(roles: Roles, status: Status) -> bool {
    roles.requestor || roles.assignee || status == Pending
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_statuses_never_move() {
        for from in Status::ALL
            .into_iter()
            .filter(|s| s.is_terminal() && *s != Partial)
        {
            for to in Status::ALL {
                assert!(transition(from, to).is_none(), "{from} -> {to}");
            }
        }
        for to in Status::ALL.into_iter().filter(|s| *s != Completed) {
            assert!(transition(Partial, to).is_none(), "partial -> {to}");
        }
    }

    const OTHER: Roles = Roles {
        requestor: false,
        assignee: false,
        exchange: false,
    };
    const ASSIGNEE: Roles = Roles {
        requestor: false,
        assignee: true,
        exchange: false,
    };

    #[test]
    fn a_claim_of_a_thread_held_by_another_member_is_a_conflict() {
        assert!(claim_conflict(Claimed, true, OTHER));
        assert!(!claim_conflict(Claimed, true, ASSIGNEE));
        assert!(!claim_conflict(Claimed, false, OTHER));
        assert!(!claim_conflict(InProgress, true, OTHER));
    }

    #[test]
    fn completion_waits_for_the_requestors_confirmation() {
        assert!(awaits_confirmation(Completed, true, false));
        assert!(!awaits_confirmation(Completed, true, true));
        assert!(!awaits_confirmation(Completed, false, false));
        assert!(!awaits_confirmation(Partial, true, false));
    }

    #[test]
    fn a_repeated_status_is_a_no_op_only_for_whoever_may_hold_it() {
        assert_eq!(repeat_status(Claimed, ASSIGNEE), Ok(()));
        assert_eq!(repeat_status(Pending, OTHER), Ok(()));
        assert!(matches!(
            repeat_status(Claimed, OTHER),
            Err(DomainError::Conflict {
                rule: Conflict::HeldByAnother,
                ..
            })
        ));
        assert!(matches!(
            repeat_status(Completed, ASSIGNEE),
            Err(DomainError::Conflict {
                rule: Conflict::NoSuchMove,
                ..
            })
        ));
        assert!(matches!(
            repeat_status(InProgress, OTHER),
            Err(DomainError::Forbidden(_))
        ));
    }

    #[test]
    fn only_requestor_and_assignee_append_except_to_a_pending_thread() {
        assert!(may_append(OTHER, Pending));
        assert!(!may_append(OTHER, InProgress));
        assert!(may_append(ASSIGNEE, Completed));
    }

    #[test]
    fn rows_do_not_overlap() {
        for from in Status::ALL {
            for to in Status::ALL {
                let n = TRANSITIONS
                    .iter()
                    .filter(|t| t.from.contains(&from) && t.to.contains(&to));
                assert!(n.count() <= 1, "{from} -> {to} matches several rows");
            }
        }
    }
}
