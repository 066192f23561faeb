//! Pseudonymisation keys. One master secret, kept outside the database, derives every
//! tenant's key per key version: `HMAC-SHA256(master, "pseudonym-key" ‖ 0 ‖ client_key ‖ 0 ‖ version)`.
//! Rotating a tenant's key bumps its version, so new pseudonyms can no longer be linked to old
//! ones, while erasure can still find a user's events under every version.

use std::io::Write;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::store::{Store, StoreError, Tenant};

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
    #[error(
        "no master secret at {path}, and this store holds pseudonyms made with one: pass \
         --master-secret-file with that secret (a new one would make other pseudonyms)"
    )]
    Missing { path: PathBuf },
    #[error(
        "the master secret {path} is not the one this store's pseudonyms were made with \
         (fingerprint {found}, the store's is {expected}): pass --master-secret-file with that one"
    )]
    Mismatch {
        path: PathBuf,
        found: String,
        expected: String,
    },
    #[error("cannot read or record the master secret's fingerprint in the database: {0}")]
    Shared(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct Keyring {
    master: Vec<u8>,
}

impl Keyring {
    /// The master secret of the store in `data_dir`: from `file`, or from `data_dir/master.key`,
    /// which is created (32 random bytes, readable by the owner only) only while the store
    /// holds no pseudonym made with any secret. The secret's fingerprint is recorded in the
    /// store on first use, and a different secret is refused from then on: its pseudonyms
    /// would match none of the stored ones, so erasure would find nothing and new events
    /// would not join a user's old ones.
    pub fn open(
        store: &Store,
        data_dir: &Path,
        file: Option<&Path>,
    ) -> Result<Keyring, KeyringError> {
        let path = file.map_or_else(|| data_dir.join(DEFAULT_FILE), Path::to_owned);
        let recorded = store.master_fingerprint()?;
        if file.is_none() && !path.exists() {
            if recorded.is_some() || store.holds_pseudonyms()? {
                return Err(KeyringError::Missing { path });
            }
            create_secret(&path).map_err(|source| KeyringError::Create {
                path: path.clone(),
                source,
            })?;
        }
        let keyring = Keyring::read(&path)?;
        let found = keyring.fingerprint();
        match recorded {
            None => store.record_master_fingerprint(&found)?,
            Some(expected) if expected != found => {
                return Err(KeyringError::Mismatch {
                    path,
                    found,
                    expected,
                });
            }
            Some(_) => {}
        }
        Ok(keyring)
    }

    /// Reads a master secret from `path`.
    pub fn read(path: &Path) -> Result<Keyring, KeyringError> {
        let path = path.to_owned();
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

    /// Tells master secrets apart without revealing them: 16 hex digits of a keyed hash.
    pub fn fingerprint(&self) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.master).expect("HMAC takes keys of any length");
        mac.update(b"master-secret-fingerprint\0");
        crate::anonymise::pseudonym::hex(&mac.finalize().into_bytes()[..8])
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

    /// A store in a fresh data dir, and the dir.
    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        (dir, store)
    }

    #[test]
    fn keys_differ_by_tenant_and_version_and_persist() {
        let (dir, store) = store();
        let a = Keyring::open(&store, dir.path(), None).unwrap();
        let again = Keyring::open(&store, dir.path(), None).unwrap();
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
        let err = Keyring::read(&short).err().unwrap();
        assert!(err.to_string().contains("at least 32"), "{err}");
        let missing = Keyring::read(&dir.path().join("absent.key")).err().unwrap();
        assert!(missing.to_string().contains("absent.key"), "{missing}");
    }

    #[test]
    fn another_secret_is_refused_once_the_store_has_recorded_one() {
        let (dir, store) = store();
        let first = Keyring::open(&store, dir.path(), None).unwrap();
        let other = dir.path().join("other.key");
        std::fs::write(&other, [9u8; 32]).unwrap();
        let err = Keyring::open(&store, dir.path(), Some(&other))
            .err()
            .unwrap();
        assert!(matches!(err, KeyringError::Mismatch { .. }), "{err}");
        assert!(err.to_string().contains(&first.fingerprint()), "{err}");
        // The same secret from a file elsewhere is the same secret.
        let copy = dir.path().join("copy.key");
        std::fs::copy(dir.path().join(DEFAULT_FILE), &copy).unwrap();
        let same = Keyring::open(&store, dir.path(), Some(&copy)).unwrap();
        assert_eq!(same.fingerprint(), first.fingerprint());
        // Its file gone, none is created in its place.
        std::fs::remove_file(dir.path().join(DEFAULT_FILE)).unwrap();
        let err = Keyring::open(&store, dir.path(), None).err().unwrap();
        assert!(matches!(err, KeyringError::Missing { .. }), "{err}");
        assert!(!dir.path().join(DEFAULT_FILE).exists());
    }

    #[cfg(unix)]
    #[test]
    fn a_created_secret_and_its_directory_are_the_owners_alone() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let parent = tempfile::tempdir().unwrap();
        let data_dir = parent.path().join("new-data");
        let keys = parent.path().join("keys");
        create_secret(&keys.join("master.key")).unwrap();
        assert_eq!(mode(&keys), 0o700);
        assert_eq!(mode(&keys.join("master.key")), 0o600);
        let store = Store::open(&data_dir).unwrap();
        Keyring::open(&store, &data_dir, None).unwrap();
        assert_eq!(mode(&data_dir.join(DEFAULT_FILE)), 0o600);
    }
}
