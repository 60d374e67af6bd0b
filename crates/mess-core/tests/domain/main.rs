//! Domain tests of `mess-core`, fast to slow: one given/when/then test per row of the
//! transition table and per permission rule, listing, refs, golden event lines, and
//! property tests. One test binary, so that it links once.

mod harness;

mod compact;
mod follow_through;
mod golden;
mod listing;
mod members;
mod messages;
mod operator;
mod properties;
mod refs;
mod transitions;
