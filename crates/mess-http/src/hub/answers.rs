//! Answer delivery: the writer's answers reach each handler through a delivery task on
//! the handler's own (actix worker) thread, one wake per thread and batch.

use tokio::sync::{mpsc, oneshot};

use super::{WriteError, Written};

pub(super) type Answer = Result<Written, WriteError>;
/// An answer with the oneshot it goes to.
type Delivery = (oneshot::Sender<Answer>, Answer);

/// Where a command's answer goes: its handler's oneshot, through the handler thread's
/// delivery task when it has one (see [`deliver_on_this_thread`]).
pub(super) struct Reply {
    pub(super) tx: oneshot::Sender<Answer>,
    pub(super) via: Option<Deliverer>,
}

impl Reply {
    /// Answers now, straight to the handler (a refusal, decided before any append).
    pub(super) fn now(self, answer: Answer) {
        let _ = self.tx.send(answer);
    }
}

/// A thread's delivery task: it takes a batch's answers for the handlers of its thread
/// and hands each over from there.
#[derive(Clone)]
pub(super) struct Deliverer(mpsc::UnboundedSender<Vec<Delivery>>);

thread_local! {
    pub(super) static DELIVERER: std::cell::RefCell<Option<Deliverer>> = const { std::cell::RefCell::new(None) };
}

/// Makes writers answer this thread's handlers through one task on this thread, woken once
/// per batch, instead of waking the thread once per answer: a wake from another thread is
/// a syscall (an `eventfd` write), a visible share of a create's CPU (docs/benchmarks.md).
/// Call it on each actix worker thread, from the app factory (it spawns on the thread's
/// `LocalSet`). Without it, answers go straight to each handler.
pub fn deliver_on_this_thread() {
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<Delivery>>();
    tokio::task::spawn_local(async move {
        while let Some(batch) = rx.recv().await {
            for (reply, answer) in batch {
                let _ = reply.send(answer);
            }
        }
    });
    DELIVERER.with(|d| *d.borrow_mut() = Some(Deliverer(tx)));
}

/// One batch's answers, grouped by the thread whose handlers wait for them.
#[derive(Default)]
pub(super) struct Answers(Vec<(Deliverer, Vec<Delivery>)>);

impl Answers {
    pub(super) fn push(&mut self, reply: Reply, answer: Answer) {
        let Some(via) = reply.via else {
            let _ = reply.tx.send(answer);
            return;
        };
        match self.0.iter_mut().find(|(d, _)| d.0.same_channel(&via.0)) {
            Some((_, batch)) => batch.push((reply.tx, answer)),
            None => self.0.push((via, vec![(reply.tx, answer)])),
        }
    }

    /// Hands each thread its answers (straight to the handlers if its task is gone).
    pub(super) fn send(self) {
        for (via, batch) in self.0 {
            if let Err(mpsc::error::SendError(batch)) = via.0.send(batch) {
                for (tx, answer) in batch {
                    let _ = tx.send(answer);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused() -> Answer {
        Err(WriteError::ShuttingDown)
    }

    #[tokio::test]
    async fn answers_go_through_their_threads_task_and_straight_when_it_is_gone() {
        let local = tokio::task::LocalSet::new();
        let via = local
            .run_until(async {
                deliver_on_this_thread();
                let via = DELIVERER.with(|d| d.borrow().clone()).expect("registered");
                let (routed, routed_rx) = oneshot::channel();
                let (direct, direct_rx) = oneshot::channel();
                let mut answers = Answers::default();
                answers.push(
                    Reply {
                        tx: routed,
                        via: Some(via.clone()),
                    },
                    refused(),
                );
                answers.push(
                    Reply {
                        tx: direct,
                        via: None,
                    },
                    refused(),
                );
                // The direct one is already answered; the routed one waits for the batch.
                assert!(matches!(direct_rx.await, Ok(Err(WriteError::ShuttingDown))));
                assert_eq!(answers.0.len(), 1, "one batch for the thread");
                answers.send();
                assert!(matches!(routed_rx.await, Ok(Err(WriteError::ShuttingDown))));
                via
            })
            .await;

        // The thread's task is gone with its LocalSet: answers go straight to the handler.
        drop(local);
        assert!(via.0.is_closed());
        let (tx, rx) = oneshot::channel();
        let mut answers = Answers::default();
        answers.push(Reply { tx, via: Some(via) }, refused());
        answers.send();
        assert!(matches!(rx.await, Ok(Err(WriteError::ShuttingDown))));
    }
}
