//! Files and folders that only the running user may change: the compile cache (native code
//! the process will run), the run lock, the metrics textfile and the journal (personal
//! data).
//!
//! Another local user must not be able to plant a symbolic link where one of these is
//! written (the write would land in a file of the attacker's choosing, with our rights),
//! nor swap the contents of a folder we trust. So files are opened without following a
//! final symbolic link and created 0600, and a folder is trusted only when it is a real
//! folder, owned by us, that nobody else may write to.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// Opens `path` for appending (created 0600 when missing), refusing a symbolic link.
pub fn open_append(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    no_follow(&mut options).open(path)
}

/// Opens `path` for reading and writing without truncating it (created 0600 when missing),
/// refusing a symbolic link: for lock files.
pub fn open_lock(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).truncate(false).read(true).write(true);
    no_follow(&mut options).open(path)
}

/// Opens `path` for reading, refusing a symbolic link.
pub fn open_read(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true);
    no_follow(&mut options).open(path)
}

/// Creates `path`, which must not exist yet (not even as a symbolic link), mode 0600.
pub fn create_new(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    no_follow(&mut options).open(path)
}

#[cfg(unix)]
fn no_follow(options: &mut OpenOptions) -> &mut OpenOptions {
    use std::os::unix::fs::OpenOptionsExt;
    options.mode(0o600).custom_flags(libc::O_NOFOLLOW)
}

#[cfg(not(unix))]
fn no_follow(options: &mut OpenOptions) -> &mut OpenOptions {
    options
}

/// Creates `dir` (mode 0700) when missing, then checks that it is a folder we may trust:
/// not a symbolic link, owned by the running user, and not writable by group or others.
/// `Err` says what is wrong and how to fix it.
pub fn ensure_private_dir(dir: &Path) -> Result<(), String> {
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    match builder.create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("cannot create {}: {e}", dir.display())),
    }
    check_private(dir)
}

#[cfg(unix)]
fn check_private(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(dir)
        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    if !meta.file_type().is_dir() {
        return Err(format!(
            "{} is not a folder (a symbolic link?); remove it",
            dir.display()
        ));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(format!(
            "{} belongs to user id {}, not to the user running ldap2ftrack ({me}); remove it \
             or point the setting at a folder of this user",
            dir.display(),
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "{} may be written by other users (mode {:o}); run `chmod 700 {}`",
            dir.display(),
            meta.mode() & 0o7777,
            dir.display()
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_dir: &Path) -> Result<(), String> {
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_planted_symlink_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let planted = dir.path().join("run.lock");
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        assert!(open_lock(&planted).is_err());
        assert!(open_append(&planted).is_err());
        assert!(create_new(&planted).is_err());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    }

    #[test]
    fn new_files_are_0600_and_folders_0700() {
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("journal.jsonl");
        open_append(&journal).unwrap();
        let mode = std::fs::metadata(&journal).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let cache = dir.path().join("a/compiled");
        ensure_private_dir(&cache).unwrap();
        let mode = std::fs::metadata(&cache).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn a_folder_others_may_write_is_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let why = ensure_private_dir(&open).unwrap_err();
        assert!(why.contains("chmod 700"), "{why}");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(dir.path(), &link).unwrap();
        assert!(ensure_private_dir(&link)
            .unwrap_err()
            .contains("not a folder"));
    }

    #[test]
    fn a_folder_of_another_user_is_not_trusted() {
        // As root, a folder handed to `nobody`; as anyone else, `/`, which root owns.
        let dir = tempfile::tempdir().unwrap();
        let theirs = if unsafe { libc::geteuid() } == 0 {
            let theirs = dir.path().join("theirs");
            std::fs::create_dir(&theirs).unwrap();
            std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
            std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o700)).unwrap();
            theirs
        } else {
            std::path::PathBuf::from("/")
        };
        let why = ensure_private_dir(&theirs).unwrap_err();
        assert!(why.contains("belongs to user id"), "{why}");
    }
}
