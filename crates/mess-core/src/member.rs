//! Members (the seed's executors): their record, registration and profile updates.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::clock::Timestamp;
use crate::error::DomainError;
use crate::ids::{ExchangeId, ExecutorId};
use crate::key::KeyHash;
use crate::request::parse_capabilities;
use crate::status::Priority;

/// The most characters a display name may have.
pub const MAX_DISPLAY_NAME_CHARS: usize = 256;
/// The most notification channels a member may configure.
pub const MAX_CHANNELS: usize = 16;
/// The most characters a URL, topic or server in a channel may have.
pub const MAX_CHANNEL_FIELD_CHARS: usize = 2048;

/// A notification channel, as the seed configures them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Channel {
    /// `POST {server}/{topic}`.
    Ntfy {
        /// The ntfy topic.
        topic: String,
        /// The ntfy server (default `https://ntfy.sh`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        server: Option<String>,
        /// The server is ntfy 2.16 or newer: an offer this member no longer has is
        /// updated ("taken by ...") or cleared in place, by its sequence id. Off by
        /// default: an older server would publish a second notification instead.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        updates: Option<bool>,
    },
    /// A Slack incoming webhook.
    Slack {
        /// The webhook URL (a secret).
        webhook_url: String,
    },
    /// A Google Chat incoming webhook.
    GoogleChat {
        /// The webhook URL (a secret).
        webhook_url: String,
    },
    /// A generic JSON webhook.
    Webhook {
        /// Where to POST.
        url: String,
        /// When set, the body is signed with HMAC-SHA256 under this secret.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        secret: Option<String>,
    },
}

impl Channel {
    /// The channel's type name (`ntfy`, `slack`, `google_chat`, `webhook`): safe to log.
    pub fn kind(&self) -> &'static str {
        match self {
            Channel::Ntfy { .. } => "ntfy",
            Channel::Slack { .. } => "slack",
            Channel::GoogleChat { .. } => "google_chat",
            Channel::Webhook { .. } => "webhook",
        }
    }

    fn check_shape(&self) -> Result<(), DomainError> {
        let field_ok = |s: &str| {
            !s.trim().is_empty()
                && s.chars().count() <= MAX_CHANNEL_FIELD_CHARS
                && !s.chars().any(char::is_control)
        };
        let url_ok =
            |s: &str| field_ok(s) && (s.starts_with("https://") || s.starts_with("http://"));
        let ok = match self {
            Channel::Ntfy { topic, server, .. } => {
                field_ok(topic) && !topic.contains('/') && server.as_deref().is_none_or(url_ok)
            }
            Channel::Slack { webhook_url } | Channel::GoogleChat { webhook_url } => {
                url_ok(webhook_url)
            }
            Channel::Webhook { url, secret } => {
                url_ok(url) && secret.as_deref().is_none_or(field_ok)
            }
        };
        if ok {
            Ok(())
        } else {
            Err(DomainError::invalid(format!(
                "notification channel {} is not valid (http or https URLs only)",
                self.kind()
            )))
        }
    }
}

/// A lifecycle moment a member's hook may be attached to: a key of [`Member::hooks`],
/// stored and sent as its snake_case name ([`HookMoment::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookMoment {
    /// `on_request_created`: a thread was created.
    OnRequestCreated,
    /// `on_request_claimed`: a thread's status changed to `claimed`.
    OnRequestClaimed,
    /// `on_request_started`: a thread's status changed to `in_progress`.
    OnRequestStarted,
    /// `on_request_completed`: a thread's status changed to `completed`.
    OnRequestCompleted,
    /// `on_request_cancelled`: a thread's status changed to `cancelled`.
    OnRequestCancelled,
    /// `on_request_failed`: a thread's status changed to `failed`.
    OnRequestFailed,
    /// `on_request_expired`: a thread expired.
    OnRequestExpired,
    /// `on_request_released`: its assignee released a thread (back to `pending`).
    OnRequestReleased,
    /// `on_needs_input`: the assignee asked a question (status `needs_input`).
    OnNeedsInput,
    /// `on_message`: a message without a status change (a question, an answer, an update).
    OnMessage,
    /// `on_revision_requested`: the requestor sent finished work back (`in_progress`).
    OnRevisionRequested,
    /// `on_request_unclaimed`: nobody took a request after it was offered twice.
    OnRequestUnclaimed,
}

impl HookMoment {
    /// Every moment, in the order the API documents them.
    pub const ALL: [HookMoment; 12] = [
        HookMoment::OnRequestCreated,
        HookMoment::OnRequestClaimed,
        HookMoment::OnRequestStarted,
        HookMoment::OnRequestCompleted,
        HookMoment::OnRequestCancelled,
        HookMoment::OnRequestFailed,
        HookMoment::OnRequestExpired,
        HookMoment::OnRequestReleased,
        HookMoment::OnNeedsInput,
        HookMoment::OnMessage,
        HookMoment::OnRevisionRequested,
        HookMoment::OnRequestUnclaimed,
    ];

    /// The moment's name: the key of its hook in [`Member::hooks`].
    pub fn as_str(self) -> &'static str {
        match self {
            HookMoment::OnRequestCreated => "on_request_created",
            HookMoment::OnRequestClaimed => "on_request_claimed",
            HookMoment::OnRequestStarted => "on_request_started",
            HookMoment::OnRequestCompleted => "on_request_completed",
            HookMoment::OnRequestCancelled => "on_request_cancelled",
            HookMoment::OnRequestFailed => "on_request_failed",
            HookMoment::OnRequestExpired => "on_request_expired",
            HookMoment::OnRequestReleased => "on_request_released",
            HookMoment::OnNeedsInput => "on_needs_input",
            HookMoment::OnMessage => "on_message",
            HookMoment::OnRevisionRequested => "on_revision_requested",
            HookMoment::OnRequestUnclaimed => "on_request_unclaimed",
        }
    }

    /// The moment named `name`, if it is one.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == name)
    }
}

impl std::fmt::Display for HookMoment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Quiet hours: no notifications between `start` and `end` (`HH:MM`, may cross midnight),
/// in the member's time zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuietHours {
    /// Whether quiet hours apply at all.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Start, `HH:MM`.
    pub start: String,
    /// End, `HH:MM` (exclusive).
    pub end: String,
}

fn yes() -> bool {
    true
}

impl QuietHours {
    /// Minutes after midnight of `start` and `end`.
    pub fn minutes(&self) -> Option<(u16, u16)> {
        Some((hhmm(&self.start)?, hhmm(&self.end)?))
    }
}

/// Whether `tz` looks like an IANA time zone name (`Europe/Paris`, `UTC`, `Etc/GMT+2`):
/// ASCII letters, digits, `_`, `+`, `-` and `/`, starting with a letter, at most 64 bytes.
pub fn is_iana_name(tz: &str) -> bool {
    tz.len() <= 64
        && tz.as_bytes().first().is_some_and(u8::is_ascii_alphabetic)
        && tz
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'-' | b'/'))
}

/// Parses `HH:MM` into minutes after midnight.
pub fn hhmm(s: &str) -> Option<u16> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

/// A member's notification preferences. Unknown fields are kept.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Preferences {
    /// Only requests at or above this priority notify the member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_priority: Option<Priority>,
    /// When not to notify (urgent requests still do).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_hours: Option<QuietHours>,
    /// The member's IANA time zone (default UTC), for quiet hours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Anything else the client sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A member as stored at `executors/exchange={id}/{executor}.json`: the key only as its hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    /// The member's id.
    pub executor_id: ExecutorId,
    /// The exchange it belongs to.
    pub exchange_id: ExchangeId,
    /// A name for people.
    pub display_name: String,
    /// What it can do (`photo:capture`...).
    pub capabilities: Vec<String>,
    /// Where to notify it. Holds secrets (webhook URLs): never listed, never in events.
    #[serde(default)]
    pub notifications: Vec<Channel>,
    /// When and about what to notify it.
    #[serde(default)]
    pub preferences: Preferences,
    /// Lifecycle hooks, templated webhooks, by [`HookMoment`] name (`on_request_created`...).
    /// Keyed by name, not by [`HookMoment`]: the notifier checks the names before a record
    /// is stored, and a record stored without that check still loads. Read one with
    /// [`Member::hook`].
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub hooks: Map<String, Value>,
    /// SHA-256 of its API key.
    pub key_hash: KeyHash,
    /// When it registered.
    pub created_at: Timestamp,
    /// When its profile last changed.
    pub updated_at: Timestamp,
    /// When it was last seen: stored at registration and each profile change, raised to
    /// its latest event by [`crate::Replay`] at start-up. (The server also tracks
    /// authenticated requests, in memory.)
    pub last_seen: Timestamp,
}

/// The fields of a registration or a profile update, validated. `None` means "not sent".
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Profile {
    /// A name for people.
    pub display_name: Option<String>,
    /// What the member can do.
    pub capabilities: Option<Vec<String>>,
    /// Where to notify it.
    pub notifications: Option<Vec<Channel>>,
    /// Notification preferences.
    pub preferences: Option<Preferences>,
    /// Lifecycle hooks.
    pub hooks: Option<Map<String, Value>>,
}

fn present<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

impl Profile {
    /// Parses the profile fields of a registration or update body. Fields it does not know
    /// are ignored, as older and newer clients send them.
    pub fn parse(body: &Value) -> Result<Self, DomainError> {
        let obj = body
            .as_object()
            .ok_or_else(|| DomainError::invalid("body must be a JSON object"))?;
        let display_name = match present(obj, "display_name") {
            None => None,
            Some(Value::String(s)) => {
                if s.trim().is_empty() || s.chars().count() > MAX_DISPLAY_NAME_CHARS {
                    return Err(DomainError::invalid(format!(
                        "display_name must be 1 to {MAX_DISPLAY_NAME_CHARS} characters"
                    )));
                }
                if s.chars().any(char::is_control) {
                    return Err(DomainError::invalid(
                        "display_name contains control characters",
                    ));
                }
                Some(s.clone())
            }
            Some(_) => return Err(DomainError::invalid("display_name must be a string")),
        };
        let capabilities = present(obj, "capabilities")
            .map(|v| parse_capabilities(v, "capabilities"))
            .transpose()?;
        let notifications = match present(obj, "notifications") {
            None => None,
            Some(Value::Array(items)) => {
                if items.len() > MAX_CHANNELS {
                    return Err(DomainError::invalid(format!(
                        "at most {MAX_CHANNELS} notification channels"
                    )));
                }
                let channels = items
                    .iter()
                    .map(|i| {
                        let ch: Channel = serde_json::from_value(i.clone()).map_err(|_| {
                            DomainError::invalid(
                                "each notification channel needs a known type (ntfy, slack, google_chat, webhook) and its fields",
                            )
                        })?;
                        ch.check_shape()?;
                        Ok(ch)
                    })
                    .collect::<Result<Vec<_>, DomainError>>()?;
                Some(channels)
            }
            Some(_) => return Err(DomainError::invalid("notifications must be a list")),
        };
        let preferences = match present(obj, "preferences") {
            None => None,
            Some(v @ Value::Object(_)) => {
                let p: Preferences = serde_json::from_value(v.clone())
                    .map_err(|e| DomainError::invalid(format!("preferences: {e}")))?;
                if let Some(q) = &p.quiet_hours
                    && q.minutes().is_none()
                {
                    return Err(DomainError::invalid(
                        "quiet_hours start and end must be HH:MM",
                    ));
                }
                if let Some(tz) = &p.timezone
                    && !is_iana_name(tz)
                {
                    return Err(DomainError::invalid(
                        "timezone must be an IANA time zone name",
                    ));
                }
                Some(p)
            }
            Some(_) => return Err(DomainError::invalid("preferences must be an object")),
        };
        let hooks = match present(obj, "hooks") {
            None => None,
            Some(Value::Object(m)) => Some(m.clone()),
            Some(_) => return Err(DomainError::invalid("hooks must be an object")),
        };
        Ok(Self {
            display_name,
            capabilities,
            notifications,
            preferences,
            hooks,
        })
    }

    /// True when the update changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == Profile::default()
    }
}

/// A registration body: the executor id plus its profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Registration {
    /// The id asked for.
    pub executor_id: ExecutorId,
    /// The profile fields sent with it.
    pub profile: Profile,
}

impl Registration {
    /// Parses a registration body.
    pub fn parse(body: &Value) -> Result<Self, DomainError> {
        let id = match body.get("executor_id") {
            None | Some(Value::Null) => {
                return Err(DomainError::invalid("executor_id is required"));
            }
            Some(Value::String(s)) => ExecutorId::parse(s)?,
            Some(_) => return Err(DomainError::invalid("executor_id must be a string")),
        };
        Ok(Self {
            executor_id: id,
            profile: Profile::parse(body)?,
        })
    }
}

impl Member {
    /// Applies a profile update.
    pub fn apply_profile(&mut self, p: &Profile) {
        if let Some(v) = &p.display_name {
            self.display_name.clone_from(v);
        }
        if let Some(v) = &p.capabilities {
            self.capabilities.clone_from(v);
        }
        if let Some(v) = &p.notifications {
            self.notifications.clone_from(v);
        }
        if let Some(v) = &p.preferences {
            self.preferences.clone_from(v);
        }
        if let Some(v) = &p.hooks {
            self.hooks.clone_from(v);
        }
    }

    /// The member's hook for `moment`, if it set one (a `null` hook is none).
    pub fn hook(&self, moment: HookMoment) -> Option<&Value> {
        self.hooks.get(moment.as_str()).filter(|h| !h.is_null())
    }

    /// True when the member's capabilities include every one in `requires`.
    pub fn covers(&self, requires: &[String]) -> bool {
        requires
            .iter()
            .all(|r| self.capabilities.iter().any(|c| c == r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_seeds_registration_parses() {
        let r = Registration::parse(&json!({
            "executor_id": "my-phone", "display_name": "My Phone",
            "capabilities": ["photo:capture", "location:indoor"],
            "notifications": [{"type": "ntfy", "topic": "mess-home"}]
        }))
        .unwrap();
        assert_eq!(r.executor_id.as_str(), "my-phone");
        assert_eq!(
            r.profile.notifications,
            Some(vec![Channel::Ntfy {
                topic: "mess-home".into(),
                server: None,
                updates: None,
            }])
        );
    }

    #[test]
    fn the_seeds_profile_update_parses() {
        let p = Profile::parse(&json!({
            "display_name": "Teague Phone",
            "notifications": [{"type": "slack", "webhook_url": "https://hooks.slack.com/x"}],
            "preferences": {"min_priority": "normal",
                            "quiet_hours": {"enabled": true, "start": "22:00", "end": "07:00"}}
        }))
        .unwrap();
        let q = p.preferences.unwrap().quiet_hours.unwrap();
        assert_eq!(q.minutes(), Some((22 * 60, 7 * 60)));
    }

    #[test]
    fn hook_moments_are_named_as_stored() {
        for m in HookMoment::ALL {
            let json = serde_json::to_string(&m).unwrap();
            assert_eq!(json, format!("\"{}\"", m.as_str()));
            assert_eq!(serde_json::from_str::<HookMoment>(&json).unwrap(), m);
            assert_eq!(HookMoment::from_name(m.as_str()), Some(m));
        }
        assert_eq!(HookMoment::from_name("on_lunch"), None);
    }

    #[test]
    fn iana_names_are_accepted() {
        for tz in [
            "UTC",
            "Europe/Paris",
            "America/Argentina/Buenos_Aires",
            "Etc/GMT+2",
        ] {
            assert!(is_iana_name(tz), "{tz}");
        }
    }

    #[test]
    fn bad_profiles_are_invalid() {
        for bad in [
            json!({"display_name": 5}),
            json!({"display_name": "x".repeat(257)}),
            json!({"capabilities": "photo"}),
            json!({"capabilities": [1]}),
            json!({"notifications": [{"type": "pager", "to": "x"}]}),
            json!({"notifications": [{"type": "webhook", "url": "file:///etc/passwd"}]}),
            json!({"notifications": [{"type": "ntfy"}]}),
            json!({"preferences": {"quiet_hours": {"start": "25:00", "end": "07:00"}}}),
            json!({"preferences": {"min_priority": "high"}}),
            json!({"preferences": {"timezone": "../etc/localtime"}}),
            json!({"preferences": {"timezone": "Europe/Par\u{ed}s"}}),
            json!({"preferences": {"timezone": ""}}),
        ] {
            assert!(Profile::parse(&bad).is_err(), "{bad}");
        }
        assert!(Registration::parse(&json!({"executor_id": "../x"})).is_err());
        assert!(Registration::parse(&json!({})).is_err());
    }
}
