//! What every kind's controller shares — the engine the kinds are wired to.
//!
//! - [`claims`]: a subject's claims (a barrier's Arrivals, a lock's Permits), indexed by
//!   subject from one watch, with the watcher protocol done once.

pub mod claims;
