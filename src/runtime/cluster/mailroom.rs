//! `Mailroom`: this node's post office (PostgreSQL only). It sends the mail of this node's
//! sessions (`Post`, `AskOwner`), in order and a transaction at a time — every letter queued
//! meanwhile goes in the next — so the addressee reads each sender's mail in sending order. It
//! takes the mail waiting for this node when the listener says so (`MailWaits`) and hands each
//! letter to the registry, or an answer to whoever asked. And it watches which nodes live:
//! when a node's lease is gone, the registry hears `NodesLost`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::oneshot;

use super::mail::{Answer, Mail, Question};
use super::{FromNode, NodesLost};
use crate::runtime::refusal::Refusal;
use crate::store::cluster::{self, Letter};
use crate::store::{Db, bulk, ownership};

/// How long an HTTP request on a follower waits for the owner's answer.
const ASK_TIMEOUT: Duration = Duration::from_secs(30);

/// The most letters stored by one transaction (4 parameters each, under PostgreSQL's 65,535).
const MAX_LETTERS: usize = 1_000;

/// How long the mailroom waits after a failed send before it tries again.
const RETRY_SEND: Duration = Duration::from_millis(200);

/// Sends `mail` to node `to`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Post {
    /// The addressee node.
    pub to: Arc<str>,
    /// The letter.
    pub mail: Mail,
}

/// Asks node `to`, which owns `user`, a question and waits for the answer.
#[derive(Message)]
#[rtype(result = "Result<Answer, Refusal>")]
pub struct AskOwner {
    /// The owner node.
    pub to: Arc<str>,
    /// The user (subject).
    pub user: String,
    /// The question.
    pub question: Question,
}

/// Mail waits for this node (the listener heard so, or reconnected and may have missed it).
#[derive(Message)]
#[rtype(result = "()")]
pub struct MailWaits;

/// This node's post office.
pub struct Mailroom {
    /// This node's id.
    node: Arc<str>,
    /// Where mail is stored and taken (on the reader threads: `Db::aside`).
    db: Db,
    /// Where letters about users go.
    deliver: Recipient<FromNode>,
    /// Told which nodes were lost.
    lost: Recipient<NodesLost>,
    /// How often the live nodes are looked at (a third of the lease).
    watch_every: Duration,
    /// Letters waiting for the transaction in flight to end.
    outbox: Vec<Letter>,
    /// A transaction of letters is in flight.
    sending: bool,
    /// The number of the next letter sent.
    next_seq: i64,
    /// Mail is being taken.
    taking: bool,
    /// More mail was announced while it was being taken: take again.
    again: bool,
    /// Questions asked, waiting for answers.
    asks: HashMap<u64, oneshot::Sender<Answer>>,
    /// The number of the next question.
    next_ask: u64,
    /// The other nodes seen live at the last look.
    live: HashSet<String>,
}

impl Mailroom {
    /// A post office for `node`, handing letters to `deliver` and lost nodes to `lost`.
    pub fn new(
        node: Arc<str>,
        db: Db,
        deliver: Recipient<FromNode>,
        lost: Recipient<NodesLost>,
        lease: Duration,
    ) -> Self {
        Self {
            node,
            db,
            deliver,
            lost,
            watch_every: (lease / 3).max(Duration::from_millis(10)),
            outbox: Vec::new(),
            sending: false,
            // Numbers start from the clock so a restarted node's never repeat its old ones.
            next_seq: crate::clock::now_ms() * 1000,
            taking: false,
            again: false,
            asks: HashMap::new(),
            next_ask: 1,
            live: HashSet::new(),
        }
    }

    fn queue(&mut self, to: &str, mail: &Mail, ctx: &mut Context<Self>) {
        match serde_json::to_string(mail) {
            Ok(body) => {
                self.outbox.push(Letter {
                    to: to.to_owned(),
                    sent_seq: self.next_seq,
                    body,
                });
                self.next_seq += 1;
                self.send(ctx);
            }
            Err(e) => log::error!("a letter could not be written: {e}"),
        }
    }

    /// Sends what the outbox holds, unless a transaction is in flight (it sends the rest
    /// when it ends).
    fn send(&mut self, ctx: &mut Context<Self>) {
        if self.sending || self.outbox.is_empty() {
            return;
        }
        self.sending = true;
        let take = self.outbox.len().min(MAX_LETTERS);
        let letters: Arc<Vec<Letter>> = Arc::new(self.outbox.drain(..take).collect());
        let (db, node, sending) = (self.db.clone(), self.node.clone(), letters.clone());
        let sent = async move {
            db.aside(move |conn| cluster::send(conn, &node, &sending))
                .await
        };
        ctx.spawn(sent.into_actor(self).map(move |sent, act, ctx| {
            act.sending = false;
            if let Err(e) = sent {
                // Kept, in order, and sent again: once the database is back they arrive.
                log::warn!("mail to other nodes not sent yet ({e}); retrying");
                let unsent = Arc::try_unwrap(letters).unwrap_or_else(|shared| (*shared).clone());
                act.outbox.splice(0..0, unsent);
                ctx.run_later(RETRY_SEND, |act, ctx| act.send(ctx));
                return;
            }
            act.send(ctx);
        }));
    }

    /// Takes the mail waiting for this node and hands it on.
    fn take(&mut self, ctx: &mut Context<Self>) {
        if self.taking {
            self.again = true;
            return;
        }
        self.taking = true;
        let (db, node) = (self.db.clone(), self.node.clone());
        let taken = async move { db.aside(move |conn| cluster::take(conn, &node)).await };
        ctx.spawn(taken.into_actor(self).map(|taken, act, ctx| {
            match taken {
                Ok(letters) => {
                    for (from, body) in letters {
                        act.hand_on(from, &body);
                    }
                }
                Err(e) => {
                    log::warn!("could not take this node's mail: {e}");
                    act.again = true;
                }
            }
            act.taking = false;
            if std::mem::take(&mut act.again) {
                act.take(ctx);
            }
        }));
    }

    fn hand_on(&mut self, from: String, body: &str) {
        match serde_json::from_str::<Mail>(body) {
            Ok(Mail::Answer { ask, answer }) => {
                if let Some(asker) = self.asks.remove(&ask) {
                    let _ = asker.send(answer);
                }
            }
            Ok(mail) => self.deliver.do_send(FromNode { from, mail }),
            Err(e) => log::error!("a letter from node {from} could not be read: {e}"),
        }
    }

    /// Looks at which nodes live; those gone since the last look are lost, and the uploads they
    /// were writing are discarded. Takes this node's mail too, in case a notification was
    /// missed.
    fn watch(&mut self, ctx: &mut Context<Self>) {
        self.take(ctx);
        let (db, node) = (self.db.clone(), self.node.to_string());
        let looked = async move {
            db.aside(move |conn| {
                let mut live = ownership::live_nodes(conn, &node)?;
                live.push(node);
                Ok(live)
            })
            .await
        };
        ctx.spawn(looked.into_actor(self).map(|live, act, _| {
            let Ok(live) = live else {
                return;
            };
            let now: HashSet<String> = live.iter().filter(|n| ***n != *act.node).cloned().collect();
            let lost: Vec<String> = act.live.difference(&now).cloned().collect();
            act.live = now;
            if lost.is_empty() {
                return;
            }
            log::warn!("node(s) lost: {}", lost.join(", "));
            act.lost.do_send(NodesLost {
                nodes: Arc::from(lost),
            });
            // Their half-written uploads go now, not at the next start of a node: their
            // records would stay hidden and stand in the way of the same records sent again.
            let (db, node) = (act.db.clone(), act.node.to_string());
            actix::spawn(async move {
                let discarded = db
                    .aside(move |conn| bulk::discard_leftover_uploads(conn, &node))
                    .await;
                match discarded {
                    Ok(0) => {}
                    Ok(n) => log::warn!("{n} upload(s) of lost nodes discarded"),
                    Err(e) => log::warn!("could not discard lost nodes' uploads: {e}"),
                }
            });
        }));
    }
}

impl Actor for Mailroom {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.watch(ctx);
        ctx.run_interval(self.watch_every, |act, ctx| act.watch(ctx));
    }
}

impl Handler<Post> for Mailroom {
    type Result = ();

    fn handle(&mut self, msg: Post, ctx: &mut Context<Self>) {
        self.queue(&msg.to, &msg.mail, ctx);
    }
}

impl Handler<AskOwner> for Mailroom {
    type Result = ResponseFuture<Result<Answer, Refusal>>;

    fn handle(&mut self, msg: AskOwner, ctx: &mut Context<Self>) -> Self::Result {
        let ask = self.next_ask;
        self.next_ask += 1;
        let (answered, answer) = oneshot::channel();
        self.asks.insert(ask, answered);
        let mail = Mail::Ask {
            user: msg.user,
            reply_to: self.node.to_string(),
            ask: Some(ask),
            question: msg.question,
        };
        self.queue(&msg.to, &mail, ctx);
        // An answer that never comes (the owner died) is dropped with the wait.
        ctx.run_later(ASK_TIMEOUT, move |act, _| {
            act.asks.remove(&ask);
        });
        Box::pin(async move {
            match actix_web::rt::time::timeout(ASK_TIMEOUT, answer).await {
                Ok(Ok(answer)) => Ok(answer),
                _ => Err(Refusal::SessionUnavailable),
            }
        })
    }
}

impl Handler<MailWaits> for Mailroom {
    type Result = ();

    fn handle(&mut self, _: MailWaits, ctx: &mut Context<Self>) {
        self.take(ctx);
    }
}
