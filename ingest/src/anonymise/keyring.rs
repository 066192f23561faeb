//! Pseudonymisation keys. One master secret, kept outside the database, derives every
//! tenant's key per key version: `HMAC-SHA256(master, "pseudonym-key" ‖ 0 ‖ client_key ‖ 0 ‖ version)`.
//! Rotating a tenant's key bumps its version, so new pseudonyms can no longer be linked to old
//! ones, while erasure can still find a user's events under every version.

use std::io::Write;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::store::Tenant;

/// Shortest master secret accepted.
pub const MIN_SECRET_BYTES: usize = 32;
/// The master secret's file inside the data directory when none is configured.
pub const DEFAULT_FILE: &str = "master.key";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyringError {
    #[error("cannot read the master secret {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create the master secret {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the master secret {path} has {len} bytes; it needs at least {MIN_SECRET_BYTES}")]
    TooShort { path: PathBuf, len: usize },
}

pub struct Keyring {
    master: Vec<u8>,
}

impl Keyring {
    /// Reads the master secret from `file`, or from `data_dir/master.key`, creating that one
    /// (32 random bytes, readable by the owner only) on first use.
    pub fn load(data_dir: &Path, file: Option<&Path>) -> Result<Keyring, KeyringError> {
        let path = file.map_or_else(|| data_dir.join(DEFAULT_FILE), Path::to_owned);
        if file.is_none() && !path.exists() {
            create_secret(&path).map_err(|source| KeyringError::Create {
                path: path.clone(),
                source,
            })?;
        }
        let master = std::fs::read(&path).map_err(|source| KeyringError::Read {
            path: path.clone(),
            source,
        })?;
        if master.len() < MIN_SECRET_BYTES {
            return Err(KeyringError::TooShort {
                path,
                len: master.len(),
            });
        }
        Ok(Keyring { master })
    }

    pub fn from_secret(master: Vec<u8>) -> Keyring {
        Keyring { master }
    }

    /// The tenant's current pseudonymisation key.
    pub fn tenant_key(&self, tenant: &Tenant) -> [u8; 32] {
        self.tenant_key_version(&tenant.client_key, tenant.key_version)
    }

    /// The key of the tenant's identity vault (independent of pseudonym key versions: the
    /// vault must stay readable across rotations).
    pub fn vault_key(&self, client_key: &str) -> [u8; 32] {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.master).expect("HMAC takes keys of any length");
        mac.update(b"identity-vault\0");
        mac.update(client_key.as_bytes());
        mac.finalize().into_bytes().into()
    }

    pub fn tenant_key_version(&self, client_key: &str, version: u32) -> [u8; 32] {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.master).expect("HMAC takes keys of any length");
        mac.update(b"pseudonym-key\0");
        mac.update(client_key.as_bytes());
        mac.update(b"\0");
        mac.update(&version.to_be_bytes());
        mac.finalize().into_bytes().into()
    }
}

fn create_secret(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        crate::store::private_dir(dir)?;
    }
    let mut secret = [0u8; MIN_SECRET_BYTES];
    getrandom::fill(&mut secret).map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(&secret)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_by_tenant_and_version_and_persist() {
        let dir = tempfile::tempdir().unwrap();
        let a = Keyring::load(dir.path(), None).unwrap();
        let again = Keyring::load(dir.path(), None).unwrap();
        assert_eq!(
            a.tenant_key_version("pk_a", 1),
            again.tenant_key_version("pk_a", 1)
        );
        assert_ne!(
            a.tenant_key_version("pk_a", 1),
            a.tenant_key_version("pk_a", 2)
        );
        assert_ne!(
            a.tenant_key_version("pk_a", 1),
            a.tenant_key_version("pk_b", 1)
        );
        let short = dir.path().join("short.key");
        std::fs::write(&short, b"too short").unwrap();
        let err = Keyring::load(dir.path(), Some(&short)).err().unwrap();
        assert!(err.to_string().contains("at least 32"), "{err}");
        let missing = Keyring::load(dir.path(), Some(&dir.path().join("absent.key")))
            .err()
            .unwrap();
        assert!(missing.to_string().contains("absent.key"), "{missing}");
    }

    #[cfg(unix)]
    #[test]
    fn a_created_secret_and_its_directory_are_the_owners_alone() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let parent = tempfile::tempdir().unwrap();
        let data_dir = parent.path().join("new-data");
        Keyring::load(&data_dir, None).unwrap();
        assert_eq!(mode(&data_dir), 0o700);
        assert_eq!(mode(&data_dir.join(DEFAULT_FILE)), 0o600);
    }
}
