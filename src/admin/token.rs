//! The admin API's bearer token, in a file only the service's user can read
//! (`admin.token_file`, by default `<state.dir>/admin-token`). The proxy creates
//! it (mode 0600, 32 random bytes) at start when it is absent, refuses to start
//! with one that others can read or that is too short to be a secret, and reads
//! it again on SIGHUP. The admin commands read the same file.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use subtle::ConstantTimeEq;

use crate::oauth::seal;
use crate::secret::Secret;

/// A token shorter than this is refused: it would be guessable.
const MIN_LEN: usize = 32;

/// Why the token file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    #[error("cannot read the admin token file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create the admin token file {}: {source}", path.display())]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the admin token file {} can be read by other users (mode {mode:04o}): `chmod 600` it",
        path.display()
    )]
    Exposed { path: PathBuf, mode: u32 },
    #[error(
        "the admin token in {} is shorter than {MIN_LEN} characters: remove the file (the proxy makes a new one) or put a longer random token in it",
        path.display()
    )]
    TooShort { path: PathBuf },
}

/// The admin token. Prints as `[redacted]`.
#[derive(Debug)]
pub struct AdminToken(Secret);

impl AdminToken {
    /// The token in `path`, creating the file (0600, a new random token) if absent.
    pub fn load_or_create(path: &Path) -> Result<Self, TokenFileError> {
        let created = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path);
        match created {
            Ok(mut file) => {
                let token = seal::random_token(32);
                file.write_all(format!("{token}\n").as_bytes())
                    .and_then(|()| file.sync_all())
                    .map_err(|source| TokenFileError::Create {
                        path: path.to_path_buf(),
                        source,
                    })?;
                tracing::info!(file = %path.display(), "created the admin token file");
                Ok(Self(Secret::new(token)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::load(path),
            Err(source) => Err(TokenFileError::Create {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// The token in `path`, refused if other users can read the file.
    pub fn load(path: &Path) -> Result<Self, TokenFileError> {
        let read = |source| TokenFileError::Read {
            path: path.to_path_buf(),
            source,
        };
        let mode = std::fs::metadata(path).map_err(read)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(TokenFileError::Exposed {
                path: path.to_path_buf(),
                mode,
            });
        }
        Self::read(path)
    }

    /// The token in `path` as it is (the admin commands: whoever can read it may use it).
    pub fn read(path: &Path) -> Result<Self, TokenFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokenFileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let token = text.trim();
        if token.len() < MIN_LEN {
            return Err(TokenFileError::TooShort {
                path: path.to_path_buf(),
            });
        }
        Ok(Self(Secret::new(token)))
    }

    /// Whether `presented` is the token, in time that does not depend on where they differ
    /// (their SHA-256 hashes are compared, so neither does it tell the length).
    pub fn matches(&self, presented: &str) -> bool {
        let ours = seal::hash(self.0.expose());
        let theirs = seal::hash(presented);
        ours.as_bytes().ct_eq(theirs.as_bytes()).into()
    }

    /// The token itself, for the `Authorization` header the admin commands send.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_is_created_private_with_a_random_token_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin-token");
        let made = AdminToken::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(made.expose().len() >= MIN_LEN);
        let again = AdminToken::load_or_create(&path).unwrap();
        assert_eq!(again.expose(), made.expose(), "an existing file is kept");
        assert!(again.matches(made.expose()));
        assert!(!again.matches(&made.expose()[1..]));
        assert!(!again.matches(""));
        assert_eq!(format!("{made:?}"), "AdminToken([redacted])");
    }

    #[test]
    fn a_file_others_can_read_or_a_short_token_is_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin-token");
        std::fs::write(&path, "x".repeat(40)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = AdminToken::load_or_create(&path).unwrap_err();
        assert!(e.to_string().contains("mode 0644"), "{e}");
        assert!(AdminToken::read(&path).is_ok(), "the commands only read it");

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&path, "short\n").unwrap();
        let e = AdminToken::load(&path).unwrap_err();
        assert!(e.to_string().contains("shorter than 32"), "{e}");

        let e = AdminToken::load(&dir.path().join("missing")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cannot read the admin token file"),
            "{e}"
        );
    }
}
