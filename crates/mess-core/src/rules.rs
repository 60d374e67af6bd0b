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
