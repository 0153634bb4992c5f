//! Which client used which verb on which resource — what an RBAC role must allow. The
//! server records it as it serves (one entry per distinct combination, at most
//! [`MAX_ENTRIES`]), so that tests can check the roles in `config/rbac/` against what
//! the operator and the workloads really ask for. Clients are told apart by their
//! User-Agent.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

/// The most distinct combinations kept (a client choosing its own User-Agent cannot
/// make the record grow without bound).
pub const MAX_ENTRIES: usize = 1024;

/// One kind of request, as RBAC sees it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Access {
    /// The client's User-Agent (empty if it sent none).
    pub agent: String,
    /// The API group (empty for the core group).
    pub group: String,
    /// The resource, with `/status` for the status subresource.
    pub resource: String,
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`.
    pub verb: &'static str,
}

/// The record. Cheap to clone; clones share it.
#[derive(Clone, Default)]
pub struct AccessLog {
    entries: Arc<Mutex<BTreeSet<Access>>>,
}

impl AccessLog {
    /// Notes one request.
    pub fn note(&self, access: Access) {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.len() < MAX_ENTRIES {
            entries.insert(access);
        }
    }

    /// Everything noted so far, in order.
    pub fn entries(&self) -> Vec<Access> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }
}
