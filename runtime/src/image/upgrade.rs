//! Downgrade protection on the device: before a new model image replaces the installed one,
//! [`check_upgrade`] refuses an image whose model version (header field `model_version`) is
//! lower than the installed version. Equal versions pass (re-installing the same version).
//!
//! The version is only as trustworthy as the image: on a device that takes signed images, use
//! [`check_signed_upgrade`], which verifies the signature first, so that neither a forged
//! version field nor an old but validly signed image (a replayed release with a known flaw)
//! gets installed. There is deliberately no "force" here: a rollback on purpose is a host-side
//! decision (`edgeloop flash --force`) that writes the image without asking the device.
//!
//! The installed version is the caller's to keep (e.g. in a flash word or the installed
//! image's header): read it from storage the new image cannot overwrite before this check.

use super::model::Model;
use crate::Error;

/// An accepted upgrade: what the offered image replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Upgrade {
    /// The offered image is newer than the installed one.
    Newer {
        /// Model version installed now.
        installed: u32,
        /// Model version of the offered image.
        offered: u32,
    },
    /// The offered image has the installed version (a re-install).
    Same {
        /// The model version of both.
        version: u32,
    },
}

/// Accepts `offered` if its model version is at least `installed_version`; refuses it with
/// [`Error::ImageDowngrade`] otherwise.
pub fn check_upgrade(installed_version: u32, offered: &Model<'_>) -> Result<Upgrade, Error> {
    let v = offered.model_version();
    if v < installed_version {
        Err(Error::ImageDowngrade {
            installed: installed_version,
            offered: v,
        })
    } else if v == installed_version {
        Ok(Upgrade::Same { version: v })
    } else {
        Ok(Upgrade::Newer {
            installed: installed_version,
            offered: v,
        })
    }
}

/// [`check_upgrade`] after [`Model::verify_signature`] with `public_key`: an unsigned, altered
/// or foreign-key image is refused with the signature error before its version is looked at.
#[cfg(feature = "verify")]
pub fn check_signed_upgrade(
    installed_version: u32,
    offered: &Model<'_>,
    public_key: &[u8; super::signature::PUBLIC_KEY_LEN],
) -> Result<Upgrade, Error> {
    offered.verify_signature(public_key)?;
    check_upgrade(installed_version, offered)
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use crate::image::layers::Activation;
    use crate::image::writer::{AlignedBytes, ImageWriter};
    use crate::image::DType;

    /// A small valid image (one fully connected layer) of model version `version`.
    fn image(version: u32) -> Vec<u8> {
        let mut w = ImageWriter::new("upgrade-test", version).expect("writer");
        let x = w.input(DType::F32, &[1, 4], None).expect("input");
        let y = w
            .fully_connected(x, &[0.25; 8], None, 2, Activation::None, None)
            .expect("layer");
        w.output(y).expect("output");
        w.finish().expect("image").bytes
    }

    fn check(installed: u32, offered: u32) -> Result<Upgrade, Error> {
        let bytes = AlignedBytes::new(&image(offered));
        let model = Model::parse(bytes.as_slice()).expect("valid image");
        assert_eq!(model.model_version(), offered);
        check_upgrade(installed, &model)
    }

    #[test]
    fn a_lower_version_is_refused_equal_and_higher_pass() {
        assert_eq!(
            check(3, 2),
            Err(Error::ImageDowngrade {
                installed: 3,
                offered: 2
            })
        );
        assert_eq!(
            check(u32::MAX, 0),
            Err(Error::ImageDowngrade {
                installed: u32::MAX,
                offered: 0
            })
        );
        assert_eq!(check(3, 3), Ok(Upgrade::Same { version: 3 }));
        assert_eq!(
            check(3, 4),
            Ok(Upgrade::Newer {
                installed: 3,
                offered: 4
            })
        );
        assert_eq!(
            check(0, u32::MAX),
            Ok(Upgrade::Newer {
                installed: 0,
                offered: u32::MAX
            })
        );
    }

    #[test]
    fn the_refusal_names_both_versions() {
        let e = check(7, 5).unwrap_err().to_string();
        assert!(
            e.contains("version 5") && e.contains("installed version 7"),
            "{e}"
        );
    }

    #[cfg(feature = "verify")]
    mod signed {
        use super::*;
        use crate::image::signature::key_id;
        use crate::image::writer::fix_crc;
        use crate::image::FLAG_SIGNED;
        use ed25519_compact::{KeyPair, Seed};

        /// Signs as FORMAT.md's "Signature trailer" says (flag bit 0, CRC, 80-byte trailer).
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

        fn check_signed(installed: u32, bytes: &[u8], pk: &[u8; 32]) -> Result<Upgrade, Error> {
            let a = AlignedBytes::new(bytes);
            check_signed_upgrade(installed, &Model::parse(a.as_slice())?, pk)
        }

        #[test]
        fn signature_first_then_version() {
            let kp = KeyPair::from_seed(Seed::new([4; 32]));
            let v2 = sign(&image(2), &kp);
            let v5 = sign(&image(5), &kp);
            assert_eq!(
                check_signed(3, &v5, &kp.pk),
                Ok(Upgrade::Newer {
                    installed: 3,
                    offered: 5
                })
            );
            // A validly signed old release is still a downgrade.
            assert_eq!(
                check_signed(3, &v2, &kp.pk),
                Err(Error::ImageDowngrade {
                    installed: 3,
                    offered: 2
                })
            );
            // The old release with its version field raised (CRC fixed): the signature fails.
            let mut forged = v2.clone();
            forged[48..52].copy_from_slice(&9u32.to_le_bytes());
            fix_crc(&mut forged);
            assert_eq!(
                check_signed(3, &forged, &kp.pk),
                Err(Error::SignatureInvalid)
            );
            // Unsigned: refused before the version is looked at.
            assert_eq!(
                check_signed(3, &image(5), &kp.pk),
                Err(Error::ImageNotSigned)
            );
        }
    }
}
