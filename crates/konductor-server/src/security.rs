//! Credentials: the bearer token, the self-signed CA and serving certificate for
//! HTTPS, and the kubeconfig that hands both to clients.
//!
//! All of them live in the data directory, readable only by the owner (0600), and are
//! reused across restarts so long-running clients keep working.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// Credential failures.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    /// A credential file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// Certificate generation or parsing failed.
    #[error("generating TLS certificates: {0}")]
    Certificate(#[from] rcgen::Error),
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> SecurityError + '_ {
    move |source| SecurityError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Opens (creating) a file only its owner can read or write.
pub fn open_private(path: &Path) -> Result<std::fs::File, SecurityError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options.open(path).map_err(io_error(path))?;
    restrict(path, 0o600)?;
    Ok(file)
}

/// Makes a directory its owner's alone (0700): it holds the token and the CA key.
pub fn make_private_dir(path: &Path) -> Result<(), SecurityError> {
    restrict(path, 0o700)
}

/// Creates the database file 0600 before SQLite opens it — SQLite gives its WAL and
/// shared-memory files the database file's permissions — and tightens the files of a
/// database created before this rule.
pub fn prepare_private_database(db: &Path) -> Result<(), SecurityError> {
    drop(open_private(db)?);
    for suffix in ["-wal", "-shm"] {
        let companion = std::path::PathBuf::from(format!("{}{suffix}", db.display()));
        if companion.exists() {
            restrict(&companion, 0o600)?;
        }
    }
    Ok(())
}

/// Sets a path's permission bits (a no-op off Unix).
fn restrict(path: &Path, mode: u32) -> Result<(), SecurityError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(io_error(path))?;
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}

/// Writes `contents` to `path` with mode 0600 (owner only).
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), SecurityError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io_error(path))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(io_error(path))?;
    }
    file.write_all(contents).map_err(io_error(path))?;
    file.sync_all().map_err(io_error(path))
}

/// The bearer token in `DIR/token`, created (32 random bytes, hex) on first use.
pub fn load_or_create_token(data_dir: &Path) -> Result<String, SecurityError> {
    let path = data_dir.join("token");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let existing = existing.trim();
        if existing.len() >= 32 {
            return Ok(existing.to_owned());
        }
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    write_private(&path, token.as_bytes())?;
    Ok(token)
}

/// PEM-encoded TLS material for serving, plus the CA clients must trust.
pub struct TlsMaterial {
    /// The CA certificate (goes into the kubeconfig).
    pub ca_pem: String,
    /// The serving certificate, signed by the CA.
    pub cert_pem: String,
    /// The serving certificate's private key.
    pub key_pem: String,
}

/// The parameters of the self-signed CA (the same on every start).
fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "konductor-ca");
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

/// Loads the CA from `DIR/tls/` (creating it on first use) and issues a fresh serving
/// certificate for `localhost`, `127.0.0.1`, `::1` and the listen address.
pub fn tls_material(data_dir: &Path, listen: SocketAddr) -> Result<TlsMaterial, SecurityError> {
    let dir = data_dir.join("tls");
    std::fs::create_dir_all(&dir).map_err(io_error(&dir))?;
    let ca_cert_path = dir.join("ca.crt");
    let ca_key_path = dir.join("ca.key");
    let existing = std::fs::read_to_string(&ca_cert_path)
        .ok()
        .zip(std::fs::read_to_string(&ca_key_path).ok());
    let (ca_pem, ca_key) = match existing {
        Some((cert, key)) => (cert, KeyPair::from_pem(&key)?),
        None => {
            let key = KeyPair::generate()?;
            let cert = ca_params().self_signed(&key)?;
            write_private(&ca_cert_path, cert.pem().as_bytes())?;
            write_private(&ca_key_path, key.serialize_pem().as_bytes())?;
            (cert.pem(), key)
        }
    };
    // The issuer is rebuilt from the same parameters the CA was made with: the issued
    // certificate needs only the CA's name and key identifier, both derived from them.
    let issuer = Issuer::new(ca_params(), ca_key);
    let mut params = CertificateParams::new(vec!["localhost".to_owned()])?;
    params
        .distinguished_name
        .push(DnType::CommonName, "konductor-server");
    for ip in [
        "127.0.0.1".parse().expect("valid IP"),
        "::1".parse().expect("valid IP"),
        listen.ip(),
    ] {
        let san = SanType::IpAddress(ip);
        if !params.subject_alt_names.contains(&san) {
            params.subject_alt_names.push(san);
        }
    }
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    Ok(TlsMaterial {
        ca_pem,
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Writes the kubeconfig clients use: server URL, CA (with TLS), token, namespace
/// `default`. Mode 0600.
pub fn write_kubeconfig(
    path: &Path,
    server_url: &str,
    token: &str,
    ca_pem: Option<&str>,
) -> Result<(), SecurityError> {
    use kube::config::{
        AuthInfo, Cluster, Context, Kubeconfig, NamedAuthInfo, NamedCluster, NamedContext,
    };
    const NAME: &str = "konductor";
    let config = Kubeconfig {
        api_version: Some("v1".to_owned()),
        kind: Some("Config".to_owned()),
        clusters: vec![NamedCluster {
            name: NAME.to_owned(),
            cluster: Some(Cluster {
                server: Some(server_url.to_owned()),
                certificate_authority_data: ca_pem
                    .map(|ca| base64::engine::general_purpose::STANDARD.encode(ca)),
                ..Cluster::default()
            }),
            ..NamedCluster::default()
        }],
        auth_infos: vec![NamedAuthInfo {
            name: NAME.to_owned(),
            auth_info: Some(AuthInfo {
                token: Some(secrecy::SecretString::from(token.to_owned())),
                ..AuthInfo::default()
            }),
            ..NamedAuthInfo::default()
        }],
        contexts: vec![NamedContext {
            name: NAME.to_owned(),
            context: Some(Context {
                cluster: NAME.to_owned(),
                user: Some(NAME.to_owned()),
                namespace: Some("default".to_owned()),
                ..Context::default()
            }),
            ..NamedContext::default()
        }],
        current_context: Some(NAME.to_owned()),
        ..Kubeconfig::default()
    };
    let yaml = serde_yaml::to_string(&config).expect("a kubeconfig serializes");
    write_private(path, yaml.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_created_once_and_kept_private() {
        let dir = tempfile::tempdir().unwrap();
        let token = load_or_create_token(dir.path()).unwrap();
        assert_eq!(token.len(), 64);
        assert_eq!(load_or_create_token(dir.path()).unwrap(), token);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("token"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn the_kubeconfig_reads_back_with_token_ca_and_namespace() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig");
        write_kubeconfig(
            &path,
            "https://127.0.0.1:6443",
            "secret-token",
            Some("CA PEM"),
        )
        .unwrap();
        let config = kube::config::Kubeconfig::read_from(&path).unwrap();
        let yaml = std::fs::read_to_string(&path).unwrap();
        assert!(yaml.contains("token: secret-token"), "{yaml}");
        let cluster = config.clusters[0].cluster.as_ref().unwrap();
        assert_eq!(cluster.server.as_deref(), Some("https://127.0.0.1:6443"));
        assert_eq!(
            cluster.certificate_authority_data.as_deref(),
            Some(
                base64::engine::general_purpose::STANDARD
                    .encode("CA PEM")
                    .as_str()
            )
        );
        let context = config.contexts[0].context.as_ref().unwrap();
        assert_eq!(context.namespace.as_deref(), Some("default"));
        assert_eq!(config.current_context.as_deref(), Some("konductor"));
    }

    #[test]
    fn the_ca_survives_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let addr = "127.0.0.1:6443".parse().unwrap();
        let first = tls_material(dir.path(), addr).unwrap();
        let second = tls_material(dir.path(), addr).unwrap();
        assert_eq!(first.ca_pem, second.ca_pem);
        assert!(first.cert_pem.contains("BEGIN CERTIFICATE"));
    }
}
