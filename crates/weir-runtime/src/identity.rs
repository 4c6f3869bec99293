//! The instance's identity: a stable `instance_id` persisted in
//! `<state_dir>/<application_id>/`, guarded by a lock file.
//!
//! A restart on the same state dir is the same instance, so its
//! `transactional.id` (`<application_id>-<instance_id>-<thread>`) fences the
//! zombie it replaces. Two live processes on one state dir would share
//! transactional ids and fence each other forever, so the second one fails
//! at start with [`IdentityError::Locked`].

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};

/// The identity could not be established.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// Another live process holds this state dir.
    #[error("state dir {dir} is in use by another Weir process (lock file {lock}); give each instance its own state_dir")]
    Locked {
        /// The application's state dir.
        dir: PathBuf,
        /// The lock file.
        lock: PathBuf,
    },
    /// The state dir could not be created, locked or written.
    #[error("state dir {dir}: {source}")]
    Io {
        /// The directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A locked state dir and the instance id it holds. The lock is released
/// when this value is dropped (or the process dies).
#[derive(Debug)]
pub struct InstanceIdentity {
    instance_id: String,
    dir: PathBuf,
    _lock: File,
}

impl InstanceIdentity {
    /// Locks `<state_dir>/<application_id>/` and reads (or creates) its
    /// instance id; `configured` overrides the persisted one.
    ///
    /// # Errors
    /// [`IdentityError::Locked`] if another process holds the dir;
    /// [`IdentityError::Io`] if it cannot be created or written.
    pub fn acquire(
        state_dir: &Path,
        application_id: &str,
        configured: Option<&str>,
    ) -> Result<Self, IdentityError> {
        let dir = state_dir.join(application_id);
        let io = |source| IdentityError::Io {
            dir: dir.clone(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(io)?;
        let lock_path = dir.join("instance.lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(IdentityError::Locked {
                    dir: dir.clone(),
                    lock: lock_path,
                })
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        let id_path = dir.join("instance-id");
        let instance_id = match configured {
            Some(id) => id.to_string(),
            None => match std::fs::read_to_string(&id_path) {
                Ok(s) if !s.trim().is_empty() => s.trim().to_string(),
                _ => {
                    let id = uuid::Uuid::new_v4().simple().to_string();
                    let tmp = dir.join("instance-id.tmp");
                    std::fs::write(&tmp, &id).map_err(io)?;
                    std::fs::rename(&tmp, &id_path).map_err(io)?;
                    id
                }
            },
        };
        Ok(Self {
            instance_id,
            dir,
            _lock: lock,
        })
    }

    /// The instance id.
    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    /// `<state_dir>/<application_id>/`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_survives_a_restart_and_the_dir_is_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let first = InstanceIdentity::acquire(dir.path(), "app", None).unwrap();
        let id = first.instance_id().to_string();
        let second = InstanceIdentity::acquire(dir.path(), "app", None).unwrap_err();
        assert!(matches!(second, IdentityError::Locked { .. }), "{second}");
        assert!(second.to_string().contains("in use"));
        drop(first);
        let again = InstanceIdentity::acquire(dir.path(), "app", None).unwrap();
        assert_eq!(again.instance_id(), id);
        let other_app = InstanceIdentity::acquire(dir.path(), "other", None).unwrap();
        assert_ne!(other_app.instance_id(), id);
    }
}
