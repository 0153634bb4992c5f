//! Kubernetes' name rules, shared by the server (which enforces them) and koncli
//! (which checks arguments before it sends anything).

/// Whether `name` is a DNS-1123 subdomain (lowercase alphanumerics, `-` and `.`,
/// alphanumeric at both ends, at most 253 characters).
pub fn is_dns1123_subdomain(name: &str) -> bool {
    name.len() <= 253
        && !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Whether `name` is a DNS-1123 label (a subdomain without dots, at most 63 characters).
pub fn is_dns1123_label(name: &str) -> bool {
    name.len() <= 63 && !name.contains('.') && is_dns1123_subdomain(name)
}
