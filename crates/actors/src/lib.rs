//! Supervised actors: bounded mailboxes that survive restarts, heartbeats, restart policies and health snapshots.
//!
//! An actor is a plain struct implementing [`Actor`]. A [`Supervisor`] builds it from a
//! factory, owns its mailbox and restarts it (with backoff) when it fails, panics, is killed
//! or stops making progress while busy. Every actor publishes a cheap JSON snapshot so that
//! `/health/actors` and tests observe actors without messaging them.

#![warn(missing_docs)]

mod actor;
mod mailbox;
mod supervisor;

#[cfg(test)]
mod tests;

pub use actor::{Actor, ActorError, Context, WorkGuard};
pub use mailbox::{ActorRef, AskError, SendError};
pub use supervisor::{ActorHealth, ActorState, KillError, RestartPolicy, Supervisor};
