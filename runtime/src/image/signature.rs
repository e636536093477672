//! Ed25519 verification of a model image's signature trailer (feature `verify`), `no_std` and
//! allocation-free: [`Model::verify_signature`] checks the trailer against a public key the
//! caller trusts (typically one compiled into the firmware).
//!
//! The key id in the trailer is the first 8 bytes of SHA-512 of the 32-byte public key
//! ([`key_id`]); it lets a device with several trusted keys pick the right one, and lets a wrong
//! key be named as such before the (slower) curve arithmetic. It is a hint only: the signature
//! itself is always checked.

use ed25519_compact::{sha512, PublicKey, Signature};

use super::model::Model;
use crate::Error;

/// Length of an Ed25519 public key.
pub const PUBLIC_KEY_LEN: usize = 32;
/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;
/// Length of the key id stored in the trailer.
pub const KEY_ID_LEN: usize = 8;

/// The key id of `public_key` as stored in a signature trailer: the first 8 bytes of
/// SHA-512(public key).
pub fn key_id(public_key: &[u8; PUBLIC_KEY_LEN]) -> [u8; KEY_ID_LEN] {
    let h = sha512::Hash::hash(public_key);
    let mut id = [0u8; KEY_ID_LEN];
    id.copy_from_slice(&h[..KEY_ID_LEN]);
    id
}

impl Model<'_> {
    /// Verifies the image's Ed25519 signature (over bytes `[0, image_len)`) against
    /// `public_key`.
    ///
    /// Errors: [`Error::ImageNotSigned`] when the image has no trailer (verification was asked
    /// for, so an unsigned image is refused), [`Error::SignatureKeyMismatch`] when the trailer
    /// names another key, [`Error::SignatureBadPublicKey`] when `public_key` is not a usable
    /// Ed25519 key, and [`Error::SignatureInvalid`] when the signature does not verify (the
    /// image or the trailer was altered after signing, or the signature was forged).
    pub fn verify_signature(&self, public_key: &[u8; PUBLIC_KEY_LEN]) -> Result<(), Error> {
        let trailer = self.signature().ok_or(Error::ImageNotSigned)?;
        if trailer.key_id != key_id(public_key) {
            return Err(Error::SignatureKeyMismatch);
        }
        let pk = PublicKey::new(*public_key);
        pk.validate().map_err(|_| Error::SignatureBadPublicKey)?;
        let sig = Signature::from_slice(trailer.signature).map_err(|_| Error::SignatureInvalid)?;
        pk.verify(self.signed_bytes(), &sig)
            .map_err(|_| Error::SignatureInvalid)
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use crate::image::writer::{fix_crc, AlignedBytes};
    use crate::image::FLAG_SIGNED;
    use crate::models::mlp;
    use ed25519_compact::{KeyPair, Seed};

    fn keypair(seed: u8) -> KeyPair {
        KeyPair::from_seed(Seed::new([seed; 32]))
    }

    /// Signs like the signing tool does (FORMAT.md, "Signature trailer"): set flag bit 0, fix
    /// the CRC, sign `[0, image_len)`, append the 80-byte trailer.
    fn sign(image: &[u8], kp: &KeyPair) -> Vec<u8> {
        let mut b = image.to_vec();
        let flags = u32::from_le_bytes([b[16], b[17], b[18], b[19]]) | FLAG_SIGNED;
        b[16..20].copy_from_slice(&flags.to_le_bytes());
        fix_crc(&mut b);
        let sig = kp.sk.sign(&b, None);
        b.extend_from_slice(b"EDSG\x01\x00\x00\x00");
        b.extend_from_slice(&key_id(&kp.pk));
        b.extend_from_slice(sig.as_ref());
        b
    }

    fn image() -> Vec<u8> {
        mlp::mlp(3, false).build_f32().expect("builds").bytes
    }

    fn verify(bytes: &[u8], pk: &[u8; 32]) -> Result<(), Error> {
        let a = AlignedBytes::new(bytes);
        Model::parse(a.as_slice())?.verify_signature(pk)
    }

    #[test]
    fn signed_image_verifies_with_its_key_only() {
        let (a, b) = (keypair(1), keypair(2));
        let signed = sign(&image(), &a);
        assert_eq!(verify(&signed, &a.pk), Ok(()));
        assert_eq!(verify(&signed, &b.pk), Err(Error::SignatureKeyMismatch));
    }

    #[test]
    fn unsigned_image_is_refused_when_verification_is_asked_for() {
        let kp = keypair(1);
        assert_eq!(verify(&image(), &kp.pk), Err(Error::ImageNotSigned));
    }

    #[test]
    fn altered_image_with_a_fixed_crc_fails_the_signature() {
        let kp = keypair(1);
        let signed = sign(&image(), &kp);
        let len = signed.len() - 80;
        // A weight byte changed and the CRC recomputed: structurally valid, badly signed.
        let mut b = signed.clone();
        b[len - 40] ^= 0x10;
        fix_crc(&mut b);
        assert_eq!(verify(&b, &kp.pk), Err(Error::SignatureInvalid));
        // A signature byte changed.
        let mut b = signed.clone();
        b[len + 20] ^= 1;
        assert_eq!(verify(&b, &kp.pk), Err(Error::SignatureInvalid));
        // A key id that matches, on a signature made by another key.
        let other = sign(&image(), &keypair(9));
        let mut b = other.clone();
        b[len + 8..len + 16].copy_from_slice(&key_id(&kp.pk));
        assert_eq!(verify(&b, &kp.pk), Err(Error::SignatureInvalid));
    }

    #[test]
    fn invalid_public_key_is_named() {
        let kp = keypair(1);
        let signed = sign(&image(), &kp);
        // The identity point (y = 1) has small order: a key that verifies anything forged for it.
        let mut weak = [0u8; 32];
        weak[0] = 1;
        let mut b = signed.clone();
        let len = b.len() - 80;
        b[len + 8..len + 16].copy_from_slice(&key_id(&weak));
        assert_eq!(verify(&b, &weak), Err(Error::SignatureBadPublicKey));
    }
}
