//! `UploadBudget`: the actor that owns how many uploads the whole server reads at once and
//! how many bytes they may hold. An upload is held in memory about three times over while it
//! is parsed and stored, so without a server-wide bound a few users uploading at once could
//! take the process's memory; each user already has one upload at a time (their session's
//! slot).
//!
//! An upload reserves its declared `Content-Length` (the largest upload allowed when it
//! declares none) before its body is read; past the budget it is answered 503 `unavailable`
//! with `Retry-After`. The reservation is an `UploadPass`, given back when dropped.

use actix::prelude::*;

/// The bounds: uploads at once, and bytes reserved by them together.
#[derive(Debug, Clone, Copy)]
pub struct UploadLimits {
    pub max_uploads: usize,
    pub max_bytes: u64,
}

/// Reserves `bytes` for one upload; `None` when the budget has no room now.
#[derive(Message)]
#[rtype(result = "Option<UploadPass>")]
pub struct Reserve {
    pub bytes: u64,
}

/// One upload's reservation, given back when dropped.
#[derive(Debug)]
pub struct UploadPass {
    budget: Addr<UploadBudget>,
    bytes: u64,
}

impl UploadPass {
    /// The bytes reserved.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl Drop for UploadPass {
    fn drop(&mut self) {
        self.budget.do_send(Release { bytes: self.bytes });
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Release {
    bytes: u64,
}

/// The actor (see the module comment).
pub struct UploadBudget {
    limits: UploadLimits,
    uploads: usize,
    bytes: u64,
    /// `uploads_in_flight`, kept equal to `uploads`.
    gauge: prometheus::IntGauge,
}

impl UploadBudget {
    /// An empty budget of `limits`, reporting uploads in flight on `gauge`.
    pub fn new(limits: UploadLimits, gauge: prometheus::IntGauge) -> Self {
        Self {
            limits,
            uploads: 0,
            bytes: 0,
            gauge,
        }
    }
}

impl Actor for UploadBudget {
    type Context = Context<Self>;
}

impl Handler<Reserve> for UploadBudget {
    type Result = Option<UploadPass>;

    fn handle(&mut self, reserve: Reserve, ctx: &mut Context<Self>) -> Self::Result {
        // One upload is always let through, however large, so a budget set below the largest
        // upload allowed still serves them one at a time.
        let room = self.uploads == 0
            || (self.uploads < self.limits.max_uploads
                && self.bytes.saturating_add(reserve.bytes) <= self.limits.max_bytes);
        if !room {
            return None;
        }
        self.uploads += 1;
        self.bytes = self.bytes.saturating_add(reserve.bytes);
        self.gauge.set(self.uploads as i64);
        Some(UploadPass {
            budget: ctx.address(),
            bytes: reserve.bytes,
        })
    }
}

impl Handler<Release> for UploadBudget {
    type Result = ();

    fn handle(&mut self, release: Release, _: &mut Context<Self>) {
        self.uploads = self.uploads.saturating_sub(1);
        self.bytes = self.bytes.saturating_sub(release.bytes);
        self.gauge.set(self.uploads as i64);
    }
}
