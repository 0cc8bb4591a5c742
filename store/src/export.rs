//! Profiles as files: `profiles/<image>.yaml` out, reviewed files in.

use crate::{Result, Store, StoreError};
use falco_learn_profiler::{from_yaml, to_yaml, ImageRef, Profile};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// File stems for a set of images: the short stem
/// ([`ImageRef::short_stem`], `nginx`, `nginx_1.27`) unless two images of the
/// set share it, then the full stem ([`ImageRef::full_stem`]) for those.
pub fn export_stems<'a>(
    images: impl IntoIterator<Item = &'a ImageRef>,
) -> BTreeMap<ImageRef, String> {
    let images: Vec<&ImageRef> = images.into_iter().collect();
    let mut by_short: BTreeMap<String, usize> = BTreeMap::new();
    for i in &images {
        *by_short.entry(i.short_stem()).or_default() += 1;
    }
    images
        .into_iter()
        .map(|i| {
            let s = i.short_stem();
            let stem = if by_short[&s] > 1 { i.full_stem() } else { s };
            (i.clone(), stem)
        })
        .collect()
}

/// Read and check one profile file.
pub fn read_profile_file(path: &Path) -> Result<Profile> {
    let text = std::fs::read_to_string(path).map_err(|source| StoreError::Io {
        path: path.display().to_string(),
        source,
    })?;
    Ok(from_yaml(&text, &path.display().to_string())?)
}

/// Most a written profile or rules file may allow: readable for review and
/// deployment, never writable by anyone but its owner (the agent loads
/// these files as its allowlist), whatever the umask.
pub const SHARED_FILE_MODE: u32 = 0o644;
/// Likewise for a directory made for them.
pub const SHARED_DIR_MODE: u32 = 0o755;

/// Create `dir` and its missing parents, mode 0755 at most.
pub fn create_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(SHARED_DIR_MODE)
        .create(dir)
        .map_err(|source| StoreError::Io {
            path: dir.display().to_string(),
            source,
        })
}

/// Write `text` to `path` atomically (temporary file, fsync, rename), mode
/// 0644 at most: an existing file's stricter mode is kept.
pub fn write_atomic(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let io = |p: &Path| {
        let p = p.display().to_string();
        move |source| StoreError::Io { path: p, source }
    };
    let mode = match std::fs::metadata(path) {
        Ok(m) => m.permissions().mode() & SHARED_FILE_MODE,
        Err(_) => SHARED_FILE_MODE,
    };
    let tmp = path.with_extension("yaml.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io(&tmp))?;
    let written = f
        .write_all(text.as_bytes())
        .and_then(|()| f.set_permissions(std::fs::Permissions::from_mode(mode)))
        .and_then(|()| f.sync_all());
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(&tmp)(e));
    }
    std::fs::rename(&tmp, path).map_err(io(path))
}

impl Store {
    /// Write every stored profile (or those of `only`) to `dir/<stem>.yaml`;
    /// returns the files written, sorted by image. Byte-identical output for
    /// identical profiles.
    pub fn export(
        &self,
        dir: &Path,
        only: Option<&[ImageRef]>,
    ) -> Result<Vec<(ImageRef, PathBuf)>> {
        create_dir(dir)?;
        let all = self.images()?;
        let stems = export_stems(&all);
        let mut out = Vec::new();
        for img in all {
            if only.is_some_and(|o| !o.contains(&img)) {
                continue;
            }
            let Some(p) = self.profile(&img)? else {
                continue;
            };
            let path = dir.join(format!("{}.yaml", stems[&img]));
            write_atomic(&path, &to_yaml(&p))?;
            out.push((img, path));
        }
        Ok(out)
    }

    /// Load reviewed profile files; each replaces the stored profile of its
    /// image (a reviewed file is the source of truth). All files are read
    /// and checked before any is stored.
    pub fn import(&self, files: &[PathBuf]) -> Result<Vec<Profile>> {
        let profiles = files
            .iter()
            .map(|f| read_profile_file(f))
            .collect::<Result<Vec<_>>>()?;
        for p in &profiles {
            self.put_profile(p)?;
        }
        Ok(profiles)
    }
}
