//! Typed handles to bounded mailboxes.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::sync::oneshot;

/// Why a message could not be put into a mailbox.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The mailbox is at capacity; only `try_send` reports this, `send` waits for room.
    #[error("mailbox of actor {actor} is full")]
    Full {
        /// Name of the receiving actor.
        actor: String,
    },
    /// The actor stopped or failed for good, so nobody will ever read the mailbox again.
    #[error("mailbox of actor {actor} is closed")]
    Closed {
        /// Name of the receiving actor.
        actor: String,
    },
}

/// Why a request/reply exchange with an actor failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AskError {
    /// The request could not be enqueued.
    #[error(transparent)]
    Send(#[from] SendError),
    /// The reply sender was dropped: the actor ignored the request, or its instance was
    /// killed or restarted while holding it.
    #[error("actor {actor} dropped the request without replying")]
    NoReply {
        /// Name of the asked actor.
        actor: String,
    },
    /// No reply arrived in time; the request may still be handled later.
    #[error("actor {actor} did not reply within {timeout:?}")]
    Timeout {
        /// Name of the asked actor.
        actor: String,
        /// The deadline that expired.
        timeout: Duration,
    },
}

/// A cloneable handle to an actor's bounded mailbox.
///
/// The handle stays valid across restarts: the supervisor owns the receiving side and hands
/// it to each new instance, so holders never need to re-resolve an actor.
pub struct ActorRef<M> {
    sender: mpsc::Sender<M>,
    name: Arc<str>,
}

impl<M> Clone for ActorRef<M> {
    // Derive would demand `M: Clone`, which messages carrying oneshot senders are not.
    fn clone(&self) -> Self {
        Self {
            sender: self.sender.clone(),
            name: Arc::clone(&self.name),
        }
    }
}

impl<M> fmt::Debug for ActorRef<M> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("ActorRef")
            .field("name", &self.name)
            .field("mailbox_depth", &self.mailbox_depth())
            .finish()
    }
}

impl<M> ActorRef<M> {
    pub(crate) fn new(name: &str, sender: mpsc::Sender<M>) -> Self {
        Self {
            sender,
            name: Arc::from(name),
        }
    }

    /// Enqueues a message, waiting for room when the mailbox is full (backpressure).
    pub async fn send(&self, msg: M) -> Result<(), SendError> {
        self.sender.send(msg).await.map_err(|_| self.closed_error())
    }

    /// Enqueues a message without waiting; fails with [`SendError::Full`] at capacity.
    pub fn try_send(&self, msg: M) -> Result<(), SendError> {
        match self.sender.try_send(msg) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(SendError::Full {
                actor: self.name.to_string(),
            }),
            Err(TrySendError::Closed(_)) => Err(self.closed_error()),
        }
    }

    /// Sends the message built by `make_msg` and waits for the reply it carries back.
    pub async fn ask<R>(
        &self,
        make_msg: impl FnOnce(oneshot::Sender<R>) -> M,
    ) -> Result<R, AskError> {
        let (reply_tx, reply_rx) = oneshot::channel();
        self.send(make_msg(reply_tx)).await?;
        reply_rx.await.map_err(|_| AskError::NoReply {
            actor: self.name.to_string(),
        })
    }

    /// Like [`ActorRef::ask`], but gives up after `timeout` (enqueueing included).
    pub async fn ask_timeout<R>(
        &self,
        make_msg: impl FnOnce(oneshot::Sender<R>) -> M,
        timeout: Duration,
    ) -> Result<R, AskError> {
        tokio::time::timeout(timeout, self.ask(make_msg))
            .await
            .map_err(|_| AskError::Timeout {
                actor: self.name.to_string(),
                timeout,
            })?
    }

    /// Returns how many messages are queued (reserved slots included).
    pub fn mailbox_depth(&self) -> usize {
        self.sender
            .max_capacity()
            .saturating_sub(self.sender.capacity())
    }

    /// Returns the mailbox bound.
    pub fn mailbox_capacity(&self) -> usize {
        self.sender.max_capacity()
    }

    /// Returns the actor's name, unique within its supervisor.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn closed_error(&self) -> SendError {
        SendError::Closed {
            actor: self.name.to_string(),
        }
    }
}
