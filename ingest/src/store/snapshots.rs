//! Where the datasets engines' snapshots are kept: one file per tenant under `snapshots/` in
//! the data directory, private like the database.
//!
//! A snapshot holds what an engine knew of its users, so erasure reaches it too: the store
//! deletes the tenant's snapshot before it answers an erasure of any of its users, and
//! refuses a snapshot of a state that had not applied that erasure yet (taken before it, and
//! saved after it).

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::{StoreError, private_dir};
use crate::lock;

/// The folder in the data directory.
pub const SNAPSHOT_DIR: &str = "snapshots";

pub(crate) struct Snapshots {
    dir: PathBuf,
    /// Per tenant, the position (see [`super::Store::subscribe`]) of the newest commit that
    /// erased any of its users.
    erased: Mutex<HashMap<i64, u64>>,
}

impl Snapshots {
    pub(super) fn new(data_dir: &Path) -> Snapshots {
        Snapshots {
            dir: data_dir.join(SNAPSHOT_DIR),
            erased: Mutex::default(),
        }
    }

    fn path(&self, tenant_id: i64) -> PathBuf {
        self.dir.join(format!("tenant-{tenant_id}.snapshot"))
    }

    fn partial(&self, tenant_id: i64) -> PathBuf {
        self.dir
            .join(format!("tenant-{tenant_id}.snapshot.partial"))
    }

    fn failed(&self, path: PathBuf) -> impl FnOnce(std::io::Error) -> StoreError {
        move |source| StoreError::Snapshot { path, source }
    }

    /// Deletes the tenant's snapshot (and one being written): users of the tenant were erased
    /// by the commit at `position`.
    pub(super) fn forget(&self, tenant_id: i64, position: u64) {
        let mut erased = lock(&self.erased);
        let at = erased.entry(tenant_id).or_default();
        *at = (*at).max(position);
        for path in [self.path(tenant_id), self.partial(tenant_id)] {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::error!(
                    error = %e,
                    path = %path.display(),
                    "cannot delete the snapshot of a tenant whose users were erased; delete it before the service restarts"
                ),
            }
        }
    }

    /// The tenant's snapshot, if one is stored.
    pub(super) fn load(&self, tenant_id: i64) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.path(tenant_id);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.failed(path)(e)),
        }
    }

    /// Stores the tenant's snapshot, durably, in place of the one it had; unless users were
    /// erased by a commit after `applied`, the position of the last commit the snapshot's
    /// state had applied. Says whether it was stored.
    pub(super) fn save(
        &self,
        tenant_id: i64,
        applied: u64,
        snapshot: &[u8],
    ) -> Result<bool, StoreError> {
        private_dir(&self.dir).map_err(self.failed(self.dir.clone()))?;
        let (partial, path) = (self.partial(tenant_id), self.path(tenant_id));
        let write = || {
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&partial)?;
            file.write_all(snapshot)?;
            file.sync_all()
        };
        write().map_err(self.failed(partial.clone()))?;
        {
            // Checked and renamed under the lock: an erasure either comes first, and the
            // snapshot is refused, or deletes the renamed file.
            let erased = lock(&self.erased);
            if erased.get(&tenant_id).is_some_and(|&at| at > applied) {
                let _ = std::fs::remove_file(&partial);
                return Ok(false);
            }
            std::fs::rename(&partial, &path).map_err(self.failed(path.clone()))?;
        }
        std::fs::File::open(&self.dir)
            .and_then(|dir| dir.sync_all())
            .map_err(self.failed(self.dir.clone()))?;
        Ok(true)
    }
}
