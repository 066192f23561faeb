//! Engine snapshots: an engine's state and the log position it covers, in a compact binary
//! form, so that a restart loads the state and replays only the events after that position.
//!
//! Layout: the magic `PFCSNAP1`; a [`Header`] and the engine's state, both in postcard; a
//! CRC-32 of everything before it. A snapshot is only ever a shortcut: one that cannot be
//! used (damaged, of another format, made with other parameters, or by a build whose hash
//! function differs) is refused with the reason, and the engine is rebuilt from the log.

use std::hash::Hash;
use std::marker::PhantomData;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use sha2::{Digest, Sha256};

use super::{Engine, FastMap, Params};

const MAGIC: &[u8; 8] = b"PFCSNAP1";
const FORMAT: u32 = 1;
/// Keyed with the engine's seed when written and again when loaded: the same key unless the
/// hash function changed between the builds, which would orphan every stored key.
const PROBE: &str = "personafin-capture";

#[derive(Serialize, Deserialize)]
struct Header {
    format: u32,
    /// SHA-256 of the parameters the state was built with.
    params: [u8; 32],
    probe: u64,
    /// The log position of the newest event the state holds.
    through: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("not an engine snapshot")]
    NotASnapshot,
    #[error("the snapshot is damaged: its checksum does not match")]
    Damaged,
    #[error("the snapshot is of format {0}; this build reads format {FORMAT}")]
    Format(u32),
    #[error("the snapshot was made with other datasets parameters")]
    OtherParams,
    #[error("the snapshot's keys were made by another hash function")]
    OtherHash,
    #[error("the snapshot cannot be decoded: {0}")]
    Decode(postcard::Error),
    #[error("the snapshot cannot be encoded: {0}")]
    Encode(postcard::Error),
}

/// `out` followed by its CRC-32.
fn with_checksum(mut out: Vec<u8>) -> Vec<u8> {
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

fn fingerprint(params: &Params) -> [u8; 32] {
    Sha256::digest(format!("{params:?}")).into()
}

/// Entries a map read from a snapshot is made room for at once, at most.
const MAX_PREALLOCATED: usize = 1 << 26;

/// Reads a hash map at the size its snapshot gives, in one allocation: serde's own reading
/// grows a map step by step (it trusts a size only up to a megabyte), rehashing each of the
/// engine's largest maps, millions of entries, many times over.
pub(super) fn sized_map<'de, D, K, V>(d: D) -> Result<FastMap<K, V>, D::Error>
where
    D: Deserializer<'de>,
    K: Deserialize<'de> + Eq + Hash,
    V: Deserialize<'de>,
{
    struct Entries<K, V>(PhantomData<(K, V)>);
    impl<'de, K, V> Visitor<'de> for Entries<K, V>
    where
        K: Deserialize<'de> + Eq + Hash,
        V: Deserialize<'de>,
    {
        type Value = FastMap<K, V>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a map")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<Self::Value, A::Error> {
            let size = entries.size_hint().unwrap_or(0).min(MAX_PREALLOCATED);
            let mut map = FastMap::with_capacity_and_hasher(size, Default::default());
            while let Some((k, v)) = entries.next_entry()? {
                map.insert(k, v);
            }
            Ok(map)
        }
    }
    d.deserialize_map(Entries(PhantomData))
}

impl Engine {
    /// The engine's state as a snapshot that covers the log up to position `through` (the
    /// newest event the engine holds).
    pub fn snapshot(&self, through: i64) -> Result<Vec<u8>, SnapshotError> {
        let header = Header {
            format: FORMAT,
            params: fingerprint(&self.params),
            probe: self.key(PROBE),
            through,
        };
        let out = postcard::to_extend(&header, MAGIC.to_vec()).map_err(SnapshotError::Encode)?;
        let out = postcard::to_extend(self, out).map_err(SnapshotError::Encode)?;
        Ok(with_checksum(out))
    }

    /// An engine loaded from a snapshot made with these parameters, and the log position
    /// the snapshot covers.
    pub fn restore(params: Params, snapshot: &[u8]) -> Result<(Engine, i64), SnapshotError> {
        let (covered, crc) = snapshot
            .split_last_chunk::<4>()
            .ok_or(SnapshotError::NotASnapshot)?;
        let body = covered
            .strip_prefix(MAGIC)
            .ok_or(SnapshotError::NotASnapshot)?;
        if crc32fast::hash(covered) != u32::from_le_bytes(*crc) {
            return Err(SnapshotError::Damaged);
        }
        let (header, state) =
            postcard::take_from_bytes::<Header>(body).map_err(SnapshotError::Decode)?;
        if header.format != FORMAT {
            return Err(SnapshotError::Format(header.format));
        }
        if header.params != fingerprint(&params) {
            return Err(SnapshotError::OtherParams);
        }
        let mut engine: Engine = postcard::from_bytes(state).map_err(SnapshotError::Decode)?;
        if engine.key(PROBE) != header.probe {
            return Err(SnapshotError::OtherHash);
        }
        engine.params = params;
        engine.engagement.share_ids();
        Ok((engine, header.through))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datasets::Input;

    const T: i64 = 1_736_164_800_000;

    fn engine() -> Engine {
        let mut engine = Engine::for_deduplicated_log(Params::default());
        let e = Input::new("e1", T, "u1", "s1", "instrument", "viewed").with_entity("ticker", "A");
        engine.ingest(&e, T);
        engine
    }

    #[test]
    fn a_snapshot_reads_back_with_its_position_and_keys() {
        let snapshot = engine().snapshot(42).unwrap();
        let (mut restored, through) = Engine::restore(Params::default(), &snapshot).unwrap();
        assert_eq!(through, 42);
        assert_eq!(restored.preference_score("u1", "ticker", "A", T), 1.0);
        // The users' keys still find them: erasure reaches the loaded state.
        restored.erase_users(&["u1".to_owned()]);
        assert_eq!(restored.preference_score("u1", "ticker", "A", T), 0.0);
    }

    #[test]
    fn a_snapshot_that_cannot_be_used_says_why() {
        let snapshot = engine().snapshot(1).unwrap();
        let refused = |bytes: &[u8], params: Params| Engine::restore(params, bytes).err();

        let mut damaged = snapshot.clone();
        let middle = damaged.len() / 2;
        damaged[middle] ^= 1;
        assert!(matches!(
            refused(&damaged, Params::default()),
            Some(SnapshotError::Damaged)
        ));
        assert!(matches!(
            refused(&snapshot[..snapshot.len() - 1], Params::default()),
            Some(SnapshotError::NotASnapshot | SnapshotError::Damaged)
        ));
        assert!(matches!(
            refused(b"{}", Params::default()),
            Some(SnapshotError::NotASnapshot)
        ));
        let mut other = Params::default();
        other.consensus.dedup_bucket_hours = 2.0;
        assert!(matches!(
            refused(&snapshot, other),
            Some(SnapshotError::OtherParams)
        ));

        // A header of another format, with a valid checksum.
        let header = Header {
            format: FORMAT + 1,
            params: fingerprint(&Params::default()),
            probe: 0,
            through: 1,
        };
        let newer = with_checksum(postcard::to_extend(&header, MAGIC.to_vec()).unwrap());
        assert!(matches!(
            refused(&newer, Params::default()),
            Some(SnapshotError::Format(2))
        ));
    }

    #[test]
    fn keys_made_by_another_hash_function_are_refused() {
        let snapshot = engine().snapshot(1).unwrap();
        // The probe is the header's third field: rewrite the header with another one.
        let (header, state) =
            postcard::take_from_bytes::<Header>(&snapshot[MAGIC.len()..snapshot.len() - 4])
                .unwrap();
        let header = Header {
            probe: header.probe ^ 1,
            ..header
        };
        let mut rewritten = postcard::to_extend(&header, MAGIC.to_vec()).unwrap();
        rewritten.extend_from_slice(state);
        assert!(matches!(
            Engine::restore(Params::default(), &with_checksum(rewritten)),
            Err(SnapshotError::OtherHash)
        ));
    }
}
