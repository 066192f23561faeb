//! The identity vault, off by default: the one place an original `client_ref` is kept, so a
//! customer can be told which of its users a pseudonym is (say, for a data-subject request).
//! Each is sealed with AES-256-GCM under a per-tenant key derived from the master secret, with
//! the pseudonym as associated data, so a row cannot be moved to another user.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};

pub use crate::store::Sealed;

pub struct Vault {
    cipher: Aes256Gcm,
}

#[derive(Debug, thiserror::Error)]
#[error("the vault entry cannot be opened: wrong key, or the entry was altered")]
pub struct OpenError;

impl Vault {
    pub fn new(key: &[u8; 32]) -> Vault {
        Vault {
            cipher: Aes256Gcm::new(key.into()),
        }
    }

    pub fn seal(&self, user_id: &str, client_ref: &str) -> Sealed {
        let nonce = super::pseudonym::random::<12>();
        let payload = Payload {
            msg: client_ref.as_bytes(),
            aad: user_id.as_bytes(),
        };
        let ciphertext = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), payload)
            .expect("AES-GCM encrypts any message under 64 GiB");
        Sealed {
            user_id: user_id.to_owned(),
            nonce,
            ciphertext,
        }
    }

    pub fn open(&self, sealed: &Sealed) -> Result<String, OpenError> {
        let payload = Payload {
            msg: &sealed.ciphertext,
            aad: sealed.user_id.as_bytes(),
        };
        let plain = self
            .cipher
            .decrypt(Nonce::from_slice(&sealed.nonce), payload)
            .map_err(|_| OpenError)?;
        String::from_utf8(plain).map_err(|_| OpenError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_only_for_the_same_user_and_key() {
        let vault = Vault::new(&[1; 32]);
        let sealed = vault.seal("pseudonym-1", "customer-user-42");
        assert!(!sealed.ciphertext.windows(8).any(|w| w == b"customer"));
        assert_eq!(vault.open(&sealed).unwrap(), "customer-user-42");
        let moved = Sealed {
            user_id: "pseudonym-2".into(),
            ..sealed.clone()
        };
        assert!(vault.open(&moved).is_err());
        assert!(Vault::new(&[2; 32]).open(&sealed).is_err());
    }
}
