//! Ed25519 signing of model images (the host half; the runtime verifies with feature `verify`).
//!
//! [`sign_image`] sets header flag bit 0, recomputes the header CRC and appends the 80-byte
//! signature trailer of `runtime/FORMAT.md` ("EDSG", algorithm 1, key id, signature over bytes
//! `[0, image_len)`). Signatures are deterministic (RFC 8032), so signing the same image with the
//! same key gives the same bytes.
//!
//! # Key files
//!
//! Two small text files, so they survive copy and paste and version control diffs:
//!
//! ```text
//! edgeloop-ed25519-secret-key-v1
//! <64 lowercase hex digits: the 32-byte Ed25519 seed>
//! ```
//!
//! ```text
//! edgeloop-ed25519-public-key-v1
//! <64 lowercase hex digits: the 32-byte Ed25519 public key>
//! ```
//!
//! The first line is the exact format tag; the second the key; blank lines and lines starting
//! with `#` are ignored (the writer adds a `# key id ...` comment). The secret file is written
//! with mode 0600 on Unix. The public key's 32 bytes are what a firmware embeds.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use ed25519_compact::{KeyPair, Seed};
use edgeloop_runtime::image::signature::{key_id, KEY_ID_LEN, PUBLIC_KEY_LEN};
use edgeloop_runtime::image::writer::{fix_crc, AlignedBytes};
use edgeloop_runtime::image::{FLAG_SIGNED, SIGNATURE_TRAILER_LEN};
use edgeloop_runtime::Model;

use crate::error::{Error, Result};

/// First line of a secret key file.
pub const SECRET_KEY_TAG: &str = "edgeloop-ed25519-secret-key-v1";
/// First line of a public key file.
pub const PUBLIC_KEY_TAG: &str = "edgeloop-ed25519-public-key-v1";
/// File name `edgeloop keygen` gives the secret key.
pub const SECRET_KEY_FILE: &str = "edgeloop.key";
/// File name `edgeloop keygen` gives the public key.
pub const PUBLIC_KEY_FILE: &str = "edgeloop.pub";

/// Algorithm number of Ed25519 in the trailer.
const ALG_ED25519: u16 = 1;

/// An Ed25519 signing key (its 32-byte seed and the key pair derived from it).
#[derive(Clone)]
pub struct SecretKey {
    seed: [u8; 32],
    pair: KeyPair,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey(key id {})", hex(&self.public_key().key_id()))
    }
}

/// An Ed25519 public key, as a firmware embeds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(pub [u8; PUBLIC_KEY_LEN]);

impl SecretKey {
    /// The key derived from a 32-byte seed.
    pub fn from_seed(seed: [u8; 32]) -> Result<Self> {
        // ed25519-compact refuses the all-zero seed; no other seed is invalid.
        if seed.iter().all(|&b| b == 0) {
            return Err(Error::Key("the all-zero seed is not a usable key".into()));
        }
        Ok(SecretKey {
            seed,
            pair: KeyPair::from_seed(Seed::new(seed)),
        })
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(*self.pair.pk)
    }

    /// The key file text (see the module docs).
    pub fn to_text(&self) -> String {
        format!(
            "{SECRET_KEY_TAG}\n# key id {} (keep this file private)\n{}\n",
            hex(&self.public_key().key_id()),
            hex(&self.seed)
        )
    }

    /// Parses key file text; `origin` names the file in errors.
    pub fn from_text(text: &str, origin: &str) -> Result<Self> {
        let seed = parse_key_text(text, SECRET_KEY_TAG, origin)?;
        Self::from_seed(seed).map_err(|e| Error::Key(format!("{origin}: {e}")))
    }

    /// Signs `message` (deterministic Ed25519).
    fn sign(&self, message: &[u8]) -> [u8; 64] {
        *self.pair.sk.sign(message, None)
    }
}

impl PublicKey {
    /// The 8-byte key id stored in signature trailers (first bytes of SHA-512 of the key).
    pub fn key_id(&self) -> [u8; KEY_ID_LEN] {
        key_id(&self.0)
    }

    /// The key file text (see the module docs).
    pub fn to_text(&self) -> String {
        format!(
            "{PUBLIC_KEY_TAG}\n# key id {}\n{}\n",
            hex(&self.key_id()),
            hex(&self.0)
        )
    }

    /// Parses key file text; `origin` names the file in errors. The key must be a valid
    /// Ed25519 point of large order.
    pub fn from_text(text: &str, origin: &str) -> Result<Self> {
        let bytes = parse_key_text(text, PUBLIC_KEY_TAG, origin)?;
        ed25519_compact::PublicKey::new(bytes)
            .validate()
            .map_err(|e| Error::Key(format!("{origin}: not a valid Ed25519 public key ({e})")))?;
        Ok(PublicKey(bytes))
    }
}

/// A new key pair: from `seed` when given (reproducible, for tests and demos), else from the
/// operating system's random source.
pub fn generate_keypair(seed: Option<[u8; 32]>) -> Result<(SecretKey, PublicKey)> {
    let seed = match seed {
        Some(s) => s,
        None => *Seed::generate(),
    };
    let sk = SecretKey::from_seed(seed)?;
    let pk = sk.public_key();
    Ok((sk, pk))
}

/// Writes `edgeloop.key` and `edgeloop.pub` into `dir` (created if missing); refuses to
/// overwrite an existing secret key unless `force`. Returns the two paths.
pub fn write_keypair(dir: &Path, secret: &SecretKey, force: bool) -> Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let (sk_path, pk_path) = (dir.join(SECRET_KEY_FILE), dir.join(PUBLIC_KEY_FILE));
    if sk_path.exists() && !force {
        return Err(Error::Key(format!(
            "{} exists; refusing to overwrite a secret key (pass --force to replace it)",
            sk_path.display()
        )));
    }
    write_private(&sk_path, secret.to_text().as_bytes())?;
    std::fs::write(&pk_path, secret.public_key().to_text()).map_err(|e| Error::io(&pk_path, e))?;
    Ok((sk_path, pk_path))
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    // An existing file keeps its mode on open: tighten it too.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::io(path, e))?;
    f.write_all(bytes).map_err(|e| Error::io(path, e))
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|e| Error::io(path, e))
}

/// Reads a secret key file.
pub fn read_secret_key(path: &Path) -> Result<SecretKey> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    SecretKey::from_text(&text, &path.display().to_string())
}

/// Reads a public key file.
pub fn read_public_key(path: &Path) -> Result<PublicKey> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    PublicKey::from_text(&text, &path.display().to_string())
}

/// Signs a model image: checks that it parses, sets header flag bit 0, recomputes the CRC and
/// appends the signature trailer. An image that is already signed is signed again (its old
/// trailer is replaced); bytes after the image (flash padding) are dropped.
pub fn sign_image(image: &[u8], secret: &SecretKey) -> Result<Vec<u8>> {
    let aligned = AlignedBytes::new(image);
    let model = Model::parse(aligned.as_slice()).map_err(Error::Image)?;
    let mut out = model.signed_bytes().to_vec();
    let flags = u32::from_le_bytes([out[16], out[17], out[18], out[19]]) | FLAG_SIGNED;
    out[16..20].copy_from_slice(&flags.to_le_bytes());
    fix_crc(&mut out);
    let signature = secret.sign(&out);
    out.reserve(SIGNATURE_TRAILER_LEN);
    out.extend_from_slice(b"EDSG");
    out.extend_from_slice(&ALG_ED25519.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&secret.public_key().key_id());
    out.extend_from_slice(&signature);
    // The result must be what the runtime accepts: check it the way a device will.
    verify_image(&out, &secret.public_key())?;
    Ok(out)
}

/// What [`verify_image`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The model's name.
    pub name: String,
    /// The model's version.
    pub model_version: u32,
    /// Signed bytes (the image without its trailer).
    pub image_len: usize,
    /// Key id of the signing key.
    pub key_id: [u8; KEY_ID_LEN],
}

/// Parses `image` and verifies its signature against `public` with the runtime's own no_std
/// verifier. An unsigned image is refused ([`edgeloop_runtime::Error::ImageNotSigned`]).
pub fn verify_image(image: &[u8], public: &PublicKey) -> Result<Verified> {
    let aligned = AlignedBytes::new(image);
    let model = Model::parse(aligned.as_slice()).map_err(Error::Image)?;
    model.verify_signature(&public.0).map_err(Error::Image)?;
    Ok(Verified {
        name: model.name().to_string(),
        model_version: model.model_version(),
        image_len: model.image_len(),
        key_id: public.key_id(),
    })
}

/// Reads the image file at `path` and verifies it (see [`verify_image`]).
pub fn verify_image_file(path: &Path, public: &PublicKey) -> Result<Verified> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    verify_image(&bytes, public).map_err(|e| match e {
        Error::Image(inner) => Error::ImageFile {
            path: path.to_path_buf(),
            source: inner,
        },
        other => other,
    })
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn parse_key_text(text: &str, tag: &str, origin: &str) -> Result<[u8; 32]> {
    let mut lines = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    let err = |msg: String| Error::Key(format!("{origin}: {msg}"));
    match lines.next() {
        Some(l) if l == tag => {}
        Some(l) if l == SECRET_KEY_TAG || l == PUBLIC_KEY_TAG => {
            return Err(err(format!("is a '{l}' file, expected '{tag}'")))
        }
        _ => return Err(err(format!("does not start with the line '{tag}'"))),
    }
    let Some(h) = lines.next() else {
        return Err(err("has no key line".into()));
    };
    if lines.next().is_some() {
        return Err(err("has extra lines after the key".into()));
    }
    if h.len() != 64 {
        return Err(err(format!(
            "key line has {} characters, expected 64 hex digits",
            h.len()
        )));
    }
    let mut out = [0u8; 32];
    for (i, pair) in h.as_bytes().chunks_exact(2).enumerate() {
        let digit = |c: u8| (c as char).to_digit(16);
        match (digit(pair[0]), digit(pair[1])) {
            (Some(a), Some(b)) => out[i] = (a * 16 + b) as u8,
            _ => {
                return Err(err(format!(
                    "key line has a non-hex character at column {}",
                    2 * i + 1
                )))
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgeloop_runtime::image::layers::Activation;
    use edgeloop_runtime::image::writer::ImageWriter;
    use edgeloop_runtime::image::DType;
    use edgeloop_runtime::models::mlp;
    use edgeloop_runtime::Error as RtError;

    fn keys(seed: u8) -> (SecretKey, PublicKey) {
        generate_keypair(Some([seed; 32])).expect("valid seed")
    }

    fn image() -> Vec<u8> {
        mlp::mlp(5, true).build_f32().expect("builds").bytes
    }

    #[test]
    fn sign_then_verify() {
        let (sk, pk) = keys(3);
        let img = image();
        let signed = sign_image(&img, &sk).expect("signs");
        assert_eq!(signed.len(), img.len() + SIGNATURE_TRAILER_LEN);
        let v = verify_image(&signed, &pk).expect("verifies");
        assert_eq!(v.name, "mlp");
        assert_eq!(v.image_len, img.len());
        // Deterministic, and re-signing a signed image replaces the trailer.
        assert_eq!(sign_image(&img, &sk).expect("signs"), signed);
        assert_eq!(sign_image(&signed, &sk).expect("re-signs"), signed);
        let (sk2, pk2) = keys(4);
        let resigned = sign_image(&signed, &sk2).expect("re-signs with another key");
        assert_eq!(resigned.len(), signed.len());
        verify_image(&resigned, &pk2).expect("verifies with the new key");
    }

    #[test]
    fn wrong_key_is_refused() {
        let (sk, _) = keys(3);
        let (_, other) = keys(8);
        let signed = sign_image(&image(), &sk).expect("signs");
        let e = verify_image(&signed, &other).expect_err("wrong key");
        assert!(
            matches!(e, Error::Image(RtError::SignatureKeyMismatch)),
            "{e}"
        );
    }

    #[test]
    fn unsigned_image_is_refused() {
        let (_, pk) = keys(3);
        let e = verify_image(&image(), &pk).expect_err("unsigned");
        assert!(matches!(e, Error::Image(RtError::ImageNotSigned)), "{e}");
    }

    #[test]
    fn garbage_is_not_signed() {
        let (sk, _) = keys(3);
        let e = sign_image(b"not an image at all", &sk).expect_err("garbage");
        assert!(
            matches!(e, Error::Image(RtError::ImageTruncated { .. })),
            "{e}"
        );
    }

    /// A small int8 image (two FullyConnected layers, a stats entry): a few thousand bits.
    fn small_i8() -> Vec<u8> {
        let mut w = ImageWriter::new("small", 3).expect("name fits");
        let x = w
            .input(DType::I8, &[1, 6], Some((0.05, -3)))
            .expect("input");
        let w1: Vec<f32> = (0..24)
            .map(|i| ((i * 37 % 17) as f32 - 8.0) / 9.0)
            .collect();
        let h = w
            .fully_connected(
                x,
                &w1,
                Some(&[0.1, -0.2, 0.3, 0.05]),
                4,
                Activation::Relu,
                Some((0.02, -128)),
            )
            .expect("fc1");
        let w2: Vec<f32> = (0..12).map(|i| ((i * 5 % 7) as f32 - 3.0) / 4.0).collect();
        let y = w
            .fully_connected(h, &w2, None, 3, Activation::None, Some((0.03, 5)))
            .expect("fc2");
        w.output(y).expect("output");
        w.stats_entry(1, vec![1, 2, 3, 4, 5]);
        w.finish().expect("writes").bytes
    }

    /// Every single bit flip of a signed image is refused, by the parser (CRC, header, trailer
    /// framing) or by the signature check, never accepted and never a panic. With the CRC
    /// recomputed after the flip (what an attacker would do), every flip of a byte the parser
    /// does not reject structurally is refused by the signature check itself.
    #[test]
    fn every_bit_flip_of_a_signed_image_is_refused() {
        let (sk, pk) = keys(11);
        let img = small_i8();
        let signed = sign_image(&img, &sk).expect("signs");
        let (mut by_parser, mut by_signature) = (0usize, 0usize);
        for bit in 0..signed.len() * 8 {
            let mut b = signed.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            for fixed_crc in [false, true] {
                if fixed_crc {
                    // Recomputing the CRC after flipping a CRC bit restores the original.
                    if (8..12).contains(&(bit / 8)) {
                        continue;
                    }
                    fix_crc(&mut b);
                }
                match verify_image(&b, &pk) {
                    Ok(_) => panic!("flip of bit {bit} (fixed CRC: {fixed_crc}) accepted"),
                    Err(Error::Image(e)) if is_signature_error(&e) => by_signature += 1,
                    Err(Error::Image(_)) => by_parser += 1,
                    Err(e) => panic!("unexpected error kind: {e}"),
                }
            }
        }
        println!(
            "{} bits x 2 (as is, CRC fixed): {by_parser} refused by the parser, \
             {by_signature} by the signature check",
            signed.len() * 8
        );
        assert_eq!(by_parser + by_signature, signed.len() * 16 - 32);
        // Every flip in the constants and the trailer's signature reaches the signature check.
        assert!(by_signature >= 8 * (64 + 16));
    }

    fn is_signature_error(e: &RtError) -> bool {
        matches!(
            e,
            RtError::SignatureInvalid | RtError::SignatureKeyMismatch | RtError::ImageNotSigned
        )
    }

    /// A flipped weight bit with the CRC fixed is refused by the signature check, specifically.
    #[test]
    fn altered_weight_with_fixed_crc_is_refused_by_the_signature() {
        let (sk, pk) = keys(12);
        let img = image();
        let signed = sign_image(&img, &sk).expect("signs");
        let model_bytes = AlignedBytes::new(&signed);
        let m = Model::parse(model_bytes.as_slice()).expect("parses");
        // The MLP image has no statistics section: the constants end the image.
        let consts_at = img.len() - m.constants_len();
        for off in [consts_at, consts_at + 17, img.len() - 1] {
            let mut b = signed.clone();
            b[off] ^= 0x40;
            fix_crc(&mut b);
            let e = verify_image(&b, &pk).expect_err("altered");
            assert!(
                matches!(e, Error::Image(RtError::SignatureInvalid)),
                "byte {off}: {e}"
            );
        }
    }

    #[test]
    fn key_files_round_trip_and_errors_name_the_problem() {
        let (sk, pk) = keys(21);
        let sk2 = SecretKey::from_text(&sk.to_text(), "k").expect("parses");
        assert_eq!(sk2.public_key(), pk);
        assert_eq!(
            PublicKey::from_text(&pk.to_text(), "p").expect("parses"),
            pk
        );
        let msg = |r: Result<PublicKey>| r.expect_err("bad").to_string();
        assert!(msg(PublicKey::from_text(&sk.to_text(), "f")).contains("expected"));
        assert!(msg(PublicKey::from_text("hello", "f")).contains("does not start"));
        let short = format!("{PUBLIC_KEY_TAG}\nabcd\n");
        assert!(msg(PublicKey::from_text(&short, "f")).contains("4 characters"));
        let bad = format!("{PUBLIC_KEY_TAG}\n{}zz\n", "0".repeat(62));
        assert!(msg(PublicKey::from_text(&bad, "f")).contains("non-hex"));
        // The identity point: a weak key.
        let weak = format!("{PUBLIC_KEY_TAG}\n01{}\n", "0".repeat(62));
        assert!(msg(PublicKey::from_text(&weak, "f")).contains("not a valid"));
        let extra = format!("{}junk\n", pk.to_text());
        assert!(msg(PublicKey::from_text(&extra, "f")).contains("extra lines"));
        assert!(SecretKey::from_seed([0; 32]).is_err());

        let dir = std::env::temp_dir().join(format!("edgeloop-sign-{}", std::process::id()));
        let (skp, pkp) = write_keypair(&dir, &sk, false).expect("writes");
        assert!(
            write_keypair(&dir, &sk, false).is_err(),
            "no silent overwrite"
        );
        assert_eq!(read_public_key(&pkp).expect("reads"), pk);
        assert_eq!(read_secret_key(&skp).expect("reads").public_key(), pk);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&skp).expect("stat").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let signed = sign_image(&image(), &sk).expect("signs");
        let img_path = dir.join("m.img");
        std::fs::write(&img_path, &signed).expect("writes");
        verify_image_file(&img_path, &pk).expect("verifies");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn random_keys_differ() {
        let (a, _) = generate_keypair(None).expect("random");
        let (b, _) = generate_keypair(None).expect("random");
        assert_ne!(a.public_key(), b.public_key());
    }
}
