//! The address of a stored object, shared by the store, the watch hub and the
//! service — a leaf module, so that dependencies flow one way (store → watch → key).

/// The storage bucket of Namespaces. Here, in the leaf, because the store itself acts
/// on it (deleting a namespace queues its objects for deletion).
pub const NAMESPACES: &str = "namespaces";

/// Where an object lives: bucket, namespace (empty for cluster-scoped) and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    /// The storage bucket (see `registry`).
    pub bucket: String,
    /// The namespace; empty for cluster-scoped objects.
    pub namespace: String,
    /// The object's name.
    pub name: String,
}

impl ObjectKey {
    /// A key from its parts.
    pub fn new(bucket: &str, namespace: &str, name: &str) -> Self {
        Self {
            bucket: bucket.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }
}
