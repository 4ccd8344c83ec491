//! Key files, shared with the node.
//!
//! A signing key file is text: the standard-base64 32-byte Ed25519 seed and a newline, mode 0600,
//! created with `O_EXCL` so that an existing key is never overwritten. The public key file
//! (conventionally the same name plus `.pub`) holds the standard-base64 32-byte public key and a
//! newline.

use crate::error::ClientError;
use ed25519_dalek::{SigningKey, VerifyingKey};
use ledger_core::keys::{public_key_from_base64, public_key_to_base64, signing_key_from_base64, signing_key_to_base64};
use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

/// Largest key file read, in bytes (a key file is about 45 bytes).
const MAX_KEY_FILE: u64 = 4096;

/// The conventional public key path of a signing key file: the same path with `.pub` appended.
pub fn public_key_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".pub");
    PathBuf::from(s)
}

fn create_new(path: &Path, mode: u32, contents: &str) -> Result<(), ClientError> {
    let io = |error| ClientError::KeyFile {
        path: path.to_path_buf(),
        error,
    };
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io)?;
    f.write_all(contents.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)
}

fn read_small(path: &Path) -> Result<String, ClientError> {
    use std::io::Read as _;
    let io = |error| ClientError::KeyFile {
        path: path.to_path_buf(),
        error,
    };
    let f = std::fs::File::open(path).map_err(io)?;
    let mut s = String::new();
    f.take(MAX_KEY_FILE + 1).read_to_string(&mut s).map_err(io)?;
    if s.len() as u64 > MAX_KEY_FILE {
        return Err(ClientError::BadKeyFile {
            path: path.to_path_buf(),
            detail: format!("larger than {MAX_KEY_FILE} bytes"),
        });
    }
    Ok(s)
}

/// Writes a signing key file (base64 seed and a newline) with mode 0600. Never overwrites: fails
/// when the file exists.
///
/// # Errors
/// [`ClientError::KeyFile`] when the file exists or cannot be written.
pub fn write_signing_key(path: impl AsRef<Path>, key: &SigningKey) -> Result<(), ClientError> {
    let mut text = signing_key_to_base64(key);
    text.push('\n');
    create_new(path.as_ref(), 0o600, &text)
}

/// Reads a signing key file written by [`write_signing_key`].
///
/// # Errors
/// When the file cannot be read or does not hold base64 of a 32-byte seed.
pub fn read_signing_key(path: impl AsRef<Path>) -> Result<SigningKey, ClientError> {
    let path = path.as_ref();
    let text = read_small(path)?;
    signing_key_from_base64(text.trim()).map_err(|e| ClientError::BadKeyFile {
        path: path.to_path_buf(),
        detail: format!("not a signing key: {e}"),
    })
}

/// Writes a public key file (base64 key and a newline), mode 0644. Never overwrites.
///
/// # Errors
/// [`ClientError::KeyFile`] when the file exists or cannot be written.
pub fn write_public_key(path: impl AsRef<Path>, key: &VerifyingKey) -> Result<(), ClientError> {
    let mut text = public_key_to_base64(key);
    text.push('\n');
    create_new(path.as_ref(), 0o644, &text)
}

/// Reads a public key file written by [`write_public_key`].
///
/// # Errors
/// When the file cannot be read or does not hold base64 of a valid 32-byte public key.
pub fn read_public_key(path: impl AsRef<Path>) -> Result<VerifyingKey, ClientError> {
    let path = path.as_ref();
    let text = read_small(path)?;
    public_key_from_base64(text.trim()).map_err(|e| ClientError::BadKeyFile {
        path: path.to_path_buf(),
        detail: format!("not a public key: {e}"),
    })
}

/// Writes `path` (the signing key, 0600) and `path.pub` (the public key). Refuses to start when
/// either file exists, so it never leaves a key without its public half because of a stale file.
///
/// # Errors
/// When either file exists or cannot be written.
pub fn write_key_pair(path: impl AsRef<Path>, key: &SigningKey) -> Result<PathBuf, ClientError> {
    let path = path.as_ref();
    let pub_path = public_key_path(path);
    for p in [path, pub_path.as_path()] {
        if p.symlink_metadata().is_ok() {
            return Err(ClientError::KeyFile {
                path: p.to_path_buf(),
                error: std::io::Error::new(std::io::ErrorKind::AlreadyExists, "file exists, not overwriting"),
            });
        }
    }
    write_signing_key(path, key)?;
    write_public_key(&pub_path, &key.verifying_key())?;
    Ok(pub_path)
}

/// Writes an escrow secret key file (standard base64 of the 32-byte X25519 secret key and a
/// newline) with mode 0600, and `<path>.pub` with the public key; never overwrites. Returns the
/// public key (base64) for the `escrow.key` record.
///
/// # Errors
/// [`ClientError::KeyFile`] when a file exists or cannot be written.
pub fn write_escrow_key(path: impl AsRef<Path>) -> Result<String, ClientError> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut seed = [0u8; 32];
    rand::Rng::fill_bytes(&mut rand::rng(), &mut seed);
    let sk = ledger_core::seal::EscrowSecretKey::from_bytes(seed);
    let pk = sk
        .public_key()
        .map_err(|e| ClientError::KeyFile {
            path: path.as_ref().to_path_buf(),
            error: std::io::Error::other(e.to_string()),
        })?
        .to_base64();
    create_new(path.as_ref(), 0o600, &format!("{}\n", b64.encode(sk.to_bytes())))?;
    create_new(&public_key_path(path.as_ref()), 0o644, &format!("{pk}\n"))?;
    Ok(pk)
}
