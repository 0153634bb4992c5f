//! Who a koncli command acts as. Barrier holders are stable on purpose (a retried Job
//! must count once); lock holders must be unique (two scripts must never share a
//! grant by accident), so taking a lock needs an identity given explicitly, and every
//! `run` is a new holder.

use std::hash::{BuildHasher, Hasher};

/// The environment variable naming the holder.
pub const HOLDER_VARIABLE: &str = "KONDUCTOR_HOLDER";

fn from_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The pod's name, else the hostname.
fn pod_or_host() -> String {
    from_env("POD_NAME")
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
        })
        .or_else(|| from_env("HOSTNAME"))
        .unwrap_or_else(|| "unknown-host".to_owned())
}

/// A barrier's holder: the one given, else `$KONDUCTOR_HOLDER`, `$POD_NAME`, the
/// hostname — the same every time the same process (or its retry) arrives.
pub fn barrier_holder(given: Option<String>) -> String {
    given
        .or_else(|| from_env(HOLDER_VARIABLE))
        .unwrap_or_else(pod_or_host)
}

/// The identity `lock`/`unlock` act as: the one given, else `$KONDUCTOR_HOLDER`;
/// without either, the one-line usage error to print.
pub fn lock_identity(given: Option<String>, verb: &str) -> Result<String, String> {
    given.or_else(|| from_env(HOLDER_VARIABLE)).ok_or_else(|| {
        format!(
            "`{verb}` needs an identity: give --holder NAME or set {HOLDER_VARIABLE} (a host or pod name is not enough: two scripts on one host, or two containers in one pod, must never share a grant; use the same identity to unlock)"
        )
    })
}

/// The holder a `run` acts as: the one given, else the pod or host name with a random
/// suffix — a new holder every run, so a restarted container never re-enters its dead
/// predecessor's grant (process ids repeat across restarts).
pub fn run_identity(given: Option<String>) -> String {
    given.unwrap_or_else(|| format!("{}-{}", pod_or_host(), nonce()))
}

/// Eight random hex digits (from the randomly keyed hasher std seeds from the OS).
pub fn nonce() -> String {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    format!("{:08x}", hasher.finish() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_run_is_a_new_holder_unless_named() {
        let (a, b) = (run_identity(None), run_identity(None));
        assert_ne!(a, b);
        assert!(a.starts_with(&pod_or_host()), "{a}");
        assert_eq!(run_identity(Some("job-7".into())), "job-7");
    }

    #[test]
    fn taking_a_lock_without_an_identity_says_how_to_give_one() {
        if std::env::var_os(HOLDER_VARIABLE).is_some() {
            return; // the environment names one
        }
        let why = lock_identity(None, "mutex lock").unwrap_err();
        assert!(
            why.contains("--holder") && why.contains(HOLDER_VARIABLE),
            "{why}"
        );
        assert_eq!(
            lock_identity(Some("a".into()), "mutex lock"),
            Ok("a".into())
        );
    }
}
