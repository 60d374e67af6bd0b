//! The checks a member's notification settings pass before they are stored: its channels
//! and its lifecycle hooks. Pure (no name is resolved), so the binary's notifier and the
//! Cloudflare Worker refuse the same profiles with the same messages.

use mess_core::{Channel, DomainError, Profile};

use crate::hooks::validate_hooks;
use crate::message::DEFAULT_NTFY_SERVER;
use crate::safety;

/// Checks a profile's channels and hooks, as the notifier's
/// [`Notifier::validate`](mess_core::Notifier::validate) does: every URL is http(s),
/// well-formed, and not a literal link-local or cloud-metadata address nor a metadata host
/// name; ntfy topics are ntfy's `[A-Za-z0-9_-]{1,64}`; hooks have known moments and a
/// valid shape. Names are not resolved. The error names the channel
/// (`notification channel 2 (slack): ...`, counted from 1) or the hook.
pub fn validate_profile(profile: &Profile) -> Result<(), DomainError> {
    for (i, channel) in profile.notifications.iter().flatten().enumerate() {
        check_channel(channel).map_err(|e| {
            DomainError::invalid(format!(
                "notification channel {} ({}): {e}",
                i + 1,
                channel.kind()
            ))
        })?;
    }
    if let Some(hooks) = &profile.hooks {
        validate_hooks(hooks)?;
    }
    Ok(())
}

fn check_channel(channel: &Channel) -> Result<(), &'static str> {
    match channel {
        Channel::Ntfy { topic, server, .. } => {
            let topic_ok = !topic.is_empty()
                && topic.len() <= 64
                && topic
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !topic_ok {
                return Err("topic must be 1 to 64 letters, digits, - or _");
            }
            safety::check_url(server.as_deref().unwrap_or(DEFAULT_NTFY_SERVER)).map(drop)
        }
        Channel::Slack { webhook_url } | Channel::GoogleChat { webhook_url } => {
            safety::check_url(webhook_url).map(drop)
        }
        Channel::Webhook { url, .. } => safety::check_url(url).map(drop),
    }
}
