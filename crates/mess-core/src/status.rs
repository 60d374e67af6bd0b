//! Statuses, their groups and aliases, and priorities.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::DomainError;

/// A thread status, spelled canonically (the protocol's underscores).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[allow(missing_docs)] // the names are the protocol's vocabulary
pub enum Status {
    Pending,
    Claimed,
    InProgress,
    Waiting,
    Held,
    Retrying,
    NeedsInput,
    NeedsConfirmation,
    Completed,
    Partial,
    Failed,
    Declined,
    Expired,
    Cancelled,
    Superseded,
    Delegated,
}

/// The three groups of protocol.md's status table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// `pending`: waiting for someone to claim it.
    Open,
    /// Claimed and being worked on.
    Active,
    /// Finished; nothing may change the status again.
    Terminal,
}

impl Status {
    /// Every status, in table order.
    pub const ALL: [Status; 16] = [
        Status::Pending,
        Status::Claimed,
        Status::InProgress,
        Status::Waiting,
        Status::Held,
        Status::Retrying,
        Status::NeedsInput,
        Status::NeedsConfirmation,
        Status::Completed,
        Status::Partial,
        Status::Failed,
        Status::Declined,
        Status::Expired,
        Status::Cancelled,
        Status::Superseded,
        Status::Delegated,
    ];

    /// The active group.
    pub const ACTIVE: [Status; 7] = [
        Status::Claimed,
        Status::InProgress,
        Status::Waiting,
        Status::Held,
        Status::Retrying,
        Status::NeedsInput,
        Status::NeedsConfirmation,
    ];

    /// Parses a canonical name or one of the protocol's aliases (`received`, `in-progress`,
    /// `needs-input`, `needs-confirmation`, `rejected`, `canceled`). Case-sensitive.
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let canonical = match s {
            "received" => "pending",
            "in-progress" => "in_progress",
            "needs-input" => "needs_input",
            "needs-confirmation" => "needs_confirmation",
            "rejected" => "declined",
            "canceled" => "cancelled",
            other => other,
        };
        Status::ALL
            .into_iter()
            .find(|st| st.as_str() == canonical)
            .ok_or_else(|| DomainError::invalid(format!("unknown status: {}", printable(s))))
    }

    /// The canonical spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Claimed => "claimed",
            Status::InProgress => "in_progress",
            Status::Waiting => "waiting",
            Status::Held => "held",
            Status::Retrying => "retrying",
            Status::NeedsInput => "needs_input",
            Status::NeedsConfirmation => "needs_confirmation",
            Status::Completed => "completed",
            Status::Partial => "partial",
            Status::Failed => "failed",
            Status::Declined => "declined",
            Status::Expired => "expired",
            Status::Cancelled => "cancelled",
            Status::Superseded => "superseded",
            Status::Delegated => "delegated",
        }
    }

    /// Which group of the status table this status is in.
    pub fn group(self) -> Group {
        match self {
            Status::Pending => Group::Open,
            s if Status::ACTIVE.contains(&s) => Group::Active,
            _ => Group::Terminal,
        }
    }

    /// True for the terminal group.
    pub fn is_terminal(self) -> bool {
        self.group() == Group::Terminal
    }
}

/// Echoes at most 64 characters of client input in an error, without control characters.
pub(crate) fn printable(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(64).collect()
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Status {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Status {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Status::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// How urgent a request is: `background` < `normal` (default) < `elevated` < `urgent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[allow(missing_docs)]
pub enum Priority {
    Background,
    #[default]
    Normal,
    Elevated,
    Urgent,
}

impl Priority {
    /// Every priority, lowest first.
    pub const ALL: [Priority; 4] = [
        Priority::Background,
        Priority::Normal,
        Priority::Elevated,
        Priority::Urgent,
    ];

    /// Parses the protocol's spelling (case-sensitive).
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        Priority::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| DomainError::invalid(format!("unknown priority: {}", printable(s))))
    }

    /// The protocol's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Background => "background",
            Priority::Normal => "normal",
            Priority::Elevated => "elevated",
            Priority::Urgent => "urgent",
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Priority {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Priority {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Priority::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The OpenAPI schema of a string enum: its values, in order, and a description.
#[cfg(feature = "openapi")]
fn string_enum(
    values: impl IntoIterator<Item = &'static str>,
    description: &str,
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .enum_values(Some(values))
        .into()
}

/// A status as the API shows it: its canonical spelling (the spec's `StatusName`).
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Status {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        string_enum(
            Status::ALL.map(Status::as_str),
            "A thread status. Aliases accepted on input: received, in-progress, needs-input,\n\
             needs-confirmation, rejected, canceled.",
        )
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Status {
    fn name() -> std::borrow::Cow<'static, str> {
        "StatusName".into()
    }
}

/// A priority as the API shows it (the spec's `PriorityName`).
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Priority {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        string_enum(
            Priority::ALL.map(Priority::as_str),
            "How urgent a request is.",
        )
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Priority {
    fn name() -> std::borrow::Cow<'static, str> {
        "PriorityName".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_parse_to_the_canonical_status() {
        for (alias, canonical) in [
            ("received", Status::Pending),
            ("in-progress", Status::InProgress),
            ("needs-input", Status::NeedsInput),
            ("needs-confirmation", Status::NeedsConfirmation),
            ("rejected", Status::Declined),
            ("canceled", Status::Cancelled),
        ] {
            assert_eq!(Status::parse(alias), Ok(canonical));
        }
    }

    #[test]
    fn every_canonical_name_round_trips_and_matching_is_exact() {
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Ok(s));
            assert!(Status::parse(&s.as_str().to_uppercase()).is_err());
        }
        assert!(Status::parse("done").is_err());
    }

    #[test]
    fn priorities_are_ordered() {
        assert!(Priority::Background < Priority::Normal);
        assert!(Priority::Elevated < Priority::Urgent);
        assert!(Priority::parse("high").is_err());
    }
}
