//! Keyed pseudonyms: the same input under the same tenant key always gives the same
//! pseudonym, so sessions and users still group, but nobody without the key can reverse or
//! confirm one.

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub use crate::bytes::hex;
pub(crate) use crate::bytes::random;

/// What a pseudonym stands for; part of the HMAC input, so a client_ref and a session id that
/// happen to be equal do not share a pseudonym.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    ClientRef,
    Session,
    Visitor,
}

impl Kind {
    fn label(self) -> &'static [u8] {
        match self {
            Kind::ClientRef => b"client_ref",
            Kind::Session => b"session_id",
            Kind::Visitor => b"anonymous_id",
        }
    }
}

/// HMAC-SHA256 of `kind ‖ 0 ‖ value` under the tenant's key, first 128 bits in hex.
pub fn pseudonymise(key: &[u8], kind: Kind, value: &str) -> String {
    keyed(
        Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length"),
        kind,
        value,
    )
}

/// [`pseudonymise`] from an HMAC already keyed.
fn keyed(mut mac: Hmac<Sha256>, kind: Kind, value: &str) -> String {
    mac.update(kind.label());
    mac.update(&[0]);
    mac.update(value.as_bytes());
    hex(&mac.finalize().into_bytes()[..16])
}

/// [`pseudonymise`] under one key, remembering recent answers: the events of one batch
/// nearly always share their session and user, so most HMACs are computed once per batch.
pub struct Pseudonymiser {
    /// The HMAC with the key taken in (its padded blocks hashed once), cloned per value.
    mac: Hmac<Sha256>,
    memo: Vec<(Kind, String, String)>,
}

impl Pseudonymiser {
    /// Distinct values remembered; a batch with more computes the rest each time.
    const MEMO: usize = 8;

    pub fn new(key: &[u8]) -> Pseudonymiser {
        Pseudonymiser {
            mac: Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length"),
            memo: Vec::new(),
        }
    }

    pub fn get(&mut self, kind: Kind, value: &str) -> String {
        if let Some((_, _, p)) = self.memo.iter().find(|(k, v, _)| *k == kind && v == value) {
            return p.clone();
        }
        let p = keyed(self.mac.clone(), kind, value);
        if self.memo.len() < Self::MEMO {
            self.memo.push((kind, value.to_owned(), p.clone()));
        }
        p
    }
}

/// The customer-side pseudonym (`ingest pseudonymise`, and `pseudonymise()` in the npm
/// package): HMAC-SHA256 of the client_ref under the customer's own secret, in hex. It runs on
/// the customer's servers, so Personafin never sees the original.
pub fn customer_pseudonym(secret: &[u8], client_ref: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(client_ref.as_bytes());
    hex(&mac.finalize().into_bytes())
}

/// Shortest customer secret `ingest pseudonymise` accepts.
pub const MIN_CUSTOMER_SECRET_BYTES: usize = 16;

/// A fresh random id: the prefix and 128 bits in hex (served lists and items).
pub fn random_id(prefix: &str) -> String {
    format!("{prefix}{}", hex(&random::<16>()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customer_pseudonym_is_rfc4231_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            customer_pseudonym(b"Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn stable_per_key_and_kind() {
        let a = pseudonymise(b"key-1", Kind::ClientRef, "u1");
        assert_eq!(a, pseudonymise(b"key-1", Kind::ClientRef, "u1"));
        assert_eq!(a.len(), 32);
        assert_ne!(a, pseudonymise(b"key-2", Kind::ClientRef, "u1"));
        assert_ne!(a, pseudonymise(b"key-1", Kind::Session, "u1"));
        assert_ne!(a, pseudonymise(b"key-1", Kind::ClientRef, "u2"));
        // Stored pseudonyms must not change between versions (erasure recomputes them):
        // HMAC-SHA256("key-1", "client_ref" ‖ 0 ‖ "u1"), first 16 bytes.
        assert_eq!(a, "3945964fbfea5159ad3d22947e3b4cdc");
    }

    #[test]
    fn the_pseudonymiser_answers_as_pseudonymise_does() {
        let mut p = Pseudonymiser::new(b"key-1");
        for _ in 0..2 {
            for (kind, value) in [
                (Kind::ClientRef, "u1"),
                (Kind::Session, "u1"),
                (Kind::Visitor, "v"),
            ] {
                assert_eq!(p.get(kind, value), pseudonymise(b"key-1", kind, value));
            }
        }
        for i in 0..2 * Pseudonymiser::MEMO {
            let value = format!("s-{i}");
            assert_eq!(
                p.get(Kind::Session, &value),
                pseudonymise(b"key-1", Kind::Session, &value)
            );
        }
    }
}
